/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: bounded JSON parsing of request bodies and messages. */

#include "cd-json.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdJsonLimits limits = { 64 * 1024, 16, FALSE };
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = cd_json_parse_bounded ((const char *) data, size, &limits, &error);

  /* exactly one of a result and an error */
  g_assert_true ((node == NULL) != (error == NULL));
  if (node != NULL) {
    g_autofree char *text = cd_json_to_string (node);
    g_autoptr (GError) again_error = NULL;
    g_autoptr (JsonNode) again = cd_json_parse_bounded (text, strlen (text), NULL, &again_error);
    /* what we accept, we can print and read back */
    g_assert_no_error (again_error);
    g_assert_true (json_node_equal (node, again));
  }
  return 0;
}
