/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a trickled ICE candidate line (ice.candidate). */

#include "media/cd-call-pipeline.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *line = g_strndup ((const char *) data, size);
  g_autoptr (GError) error = NULL;
  gboolean ok = cd_ice_candidate_check (line, &error);

  g_assert_true (ok == (error == NULL));
  if (ok) {
    /* what passes is printable and short enough for libnice */
    g_assert_cmpuint (strlen (line), <=, 1026);
    for (const char *p = line; *p; p++)
      g_assert_true (g_ascii_isprint (*p));
  }
  return 0;
}
