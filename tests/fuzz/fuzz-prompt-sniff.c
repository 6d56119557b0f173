/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: what kind of audio an uploaded prompt is, from its first
 * bytes (GStreamer's type finders, after any ID3v2 tag), as the prompt API
 * tells before decoding it. */

#include "ivr/cd-prompt-import.h"

#include <gst/gst.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static gboolean initialized;
  g_autoptr (GBytes) bytes = g_bytes_new (data, size);
  g_autoptr (GError) error = NULL;
  const char *type;

  if (!initialized) {
    gst_init (NULL, NULL);
    initialized = TRUE;
  }
  type = cd_prompt_sniff (bytes, &error);
  g_assert_true ((type != NULL) == (error == NULL));
  if (type == NULL) {
    g_assert_true (error->domain == CD_PROMPT_ERROR);
    g_assert_true (error->message[0] != '\0');
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    g_assert_true (size > 0 || error->code == CD_PROMPT_ERROR_EMPTY);
    return 0;
  }
  /* one of the kinds taken */
  g_assert_true (g_str_equal (type, "audio/wav") || g_str_equal (type, "audio/ogg") ||
                 g_str_equal (type, "audio/mpeg") || g_str_equal (type, "audio/flac"));
  return 0;
}
