/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Sealed files: a company's recordings and voicemails encrypted at rest
 * (libsodium secretstream), as GConverters that seal and open a stream. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CD_SEAL_KEY_BYTES 32
/* The most plain bytes one chunk holds. */
#define CD_SEAL_CHUNK_BYTES 65536

#define CD_SEAL_ERROR (cd_seal_error_quark ())

typedef enum {
  CD_SEAL_ERROR_FORMAT,    /* not a sealed file, or one of a version we do not know */
  CD_SEAL_ERROR_NOT_OURS,  /* sealed for another company or another key */
  CD_SEAL_ERROR_TAMPERED,  /* a chunk fails authentication, or bytes follow the end */
  CD_SEAL_ERROR_TRUNCATED, /* ends before its final chunk (what a crash leaves) */
} CdSealError;

GQuark cd_seal_error_quark (void);

/* Seals what passes through for @company with @key (version @key_version):
 * the header first, then a chunk at each CD_SEAL_CHUNK_BYTES, at each
 * G_CONVERTER_FLUSH (so a writer decides how much a crash may lose), and a
 * final chunk at the end of the input. */
#define CD_TYPE_SEALER (cd_sealer_get_type ())
G_DECLARE_FINAL_TYPE (CdSealer, cd_sealer, CD, SEALER, GObject)

CdSealer *cd_sealer_new (const guint8 key[CD_SEAL_KEY_BYTES], const char *company,
                         guint32 key_version);

/* Opens what @company sealed with @key (version @key_version): the plain
 * bytes of each chunk as it is checked; an error where the stream is not
 * what it claims, after the good chunks before it. */
#define CD_TYPE_UNSEALER (cd_unsealer_get_type ())
G_DECLARE_FINAL_TYPE (CdUnsealer, cd_unsealer, CD, UNSEALER, GObject)

CdUnsealer *cd_unsealer_new (const guint8 key[CD_SEAL_KEY_BYTES], const char *company,
                             guint32 key_version);
/* How many plain bytes it has given so far. */
guint64 cd_unsealer_get_plain_bytes (CdUnsealer *self);

/* Reads a sealed stream's header: whose it is and with which key version
 * (CD_SEAL_ERROR_TRUNCATED when @data ends inside the header: the header
 * is at most CD_SEAL_HEADER_MAX bytes). */
#define CD_SEAL_HEADER_MAX (8 + 4 + 1 + 255 + 24)
gboolean cd_seal_peek_header (const guint8 *data, gsize length, char **company,
                              guint32 *key_version, GError **error);

G_END_DECLS
