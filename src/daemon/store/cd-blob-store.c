/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The blob store's local folder backend: GIO's asynchronous file calls
 * (their work runs in GIO's worker threads). */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-blob-store.h"

#include <string.h>

struct _CdBlobStore {
  GObject parent_instance;
  char *root;
};

G_DEFINE_FINAL_TYPE (CdBlobStore, cd_blob_store, G_TYPE_OBJECT)

static void
cd_blob_store_finalize (GObject *object)
{
  CdBlobStore *self = CD_BLOB_STORE (object);

  g_free (self->root);
  G_OBJECT_CLASS (cd_blob_store_parent_class)->finalize (object);
}

static void
cd_blob_store_class_init (CdBlobStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_blob_store_finalize;
}

static void
cd_blob_store_init (CdBlobStore *self)
{
}

CdBlobStore *
cd_blob_store_new_local (const char *root)
{
  CdBlobStore *self = g_object_new (CD_TYPE_BLOB_STORE, NULL);

  self->root = g_strdup (root);
  return self;
}

gboolean
cd_blob_key_is_valid (const char *key)
{
  gsize n = key ? strlen (key) : 0;
  gsize part = 0;

  if (n < 1 || n > 400)
    return FALSE;
  for (gsize i = 0; i <= n; i++) {
    char c = key[i];

    if (c == '/' || c == '\0') {
      /* an empty part, "." or ".." */
      if (part == 0 || (part == 1 && key[i - 1] == '.') ||
          (part == 2 && key[i - 1] == '.' && key[i - 2] == '.'))
        return FALSE;
      part = 0;
      continue;
    }
    if (!(g_ascii_islower (c) || g_ascii_isdigit (c) || c == '.' || c == '_' || c == '-'))
      return FALSE;
    part++;
  }
  return TRUE;
}

char *
cd_blob_store_local_path (CdBlobStore *self, const char *key)
{
  g_return_val_if_fail (cd_blob_key_is_valid (key), NULL);
  return g_build_filename (self->root, key, NULL);
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  char *contents = NULL;
  gsize length = 0;

  if (!g_file_load_contents_finish (G_FILE (source), result, &contents, &length, NULL, &error))
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, g_bytes_new_take (contents, length),
                           (GDestroyNotify) g_bytes_unref);
}

void
cd_blob_store_read_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_autofree char *path = NULL;
  g_autoptr (GFile) file = NULL;

  g_task_set_source_tag (task, cd_blob_store_read_async);
  if (!cd_blob_key_is_valid (key)) {
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                             "not a blob key: %.100s", key);
    g_object_unref (task);
    return;
  }
  path = cd_blob_store_local_path (self, key);
  file = g_file_new_for_path (path);
  g_file_load_contents_async (file, cancellable, on_loaded, task);
}

GBytes *
cd_blob_store_read_finish (CdBlobStore *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
on_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;

  if (!g_file_delete_finish (G_FILE (source), result, &error) &&
      !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)) {
    g_task_return_error (task, error);
    return;
  }
  g_clear_error (&error);
  g_task_return_boolean (task, TRUE);
}

void
cd_blob_store_delete_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_autofree char *path = NULL;
  g_autoptr (GFile) file = NULL;

  g_task_set_source_tag (task, cd_blob_store_delete_async);
  if (!cd_blob_key_is_valid (key)) {
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME,
                             "not a blob key: %.100s", key);
    g_object_unref (task);
    return;
  }
  path = cd_blob_store_local_path (self, key);
  file = g_file_new_for_path (path);
  g_file_delete_async (file, G_PRIORITY_DEFAULT, cancellable, on_deleted, task);
}

gboolean
cd_blob_store_delete_finish (CdBlobStore *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
