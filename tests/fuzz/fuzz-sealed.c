/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: opening a sealed file read back from storage (a disk or a
 * bucket someone else may write to), fed in pieces of varying size. */

#include "store/cd-seal.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define COMPANY "fuzz-company"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static guint8 key[CD_SEAL_KEY_BYTES];
  static gboolean initialized;
  g_autoptr (CdUnsealer) unsealer = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *company = NULL;
  guint8 out[3000];
  gsize pos = 0, opened = 0;
  /* the first byte picks the size of the pieces */
  gsize piece = size ? (gsize) data[0] * 37 + 1 : 1;
  guint32 version = 0;

  if (!initialized) {
    g_assert_true (sodium_init () >= 0);
    for (gsize i = 0; i < sizeof key; i++)
      key[i] = (guint8) i;
    initialized = TRUE;
  }
  if (cd_seal_peek_header (data, size, &company, &version, &error)) {
    g_assert_true (strlen (company) >= 1 && strlen (company) <= 255);
  } else {
    g_assert_true (error->domain == CD_SEAL_ERROR);
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    g_clear_error (&error);
  }
  unsealer = cd_unsealer_new (key, COMPANY, 1);
  for (;;) {
    gsize give = MIN (piece, size - pos);
    gsize read = 0, written = 0;
    GConverterResult r = g_converter_convert (
        G_CONVERTER (unsealer), data + pos, give, out, sizeof out,
        pos + give == size ? G_CONVERTER_INPUT_AT_END : 0, &read, &written, &error);

    if (r == G_CONVERTER_ERROR) {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT)) {
        /* only while input remains */
        g_assert_true (pos + give < size);
        g_clear_error (&error);
        piece += 100;
        continue;
      }
      g_assert_true (error->domain == CD_SEAL_ERROR);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      break;
    }
    g_assert_true (read > 0 || written > 0 || r == G_CONVERTER_FINISHED);
    pos += read;
    opened += written;
    if (r == G_CONVERTER_FINISHED)
      break;
  }
  /* never more plain bytes than sealed ones */
  g_assert_true (opened <= size);
  g_assert_true (cd_unsealer_get_plain_bytes (unsealer) >= opened);
  return 0;
}
