/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdMailer: claims due outbox rows (one statement, SKIP LOCKED, so several
 * daemons share the work), writes each as an RFC 5322 message in a worker
 * thread, then records the result. */

#define G_LOG_DOMAIN "calldocker-mail"

#include "cd-mailer.h"

#include "../../common/cd-json.h"

#include <curl/curl.h>
#include <glib/gstdio.h>
#include <string.h>

#define BATCH        10
#define POLL_SECONDS 5

/* Owned by the main thread, except the files a worker writes. */
struct _CdMailer {
  GObject parent_instance;

  CdPgPool *pool;
  char *maildir;
  char *from_address;
  guint poll_id;
  gboolean busy;
  gboolean again; /* kicked while busy */
  gboolean stopped;
  guint64 delivered;
  GCancellable *cancellable;
  /* SMTP; read by the worker thread, set before cd_mailer_start() only */
  char *smtp_url;
  char *smtp_username;
  char *smtp_password;
  gboolean smtp_tls_required;
};

G_DEFINE_FINAL_TYPE (CdMailer, cd_mailer, G_TYPE_OBJECT)

typedef struct {
  char *id;
  char *to;
  char *subject;
  char *body;
  char *path;  /* where it was written */
  char *error; /* why not */
} Mail;

static void
mail_free (gpointer data)
{
  Mail *m = data;

  g_free (m->id);
  g_free (m->to);
  g_free (m->subject);
  g_free (m->body);
  g_free (m->path);
  g_free (m->error);
  g_free (m);
}

static void run_batch (CdMailer *self);

/* Header values come from our own templates and addresses checked on the
 * way in; still, no line break may end up in a header. */
static char *
header_value (const char *text)
{
  char *copy = g_strdup (text);

  for (char *p = copy; *p; p++) {
    if (*p == '\r' || *p == '\n')
      *p = ' ';
  }
  return copy;
}

typedef struct {
  const char *data;
  gsize length;
  gsize offset;
} Upload;

static size_t
on_curl_read (char *buffer, size_t size, size_t nitems, void *user_data)
{
  Upload *upload = user_data;
  gsize n = MIN (size * nitems, upload->length - upload->offset);

  memcpy (buffer, upload->data + upload->offset, n);
  upload->offset += n;
  return n;
}

/* "Name <a@b>" -> "<a@b>" */
static char *
envelope_address (const char *header)
{
  const char *lt = strrchr (header, '<');
  const char *gt = lt ? strchr (lt, '>') : NULL;

  if (lt && gt)
    return g_strndup (lt, (gsize) (gt - lt + 1));
  return g_strdup_printf ("<%s>", header);
}

/* In the worker thread: one SMTP transaction through libcurl. */
static void
send_smtp (CdMailer *self, Mail *m, const char *text)
{
  CURL *curl = curl_easy_init ();
  struct curl_slist *rcpt = NULL;
  g_autofree char *from = envelope_address (self->from_address);
  g_autofree char *to = g_strdup_printf ("<%s>", m->to);
  Upload upload = { text, strlen (text), 0 };
  CURLcode rc;

  if (curl == NULL) {
    m->error = g_strdup ("cannot start libcurl");
    return;
  }
  rcpt = curl_slist_append (rcpt, to);
  curl_easy_setopt (curl, CURLOPT_URL, self->smtp_url);
  if (self->smtp_username && self->smtp_username[0]) {
    curl_easy_setopt (curl, CURLOPT_USERNAME, self->smtp_username);
    curl_easy_setopt (curl, CURLOPT_PASSWORD, self->smtp_password);
  }
  curl_easy_setopt (curl, CURLOPT_USE_SSL,
                    (long) (self->smtp_tls_required ? CURLUSESSL_ALL : CURLUSESSL_NONE));
  curl_easy_setopt (curl, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt (curl, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt (curl, CURLOPT_READFUNCTION, on_curl_read);
  curl_easy_setopt (curl, CURLOPT_READDATA, &upload);
  curl_easy_setopt (curl, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (curl, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt (curl, CURLOPT_TIMEOUT, 60L);
  rc = curl_easy_perform (curl);
  if (rc == CURLE_OK)
    m->path = g_strdup (self->smtp_url);
  else
    m->error = g_strdup_printf ("SMTP: %s", curl_easy_strerror (rc));
  curl_slist_free_all (rcpt);
  curl_easy_cleanup (curl);
}

static char *
message_text (CdMailer *self, Mail *m)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *date = g_date_time_format (now, "%a, %d %b %Y %H:%M:%S +0000");
  g_autofree char *to = header_value (m->to);
  g_autofree char *subject = header_value (m->subject);
  g_autofree char *body = NULL;
  gboolean ascii = TRUE;
  GString *dotted;

  for (const char *p = subject; *p; p++)
    ascii = ascii && (guchar) *p < 0x80;
  if (!ascii) {
    g_autofree char *b64 = g_base64_encode ((const guchar *) subject, strlen (subject));
    g_free (subject);
    subject = g_strdup_printf ("=?UTF-8?B?%s?=", b64);
  }
  /* CRLF line ends, as RFC 5322 wants */
  dotted = g_string_new (NULL);
  for (const char *p = m->body; *p; p++) {
    if (*p == '\n' && (p == m->body || p[-1] != '\r'))
      g_string_append_c (dotted, '\r');
    g_string_append_c (dotted, *p);
  }
  body = g_string_free (dotted, FALSE);
  return g_strdup_printf ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n"
                          "Message-ID: <%s@calldocker>\r\nMIME-Version: 1.0\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n"
                          "Content-Transfer-Encoding: 8bit\r\n\r\n%s",
                          self->from_address, to, subject, date, m->id, body);
}

static void
write_in_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  CdMailer *self = source;
  GPtrArray *mails = data;

  if (self->smtp_url != NULL) {
    for (guint i = 0; i < mails->len; i++) {
      Mail *m = g_ptr_array_index (mails, i);
      g_autofree char *text = message_text (self, m);
      send_smtp (self, m, text);
    }
    g_task_return_boolean (task, TRUE);
    return;
  }
  if (g_mkdir_with_parents (self->maildir, 0700) != 0) {
    for (guint i = 0; i < mails->len; i++) {
      Mail *m = g_ptr_array_index (mails, i);
      m->error = g_strdup_printf ("cannot create %s", self->maildir);
    }
    g_task_return_boolean (task, TRUE);
    return;
  }
  for (guint i = 0; i < mails->len; i++) {
    Mail *m = g_ptr_array_index (mails, i);
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    g_autofree char *stamp = g_date_time_format (now, "%Y%m%dT%H%M%S");
    g_autofree char *name = g_strdup_printf ("%s-%s.eml", stamp, m->id);
    g_autofree char *text = message_text (self, m);
    g_autoptr (GError) error = NULL;

    m->path = g_build_filename (self->maildir, name, NULL);
    if (!g_file_set_contents_full (m->path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                   &error)) {
      m->error = g_strdup (error->message);
      g_clear_pointer (&m->path, g_free);
    }
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_recorded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdMailer) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL)
    g_message ("cannot record mail delivery: %s", error->message);
  self->busy = FALSE;
  if (self->again && !self->stopped) {
    self->again = FALSE;
    run_batch (self);
  }
}

static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdMailer *self = CD_MAILER (source);
  GPtrArray *mails = g_task_get_task_data (G_TASK (result));
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) results = NULL;
  g_autofree char *text = NULL;
  CdPgScope scope = { NULL, TRUE };

  json_builder_begin_array (b);
  for (guint i = 0; i < mails->len; i++) {
    Mail *m = g_ptr_array_index (mails, i);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "id");
    json_builder_add_string_value (b, m->id);
    json_builder_set_member_name (b, "path");
    if (m->path)
      json_builder_add_string_value (b, m->path);
    else
      json_builder_add_null_value (b);
    json_builder_set_member_name (b, "error");
    if (m->error)
      json_builder_add_string_value (b, m->error);
    else
      json_builder_add_null_value (b);
    json_builder_end_object (b);
    if (m->path) {
      self->delivered++;
      g_info ("mail to %s delivered to %s", m->to, m->path);
    } else {
      g_message ("mail to %s not delivered: %s", m->to, m->error);
    }
  }
  json_builder_end_array (b);
  results = json_builder_get_root (b);
  text = cd_json_to_string (results);
  {
    const char *params[] = { text };
    /* failures come back with exponential backoff, up to an hour */
    cd_pg_pool_query_scoped_async (
        self->pool, &scope,
        "UPDATE mail_outbox o SET"
        " sent_at = CASE WHEN r.path IS NOT NULL THEN now() END,"
        " delivered_to = r.path, last_error = r.error,"
        " next_attempt_at = CASE WHEN r.path IS NOT NULL THEN o.next_attempt_at"
        "  WHEN o.attempts >= 25 THEN 'infinity'"
        "  ELSE now() + make_interval(secs => least(3600, 10 * power(2, least(o.attempts, 12))))"
        "  END"
        " FROM json_to_recordset($1::json) AS r (id uuid, path text, error text)"
        " WHERE o.id = r.id",
        params, 1, NULL, on_recorded, g_object_ref (self));
  }
}

static void
on_claimed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdMailer) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (GTask) task = NULL;
  GPtrArray *mails;

  if (res == NULL || PQntuples (res) == 0 || self->stopped) {
    if (res == NULL && !g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED))
      g_debug ("mail outbox: %s", error->message);
    self->busy = FALSE;
    if (res != NULL && self->again && !self->stopped) {
      /* a kick arrived while this claim ran */
      self->again = FALSE;
      run_batch (self);
    }
    return;
  }
  mails = g_ptr_array_new_with_free_func (mail_free);
  for (int r = 0; r < PQntuples (res); r++) {
    Mail *m = g_new0 (Mail, 1);
    m->id = g_strdup (PQgetvalue (res, r, 0));
    m->to = g_strdup (PQgetvalue (res, r, 1));
    m->subject = g_strdup (PQgetvalue (res, r, 2));
    m->body = g_strdup (PQgetvalue (res, r, 3));
    g_ptr_array_add (mails, m);
  }
  task = g_task_new (self, NULL, on_written, NULL);
  g_task_set_source_tag (task, run_batch);
  g_task_set_task_data (task, mails, (GDestroyNotify) g_ptr_array_unref);
  g_task_run_in_thread (task, write_in_thread);
  /* more may be due: the recording step looks again */
  self->again = self->again || PQntuples (res) == BATCH;
}

static void
run_batch (CdMailer *self)
{
  CdPgScope scope = { NULL, TRUE };
  const char *params[] = { G_STRINGIFY (BATCH) };

  if (self->busy) {
    self->again = TRUE;
    return;
  }
  self->busy = TRUE;
  /* claim: a crash after this leaves the rows due again in a minute */
  cd_pg_pool_query_scoped_async (self->pool, &scope,
                                 "UPDATE mail_outbox SET attempts = attempts + 1,"
                                 " next_attempt_at = now() + interval '1 minute'"
                                 " WHERE id IN (SELECT id FROM mail_outbox WHERE sent_at IS NULL"
                                 "  AND next_attempt_at <= now() ORDER BY created_at LIMIT $1::int"
                                 "  FOR UPDATE SKIP LOCKED)"
                                 " RETURNING id, to_address, subject, body",
                                 params, 1, NULL, on_claimed, g_object_ref (self));
}

static gboolean
on_poll (gpointer user_data)
{
  run_batch (user_data);
  return G_SOURCE_CONTINUE;
}

static void
cd_mailer_dispose (GObject *object)
{
  CdMailer *self = CD_MAILER (object);

  cd_mailer_stop (self);
  g_clear_object (&self->pool);
  G_OBJECT_CLASS (cd_mailer_parent_class)->dispose (object);
}

static void
cd_mailer_finalize (GObject *object)
{
  CdMailer *self = CD_MAILER (object);

  g_free (self->maildir);
  g_free (self->from_address);
  g_free (self->smtp_url);
  g_free (self->smtp_username);
  if (self->smtp_password)
    memset (self->smtp_password, 0, strlen (self->smtp_password));
  g_free (self->smtp_password);
  G_OBJECT_CLASS (cd_mailer_parent_class)->finalize (object);
}

static void
cd_mailer_class_init (CdMailerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = cd_mailer_dispose;
  object_class->finalize = cd_mailer_finalize;
}

static void
cd_mailer_init (CdMailer *self)
{
}

/**
 * cd_mailer_new:
 * @maildir: where .eml files go
 */
CdMailer *
cd_mailer_new (CdPgPool *pool, const char *maildir, const char *from_address)
{
  CdMailer *self = g_object_new (CD_TYPE_MAILER, NULL);

  static gsize curl_ready = 0;

  /* libcurl's global set-up is not thread-safe: do it here, on the main thread */
  if (g_once_init_enter (&curl_ready)) {
    curl_global_init (CURL_GLOBAL_DEFAULT);
    g_once_init_leave (&curl_ready, 1);
  }
  self->pool = g_object_ref (pool);
  self->maildir = g_strdup (maildir);
  self->from_address = g_strdup (from_address);
  return self;
}

void
cd_mailer_start (CdMailer *self)
{
  if (self->poll_id != 0 || self->stopped)
    return;
  self->poll_id = g_timeout_add_seconds (POLL_SECONDS, on_poll, self);
  run_batch (self);
}

/**
 * cd_mailer_kick:
 *
 * Something was queued: deliver now rather than at the next poll.
 */
void
cd_mailer_kick (CdMailer *self)
{
  if (self != NULL && !self->stopped && self->poll_id != 0)
    run_batch (self);
}

void
cd_mailer_stop (CdMailer *self)
{
  self->stopped = TRUE;
  g_clear_handle_id (&self->poll_id, g_source_remove);
}

guint64
cd_mailer_get_delivered (CdMailer *self)
{
  return self->delivered;
}

/**
 * cd_mailer_set_smtp:
 * @url: smtp://host:port or smtps://host:port
 *
 * Sends through SMTP instead of writing files. Call before cd_mailer_start().
 */
void
cd_mailer_set_smtp (CdMailer *self, const char *url, const char *username, const char *password,
                    gboolean tls_required)
{
  g_return_if_fail (self->poll_id == 0);
  self->smtp_url = g_strdup (url);
  self->smtp_username = g_strdup (username);
  self->smtp_password = g_strdup (password);
  self->smtp_tls_required = tls_required;
}
