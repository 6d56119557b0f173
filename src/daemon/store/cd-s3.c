/* SPDX-License-Identifier: GPL-3.0-or-later */
/* S3 client: each request is built, signed (cd-sigv4) and sent with
 * libsoup on the main loop; file reading and hashing run in GIO's worker
 * threads. */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-s3.h"

#include "cd-blob-store.h"
#include "cd-sigv4.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* S3's limits: parts per upload, bytes per part (and per single PUT) */
#define MAX_PARTS     10000
#define MAX_PART_SIZE (G_GUINT64_CONSTANT (5) * 1024 * 1024 * 1024)

struct _CdS3 {
  GObject parent_instance;
  SoupSession *session;
  char *endpoint; /* without a trailing '/' */
  char *host;     /* the Host header libsoup sends, signed */
  char *bucket;
  char *region;
  char *access_key;
  char *secret_key;
  char *describe;
  gsize part_bytes;
};

G_DEFINE_FINAL_TYPE (CdS3, cd_s3, G_TYPE_OBJECT)

static void
cd_s3_finalize (GObject *object)
{
  CdS3 *self = CD_S3 (object);

  g_clear_object (&self->session);
  g_free (self->endpoint);
  g_free (self->host);
  g_free (self->bucket);
  g_free (self->region);
  g_free (self->access_key);
  if (self->secret_key)
    sodium_memzero (self->secret_key, strlen (self->secret_key));
  g_free (self->secret_key);
  g_free (self->describe);
  G_OBJECT_CLASS (cd_s3_parent_class)->finalize (object);
}

static void
cd_s3_class_init (CdS3Class *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_s3_finalize;
}

static void
cd_s3_init (CdS3 *self)
{
}

/* S3's bucket naming rules: 3 to 63 of [a-z0-9.-], beginning and ending
 * with a letter or digit. */
static gboolean
valid_bucket (const char *b)
{
  gsize n = b ? strlen (b) : 0;

  if (n < 3 || n > 63 || !g_ascii_isalnum (b[0]) || !g_ascii_isalnum (b[n - 1]))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!(g_ascii_islower (b[i]) || g_ascii_isdigit (b[i]) || b[i] == '.' || b[i] == '-'))
      return FALSE;
  return TRUE;
}

static gboolean
printable (const char *s)
{
  if (s == NULL || s[0] == '\0')
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isgraph (*p))
      return FALSE;
  return TRUE;
}

CdS3 *
cd_s3_new (const CdS3Config *config, GError **error)
{
  g_autoptr (CdS3) self = NULL;
  g_autoptr (GUri) uri = NULL;
  g_autoptr (GError) parse_error = NULL;
  const char *scheme, *host;
  int port;

  uri = g_uri_parse (config->endpoint ? config->endpoint : "", G_URI_FLAGS_NONE, &parse_error);
  if (uri == NULL) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                         "s3_endpoint is not a URL (http://host:port or https://host)");
    return NULL;
  }
  scheme = g_uri_get_scheme (uri);
  host = g_uri_get_host (uri);
  if ((g_ascii_strcasecmp (scheme, "http") && g_ascii_strcasecmp (scheme, "https")) ||
      host == NULL || host[0] == '\0' ||
      (g_uri_get_path (uri)[0] && !g_str_equal (g_uri_get_path (uri), "/")) ||
      g_uri_get_query (uri) || g_uri_get_userinfo (uri)) {
    /* said without what could be a password in it */
    g_autofree char *shown = g_uri_to_string_partial (
        uri, G_URI_HIDE_USERINFO | G_URI_HIDE_PASSWORD | G_URI_HIDE_AUTH_PARAMS);

    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "s3_endpoint must be http://host[:port] or https://host[:port], without a "
                 "path, query or user: %.200s",
                 shown);
    return NULL;
  }
  if (!valid_bucket (config->bucket)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "s3_bucket must be 3 to 63 of a-z, 0-9, '.' and '-', beginning and ending "
                 "with a letter or digit: \"%.80s\"",
                 config->bucket ? config->bucket : "");
    return NULL;
  }
  {
    const char *values[] = { config->region, config->access_key, config->secret_key };
    const char *names[] = { "s3_region", "s3_access_key", "s3_secret_key" };

    for (gsize i = 0; i < G_N_ELEMENTS (values); i++)
      if (!printable (values[i])) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "%s must be set, printable and without spaces", names[i]);
        return NULL;
      }
  }
  if (config->part_bytes < CD_S3_MIN_PART_BYTES || config->part_bytes > MAX_PART_SIZE) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "s3_part_bytes must be from %u (S3's smallest part) to %" G_GUINT64_FORMAT
                 " (its largest)",
                 CD_S3_MIN_PART_BYTES, MAX_PART_SIZE);
    return NULL;
  }
  self = g_object_new (CD_TYPE_S3, NULL);
  port = g_uri_get_port (uri);
  {
    g_autofree char *lower = g_ascii_strdown (scheme, -1);
    g_autofree char *bracketed =
        strchr (host, ':') ? g_strdup_printf ("[%s]", host) : g_strdup (host);
    gboolean default_port = port <= 0 || (port == 80 && g_str_equal (lower, "http")) ||
                            (port == 443 && g_str_equal (lower, "https"));

    /* libsoup's Host: the port only when not the scheme's own */
    self->host = default_port ? g_strdup (bracketed) : g_strdup_printf ("%s:%d", bracketed, port);
    self->endpoint = g_strdup_printf ("%s://%s", lower, self->host);
  }
  self->bucket = g_strdup (config->bucket);
  self->region = g_strdup (config->region);
  self->access_key = g_strdup (config->access_key);
  self->secret_key = g_strdup (config->secret_key);
  self->part_bytes = config->part_bytes;
  self->describe = g_strdup_printf ("%s/%s", self->endpoint, self->bucket);
  self->session =
      soup_session_new_with_options ("timeout", config->timeout_s ? config->timeout_s : 30,
                                     "idle-timeout", 60, "user-agent", "calldockerd", NULL);
  return g_steal_pointer (&self);
}

const char *
cd_s3_describe (CdS3 *self)
{
  return self->describe;
}

/* ---- XML replies ---- */

char *
cd_s3_xml_text (const char *body, gsize len, const char *name)
{
  g_autofree char *open = g_strdup_printf ("<%s>", name);
  g_autofree char *close = g_strdup_printf ("</%s>", name);
  const char *start, *end;
  GString *out;

  if (body == NULL || len == 0)
    return NULL;
  start = g_strstr_len (body, len, open);
  if (start == NULL)
    return NULL;
  start += strlen (open);
  end = g_strstr_len (start, len - (gsize) (start - body), close);
  if (end == NULL)
    return NULL;
  out = g_string_sized_new ((gsize) (end - start));
  for (const char *p = start; p < end; p++) {
    static const struct {
      const char *entity;
      char c;
    } entities[] = {
      { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' }, { "&apos;", '\'' }
    };
    gboolean done = FALSE;

    if (*p == '&')
      for (gsize i = 0; i < G_N_ELEMENTS (entities) && !done; i++) {
        gsize n = strlen (entities[i].entity);

        if ((gsize) (end - p) >= n && memcmp (p, entities[i].entity, n) == 0) {
          g_string_append_c (out, entities[i].c);
          p += n - 1;
          done = TRUE;
        }
      }
    if (!done)
      g_string_append_c (out, *p);
  }
  return g_string_free (out, FALSE);
}

/* ---- one request ---- */

static SoupMessage *
build (CdS3 *self, const char *method, const char *key, const char *const *query, GBytes *body,
       const char *body_sha256)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *date = cd_sigv4_amz_date (now);
  g_autofree char *path =
      key ? g_strdup_printf ("/%s/%s", self->bucket, key) : g_strdup_printf ("/%s", self->bucket);
  g_autofree char *encoded = cd_sigv4_uri_encode (path, FALSE);
  g_autofree char *q = query ? cd_sigv4_canonical_query (query) : NULL;
  g_autofree char *url =
      g_strdup_printf ("%s%s%s%s", self->endpoint, encoded, q ? "?" : "", q ? q : "");
  const char *sha = body_sha256 ? body_sha256 : CD_SIGV4_EMPTY_SHA256;
  CdSigV4Key k = { self->access_key, self->secret_key, self->region, "s3" };
  g_autoptr (GError) error = NULL;
  g_autofree char *auth = NULL;
  SoupMessage *msg;
  SoupMessageHeaders *h;

  auth = cd_sigv4_authorization (&k, method, path, query,
                                 (const char *const[]){ "host", self->host, "x-amz-content-sha256",
                                                        sha, "x-amz-date", date, NULL },
                                 sha, date, NULL, &error);
  /* every argument is ours and well formed */
  if (auth == NULL)
    g_error ("cannot sign an S3 request: %s", error->message);
  msg = soup_message_new (method, url);
  if (msg == NULL)
    g_error ("cannot make an S3 request of %s", url);
  h = soup_message_get_request_headers (msg);
  soup_message_headers_replace (h, "x-amz-date", date);
  soup_message_headers_replace (h, "x-amz-content-sha256", sha);
  soup_message_headers_replace (h, "Authorization", auth);
  if (body)
    soup_message_set_request_body_from_bytes (msg, "application/octet-stream", body);
  return msg;
}

typedef struct {
  SoupMessage *msg;
  char *what; /* "PUT recordings/..." for errors */
} Request;

static void
request_free (Request *r)
{
  g_clear_object (&r->msg);
  g_free (r->what);
  g_free (r);
}

/* An error for a reply that is not a success: its status and S3's code and
 * message when the body has them. */
static GError *
reply_error (SoupMessage *msg, GBytes *body, const char *what)
{
  gsize len = 0;
  const char *data = body ? g_bytes_get_data (body, &len) : NULL;
  g_autofree char *code = cd_s3_xml_text (data, len, "Code");
  g_autofree char *message = cd_s3_xml_text (data, len, "Message");
  guint status = soup_message_get_status (msg);

  return g_error_new (
      G_IO_ERROR, status == SOUP_STATUS_NOT_FOUND ? G_IO_ERROR_NOT_FOUND : G_IO_ERROR_FAILED,
      "S3 %s: HTTP %u%s%.100s%s%.200s%s", what, status, code ? " (" : "", code ? code : "",
      message ? ": " : "", message ? message : "", code ? ")" : "");
}

/* Sends @msg; the task (data: the Request) gets the reply's body, or an
 * error for a failed transport or a status other than 2xx. */
static void
on_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Request *r = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (GBytes) body =
      soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);

  if (body == NULL) {
    g_prefix_error (&error, "S3 %s: ", r->what);
    g_task_return_error (task, error);
    return;
  }
  if (!SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (r->msg))) {
    g_task_return_error (task, reply_error (r->msg, body, r->what));
    return;
  }
  g_task_return_pointer (task, g_steal_pointer (&body), (GDestroyNotify) g_bytes_unref);
}

static void
send_request (CdS3 *self, SoupMessage *msg, const char *what, GCancellable *cancellable,
              GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  Request *r = g_new0 (Request, 1);

  r->msg = msg;
  r->what = g_strdup (what);
  g_task_set_task_data (task, r, (GDestroyNotify) request_free);
  soup_session_send_and_read_async (self->session, msg, G_PRIORITY_DEFAULT, cancellable, on_sent,
                                    task);
}

static GBytes *
send_finish (GAsyncResult *result, SoupMessage **msg, GError **error)
{
  Request *r = g_task_get_task_data (G_TASK (result));

  if (msg)
    *msg = g_object_ref (r->msg);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- reading a part of a file, in a worker thread ---- */

typedef struct {
  char *path;
  goffset offset;
  gsize length;
  /* out */
  GBytes *bytes;
  char *sha256;
  goffset size;
} Part;

static void
part_free (Part *p)
{
  g_free (p->path);
  g_clear_pointer (&p->bytes, g_bytes_unref);
  g_free (p->sha256);
  g_free (p);
}

static void
read_part_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  Part *p = data;
  int fd = g_open (p->path, O_RDONLY | O_CLOEXEC, 0);
  struct stat st;
  guint8 *buf;
  gsize want, got = 0;

  if (fd < 0 || fstat (fd, &st) < 0) {
    int e = errno;

    if (fd >= 0)
      close (fd);
    g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (e), "cannot read %s: %s",
                             p->path, g_strerror (e));
    return;
  }
  p->size = st.st_size;
  want = p->offset >= st.st_size ? 0 : (gsize) MIN ((goffset) p->length, st.st_size - p->offset);
  buf = g_malloc (want ? want : 1);
  while (got < want) {
    ssize_t n = pread (fd, buf + got, want - got, p->offset + (goffset) got);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : EIO;

      close (fd);
      g_free (buf);
      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (e), "cannot read %s: %s",
                               p->path, n < 0 ? g_strerror (e) : "it got shorter while read");
      return;
    }
    got += (gsize) n;
  }
  close (fd);
  p->bytes = g_bytes_new_take (buf, want);
  p->sha256 = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, p->bytes);
  g_task_return_boolean (task, TRUE);
}

static void
read_part_async (CdS3 *self, const char *path, goffset offset, gsize length,
                 GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  Part *p = g_new0 (Part, 1);

  p->path = g_strdup (path);
  p->offset = offset;
  p->length = length;
  g_task_set_task_data (task, p, (GDestroyNotify) part_free);
  g_task_run_in_thread (task, read_part_thread);
  g_object_unref (task);
}

/* ---- putting a file ---- */

typedef struct {
  char *key;
  char *path;
  goffset size;
  gsize part_size; /* the configured size, or larger for a file of more than MAX_PARTS */
  guint part;      /* 1-based number of the part in flight */
  char *upload_id; /* multipart */
  GString *complete;
} Put;

static void
put_free (Put *p)
{
  g_free (p->key);
  g_free (p->path);
  g_free (p->upload_id);
  if (p->complete)
    g_string_free (p->complete, TRUE);
  g_free (p);
}

static void read_next_part (GTask *task);

/* A 404 in an upload is a missing bucket, to retry; G_IO_ERROR_NOT_FOUND
 * from an upload means its file is gone. */
static GError *
request_error (GError *error)
{
  if (error->domain == G_IO_ERROR && error->code == G_IO_ERROR_NOT_FOUND)
    error->code = G_IO_ERROR_FAILED;
  return error;
}

static void
fail_put (GTask *task, GError *error)
{
  CdS3 *self = g_task_get_source_object (task);
  Put *p = g_task_get_task_data (task);

  /* a multipart upload begun is aborted, so its parts do not linger (and
   * cost); if that fails too, the bucket's lifecycle rule cleans up */
  if (p->upload_id) {
    g_autofree char *what = g_strdup_printf ("abort upload of %s", p->key);
    SoupMessage *msg = build (self, "DELETE", p->key,
                              (const char *const[]){ "uploadId", p->upload_id, NULL }, NULL, NULL);

    send_request (self, msg, what, NULL, NULL, NULL);
  }
  g_task_return_error (task, error);
  g_object_unref (task);
}

static void
on_completed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Put *p = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (GBytes) body = send_finish (result, NULL, &error);
  gsize len = 0;
  const char *data = body ? g_bytes_get_data (body, &len) : NULL;

  if (body == NULL) {
    fail_put (task, request_error (error));
    return;
  }
  /* S3 may say 200 and put its error in the body */
  if (data && g_strstr_len (data, len, "<Error>")) {
    g_autofree char *code = cd_s3_xml_text (data, len, "Code");
    g_autofree char *message = cd_s3_xml_text (data, len, "Message");

    fail_put (task, g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                                 "S3 complete upload of %s: %.100s: %.200s", p->key,
                                 code ? code : "error", message ? message : ""));
    return;
  }
  g_clear_pointer (&p->upload_id, g_free);
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
complete_upload (GTask *task)
{
  CdS3 *self = g_task_get_source_object (task);
  Put *p = g_task_get_task_data (task);
  g_autoptr (GBytes) body = NULL;
  g_autofree char *sha = NULL;
  g_autofree char *what = g_strdup_printf ("complete upload of %s", p->key);
  SoupMessage *msg;

  g_string_append (p->complete, "</CompleteMultipartUpload>");
  body = g_bytes_new (p->complete->str, p->complete->len);
  sha = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, body);
  msg = build (self, "POST", p->key, (const char *const[]){ "uploadId", p->upload_id, NULL }, body,
               sha);
  send_request (self, msg, what, g_task_get_cancellable (task), on_completed, task);
}

static void
on_part_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Put *p = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (GBytes) body = send_finish (result, &msg, &error);
  const char *etag;
  g_autofree char *escaped = NULL;

  if (body == NULL) {
    fail_put (task, request_error (error));
    return;
  }
  etag = soup_message_headers_get_one (soup_message_get_response_headers (msg), "ETag");
  if (etag == NULL || etag[0] == '\0') {
    fail_put (task,
              g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                           "S3 upload of %s: part %u came back without an ETag", p->key, p->part));
    return;
  }
  escaped = g_markup_escape_text (etag, -1);
  g_string_append_printf (p->complete, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
                          p->part, escaped);
  if ((goffset) p->part * (goffset) p->part_size >= p->size)
    complete_upload (task);
  else {
    p->part++;
    read_next_part (task);
  }
}

static void
on_part_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  CdS3 *self = g_task_get_source_object (task);
  Put *p = g_task_get_task_data (task);
  Part *part = g_task_get_task_data (G_TASK (result));
  GError *error = NULL;
  g_autofree char *what = NULL;
  g_autofree char *number = NULL;
  SoupMessage *msg;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    fail_put (task, error);
    return;
  }
  if (part->size != p->size) {
    fail_put (task, g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                                 "S3 upload of %s: the file changed size while uploaded", p->key));
    return;
  }
  number = g_strdup_printf ("%u", p->part);
  what = g_strdup_printf ("PUT part %u of %s", p->part, p->key);
  msg = build (self, "PUT", p->key,
               (const char *const[]){ "partNumber", number, "uploadId", p->upload_id, NULL },
               part->bytes, part->sha256);
  send_request (self, msg, what, g_task_get_cancellable (task), on_part_sent, task);
}

static void
read_next_part (GTask *task)
{
  CdS3 *self = g_task_get_source_object (task);
  Put *p = g_task_get_task_data (task);

  read_part_async (self, p->path, (goffset) (p->part - 1) * (goffset) p->part_size, p->part_size,
                   g_task_get_cancellable (task), on_part_read, task);
}

static void
on_upload_begun (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  Put *p = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (GBytes) body = send_finish (result, NULL, &error);
  gsize len = 0;
  const char *data;

  if (body == NULL) {
    fail_put (task, request_error (error));
    return;
  }
  data = g_bytes_get_data (body, &len);
  p->upload_id = cd_s3_xml_text (data, len, "UploadId");
  if (p->upload_id == NULL || p->upload_id[0] == '\0') {
    g_clear_pointer (&p->upload_id, g_free);
    fail_put (task,
              g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                           "S3 upload of %s: the reply to beginning it has no UploadId", p->key));
    return;
  }
  p->complete = g_string_new ("<CompleteMultipartUpload>");
  p->part = 1;
  read_next_part (task);
}

static void
on_put_whole (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  GError *error = NULL;
  g_autoptr (GBytes) body = send_finish (result, NULL, &error);

  if (body == NULL) {
    fail_put (task, request_error (error));
    return;
  }
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
on_first_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  GTask *task = user_data;
  CdS3 *self = g_task_get_source_object (task);
  Put *p = g_task_get_task_data (task);
  Part *part = g_task_get_task_data (G_TASK (result));
  GError *error = NULL;
  g_autofree char *what = NULL;
  SoupMessage *msg;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    fail_put (task, error);
    return;
  }
  p->size = part->size;
  if ((gsize) part->size <= self->part_bytes) {
    what = g_strdup_printf ("PUT %s", p->key);
    msg = build (self, "PUT", p->key, NULL, part->bytes, part->sha256);
    send_request (self, msg, what, g_task_get_cancellable (task), on_put_whole, task);
    return;
  }
  /* larger than a part: multipart (the part read is read again, in turn;
   * holding it meanwhile would double what is in memory), in parts large
   * enough to stay within S3's count of them */
  p->part_size = MAX (self->part_bytes, (gsize) ((p->size + MAX_PARTS - 1) / MAX_PARTS));
  if ((guint64) p->part_size > MAX_PART_SIZE) {
    fail_put (task, g_error_new (G_IO_ERROR, G_IO_ERROR_FAILED,
                                 "S3 upload of %s: %" G_GINT64_FORMAT " bytes is more than S3 "
                                 "takes in one object",
                                 p->key, (gint64) p->size));
    return;
  }
  what = g_strdup_printf ("begin upload of %s", p->key);
  msg = build (self, "POST", p->key, (const char *const[]){ "uploads", "", NULL }, NULL, NULL);
  send_request (self, msg, what, g_task_get_cancellable (task), on_upload_begun, task);
}

void
cd_s3_put_file_async (CdS3 *self, const char *key, const char *path, GCancellable *cancellable,
                      GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  Put *p = g_new0 (Put, 1);

  g_task_set_source_tag (task, cd_s3_put_file_async);
  if (cd_blob_task_refuses_key (task, key)) {
    g_free (p);
    return;
  }
  p->key = g_strdup (key);
  p->path = g_strdup (path);
  g_task_set_task_data (task, p, (GDestroyNotify) put_free);
  read_part_async (self, path, 0, self->part_bytes, cancellable, on_first_read, task);
}

gboolean
cd_s3_put_file_finish (CdS3 *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* ---- getting and deleting ---- */

static void
on_got (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  GBytes *body = send_finish (result, NULL, &error);

  if (body == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, body, (GDestroyNotify) g_bytes_unref);
}

void
cd_s3_get_async (CdS3 *self, const char *key, GCancellable *cancellable,
                 GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_autofree char *what = g_strdup_printf ("GET %s", key);

  g_task_set_source_tag (task, cd_s3_get_async);
  if (cd_blob_task_refuses_key (task, key))
    return;
  send_request (self, build (self, "GET", key, NULL, NULL, NULL), what, cancellable, on_got, task);
}

GBytes *
cd_s3_get_finish (CdS3 *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
on_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  g_autoptr (GBytes) body = send_finish (result, NULL, &error);

  if (body == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND)) {
    g_task_return_error (task, error);
    return;
  }
  g_clear_error (&error);
  g_task_return_boolean (task, TRUE);
}

void
cd_s3_delete_async (CdS3 *self, const char *key, GCancellable *cancellable,
                    GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  g_autofree char *what = g_strdup_printf ("DELETE %s", key);

  g_task_set_source_tag (task, cd_s3_delete_async);
  if (cd_blob_task_refuses_key (task, key))
    return;
  send_request (self, build (self, "DELETE", key, NULL, NULL, NULL), what, cancellable, on_deleted,
                task);
}

gboolean
cd_s3_delete_finish (CdS3 *self, GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}
