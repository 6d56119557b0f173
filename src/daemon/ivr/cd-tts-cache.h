/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Speech for the IVR: text spoken by espeak-ng (GStreamer's espeak element)
 * into an Ogg/Opus file in the blob store, named by a hash of the text,
 * language and voice, so each is synthesized once: later asks find the
 * file, and asks while it is being made wait for that one rendering. */
#pragma once

#include "../events/cd-metrics.h"
#include "../store/cd-blob-store.h"

G_BEGIN_DECLS

#define CD_TYPE_TTS_CACHE (cd_tts_cache_get_type ())
G_DECLARE_FINAL_TYPE (CdTtsCache, cd_tts_cache, CD, TTS_CACHE, GObject)

/* @metrics: nullable; counts calldocker_tts_requests_total{result} */
CdTtsCache *cd_tts_cache_new (CdBlobStore *blobs, guint max_ms, CdMetrics *metrics);
/* @language: a code such as "en" or "pt-br"; @voice: nullable, an espeak
 * variant such as "f3" */
void cd_tts_cache_get_async (CdTtsCache *self, const char *text, const char *language,
                             const char *voice, GAsyncReadyCallback callback, gpointer user_data);
/* Returns: (transfer full): the Ogg/Opus file's path */
char *cd_tts_cache_get_finish (CdTtsCache *self, GAsyncResult *result, GError **error);
/* Renderings made by this cache (not found in the store) */
guint cd_tts_cache_get_renders (CdTtsCache *self);

G_END_DECLS
