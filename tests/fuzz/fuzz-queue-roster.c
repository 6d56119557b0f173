/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a queue's roster (JSON) as the store answers it, and the
 * decision taken over it. */

#include "cd-json.h"
#include "routing/cd-queue-roster.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* every other member online and free, by the first byte of its id */
static gboolean
lookup (const char *agent_id, CdMemberNow *now, gpointer user_data)
{
  now->online = (agent_id[0] & 1) == 0;
  now->free = (agent_id[0] & 2) == 0;
  now->declined = (agent_id[0] & 4) != 0;
  now->idle_since_us = agent_id[0];
  now->calls_taken = (guint) strlen (agent_id);
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdJsonLimits limits = { 64 * 1024, 8, FALSE };
  g_autoptr (JsonObject) object = cd_json_parse_object ((const char *) data, size, &limits, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdQueueRoster) roster = NULL;
  g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
  g_autoptr (JsonObject) why = NULL;
  CdRuleCall call = { .language = "de", .country = "DE", .priority = 1 };
  guint cursor = 7;

  if (object == NULL)
    return 0;
  roster = cd_queue_roster_new (object, &error);
  g_assert_true ((roster != NULL) == (error == NULL));
  if (roster == NULL) {
    g_assert_cmpuint (strlen (error->message), >, 0);
    return 0;
  }
  why = cd_queue_roster_decide (roster, lookup, NULL, &call, &cursor, 12345, 1000000, chosen);
  /* one outcome per member, and the chosen ones among them */
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (why, "outcomes")), ==,
                    roster->n_members);
  g_assert_cmpuint (chosen->len, <=, roster->n_members);
  g_assert_cmpint (json_object_get_int_member (why, "eligible"), >=, (gint64) chosen->len);
  return 0;
}
