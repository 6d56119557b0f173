/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: reading what an S3 endpoint replies (error codes and
 * messages, upload ids) from its XML, which may be anything. */

#include "store/cd-s3.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const char *const names[] = { "Code", "Message", "UploadId", "ETag", "Key" };

  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autofree char *text = cd_s3_xml_text ((const char *) data, size, names[i]);

    /* never longer than the reply, never past it */
    if (text) {
      g_assert_true (strlen (text) <= size);
      g_assert_nonnull (g_strstr_len ((const char *) data, size, names[i]));
    }
  }
  return 0;
}
