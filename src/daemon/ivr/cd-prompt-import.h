/* SPDX-License-Identifier: GPL-3.0-or-later */
/* An uploaded prompt (WAV, Ogg Opus or Vorbis, MP3, FLAC) checked and
 * decoded once into Ogg/Opus, 48 kHz mono, in a worker thread: empty,
 * unknown, damaged, truncated and too long files are refused with what is
 * wrong (docs/ivr.md). */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CD_PROMPT_ERROR (cd_prompt_error_quark ())
GQuark cd_prompt_error_quark (void);

typedef enum {
  CD_PROMPT_ERROR_EMPTY,    /* no bytes at all */
  CD_PROMPT_ERROR_TYPE,     /* not a kind of audio file taken */
  CD_PROMPT_ERROR_DAMAGED,  /* does not decode, holds no audio, or is cut short */
  CD_PROMPT_ERROR_TOO_LONG, /* more audio than the limit */
  CD_PROMPT_ERROR_FAILED,   /* the result could not be written */
} CdPromptError;

typedef struct {
  const char *source_type; /* audio/wav, audio/ogg, audio/mpeg, audio/flac (static) */
  guint duration_ms;       /* of the decoded audio */
  guint64 size_bytes;      /* of the Ogg/Opus file written */
  gboolean cached;         /* speech: the file was there already (nothing else is set) */
} CdPromptInfo;

/* The kind of audio file @data is, from its content (a media type, static),
 * or NULL with %CD_PROMPT_ERROR_EMPTY or %CD_PROMPT_ERROR_TYPE. */
const char *cd_prompt_sniff (GBytes *data, GError **error);

/* Decodes @data into an Ogg/Opus file at @dest_path (written whole or not
 * at all), refusing more than @max_ms of audio. */
void cd_prompt_import_async (GBytes *data, const char *dest_path, guint max_ms,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data);
gboolean cd_prompt_import_finish (GAsyncResult *result, CdPromptInfo *info, GError **error);

/* Speaks @text with espeak's @voice (a language code such as "de", or
 * "en+f3") into an Ogg/Opus file at @dest_path, like an import, unless
 * that file is there already; finished with cd_prompt_import_finish(). */
void cd_prompt_speak_async (const char *text, const char *voice, const char *dest_path,
                            guint max_ms, GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data);

G_END_DECLS
