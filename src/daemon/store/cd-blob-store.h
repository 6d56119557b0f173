/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Where files the daemon keeps live (IVR prompts for now): a key such as
 * prompts/COMPANY/ID.ogg names one. The backend is a local folder, by
 * default under the state folder; reads and deletes run off the main loop. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CD_TYPE_BLOB_STORE (cd_blob_store_get_type ())
G_DECLARE_FINAL_TYPE (CdBlobStore, cd_blob_store, CD, BLOB_STORE, GObject)

CdBlobStore *cd_blob_store_new_local (const char *root);
/* Whether @key is one: 1 to 400 of [a-z0-9._-] in /-separated parts, none
 * of them empty, "." or "..". */
gboolean cd_blob_key_is_valid (const char *key);
/* The file a writer fills for @key (the local backend keeps it there). */
char *cd_blob_store_local_path (CdBlobStore *self, const char *key);
void cd_blob_store_read_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
GBytes *cd_blob_store_read_finish (CdBlobStore *self, GAsyncResult *result, GError **error);
/* Deleting a key that is not there succeeds. */
void cd_blob_store_delete_async (CdBlobStore *self, const char *key, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_blob_store_delete_finish (CdBlobStore *self, GAsyncResult *result, GError **error);

G_END_DECLS
