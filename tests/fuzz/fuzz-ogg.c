/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: scanning the Ogg pages of a recording recovered after a
 * crash (what opened of a sealed file, cut anywhere). */

#include "cd-ogg.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdOggScan scan, again;
  gboolean any = cd_ogg_scan (data, size, &scan);

  g_assert_true (scan.whole_bytes <= size);
  g_assert_true (any == (scan.pages > 0));
  g_assert_true (any || scan.whole_bytes == 0);
  g_assert_true (scan.last_granule >= -1);
  (void) cd_ogg_opus_ms (&scan);
  /* the good part alone scans the same */
  g_assert_true (cd_ogg_scan (data, scan.whole_bytes, &again) == any);
  g_assert_true (again.whole_bytes == scan.whole_bytes && again.pages == scan.pages);
  g_assert_true (again.last_granule == scan.last_granule);
  return 0;
}
