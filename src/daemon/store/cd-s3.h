/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A client for S3-compatible object stores (AWS S3, MinIO, Ceph, Swift's
 * s3api): path-style requests signed with AWS Signature Version 4 through
 * libsoup, on the main loop. Files go up whole or, when larger than a
 * part, as a multipart upload; parts are read and hashed in a worker
 * thread, one at a time, so memory stays at one part. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CD_S3_MIN_PART_BYTES (5u * 1024 * 1024) /* S3's own minimum */

typedef struct {
  const char *endpoint; /* http(s)://host[:port], no path */
  const char *bucket;
  const char *region;
  const char *access_key;
  const char *secret_key;
  gsize part_bytes; /* larger files go multipart, in parts of this size */
  guint timeout_s;  /* per request */
} CdS3Config;

#define CD_TYPE_S3 (cd_s3_get_type ())
G_DECLARE_FINAL_TYPE (CdS3, cd_s3, CD, S3, GObject)

/* NULL with @error saying which setting is wrong. */
CdS3 *cd_s3_new (const CdS3Config *config, GError **error);
const char *cd_s3_describe (CdS3 *self); /* "ENDPOINT/BUCKET", no secret */

/* Uploads the file at @path as @key (a blob key). */
void cd_s3_put_file_async (CdS3 *self, const char *key, const char *path, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_s3_put_file_finish (CdS3 *self, GAsyncResult *result, GError **error);

/* The object's bytes; G_IO_ERROR_NOT_FOUND when there is none. */
void cd_s3_get_async (CdS3 *self, const char *key, GCancellable *cancellable,
                      GAsyncReadyCallback callback, gpointer user_data);
GBytes *cd_s3_get_finish (CdS3 *self, GAsyncResult *result, GError **error);

/* Deleting what is not there succeeds. */
void cd_s3_delete_async (CdS3 *self, const char *key, GCancellable *cancellable,
                         GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_s3_delete_finish (CdS3 *self, GAsyncResult *result, GError **error);

/* The text of the first <@name> element in an S3 XML reply (entities
 * &amp; &lt; &gt; &quot; &apos; decoded), or NULL. For error codes and
 * upload ids; it reads untrusted replies, so it never reads past @len. */
char *cd_s3_xml_text (const char *body, gsize len, const char *name);

G_END_DECLS
