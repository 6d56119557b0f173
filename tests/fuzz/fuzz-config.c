/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: the configuration file parser and its validation. */

#include "cd-config.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (CdConfig) config = cd_config_new_default ();
  g_autoptr (GError) error = NULL;
  g_autofree char *before = cd_config_describe (config);

  if (!cd_config_load_data (config, (const char *) data, size, &error)) {
    g_autofree char *after = cd_config_describe (config);
    g_assert_nonnull (error);
    /* a refused file changes nothing */
    g_assert_cmpstr (before, ==, after);
    return 0;
  }
  if (!cd_config_validate (config, &error))
    g_assert_nonnull (error);
  return 0;
}
