/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Sealed files: the format, the sealer and the unsealer (see docs/storage.md
 * for the format as a table). */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-seal.h"

#include <sodium.h>
#include <string.h>

/*
 * A sealed stream:
 *   "CDSEAL" 0x00 0x01       magic and format version (8 bytes)
 *   key version              4 bytes, big-endian
 *   company id length        1 byte (1 to 255), then the id
 *   secretstream header      24 bytes
 *   chunks: a 4-byte big-endian length (17 to 17 + CD_SEAL_CHUNK_BYTES)
 *           and that many bytes of secretstream ciphertext; the last one
 *           is tagged FINAL, the others MESSAGE.
 * Every chunk authenticates the header before the secretstream header as
 * its additional data, so a file moved to another company, or given
 * another key version, does not open. Chunks are in order by construction
 * (secretstream), and a stream without its FINAL chunk was cut short.
 */

#define SS(x)        crypto_secretstream_xchacha20poly1305_##x
#define MAGIC        "CDSEAL\0\1"
#define MAGIC_LENGTH 8
#define MAX_CHUNK    (CD_SEAL_CHUNK_BYTES + SS (ABYTES))

G_DEFINE_QUARK (cd - seal - error - quark, cd_seal_error)

/* The header's bytes up to the secretstream header: the chunks' AD. */
static GByteArray *
make_prefix (const char *company, guint32 key_version)
{
  GByteArray *prefix = g_byte_array_new ();
  guint32 be = GUINT32_TO_BE (key_version);
  guint8 n = (guint8) strlen (company);

  g_byte_array_append (prefix, (const guint8 *) MAGIC, MAGIC_LENGTH);
  g_byte_array_append (prefix, (const guint8 *) &be, 4);
  g_byte_array_append (prefix, &n, 1);
  g_byte_array_append (prefix, (const guint8 *) company, n);
  return prefix;
}

static gboolean
company_is_valid (const char *company)
{
  gsize n = company ? strlen (company) : 0;

  return n >= 1 && n <= 255;
}

gboolean
cd_seal_peek_header (const guint8 *data, gsize length, char **company, guint32 *key_version,
                     GError **error)
{
  guint32 be;
  guint8 n;

  if (length >= MAGIC_LENGTH && memcmp (data, MAGIC, 6) != 0)
    goto not_sealed;
  if (length >= MAGIC_LENGTH && memcmp (data, MAGIC, MAGIC_LENGTH) != 0)
    goto unknown_version;
  if (length < MAGIC_LENGTH + 5)
    goto short_header;
  n = data[MAGIC_LENGTH + 4];
  if (n == 0)
    goto not_sealed;
  if (length < (gsize) MAGIC_LENGTH + 5 + n + SS (HEADERBYTES))
    goto short_header;
  /* our files name their company in plain text (a UUID) */
  for (guint i = 0; i < n; i++)
    if (!g_ascii_isprint (data[MAGIC_LENGTH + 5 + i]))
      goto not_sealed;
  memcpy (&be, data + MAGIC_LENGTH, 4);
  if (key_version)
    *key_version = GUINT32_FROM_BE (be);
  if (company)
    *company = g_strndup ((const char *) data + MAGIC_LENGTH + 5, n);
  return TRUE;

  /* ERRORS */
not_sealed:
  g_set_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_FORMAT, "not a sealed file");
  return FALSE;
unknown_version:
  g_set_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_FORMAT,
               "a sealed file of format version %u.%u, which this daemon does not know", data[6],
               data[7]);
  return FALSE;
short_header:
  g_set_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED,
               "the sealed file ends inside its header (%" G_GSIZE_FORMAT " bytes)", length);
  return FALSE;
}

/* ---- the sealer ---- */

struct _CdSealer {
  GObject parent_instance;
  guint8 *key; /* sodium_malloc'ed */
  GByteArray *prefix;
  SS (state) * state; /* sodium_malloc'ed */
  gboolean started;
  gboolean finished;
  GByteArray *plain; /* waiting for its chunk */
  GByteArray *out;   /* sealed, not yet given */
  gsize out_pos;
};

static void cd_sealer_iface_init (GConverterIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (CdSealer, cd_sealer, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_CONVERTER, cd_sealer_iface_init))

static void
seal_chunk (CdSealer *self, guint8 tag)
{
  gsize at = self->out->len;
  guint32 be = GUINT32_TO_BE ((guint32) (self->plain->len + SS (ABYTES)));
  unsigned long long written = 0;

  g_byte_array_append (self->out, (const guint8 *) &be, 4);
  g_byte_array_set_size (self->out, at + 4 + self->plain->len + SS (ABYTES));
  SS (push)
  (self->state, self->out->data + at + 4, &written, self->plain->data, self->plain->len,
   self->prefix->data, self->prefix->len, tag);
  g_assert (written == self->plain->len + SS (ABYTES));
  sodium_memzero (self->plain->data, self->plain->len);
  g_byte_array_set_size (self->plain, 0);
}

static GConverterResult
cd_sealer_convert (GConverter *converter, const void *inbuf, gsize inbuf_size, void *outbuf,
                   gsize outbuf_size, GConverterFlags flags, gsize *bytes_read,
                   gsize *bytes_written, GError **error)
{
  CdSealer *self = CD_SEALER (converter);
  const guint8 *in = inbuf;

  *bytes_read = *bytes_written = 0;
  if (!self->started) {
    guint8 header[SS (HEADERBYTES)];

    SS (init_push) (self->state, header, self->key);
    g_byte_array_append (self->out, self->prefix->data, self->prefix->len);
    g_byte_array_append (self->out, header, sizeof header);
    self->started = TRUE;
  }
  for (;;) {
    gsize room = CD_SEAL_CHUNK_BYTES - self->plain->len;
    gsize take;

    /* what is sealed goes out first */
    if (self->out_pos < self->out->len) {
      gsize n = MIN (outbuf_size - *bytes_written, self->out->len - self->out_pos);

      if (n == 0)
        break;
      memcpy ((guint8 *) outbuf + *bytes_written, self->out->data + self->out_pos, n);
      self->out_pos += n;
      *bytes_written += n;
      continue;
    }
    g_byte_array_set_size (self->out, 0);
    self->out_pos = 0;
    if (self->finished)
      break;
    take = MIN (room, inbuf_size - *bytes_read);
    /* (no input may come as NULL: no offset on it) */
    if (take > 0)
      g_byte_array_append (self->plain, in + *bytes_read, take);
    *bytes_read += take;
    if (self->plain->len == CD_SEAL_CHUNK_BYTES && *bytes_read < inbuf_size) {
      seal_chunk (self, SS (TAG_MESSAGE));
      continue;
    }
    /* all the input is taken */
    if (flags & G_CONVERTER_INPUT_AT_END) {
      seal_chunk (self, SS (TAG_FINAL));
      self->finished = TRUE;
      continue;
    }
    if ((flags & G_CONVERTER_FLUSH) && self->plain->len > 0) {
      seal_chunk (self, SS (TAG_MESSAGE));
      continue;
    }
    if (self->plain->len == CD_SEAL_CHUNK_BYTES) {
      seal_chunk (self, SS (TAG_MESSAGE));
      continue;
    }
    break;
  }
  if (self->finished && self->out_pos == 0 && self->out->len == 0)
    return G_CONVERTER_FINISHED;
  if ((flags & G_CONVERTER_FLUSH) && self->out->len == 0 && *bytes_read == inbuf_size)
    return G_CONVERTER_FLUSHED;
  if (*bytes_read == 0 && *bytes_written == 0) {
    if (outbuf_size == 0 || self->out_pos < self->out->len) {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE, "no room for sealed bytes");
      return G_CONVERTER_ERROR;
    }
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT, "more input needed");
    return G_CONVERTER_ERROR;
  }
  return G_CONVERTER_CONVERTED;
}

static void
cd_sealer_reset (GConverter *converter)
{
  CdSealer *self = CD_SEALER (converter);

  self->started = self->finished = FALSE;
  sodium_memzero (self->plain->data, self->plain->len);
  g_byte_array_set_size (self->plain, 0);
  g_byte_array_set_size (self->out, 0);
  self->out_pos = 0;
}

static void
cd_sealer_iface_init (GConverterIface *iface)
{
  iface->convert = cd_sealer_convert;
  iface->reset = cd_sealer_reset;
}

static void
cd_sealer_finalize (GObject *object)
{
  CdSealer *self = CD_SEALER (object);

  sodium_free (self->key);
  sodium_free (self->state);
  sodium_memzero (self->plain->data, self->plain->len);
  g_byte_array_unref (self->plain);
  g_byte_array_unref (self->out);
  g_byte_array_unref (self->prefix);
  G_OBJECT_CLASS (cd_sealer_parent_class)->finalize (object);
}

static void
cd_sealer_class_init (CdSealerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_sealer_finalize;
}

static void
cd_sealer_init (CdSealer *self)
{
  self->key = sodium_malloc (CD_SEAL_KEY_BYTES);
  self->state = sodium_malloc (sizeof *self->state);
  g_assert (self->key && self->state);
  self->plain = g_byte_array_sized_new (CD_SEAL_CHUNK_BYTES);
  self->out = g_byte_array_new ();
}

CdSealer *
cd_sealer_new (const guint8 key[CD_SEAL_KEY_BYTES], const char *company, guint32 key_version)
{
  CdSealer *self;

  g_return_val_if_fail (company_is_valid (company), NULL);
  self = g_object_new (CD_TYPE_SEALER, NULL);
  memcpy (self->key, key, CD_SEAL_KEY_BYTES);
  self->prefix = make_prefix (company, key_version);
  return self;
}

/* ---- the unsealer ---- */

typedef enum {
  OPEN_HEADER, /* reading the header (prefix and secretstream header) */
  OPEN_LENGTH, /* a chunk's length */
  OPEN_CHUNK,  /* a chunk */
  OPEN_DONE,   /* after the FINAL chunk */
} OpenState;

struct _CdUnsealer {
  GObject parent_instance;
  guint8 *key; /* sodium_malloc'ed */
  GByteArray *prefix;
  SS (state) * state; /* sodium_malloc'ed */
  OpenState at;
  gsize unit;        /* bytes the current part has */
  GByteArray *stage; /* the current part as far as it came */
  GByteArray *out;   /* opened, not yet given */
  gsize out_pos;
  guint64 plain_bytes;
  guint64 sealed_bytes; /* read so far, for errors */
  GError *failed;       /* once failed, every call fails */
};

static void cd_unsealer_iface_init (GConverterIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (CdUnsealer, cd_unsealer, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_CONVERTER, cd_unsealer_iface_init))

static gboolean
open_part (CdUnsealer *self)
{
  switch (self->at) {
  case OPEN_HEADER: {
    g_autofree char *company = NULL;
    guint32 version = 0;
    g_autoptr (GError) error = NULL;

    if (!cd_seal_peek_header (self->stage->data, self->stage->len, &company, &version, &error)) {
      self->failed = g_steal_pointer (&error);
      return FALSE;
    }
    if (self->stage->len - SS (HEADERBYTES) != self->prefix->len ||
        memcmp (self->stage->data, self->prefix->data, self->prefix->len) != 0) {
      g_set_error (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_NOT_OURS,
                   "the file was sealed for company %s with key version %u", company, version);
      return FALSE;
    }
    if (SS (init_pull) (self->state, self->stage->data + self->prefix->len, self->key) != 0) {
      g_set_error_literal (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED,
                           "the sealed file's header is not valid");
      return FALSE;
    }
    self->at = OPEN_LENGTH;
    self->unit = 4;
    break;
  }
  case OPEN_LENGTH: {
    guint32 be;

    memcpy (&be, self->stage->data, 4);
    self->unit = GUINT32_FROM_BE (be);
    if (self->unit < SS (ABYTES) || self->unit > MAX_CHUNK) {
      g_set_error (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED,
                   "a chunk at byte %" G_GUINT64_FORMAT " claims %" G_GSIZE_FORMAT
                   " bytes, which no chunk has",
                   self->sealed_bytes - 4, self->unit);
      return FALSE;
    }
    self->at = OPEN_CHUNK;
    break;
  }
  case OPEN_CHUNK: {
    gsize at = self->out->len;
    unsigned long long plain = 0;
    unsigned char tag = 0;
    guint8 none;
    guint8 *into;

    g_byte_array_set_size (self->out, at + self->unit - SS (ABYTES));
    /* an empty chunk opens into nothing (the array may have no storage) */
    into = self->unit > SS (ABYTES) ? self->out->data + at : &none;
    if (SS (pull) (self->state, into, &plain, &tag, self->stage->data, self->unit,
                   self->prefix->data, self->prefix->len) != 0) {
      g_byte_array_set_size (self->out, at);
      g_set_error (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED,
                   "the chunk at byte %" G_GUINT64_FORMAT
                   " fails authentication: changed, moved, or sealed with another key",
                   self->sealed_bytes - self->unit);
      return FALSE;
    }
    self->plain_bytes += plain;
    self->at = tag == SS (TAG_FINAL) ? OPEN_DONE : OPEN_LENGTH;
    self->unit = 4;
    break;
  }
  case OPEN_DONE:
  default:
    g_assert_not_reached ();
  }
  g_byte_array_set_size (self->stage, 0);
  return TRUE;
}

/* How many bytes the header has, once its length byte is in. */
static gsize
header_size (CdUnsealer *self)
{
  if (self->stage->len < MAGIC_LENGTH + 5)
    return MAGIC_LENGTH + 5;
  return MAGIC_LENGTH + 5 + self->stage->data[MAGIC_LENGTH + 4] + SS (HEADERBYTES);
}

static GConverterResult
cd_unsealer_convert (GConverter *converter, const void *inbuf, gsize inbuf_size, void *outbuf,
                     gsize outbuf_size, GConverterFlags flags, gsize *bytes_read,
                     gsize *bytes_written, GError **error)
{
  CdUnsealer *self = CD_UNSEALER (converter);
  const guint8 *in = inbuf;

  *bytes_read = *bytes_written = 0;
  for (;;) {
    gsize want, take;

    if (self->out_pos < self->out->len) {
      gsize n = MIN (outbuf_size - *bytes_written, self->out->len - self->out_pos);

      if (n == 0)
        break;
      memcpy ((guint8 *) outbuf + *bytes_written, self->out->data + self->out_pos, n);
      self->out_pos += n;
      *bytes_written += n;
      continue;
    }
    sodium_memzero (self->out->data, self->out->len);
    g_byte_array_set_size (self->out, 0);
    self->out_pos = 0;
    if (self->failed || self->at == OPEN_DONE)
      break;
    want = self->at == OPEN_HEADER ? header_size (self) : self->unit;
    take = MIN (want - self->stage->len, inbuf_size - *bytes_read);
    if (take > 0)
      g_byte_array_append (self->stage, in + *bytes_read, take);
    *bytes_read += take;
    self->sealed_bytes += take;
    if (self->stage->len < want)
      break;
    if (self->at == OPEN_HEADER && want == MAGIC_LENGTH + 5 && header_size (self) > want) {
      /* the length byte is in: now the whole header */
      if (memcmp (self->stage->data, MAGIC, 6) != 0 || self->stage->data[MAGIC_LENGTH + 4] == 0) {
        g_set_error_literal (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_FORMAT,
                             "not a sealed file");
        break;
      }
      continue;
    }
    if (!open_part (self))
      break;
  }
  /* the good bytes before a failure go out first, the failure after */
  if (*bytes_written > 0) {
    if (self->at == OPEN_DONE && self->out_pos == self->out->len && *bytes_read == inbuf_size)
      return G_CONVERTER_FINISHED;
    return G_CONVERTER_CONVERTED;
  }
  if (self->failed) {
    if (error)
      *error = g_error_copy (self->failed);
    return G_CONVERTER_ERROR;
  }
  if (self->at == OPEN_DONE) {
    if (*bytes_read < inbuf_size) {
      g_set_error (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_TAMPERED,
                   "bytes follow the sealed file's final chunk (at byte %" G_GUINT64_FORMAT ")",
                   self->sealed_bytes);
      if (error)
        *error = g_error_copy (self->failed);
      return G_CONVERTER_ERROR;
    }
    return G_CONVERTER_FINISHED;
  }
  if (flags & G_CONVERTER_INPUT_AT_END) {
    g_set_error (&self->failed, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED,
                 "the sealed file ends at byte %" G_GUINT64_FORMAT
                 " before its final chunk (%" G_GUINT64_FORMAT " plain bytes were whole)",
                 self->sealed_bytes, self->plain_bytes);
    if (error)
      *error = g_error_copy (self->failed);
    return G_CONVERTER_ERROR;
  }
  if (*bytes_read > 0) {
    if ((flags & G_CONVERTER_FLUSH) && *bytes_read == inbuf_size)
      return G_CONVERTER_FLUSHED;
    return G_CONVERTER_CONVERTED;
  }
  if (flags & G_CONVERTER_FLUSH)
    return G_CONVERTER_FLUSHED;
  g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT, "more input needed");
  return G_CONVERTER_ERROR;
}

static void
cd_unsealer_reset (GConverter *converter)
{
  CdUnsealer *self = CD_UNSEALER (converter);

  self->at = OPEN_HEADER;
  self->unit = 0;
  g_byte_array_set_size (self->stage, 0);
  sodium_memzero (self->out->data, self->out->len);
  g_byte_array_set_size (self->out, 0);
  self->out_pos = 0;
  self->plain_bytes = self->sealed_bytes = 0;
  g_clear_error (&self->failed);
}

static void
cd_unsealer_iface_init (GConverterIface *iface)
{
  iface->convert = cd_unsealer_convert;
  iface->reset = cd_unsealer_reset;
}

static void
cd_unsealer_finalize (GObject *object)
{
  CdUnsealer *self = CD_UNSEALER (object);

  sodium_free (self->key);
  sodium_free (self->state);
  g_byte_array_unref (self->stage);
  sodium_memzero (self->out->data, self->out->len);
  g_byte_array_unref (self->out);
  g_byte_array_unref (self->prefix);
  g_clear_error (&self->failed);
  G_OBJECT_CLASS (cd_unsealer_parent_class)->finalize (object);
}

static void
cd_unsealer_class_init (CdUnsealerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_unsealer_finalize;
}

static void
cd_unsealer_init (CdUnsealer *self)
{
  self->key = sodium_malloc (CD_SEAL_KEY_BYTES);
  self->state = sodium_malloc (sizeof *self->state);
  g_assert (self->key && self->state);
  self->stage = g_byte_array_new ();
  self->out = g_byte_array_new ();
}

CdUnsealer *
cd_unsealer_new (const guint8 key[CD_SEAL_KEY_BYTES], const char *company, guint32 key_version)
{
  CdUnsealer *self;

  g_return_val_if_fail (company_is_valid (company), NULL);
  self = g_object_new (CD_TYPE_UNSEALER, NULL);
  memcpy (self->key, key, CD_SEAL_KEY_BYTES);
  self->prefix = make_prefix (company, key_version);
  return self;
}

guint64
cd_unsealer_get_plain_bytes (CdUnsealer *self)
{
  g_return_val_if_fail (CD_IS_UNSEALER (self), 0);
  return self->plain_bytes;
}
