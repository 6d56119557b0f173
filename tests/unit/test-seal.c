/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Sealed files: what is sealed opens to the same bytes, whatever the sizes
 * and however the stream is cut; a flush makes the bytes before it last
 * through a crash; every kind of tampering, a cut, another key or another
 * company is refused with its own error, after the good chunks only. */

#define _GNU_SOURCE
#include "store/cd-seal.h"

#include <sodium.h>
#include <string.h>

#define COMPANY "7b0c2f7e-5a59-4b7e-9d53-2f1d0a9c1e11"

static guint8 key[CD_SEAL_KEY_BYTES];

static GBytes *
make_plain (gsize n)
{
  guint8 *p = g_malloc (n ? n : 1);

  for (gsize i = 0; i < n; i++)
    p[i] = (guint8) (i * 131 + (i >> 8) * 7);
  return g_bytes_new_take (p, n);
}

/* Runs @conv over @in, giving it at most @piece bytes at a time (and an
 * output buffer of @room), with a FLUSH after each piece when @flush. */
static GBytes *
convert (GConverter *conv, GBytes *in, gsize piece, gsize room, gboolean flush, GError **error)
{
  gsize n = 0;
  const guint8 *data = g_bytes_get_data (in, &n);
  g_autoptr (GByteArray) out = g_byte_array_new ();
  g_autofree guint8 *buf = g_malloc (room);
  gsize pos = 0;

  for (;;) {
    gsize give = MIN (piece, n - pos);
    gboolean last = pos + give == n;
    GConverterFlags flags = (last ? G_CONVERTER_INPUT_AT_END : 0) | (flush ? G_CONVERTER_FLUSH : 0);
    gsize read = 0, written = 0;
    GConverterResult r;

    r = g_converter_convert (conv, data + pos, give, buf, room, flags, &read, &written, error);
    if (r == G_CONVERTER_ERROR) {
      if (g_error_matches (*error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT) && !last) {
        g_clear_error (error);
        piece *= 2;
        continue;
      }
      return g_byte_array_free_to_bytes (g_steal_pointer (&out));
    }
    g_byte_array_append (out, buf, written);
    pos += read;
    if (r == G_CONVERTER_FINISHED)
      break;
  }
  if (pos != n)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, "left %" G_GSIZE_FORMAT " bytes", n - pos);
  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

static GBytes *
seal (GBytes *plain, gsize piece, gboolean flush)
{
  g_autoptr (CdSealer) sealer = cd_sealer_new (key, COMPANY, 3);
  g_autoptr (GError) error = NULL;
  GBytes *sealed = convert (G_CONVERTER (sealer), plain, piece, 1000, flush, &error);

  g_assert_no_error (error);
  return sealed;
}

static GBytes *
unseal_as (GBytes *sealed, const guint8 *with, const char *company, guint32 version,
           guint64 *plain_bytes, GError **error)
{
  g_autoptr (CdUnsealer) unsealer = cd_unsealer_new (with, company, version);
  GBytes *plain = convert (G_CONVERTER (unsealer), sealed, 777, 4096, FALSE, error);

  if (plain_bytes)
    *plain_bytes = cd_unsealer_get_plain_bytes (unsealer);
  return plain;
}

static GBytes *
unseal (GBytes *sealed, GError **error)
{
  return unseal_as (sealed, key, COMPANY, 3, NULL, error);
}

static void
test_round_trip (void)
{
  const gsize sizes[] = {
    0, 1, 1000, CD_SEAL_CHUNK_BYTES - 1, CD_SEAL_CHUNK_BYTES, CD_SEAL_CHUNK_BYTES + 1, 300000
  };
  const gsize pieces[] = { 1, 100, 4096, 70000, 1000000 };

  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    for (gsize k = 0; k < G_N_ELEMENTS (pieces); k++) {
      g_autoptr (GBytes) plain = make_plain (sizes[i]);
      g_autoptr (GBytes) sealed = NULL;
      g_autoptr (GBytes) opened = NULL;
      g_autoptr (GError) error = NULL;
      g_autofree char *company = NULL;
      guint32 version = 0;

      if (sizes[i] > 100000 && pieces[k] == 1)
        continue; /* a byte at a time is slow and proves nothing more */
      sealed = seal (plain, pieces[k], FALSE);
      /* the plain bytes are not in it */
      if (sizes[i] >= 1000) {
        g_assert_null (memmem (g_bytes_get_data (sealed, NULL), g_bytes_get_size (sealed),
                               (const guint8 *) g_bytes_get_data (plain, NULL) + 200, 64));
      }
      opened = unseal (sealed, &error);
      g_assert_no_error (error);
      g_assert_true (g_bytes_equal (plain, opened));
      g_assert_true (cd_seal_peek_header (g_bytes_get_data (sealed, NULL),
                                          g_bytes_get_size (sealed), &company, &version, &error));
      g_assert_cmpstr (company, ==, COMPANY);
      g_assert_cmpuint (version, ==, 3);
    }
}

/* Two seals of the same bytes differ (a fresh stream header each time). */
static void
test_not_deterministic (void)
{
  g_autoptr (GBytes) plain = make_plain (5000);
  g_autoptr (GBytes) a = seal (plain, 5000, FALSE);
  g_autoptr (GBytes) b = seal (plain, 5000, FALSE);

  g_assert_cmpuint (g_bytes_get_size (a), ==, g_bytes_get_size (b));
  g_assert_false (g_bytes_equal (a, b));
}

/* What a recording does: a flush every second; a crash leaves the file
 * without its final chunk. Everything before the last flush opens, and the
 * unsealer then says the file was cut. */
static void
test_flushed_then_cut (void)
{
  g_autoptr (CdSealer) sealer = cd_sealer_new (key, COMPANY, 3);
  g_autoptr (GByteArray) sealed = g_byte_array_new ();
  g_autoptr (GBytes) plain = make_plain (12000);
  g_autoptr (GBytes) cut = NULL;
  g_autoptr (GBytes) opened = NULL;
  g_autoptr (GError) error = NULL;
  guint8 buf[20000];
  guint64 whole = 0;

  /* three seconds of 4,000 bytes, each flushed; no end */
  for (int s = 0; s < 3; s++) {
    gsize read = 0, written = 0;
    GConverterResult r = g_converter_convert (
        G_CONVERTER (sealer), (const guint8 *) g_bytes_get_data (plain, NULL) + s * 4000, 4000, buf,
        sizeof buf, G_CONVERTER_FLUSH, &read, &written, &error);

    g_assert_no_error (error);
    g_assert_cmpint (r, ==, G_CONVERTER_FLUSHED);
    g_assert_cmpuint (read, ==, 4000);
    g_byte_array_append (sealed, buf, written);
  }
  /* and the start of a fourth chunk (its length, some of its bytes) when
   * the power went: here a copy of the start of the third */
  g_byte_array_append (sealed, sealed->data + sealed->len - (4 + 4000 + 17), 1000);
  cut = g_bytes_new (sealed->data, sealed->len);
  opened = unseal_as (cut, key, COMPANY, 3, &whole, &error);
  g_assert_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED);
  g_assert_cmpuint (whole, ==, 12000);
  g_assert_true (g_bytes_equal (opened, plain));
}

static GBytes *
with_change (GBytes *sealed, gsize at, guint8 xor)
{
  g_autoptr (GByteArray) copy = g_byte_array_new ();

  g_byte_array_append (copy, g_bytes_get_data (sealed, NULL), g_bytes_get_size (sealed));
  copy->data[at] ^= xor;
  return g_byte_array_free_to_bytes (g_steal_pointer (&copy));
}

static void
expect_refused (GBytes *sealed, GQuark domain, int code, gsize max_plain)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) opened = unseal (sealed, &error);

  g_assert_error (error, domain, code);
  g_assert_true (g_utf8_validate (error->message, -1, NULL));
  /* only whole, checked chunks before the fault came out */
  g_assert_cmpuint (g_bytes_get_size (opened), <=, max_plain);
}

static void
test_tampering_refused (void)
{
  g_autoptr (GBytes) plain = make_plain (3 * CD_SEAL_CHUNK_BYTES + 10);
  g_autoptr (GBytes) sealed = seal (plain, 100000, FALSE);
  gsize header = 8 + 4 + 1 + strlen (COMPANY) + 24;
  gsize chunk = 4 + CD_SEAL_CHUNK_BYTES + 17;
  gsize size = g_bytes_get_size (sealed);
  const guint8 *data = g_bytes_get_data (sealed, NULL);

  g_assert_cmpuint (size, ==, header + 3 * chunk + 4 + 10 + 17);
  {
    g_autoptr (GBytes) b = with_change (sealed, 0, 0x20);
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_FORMAT, 0);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, 7, 0x02); /* format version */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_FORMAT, 0);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, 11, 0x01); /* key version */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_NOT_OURS, 0);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, 14, 0x01); /* company */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_NOT_OURS, 0);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, header - 5, 0x01); /* stream header */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED, 0);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, header + chunk + 2, 0x01); /* a length */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED, CD_SEAL_CHUNK_BYTES);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, header + chunk + 500, 0x80); /* ciphertext */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED, CD_SEAL_CHUNK_BYTES);
  }
  {
    g_autoptr (GBytes) b = with_change (sealed, size - 1, 0x01); /* the final tag's MAC */
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED, 3 * CD_SEAL_CHUNK_BYTES);
  }
  {
    /* chunks 2 and 3 swapped */
    g_autoptr (GByteArray) b = g_byte_array_new ();
    g_autoptr (GBytes) swapped = NULL;

    g_byte_array_append (b, data, header + chunk);
    g_byte_array_append (b, data + header + 2 * chunk, chunk);
    g_byte_array_append (b, data + header + chunk, chunk);
    g_byte_array_append (b, data + header + 3 * chunk, size - header - 3 * chunk);
    swapped = g_byte_array_free_to_bytes (g_steal_pointer (&b));
    expect_refused (swapped, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED, CD_SEAL_CHUNK_BYTES);
  }
  {
    /* the final chunk dropped: cut, not tampered */
    g_autoptr (GBytes) b = g_bytes_new_from_bytes (sealed, 0, header + 3 * chunk);
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED, 3 * CD_SEAL_CHUNK_BYTES);
  }
  {
    /* cut inside the header */
    g_autoptr (GBytes) b = g_bytes_new_from_bytes (sealed, 0, header - 1);
    expect_refused (b, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED, 0);
  }
  {
    /* bytes after the final chunk */
    g_autoptr (GByteArray) b = g_byte_array_new ();
    g_autoptr (GBytes) longer = NULL;

    g_byte_array_append (b, data, size);
    g_byte_array_append (b, (const guint8 *) "more", 4);
    longer = g_byte_array_free_to_bytes (g_steal_pointer (&b));
    expect_refused (longer, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED, g_bytes_get_size (plain));
  }
  {
    /* plain audio is not a sealed file */
    g_autoptr (GBytes) ogg = g_bytes_new_static ("OggS\0\2\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
    expect_refused (ogg, CD_SEAL_ERROR, CD_SEAL_ERROR_FORMAT, 0);
  }
}

static void
test_other_key_or_company (void)
{
  g_autoptr (GBytes) plain = make_plain (1000);
  g_autoptr (GBytes) sealed = seal (plain, 1000, FALSE);
  guint8 other[CD_SEAL_KEY_BYTES];
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) a = NULL;
  g_autoptr (GBytes) b = NULL;
  g_autoptr (GBytes) c = NULL;

  memcpy (other, key, sizeof other);
  other[5] ^= 1;
  a = unseal_as (sealed, other, COMPANY, 3, NULL, &error);
  g_assert_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED);
  g_assert_cmpuint (g_bytes_get_size (a), ==, 0);
  g_clear_error (&error);
  b = unseal_as (sealed, key, "another-company", 3, NULL, &error);
  g_assert_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_NOT_OURS);
  g_assert_nonnull (strstr (error->message, COMPANY));
  g_clear_error (&error);
  c = unseal_as (sealed, key, COMPANY, 4, NULL, &error);
  g_assert_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_NOT_OURS);
}

/* As the daemon uses them: GIO's converter streams. */
static void
test_through_streams (void)
{
  g_autoptr (GBytes) plain = make_plain (200000);
  g_autoptr (GOutputStream) memory = g_memory_output_stream_new_resizable ();
  g_autoptr (CdSealer) sealer = cd_sealer_new (key, COMPANY, 3);
  g_autoptr (GOutputStream) sealing = g_converter_output_stream_new (memory, G_CONVERTER (sealer));
  g_autoptr (GBytes) sealed = NULL;
  g_autoptr (GInputStream) source = NULL;
  g_autoptr (CdUnsealer) unsealer = cd_unsealer_new (key, COMPANY, 3);
  g_autoptr (GInputStream) opening = NULL;
  g_autoptr (GOutputStream) back = g_memory_output_stream_new_resizable ();
  g_autoptr (GBytes) opened = NULL;
  g_autoptr (GError) error = NULL;
  gsize written = 0;

  g_assert_true (g_output_stream_write_all (sealing, g_bytes_get_data (plain, NULL), 150000,
                                            &written, NULL, &error));
  g_assert_true (g_output_stream_flush (sealing, NULL, &error));
  g_assert_true (
      g_output_stream_write_all (sealing, (const guint8 *) g_bytes_get_data (plain, NULL) + 150000,
                                 50000, &written, NULL, &error));
  g_assert_true (g_output_stream_close (sealing, NULL, &error));
  g_assert_no_error (error);
  sealed = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (memory));
  source = g_memory_input_stream_new_from_bytes (sealed);
  opening = g_converter_input_stream_new (source, G_CONVERTER (unsealer));
  g_assert_cmpint (
      g_output_stream_splice (back, opening, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, &error), ==,
      200000);
  g_assert_no_error (error);
  opened = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (back));
  g_assert_true (g_bytes_equal (plain, opened));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  for (gsize i = 0; i < sizeof key; i++)
    key[i] = (guint8) (i * 29 + 3);
  g_test_add_func ("/seal/round-trip", test_round_trip);
  g_test_add_func ("/seal/not-deterministic", test_not_deterministic);
  g_test_add_func ("/seal/flushed-then-cut", test_flushed_then_cut);
  g_test_add_func ("/seal/tampering-refused", test_tampering_refused);
  g_test_add_func ("/seal/other-key-or-company", test_other_key_or_company);
  g_test_add_func ("/seal/through-streams", test_through_streams);
  return g_test_run ();
}
