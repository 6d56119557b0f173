/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a queue's definition (JSON), as POST .../queues takes it. */

#include "cd-json.h"
#include "routing/cd-queue-spec.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdJsonLimits limits = { 64 * 1024, 8, FALSE };
  g_autoptr (JsonObject) object = cd_json_parse_object ((const char *) data, size, &limits, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdQueueSpec) spec = NULL;

  if (object == NULL)
    return 0;
  spec = cd_queue_spec_parse (object, &error);
  g_assert_true ((spec != NULL) == (error == NULL));
  if (spec) {
    /* what is accepted is within the documented limits */
    g_assert_cmpuint (g_utf8_strlen (spec->name, -1), >=, 1);
    g_assert_cmpuint (spec->ring_timeout_s, >=, 5);
    g_assert_cmpuint (spec->ring_timeout_s, <=, 300);
    g_assert_cmpuint (spec->n_skills, <=, CD_QUEUE_MAX_SKILLS);
    g_assert_cmpuint (spec->n_languages, <=, CD_QUEUE_MAX_LANGUAGES);
    g_assert_true (spec->strategy != CD_STRATEGY_SKILLS || spec->n_skills > 0);
    g_assert_true (spec->when_full.action != CD_QUEUE_ACTION_QUEUE ||
                   g_uuid_string_is_valid (spec->when_full.queue_id));
  } else {
    /* a refusal names what is wrong */
    g_assert_cmpuint (strlen (error->message), >, 0);
  }
  return 0;
}
