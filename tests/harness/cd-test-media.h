/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Media helpers for tests: decoding stored Ogg/Opus (plain or sealed) to
 * PCM, and what each channel of it holds, second by second. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* Decodes Ogg/Opus @ogg to 48 kHz S16 with @channels interleaved; the
 * number of frames in *@frames. NULL (and a failed test) when it does not
 * decode. */
gint16 *cd_test_decode_ogg (GBytes *ogg, guint channels, gsize *frames);

/* Opens a sealed file with @key (CD_SEAL_KEY_BYTES) for @company: what
 * opened, and @error when that is not the whole file (a cut file gives its
 * whole chunks and CD_SEAL_ERROR_TRUNCATED). */
GBytes *cd_test_unseal (GBytes *sealed, const guint8 *key, const char *company, guint32 key_version,
                        GError **error);

/* The dominant frequency of @channel in each whole second of @pcm (0 when
 * that second is silent), as "440 440 0 880" for messages and checks. */
char *cd_test_seconds_of (const gint16 *pcm, gsize frames, guint channels, guint channel);

G_END_DECLS
