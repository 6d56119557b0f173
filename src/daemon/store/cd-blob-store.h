/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Where files the daemon keeps live (prompts, voicemails, recordings,
 * rendered speech): a key such as prompts/COMPANY/ID.ogg names one.
 *
 * Two backends behind one interface. The local folder (the default, under
 * the state folder) keeps each file at ROOT/KEY. The S3 backend keeps
 * files in a bucket of an S3-compatible store; a writer still fills the
 * local path (the spool, ROOT/KEY), then commits the key, which notes it
 * in ROOT/_outbox/ (durably) and uploads it in the background, retried
 * with a growing delay until it succeeds, across restarts. The "stored"
 * signal (key) tells when a committed file reached its storage for good:
 * at once for the local folder, once uploaded for S3. Reads take the
 * spool's copy while there is one, else the bucket's. Reads, writes of the
 * outbox and deletes all run off the main loop. */
#pragma once

#include "../events/cd-metrics.h"
#include "cd-s3.h"

#include <gio/gio.h>

G_BEGIN_DECLS

#define CD_TYPE_BLOB_STORE (cd_blob_store_get_type ())
G_DECLARE_FINAL_TYPE (CdBlobStore, cd_blob_store, CD, BLOB_STORE, GObject)

typedef enum {
  CD_BLOB_COMMIT_DEFAULT = 0,
  /* keep the spool's copy after the upload (files the daemon plays, such
   * as prompts and rendered speech, stay at hand) */
  CD_BLOB_COMMIT_KEEP_LOCAL = 1 << 0,
} CdBlobCommitFlags;

CdBlobStore *cd_blob_store_new_local (const char *root);
/* Uploads what the outbox under @spool still holds at once. */
CdBlobStore *cd_blob_store_new_s3 (const char *spool, CdS3 *s3, guint retry_max_s);
/* "local folder ROOT" or "S3 ENDPOINT/BUCKET, spool ROOT" */
const char *cd_blob_store_describe (CdBlobStore *self);
/* Counts uploads (calldocker_blob_uploads_total{result}) and shows the
 * uploads waiting (calldocker_blob_uploads_pending). */
void cd_blob_store_set_metrics (CdBlobStore *self, CdMetrics *metrics);
/* Whether @key is one: 1 to 400 of [a-z0-9._-] in /-separated parts, none
 * of them empty, "." or "..", the first not beginning with '_' (the
 * store's own). */
gboolean cd_blob_key_is_valid (const char *key);
/* When @key is not one: @task returns G_IO_ERROR_INVALID_FILENAME and is
 * unreferenced, and TRUE. */
gboolean cd_blob_task_refuses_key (GTask *task, const char *key);
/* The file a writer fills for @key (the local backend keeps it there; the
 * S3 backend's spool). */
char *cd_blob_store_local_path (CdBlobStore *self, const char *key);
/* The file at @key's local path is whole: store it. For the local backend
 * there is nothing more to do; the S3 backend has noted it in its outbox
 * when the task returns, and uploads it after. */
void cd_blob_store_commit_async (CdBlobStore *self, const char *key, CdBlobCommitFlags flags,
                                 GCancellable *cancellable, GAsyncReadyCallback callback,
                                 gpointer user_data);
gboolean cd_blob_store_commit_finish (CdBlobStore *self, GAsyncResult *result, GError **error);
/* The same, its failure logged (the file then stays where it was written,
 * and is read from there). */
void cd_blob_store_commit (CdBlobStore *self, const char *key, CdBlobCommitFlags flags);
/* Files committed and not yet uploaded (0 for the local backend). */
guint cd_blob_store_uploads_pending (CdBlobStore *self);
void cd_blob_store_read_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
GBytes *cd_blob_store_read_finish (CdBlobStore *self, GAsyncResult *result, GError **error);
/* Deleting a key that is not there succeeds; the S3 backend deletes the
 * spool's copy, the outbox's note and the bucket's object. */
void cd_blob_store_delete_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_blob_store_delete_finish (CdBlobStore *self, GAsyncResult *result, GError **error);

G_END_DECLS
