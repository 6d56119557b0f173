/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a queue's business hours (JSON). */

#include "cd-json.h"
#include "routing/cd-business-hours.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdJsonLimits limits = { 64 * 1024, 8, FALSE };
  g_autoptr (JsonObject) spec = cd_json_parse_object ((const char *) data, size, &limits, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdBusinessHours) hours = NULL;

  if (spec == NULL)
    return 0;
  hours = cd_business_hours_parse (spec, &error);
  g_assert_true ((hours != NULL) == (error == NULL));
  if (hours) {
    /* any instant, far ones included, has an answer */
    const gint64 instants[] = { 0, 1796018400, -62135596800 + 86400, 253402300799 - 86400 };
    for (gsize i = 0; i < G_N_ELEMENTS (instants); i++) {
      g_autoptr (GDateTime) t = g_date_time_new_from_unix_utc (instants[i]);
      g_assert_nonnull (t);
      (void) cd_business_hours_is_open (hours, t);
    }
  } else {
    g_assert_nonnull (error->message);
    g_assert_cmpuint (strlen (error->message), >, 0);
  }
  return 0;
}
