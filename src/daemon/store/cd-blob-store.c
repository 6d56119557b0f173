/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The blob store: the local folder backend (GIO's asynchronous file calls,
 * run in GIO's worker threads) and the S3 backend (a spool folder, an
 * outbox of committed keys, one upload at a time through cd-s3). */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-blob-store.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>

#define OUTBOX "_outbox"

typedef struct {
  char *key;
  CdBlobCommitFlags flags;
} Upload;

static void
upload_free (gpointer data)
{
  Upload *u = data;

  g_free (u->key);
  g_free (u);
}

struct _CdBlobStore {
  GObject parent_instance;
  char *root;
  char *describe;
  CdS3 *s3; /* NULL: the local backend */
  CdMetrics *metrics;
  GCancellable *cancellable;
  /* S3: committed keys waiting, the one uploading, the retry timer */
  GQueue pending;
  Upload *active;
  gboolean active_deleted;  /* deleted while uploading: deleted from S3 after */
  GPtrArray *deletes_after; /* GTask*: deletes of the active key, waiting for its upload */
  guint retry_source;
  guint retry_s;
  guint retry_max_s;
  guint failures; /* in a row */
};

G_DEFINE_FINAL_TYPE (CdBlobStore, cd_blob_store, G_TYPE_OBJECT)

enum { SIGNAL_STORED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
cd_blob_store_dispose (GObject *object)
{
  CdBlobStore *self = CD_BLOB_STORE (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->retry_source, g_source_remove);
  for (guint i = 0; self->deletes_after && i < self->deletes_after->len; i++)
    g_task_return_new_error (g_ptr_array_index (self->deletes_after, i), G_IO_ERROR,
                             G_IO_ERROR_CANCELLED, "the blob store stopped");
  g_clear_pointer (&self->deletes_after, g_ptr_array_unref);
  G_OBJECT_CLASS (cd_blob_store_parent_class)->dispose (object);
}

static void
cd_blob_store_finalize (GObject *object)
{
  CdBlobStore *self = CD_BLOB_STORE (object);

  g_free (self->root);
  g_free (self->describe);
  g_clear_object (&self->s3);
  g_clear_object (&self->metrics);
  g_clear_object (&self->cancellable);
  g_queue_clear_full (&self->pending, upload_free);
  g_clear_pointer (&self->active, upload_free);
  G_OBJECT_CLASS (cd_blob_store_parent_class)->finalize (object);
}

static void
cd_blob_store_class_init (CdBlobStoreClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = cd_blob_store_dispose;
  G_OBJECT_CLASS (klass)->finalize = cd_blob_store_finalize;
  signals[SIGNAL_STORED] = g_signal_new ("stored", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                                         NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
cd_blob_store_init (CdBlobStore *self)
{
  self->cancellable = g_cancellable_new ();
  g_queue_init (&self->pending);
  self->deletes_after = g_ptr_array_new_with_free_func (g_object_unref);
}

CdBlobStore *
cd_blob_store_new_local (const char *root)
{
  CdBlobStore *self = g_object_new (CD_TYPE_BLOB_STORE, NULL);

  self->root = g_strdup (root);
  self->describe = g_strdup_printf ("local folder %s", root);
  return self;
}

const char *
cd_blob_store_describe (CdBlobStore *self)
{
  return self->describe;
}

gboolean
cd_blob_key_is_valid (const char *key)
{
  gsize n = key ? strlen (key) : 0;
  gsize part = 0;

  if (n < 1 || n > 400 || key[0] == '_')
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

gboolean
cd_blob_task_refuses_key (GTask *task, const char *key)
{
  if (cd_blob_key_is_valid (key))
    return FALSE;
  g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_INVALID_FILENAME, "not a blob key: %.100s",
                           key);
  g_object_unref (task);
  return TRUE;
}

char *
cd_blob_store_local_path (CdBlobStore *self, const char *key)
{
  g_return_val_if_fail (cd_blob_key_is_valid (key), NULL);
  return g_build_filename (self->root, key, NULL);
}

/* ---- metrics ---- */

static void
count_pending (CdBlobStore *self)
{
  if (self->metrics)
    cd_metrics_set (self->metrics, "calldocker_blob_uploads_pending", NULL,
                    (double) (self->pending.length + (self->active ? 1 : 0)));
}

void
cd_blob_store_set_metrics (CdBlobStore *self, CdMetrics *metrics)
{
  g_set_object (&self->metrics, metrics);
  cd_metrics_register (metrics, "calldocker_blob_uploads_total", CD_METRIC_COUNTER,
                       "Uploads of stored files to S3, by result (ok or failed: retried)", NULL, 0);
  cd_metrics_register (metrics, "calldocker_blob_uploads_pending", CD_METRIC_GAUGE,
                       "Stored files committed and not yet uploaded to S3", NULL, 0);
  count_pending (self);
}

guint
cd_blob_store_uploads_pending (CdBlobStore *self)
{
  return self->pending.length + (self->active ? 1 : 0);
}

/* ---- the outbox: ROOT/_outbox/SHA256(KEY) holds "KEY\nFLAGS\n" ---- */

static char *
outbox_path (CdBlobStore *self, const char *key)
{
  g_autofree char *name = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);

  return g_build_filename (self->root, OUTBOX, name, NULL);
}

typedef struct {
  char *key;
  char *note;  /* the outbox entry */
  char *local; /* the spool's copy */
  CdBlobCommitFlags flags;
  gboolean drop_local;
} FileJob;

static void
file_job_free (gpointer data)
{
  FileJob *j = data;

  g_free (j->key);
  g_free (j->note);
  g_free (j->local);
  g_free (j);
}

static FileJob *
file_job_new (CdBlobStore *self, const char *key, CdBlobCommitFlags flags, gboolean drop_local)
{
  FileJob *j = g_new0 (FileJob, 1);

  j->key = g_strdup (key);
  j->note = outbox_path (self, key);
  j->local = cd_blob_store_local_path (self, key);
  j->flags = flags;
  j->drop_local = drop_local;
  return j;
}

static void
note_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  FileJob *j = data;
  g_autofree char *dir = g_path_get_dirname (j->note);
  g_autofree char *text = g_strdup_printf ("%s\n%u\n", j->key, (guint) j->flags);
  GError *error = NULL;

  if (!g_file_test (j->local, G_FILE_TEST_IS_REGULAR)) {
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                             "cannot store %s: its file %s is not there", j->key, j->local);
    return;
  }
  if (g_mkdir_with_parents (dir, 0700) < 0 ||
      !g_file_set_contents_full (j->note, text, -1,
                                 G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE, 0600,
                                 &error)) {
    if (error == NULL) {
      int e = errno;

      error = g_error_new (G_IO_ERROR, g_io_error_from_errno (e), "cannot make %s: %s", dir,
                           g_strerror (e));
    }
    g_prefix_error (&error, "cannot note %s for upload: ", j->key);
    g_task_return_error (task, error);
    return;
  }
  g_task_return_boolean (task, TRUE);
}

/* Removes the outbox entry and, when asked, the spool's copy. */
static void
forget_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  FileJob *j = data;

  if (j->drop_local && g_unlink (j->local) < 0 && errno != ENOENT) {
    int e = errno;

    g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (e), "cannot remove %s: %s",
                             j->local, g_strerror (e));
    return;
  }
  if (g_unlink (j->note) < 0 && errno != ENOENT) {
    int e = errno;

    g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (e), "cannot remove %s: %s",
                             j->note, g_strerror (e));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
run_file_job (CdBlobStore *self, FileJob *job, GTaskThreadFunc func, GCancellable *cancellable,
              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_task_data (task, job, file_job_free);
  g_task_run_in_thread (task, func);
  g_object_unref (task);
}

/* ---- uploading, one at a time ---- */

static void pump (CdBlobStore *self);
static gboolean queued (CdBlobStore *self, const char *key);

static gboolean
on_retry (gpointer user_data)
{
  CdBlobStore *self = user_data;

  self->retry_source = 0;
  pump (self);
  return G_SOURCE_REMOVE;
}

static void
on_forgotten (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    g_message ("blob store: %s", error->message);
}

static void on_s3_deleted (GObject *source, GAsyncResult *result, gpointer user_data);

static void
on_uploaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdBlobStore *self = user_data;
  g_autoptr (GError) error = NULL;
  Upload *u;
  gboolean ok = cd_s3_put_file_finish (CD_S3 (source), result, &error);

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return; /* the store is gone */
  u = g_steal_pointer (&self->active);
  if (self->active_deleted) {
    /* deleted meanwhile: the deletes that waited for the upload go on to
     * the bucket (whatever became of the upload: it may have landed) */
    self->active_deleted = FALSE;
    for (guint i = 0; i < self->deletes_after->len; i++)
      cd_s3_delete_async (self->s3, u->key, NULL, on_s3_deleted,
                          g_object_ref (g_ptr_array_index (self->deletes_after, i)));
    g_ptr_array_set_size (self->deletes_after, 0);
    upload_free (u);
  } else if (ok) {
    g_debug ("blob store: %s uploaded to %s", u->key, cd_s3_describe (self->s3));
    if (self->metrics)
      cd_metrics_add (self->metrics, "calldocker_blob_uploads_total", "result=\"ok\"", 1);
    self->failures = 0;
    self->retry_s = 0;
    g_signal_emit (self, signals[SIGNAL_STORED], 0, u->key);
    /* committed again meanwhile: the outbox entry and the file are the
     * newer commit's, uploaded next */
    if (!queued (self, u->key))
      run_file_job (self,
                    file_job_new (self, u->key, u->flags, !(u->flags & CD_BLOB_COMMIT_KEEP_LOCAL)),
                    forget_thread, NULL, on_forgotten, NULL);
    upload_free (u);
  } else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) && !queued (self, u->key)) {
    g_message ("blob store: %s was to be uploaded, but its file is gone", u->key);
    run_file_job (self, file_job_new (self, u->key, u->flags, FALSE), forget_thread, NULL,
                  on_forgotten, NULL);
    upload_free (u);
  } else {
    self->failures++;
    self->retry_s = self->retry_s ? MIN (self->retry_s * 2, self->retry_max_s) : 1;
    g_message ("blob store: uploading %s to %s failed (%u in a row), retrying in %u s: %s", u->key,
               cd_s3_describe (self->s3), self->failures, self->retry_s, error->message);
    if (self->metrics)
      cd_metrics_add (self->metrics, "calldocker_blob_uploads_total", "result=\"failed\"", 1);
    /* behind the others: one file that keeps failing holds none up */
    g_queue_push_tail (&self->pending, u);
    self->retry_source = g_timeout_add_seconds (self->retry_s, on_retry, self);
  }
  count_pending (self);
  pump (self);
}

static void
pump (CdBlobStore *self)
{
  g_autofree char *path = NULL;

  if (self->active || self->retry_source || g_queue_is_empty (&self->pending))
    return;
  self->active = g_queue_pop_head (&self->pending);
  path = cd_blob_store_local_path (self, self->active->key);
  cd_s3_put_file_async (self->s3, self->active->key, path, self->cancellable, on_uploaded, self);
  count_pending (self);
}

static gboolean
queued (CdBlobStore *self, const char *key)
{
  if (self->active && g_str_equal (self->active->key, key))
    return TRUE;
  for (GList *l = self->pending.head; l; l = l->next)
    if (g_str_equal (((Upload *) l->data)->key, key))
      return TRUE;
  return FALSE;
}

static void
enqueue (CdBlobStore *self, const char *key, CdBlobCommitFlags flags)
{
  Upload *u;

  /* waiting already: once is enough, with both commits' wishes */
  for (GList *l = self->pending.head; l; l = l->next)
    if (g_str_equal (((Upload *) l->data)->key, key)) {
      ((Upload *) l->data)->flags |= flags;
      return;
    }
  u = g_new0 (Upload, 1);
  u->key = g_strdup (key);
  u->flags = flags;
  g_queue_push_tail (&self->pending, u);
  count_pending (self);
  pump (self);
}

/* ---- resuming the outbox at start ---- */

static void
scan_outbox_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  CdBlobStore *self = source;
  g_autofree char *dir = g_build_filename (self->root, OUTBOX, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) d = g_dir_open (dir, 0, &error);
  GPtrArray *found = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  if (d == NULL && !g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
    g_message ("blob store: the outbox %s cannot be read, so what it holds is not uploaded: %s",
               dir, error->message);
  while (d && (name = g_dir_read_name (d))) {
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_autofree char *text = NULL;
    g_auto (GStrv) lines = NULL;
    g_autoptr (GError) read_error = NULL;
    gboolean hex = strlen (name) == 64;

    for (const char *c = name; hex && *c; c++)
      hex = g_ascii_isxdigit (*c) && !g_ascii_isupper (*c);
    /* an entry is named by its key's SHA-256; anything else (a temporary
     * file a crash left mid-write) is not one */
    if (!hex)
      continue;
    if (!g_file_get_contents (path, &text, NULL, &read_error)) {
      g_message ("blob store: the outbox entry %s cannot be read: %s", path, read_error->message);
      continue;
    }
    lines = g_strsplit (text, "\n", 3);
    if (g_strv_length (lines) < 2 || !cd_blob_key_is_valid (lines[0])) {
      g_message ("blob store: %s is not an outbox entry; left alone", path);
      continue;
    }
    /* the key and its flags, in one string */
    g_ptr_array_add (
        found, g_strdup_printf ("%u %s", (guint) g_ascii_strtoull (lines[1], NULL, 10), lines[0]));
  }
  g_task_return_pointer (task, found, (GDestroyNotify) g_ptr_array_unref);
}

static void
on_outbox_scanned (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdBlobStore *self = CD_BLOB_STORE (source);
  g_autoptr (GPtrArray) found = g_task_propagate_pointer (G_TASK (result), NULL);

  if (found == NULL)
    return;
  if (found->len)
    g_message ("blob store: %u files committed before the last stop still to upload to %s",
               found->len, cd_s3_describe (self->s3));
  for (guint i = 0; i < found->len; i++) {
    const char *entry = g_ptr_array_index (found, i);
    char *end = NULL;
    guint flags = (guint) g_ascii_strtoull (entry, &end, 10);

    enqueue (self, end + 1, (CdBlobCommitFlags) flags);
  }
}

CdBlobStore *
cd_blob_store_new_s3 (const char *spool, CdS3 *s3, guint retry_max_s)
{
  CdBlobStore *self = g_object_new (CD_TYPE_BLOB_STORE, NULL);
  GTask *task;

  self->root = g_strdup (spool);
  self->s3 = g_object_ref (s3);
  self->retry_max_s = MAX (retry_max_s, 1);
  self->describe = g_strdup_printf ("S3 %s, spool %s", cd_s3_describe (s3), spool);
  task = g_task_new (self, self->cancellable, on_outbox_scanned, NULL);
  g_task_run_in_thread (task, scan_outbox_thread);
  g_object_unref (task);
  return self;
}

/* ---- commit ---- */

static void
on_noted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CdBlobStore *self = g_task_get_source_object (task);
  FileJob *j = g_task_get_task_data (G_TASK (result));
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    g_task_return_error (task, error);
    return;
  }
  enqueue (self, j->key, j->flags);
  g_task_return_boolean (task, TRUE);
}

void
cd_blob_store_commit_async (CdBlobStore *self, const char *key, CdBlobCommitFlags flags,
                            GCancellable *cancellable, GAsyncReadyCallback callback,
                            gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, cd_blob_store_commit_async);
  if (cd_blob_task_refuses_key (task, key))
    return;
  if (self->s3 == NULL) {
    g_signal_emit (self, signals[SIGNAL_STORED], 0, key);
    g_task_return_boolean (task, TRUE);
    g_object_unref (task);
    return;
  }
  /* not cancelled by the caller: once the entry may be written, it is
   * queued too */
  run_file_job (self, file_job_new (self, key, flags, FALSE), note_thread, NULL, on_noted, task);
}

gboolean
cd_blob_store_commit_finish (CdBlobStore *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
on_committed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *key = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_blob_store_commit_finish (CD_BLOB_STORE (source), result, &error))
    g_message ("blob store: %s stays where it was written, not stored: %s", key, error->message);
}

void
cd_blob_store_commit (CdBlobStore *self, const char *key, CdBlobCommitFlags flags)
{
  cd_blob_store_commit_async (self, key, flags, NULL, on_committed, g_strdup (key));
}

/* ---- read ---- */

static void
on_fetched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  GBytes *bytes = cd_s3_get_finish (CD_S3 (source), result, &error);

  if (bytes == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, bytes, (GDestroyNotify) g_bytes_unref);
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CdBlobStore *self = g_task_get_source_object (task);
  GError *error = NULL;
  char *contents = NULL;
  gsize length = 0;

  if (g_file_load_contents_finish (G_FILE (source), result, &contents, &length, NULL, &error)) {
    g_task_return_pointer (task, g_bytes_new_take (contents, length),
                           (GDestroyNotify) g_bytes_unref);
    return;
  }
  /* not in the spool: in the bucket */
  if (self->s3 && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)) {
    g_clear_error (&error);
    cd_s3_get_async (self->s3, g_task_get_task_data (task), g_task_get_cancellable (task),
                     on_fetched, g_object_ref (task));
    return;
  }
  g_task_return_error (task, error);
}

void
cd_blob_store_read_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_autofree char *path = NULL;
  g_autoptr (GFile) file = NULL;

  g_task_set_source_tag (task, cd_blob_store_read_async);
  if (cd_blob_task_refuses_key (task, key))
    return;
  g_task_set_task_data (task, g_strdup (key), g_free);
  path = cd_blob_store_local_path (self, key);
  file = g_file_new_for_path (path);
  g_file_load_contents_async (file, cancellable, on_loaded, task);
}

GBytes *
cd_blob_store_read_finish (CdBlobStore *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- delete ---- */

static void
on_s3_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;

  if (!cd_s3_delete_finish (CD_S3 (source), result, &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
on_local_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CdBlobStore *self = g_task_get_source_object (task);
  FileJob *j = g_task_get_task_data (G_TASK (result));
  GError *error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    g_task_return_error (task, error);
    return;
  }
  if (self->s3 == NULL) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  /* uploading now: deleted from the bucket once the upload is over, so it
   * cannot land after the delete */
  if (self->active_deleted && self->active && g_str_equal (self->active->key, j->key)) {
    g_ptr_array_add (self->deletes_after, g_object_ref (task));
    return;
  }
  cd_s3_delete_async (self->s3, j->key, g_task_get_cancellable (task), on_s3_deleted,
                      g_object_ref (task));
}

void
cd_blob_store_delete_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);

  g_task_set_source_tag (task, cd_blob_store_delete_async);
  if (cd_blob_task_refuses_key (task, key))
    return;
  /* no upload of it after this */
  if (self->active && g_str_equal (self->active->key, key))
    self->active_deleted = TRUE;
  for (GList *l = self->pending.head; l;) {
    GList *next = l->next;

    if (g_str_equal (((Upload *) l->data)->key, key)) {
      upload_free (l->data);
      g_queue_delete_link (&self->pending, l);
    }
    l = next;
  }
  count_pending (self);
  run_file_job (self, file_job_new (self, key, 0, TRUE), forget_thread, cancellable,
                on_local_deleted, task);
}

gboolean
cd_blob_store_delete_finish (CdBlobStore *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
