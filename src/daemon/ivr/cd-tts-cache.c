/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The speech cache: one rendering per text, language and voice. */

#define G_LOG_DOMAIN "calldocker-ivr"

#include "cd-tts-cache.h"

#include "cd-prompt-import.h"

struct _CdTtsCache {
  GObject parent_instance;
  CdBlobStore *blobs;
  CdMetrics *metrics;
  guint max_ms;
  GHashTable *pending; /* key -> GPtrArray of GTask* waiting for its rendering */
  guint renders;
};

G_DEFINE_FINAL_TYPE (CdTtsCache, cd_tts_cache, G_TYPE_OBJECT)

static void
cd_tts_cache_finalize (GObject *object)
{
  CdTtsCache *self = CD_TTS_CACHE (object);

  g_object_unref (self->blobs);
  g_clear_object (&self->metrics);
  g_hash_table_unref (self->pending);
  G_OBJECT_CLASS (cd_tts_cache_parent_class)->finalize (object);
}

static void
cd_tts_cache_class_init (CdTtsCacheClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_tts_cache_finalize;
}

static void
cd_tts_cache_init (CdTtsCache *self)
{
  self->pending =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
}

CdTtsCache *
cd_tts_cache_new (CdBlobStore *blobs, guint max_ms, CdMetrics *metrics)
{
  CdTtsCache *self = g_object_new (CD_TYPE_TTS_CACHE, NULL);

  self->blobs = g_object_ref (blobs);
  self->max_ms = max_ms;
  if (metrics) {
    self->metrics = g_object_ref (metrics);
    cd_metrics_register (metrics, "calldocker_tts_requests_total", CD_METRIC_COUNTER,
                         "IVR speech asked for, by result: cached (found in the blob store), "
                         "rendered (synthesized now), failed",
                         NULL, 0);
  }
  return self;
}

static void
count (CdTtsCache *self, const char *result)
{
  g_autofree char *labels = g_strdup_printf ("result=\"%s\"", result);

  if (self->metrics)
    cd_metrics_add (self->metrics, "calldocker_tts_requests_total", labels, 1);
}

typedef struct {
  CdTtsCache *self;
  char *key;
  char *path;
} Rendering;

static void
on_spoken (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Rendering *r = user_data;
  CdTtsCache *self = r->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) waiting = NULL;
  g_autofree char *stolen_key = NULL;
  CdPromptInfo info;
  gboolean ok = cd_prompt_import_finish (result, &info, &error);

  g_hash_table_steal_extended (self->pending, r->key, (gpointer *) &stolen_key,
                               (gpointer *) &waiting);
  if (!ok)
    g_message ("speech could not be made: %s", error->message);
  else if (!info.cached)
    self->renders++;
  for (guint i = 0; waiting && i < waiting->len; i++) {
    GTask *task = g_ptr_array_index (waiting, i);

    count (self, !ok ? "failed" : info.cached ? "cached" : i == 0 ? "rendered" : "cached");
    if (ok)
      g_task_return_pointer (task, g_strdup (r->path), g_free);
    else
      g_task_return_error (task, g_error_copy (error));
  }
  g_object_unref (self);
  g_free (r->key);
  g_free (r->path);
  g_free (r);
}

void
cd_tts_cache_get_async (CdTtsCache *self, const char *text, const char *language, const char *voice,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  g_autofree char *espeak_voice =
      voice && *voice ? g_strdup_printf ("%s+%s", language, voice) : g_strdup (language);
  g_autofree char *input = g_strdup_printf ("%s\n%s", espeak_voice, text);
  g_autofree char *hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, input, -1);
  g_autofree char *key = g_strdup_printf ("tts/%s.ogg", hash);
  GPtrArray *waiting = g_hash_table_lookup (self->pending, key);
  Rendering *r;

  g_task_set_source_tag (task, cd_tts_cache_get_async);
  if (waiting) {
    g_ptr_array_add (waiting, task);
    return;
  }
  waiting = g_ptr_array_new_with_free_func (g_object_unref);
  g_ptr_array_add (waiting, task);
  g_hash_table_insert (self->pending, g_strdup (key), waiting);
  r = g_new0 (Rendering, 1);
  r->self = g_object_ref (self);
  r->key = g_strdup (key);
  r->path = cd_blob_store_local_path (self->blobs, key);
  cd_prompt_speak_async (text, espeak_voice, r->path, self->max_ms, NULL, on_spoken, r);
}

char *
cd_tts_cache_get_finish (CdTtsCache *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

guint
cd_tts_cache_get_renders (CdTtsCache *self)
{
  return self->renders;
}
