/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Call recordings: the company's key, the folder, the row, then the
 * pipeline's recording; pauses and the end on the timeline; the file's size
 * and checksum in the row once it is whole. */

#define G_LOG_DOMAIN "calldocker-recording"

#include "cd-call-recorder.h"

#include "../../common/cd-ogg.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <unistd.h>

typedef enum {
  PHASE_STARTING,  /* fetching the key, making the folder, writing the row */
  PHASE_RECORDING, /* the pipeline records */
  PHASE_STOPPING,  /* the file is being finished */
} Phase;

struct _CdCallRecorder {
  GObject parent_instance;
  CdApi *api; /* borrowed: outlives the recorder */
  char *daemon_id;
  CdMetrics *metrics;  /* nullable */
  GHashTable *by_call; /* call id -> Recording* (owned) while not finished */
};

G_DEFINE_FINAL_TYPE (CdCallRecorder, cd_call_recorder, G_TYPE_OBJECT)

/* All of it belongs to the main context. */
typedef struct {
  CdCallRecorder *recorder; /* a reference: async steps may outlive the call */
  char *id;
  char *company_id;
  char *call_id;
  char *agent_id; /* nullable */
  CdCallPipeline *pipeline;
  gulong failed_handler;
  char *storage_key;
  char *path;
  guint32 key_version;
  GBytes *key; /* until the pipeline has it */
  Phase phase;
  gboolean paused;
  gboolean stop_asked; /* while starting */
  char *failure;       /* why it failed, once it did */
} Recording;

static void
recording_free (Recording *r)
{
  if (r->failed_handler)
    g_signal_handler_disconnect (r->pipeline, r->failed_handler);
  g_clear_object (&r->pipeline);
  g_clear_object (&r->recorder);
  g_free (r->id);
  g_free (r->company_id);
  g_free (r->call_id);
  g_free (r->agent_id);
  g_free (r->storage_key);
  g_free (r->path);
  g_free (r->failure);
  g_clear_pointer (&r->key, g_bytes_unref);
  g_free (r);
}

static gint64
now_us (void)
{
  return g_get_real_time ();
}

static void
count (CdCallRecorder *self, const char *metric, const char *labels)
{
  if (self->metrics)
    cd_metrics_add (self->metrics, metric, labels, 1);
}

/* An event on the call's timeline, with the recording's id. */
static void
add_event (Recording *r, const char *kind, const char *key, const char *value, gint64 number)
{
  g_autoptr (JsonObject) detail = json_object_new ();

  json_object_set_string_member (detail, "recording_id", r->id);
  if (key && value)
    json_object_set_string_member (detail, key, value);
  else if (key)
    json_object_set_int_member (detail, key, number);
  cd_call_store_add_event (r->recorder->api->calls, r->call_id, r->company_id, kind, detail,
                           now_us ());
}

static void
on_row_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *what = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL)
    g_message ("the recording row could not be written (%s): %s", what, error->message);
}

static void
row_query (Recording *r, const char *sql, const char *const *params, int n, const char *what)
{
  CdPgScope scope = { .company_id = r->company_id };

  cd_pg_pool_query_scoped_async (r->recorder->api->pool, &scope, sql, params, n, NULL,
                                 on_row_written, g_strdup (what));
}

/* The file is whole: to the blob store (with S3, uploaded from here on). */
static void
store_file (CdCallRecorder *self, const char *storage_key)
{
  cd_blob_store_commit (self->api->blobs, storage_key, CD_BLOB_COMMIT_DEFAULT);
}

/* The recording is given up: the row and the timeline say why. */
static void
fail (Recording *r, const char *kind, const char *reason)
{
  g_autofree char *labels = g_strdup_printf ("kind=\"%s\"", kind);
  const char *params[] = { r->id, reason };

  if (r->failure)
    return;
  g_message ("call %s: recording %s failed: %s", r->call_id, r->id, reason);
  r->failure = g_strdup (reason);
  count (r->recorder, "calldocker_recordings_failed_total", labels);
  row_query (r, "UPDATE recordings SET state = 'failed', reason = $2 WHERE id = $1", params, 2,
             "failed");
  add_event (r, "recording.failed", "reason", reason, 0);
}

/* ---- stopping ---- */

typedef struct {
  char *path;
  char *checksum;
} Summed;

static void
summed_free (Summed *s)
{
  g_free (s->path);
  g_free (s->checksum);
  g_free (s);
}

/* SHA-256 of the stored file (a worker thread). */
static void
sum_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Summed *s = task_data;
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr (GMappedFile) file = NULL;
  g_autoptr (GError) error = NULL;

  file = g_mapped_file_new (s->path, FALSE, &error);
  if (file == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_checksum_update (sum, (const guchar *) g_mapped_file_get_contents (file),
                     (gssize) g_mapped_file_get_length (file));
  s->checksum = g_strdup (g_checksum_get_string (sum));
  g_task_return_boolean (task, TRUE);
}

typedef struct {
  Recording *r;
  guint ms;
  guint64 bytes;
} Finished;

static void
on_summed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Finished *f = user_data;
  Recording *r = f->r;
  Summed *s = g_task_get_task_data (G_TASK (result));
  g_autoptr (GError) error = NULL;
  g_autofree char *ms = g_strdup_printf ("%u", f->ms);
  g_autofree char *bytes = g_strdup_printf ("%" G_GUINT64_FORMAT, f->bytes);

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    fail (r, "write", error->message);
  if (r->failure == NULL) {
    const char *params[] = { r->id, ms, bytes, s->checksum };

    row_query (r,
               "UPDATE recordings SET state = 'complete', duration_ms = $2, size_bytes = $3,"
               " checksum = $4, ended_at = now() WHERE id = $1",
               params, 4, "complete");
    add_event (r, "recording.stopped", "duration_ms", NULL, f->ms);
    store_file (r->recorder, r->storage_key);
    g_info ("call %s: recording %s complete: %u ms, %s bytes", r->call_id, r->id, f->ms, bytes);
  } else {
    const char *params[] = { r->id, ms };

    row_query (r, "UPDATE recordings SET duration_ms = $2, ended_at = now() WHERE id = $1", params,
               2, "ended");
  }
  recording_free (r);
  g_free (f);
}

static void
on_pipeline_stopped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recording *r = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GTask) task = NULL;
  Finished *f = g_new0 (Finished, 1);
  Summed *s = g_new0 (Summed, 1);

  f->r = r;
  if (!cd_call_pipeline_stop_call_recording_finish (CD_CALL_PIPELINE (source), result, &f->ms,
                                                    &f->bytes, NULL, &error))
    fail (r, "write", error->message);
  s->path = g_strdup (r->path);
  task = g_task_new (NULL, NULL, on_summed, f);
  g_task_set_task_data (task, s, (GDestroyNotify) summed_free);
  g_task_run_in_thread (task, sum_thread);
}

static void
begin_stop (Recording *r)
{
  r->phase = PHASE_STOPPING;
  g_hash_table_steal (r->recorder->by_call, r->call_id);
  cd_call_pipeline_stop_call_recording_async (r->pipeline, on_pipeline_stopped, r);
}

/* ---- starting ---- */

static void
on_recording_failed (CdCallPipeline *pipeline, const char *reason, gpointer user_data)
{
  fail (user_data, "write", reason);
}

/* Leaves the recorder's table: the recording never ran. */
static void
drop (Recording *r)
{
  if (g_hash_table_lookup (r->recorder->by_call, r->call_id) == r)
    g_hash_table_steal (r->recorder->by_call, r->call_id);
  recording_free (r);
}

static void
on_row_inserted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recording *r = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (GBytes) key = g_steal_pointer (&r->key);

  if (res == NULL) {
    g_message ("call %s: recording %s not started, its row cannot be written: %s", r->call_id,
               r->id, error->message);
    count (r->recorder, "calldocker_recordings_failed_total", "kind=\"database\"");
    drop (r);
    return;
  }
  if (r->stop_asked) {
    fail (r, "ended", "the call ended before its recording began");
    drop (r);
    return;
  }
  if (!cd_call_pipeline_start_call_recording (r->pipeline, r->path, key, r->company_id,
                                              r->key_version, &error)) {
    fail (r, "media", error->message);
    drop (r);
    return;
  }
  r->failed_handler =
      g_signal_connect (r->pipeline, "recording-failed", G_CALLBACK (on_recording_failed), r);
  r->phase = PHASE_RECORDING;
  count (r->recorder, "calldocker_recordings_started_total", NULL);
  add_event (r, "recording.started", NULL, NULL, 0);
  g_info ("call %s: recording %s started", r->call_id, r->id);
  if (r->paused)
    cd_call_pipeline_pause_call_recording (r->pipeline, TRUE);
}

static void
insert_row (Recording *r, const char *state, const char *reason)
{
  g_autofree char *version = g_strdup_printf ("%u", r->key_version);
  g_autofree char *parties = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  CdPgScope scope = { .company_id = r->company_id };

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "left");
  json_builder_add_string_value (b, "visitor");
  json_builder_set_member_name (b, "right");
  json_builder_add_string_value (b, "agent");
  if (r->agent_id) {
    json_builder_set_member_name (b, "agent_id");
    json_builder_add_string_value (b, r->agent_id);
  }
  json_builder_end_object (b);
  {
    g_autoptr (JsonNode) node = json_builder_get_root (b);
    parties = json_to_string (node, FALSE);
  }
  {
    const char *params[] = { r->id,   r->company_id,  r->call_id,
                             parties, r->storage_key, version,
                             state,   reason,         r->recorder->daemon_id };

    cd_pg_pool_query_scoped_async (
        r->recorder->api->pool, &scope,
        "INSERT INTO recordings (id, company_id, call_id, parties, storage_key, key_version,"
        " state, reason, daemon_id) VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)",
        params, G_N_ELEMENTS (params), NULL, on_row_inserted, r);
  }
}

/* Makes the recording's folder (a worker thread: it may be slow storage). */
static void
folder_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  const char *path = task_data;
  g_autofree char *dir = g_path_get_dirname (path);

  if (g_mkdir_with_parents (dir, 0700) != 0) {
    int saved = errno;

    g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved),
                             "cannot create the folder %s: %s", dir, g_strerror (saved));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

static void
on_folder (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recording *r = user_data;
  g_autoptr (GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    /* the row tells it, failed from the start */
    r->stop_asked = TRUE;
    r->failure = g_strdup (error->message);
    g_message ("call %s: recording %s failed: %s", r->call_id, r->id, error->message);
    count (r->recorder, "calldocker_recordings_failed_total", "kind=\"write\"");
    add_event (r, "recording.failed", "reason", error->message, 0);
    insert_row (r, "failed", error->message);
    return;
  }
  insert_row (r, "recording", NULL);
}

static void
on_key (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recording *r = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdCompanyKey) key = cd_keyring_get_finish (CD_KEYRING (source), result, &error);
  g_autoptr (GTask) task = NULL;

  if (key == NULL) {
    g_autofree char *reason = g_strdup_printf ("no key to seal it: %s", error->message);

    g_message ("call %s: recording %s failed: %s", r->call_id, r->id, reason);
    count (r->recorder, "calldocker_recordings_failed_total", "kind=\"key\"");
    add_event (r, "recording.failed", "reason", reason, 0);
    drop (r);
    return;
  }
  r->key_version = key->version;
  /* in locked memory, wiped when the pipeline lets it go */
  r->key = cd_company_key_dup_bytes (key);
  r->storage_key = g_strdup_printf ("recordings/%s/%s.sealed", r->company_id, r->id);
  r->path = cd_blob_store_local_path (r->recorder->api->blobs, r->storage_key);
  task = g_task_new (NULL, NULL, on_folder, r);
  g_task_set_task_data (task, g_strdup (r->path), g_free);
  g_task_run_in_thread (task, folder_thread);
}

gboolean
cd_call_recorder_start (CdCallRecorder *self, CdCallPipeline *pipeline, const char *company_id,
                        const char *call_id, const char *agent_id, GError **error)
{
  Recording *r;

  if (g_hash_table_contains (self->by_call, call_id)) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                         "the call is being recorded already");
    return FALSE;
  }
  if (self->api->keyring == NULL || self->api->blobs == NULL) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_UNAVAILABLE,
                         "this server has no storage for recordings");
    return FALSE;
  }
  r = g_new0 (Recording, 1);
  r->recorder = g_object_ref (self);
  r->id = g_uuid_string_random ();
  r->company_id = g_strdup (company_id);
  r->call_id = g_strdup (call_id);
  r->agent_id = g_strdup (agent_id);
  r->pipeline = g_object_ref (pipeline);
  r->phase = PHASE_STARTING;
  g_hash_table_insert (self->by_call, r->call_id, r);
  cd_keyring_get_async (self->api->keyring, company_id, 0, NULL, on_key, r);
  return TRUE;
}

static Recording *
find (CdCallRecorder *self, const char *call_id, GError **error)
{
  Recording *r = g_hash_table_lookup (self->by_call, call_id);

  if (r == NULL)
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                         "the call is not being recorded");
  return r;
}

gboolean
cd_call_recorder_pause (CdCallRecorder *self, const char *call_id, gboolean paused, GError **error)
{
  Recording *r = find (self, call_id, error);

  if (r == NULL)
    return FALSE;
  if (r->paused == paused) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                         paused ? "the recording is paused already"
                                : "the recording is not paused");
    return FALSE;
  }
  r->paused = paused;
  if (r->phase == PHASE_RECORDING)
    cd_call_pipeline_pause_call_recording (r->pipeline, paused);
  add_event (r, paused ? "recording.paused" : "recording.resumed", NULL, NULL, 0);
  return TRUE;
}

gboolean
cd_call_recorder_stop (CdCallRecorder *self, const char *call_id, GError **error)
{
  Recording *r = find (self, call_id, error);

  if (r == NULL)
    return FALSE;
  if (r->phase == PHASE_STARTING) {
    /* told once the row is written */
    r->stop_asked = TRUE;
    return TRUE;
  }
  begin_stop (r);
  return TRUE;
}

gboolean
cd_call_recorder_is_recording (CdCallRecorder *self, const char *call_id)
{
  return g_hash_table_contains (self->by_call, call_id);
}

/* ---- recovery: recordings a daemon that died left in state 'recording' ---- */

typedef struct {
  CdCallRecorder *recorder;
  char *id;
  char *company_id;
  char *call_id;
  char *storage_key;
  char *path;
  guint32 key_version;
  CdCompanyKey *key;
  /* the outcome, from the thread */
  const char *state;
  char *reason;
  guint ms;
  guint64 bytes;
  char *checksum;
} Recovery;

static void
recovery_free (Recovery *v)
{
  g_clear_object (&v->recorder);
  g_free (v->id);
  g_free (v->company_id);
  g_free (v->call_id);
  g_free (v->storage_key);
  g_free (v->path);
  g_clear_pointer (&v->key, cd_company_key_unref);
  g_free (v->reason);
  g_free (v->checksum);
  g_free (v);
}

/* Whether the daemon named "HOST/PID/ID" is gone: one of this host whose
 * process is not there (or is this very process, started again). Others'
 * are left to their own host. */
static gboolean
writer_is_gone (const char *daemon_id, const char *ours)
{
  g_auto (GStrv) parts = g_strsplit (daemon_id, "/", 3);
  g_auto (GStrv) mine = g_strsplit (ours, "/", 3);
  guint64 pid;

  if (g_strv_length (parts) != 3 || g_strv_length (mine) != 3 || !g_str_equal (parts[0], mine[0]))
    return FALSE;
  if (g_str_equal (daemon_id, ours))
    return FALSE;
  if (!g_ascii_string_to_unsigned (parts[1], 10, 1, G_MAXINT, &pid, NULL))
    return FALSE;
  return (pid_t) pid == getpid () || (kill ((pid_t) pid, 0) != 0 && errno == ESRCH);
}

/* Opens what was written, keeps it up to its last whole Ogg page, seals
 * that again with its final chunk, and puts it in place of the cut file. */
static void
recover_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Recovery *v = task_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GMappedFile) file = g_mapped_file_new (v->path, FALSE, &error);
  g_autoptr (CdUnsealer) unsealer = NULL;
  g_autoptr (GByteArray) plain = g_byte_array_new ();
  g_autofree char *temp = g_strdup_printf ("%s.recovering", v->path);
  g_autoptr (CdSealer) sealer = NULL;
  g_autoptr (GOutputStream) out = NULL;
  g_autoptr (GFile) temp_file = g_file_new_for_path (temp);
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autoptr (GMappedFile) sealed = NULL;
  g_autoptr (GError) opened = NULL;
  const guint8 *data;
  gsize length, pos = 0;
  guint8 buf[16384];
  CdOggScan scan;

  if (file == NULL) {
    v->state = "failed";
    v->reason = g_strdup_printf ("the daemon stopped while recording, and its file is gone: %s",
                                 error->message);
    g_task_return_boolean (task, TRUE);
    return;
  }
  data = (const guint8 *) g_mapped_file_get_contents (file);
  length = g_mapped_file_get_length (file);
  unsealer = cd_unsealer_new (v->key->key, v->company_id, v->key_version);
  /* an empty file maps to no data at all */
  for (; data != NULL;) {
    gsize read = 0, written = 0;
    GConverterResult r =
        g_converter_convert (G_CONVERTER (unsealer), data + pos, length - pos, buf, sizeof buf,
                             G_CONVERTER_INPUT_AT_END, &read, &written, &opened);

    g_byte_array_append (plain, buf, written);
    pos += read;
    if (r == G_CONVERTER_ERROR || r == G_CONVERTER_FINISHED)
      break;
  }
  if (opened && !g_error_matches (opened, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED)) {
    v->state = "failed";
    v->reason = g_strdup_printf ("the daemon stopped while recording, and its file does not "
                                 "open: %s",
                                 opened->message);
    g_task_return_boolean (task, TRUE);
    return;
  }
  if (!cd_ogg_scan (plain->data, plain->len, &scan) || cd_ogg_opus_ms (&scan) == 0) {
    v->state = "failed";
    v->reason = g_strdup ("the daemon stopped while recording, before any audio was written");
    g_task_return_boolean (task, TRUE);
    return;
  }
  v->ms = cd_ogg_opus_ms (&scan);
  /* sealed again, whole, beside it, then in its place */
  sealer = cd_sealer_new (v->key->key, v->company_id, v->key_version);
  out = G_OUTPUT_STREAM (
      g_file_replace (temp_file, NULL, FALSE, G_FILE_CREATE_PRIVATE, NULL, &error));
  if (out != NULL) {
    g_autoptr (GOutputStream) sealing = g_converter_output_stream_new (out, G_CONVERTER (sealer));

    if (!g_output_stream_write_all (sealing, plain->data, scan.whole_bytes, NULL, NULL, &error) ||
        !g_output_stream_close (sealing, NULL, &error))
      g_clear_object (&out);
  }
  if (out != NULL) {
    /* on disk before it takes the cut file's place */
    int fd = g_open (temp, O_RDONLY | O_CLOEXEC, 0);

    if (fd < 0 || fsync (fd) != 0)
      g_clear_object (&out);
    if (fd >= 0)
      close (fd);
  }
  if (out == NULL || g_rename (temp, v->path) != 0) {
    v->state = "failed";
    v->reason = g_strdup_printf ("the daemon stopped while recording, and its file cannot be "
                                 "closed: %s",
                                 error ? error->message : g_strerror (errno));
    g_unlink (temp);
    g_task_return_boolean (task, TRUE);
    return;
  }
  {
    g_autofree char *dir = g_path_get_dirname (v->path);
    int fd = g_open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);

    if (fd >= 0) {
      fsync (fd);
      close (fd);
    }
  }
  sealed = g_mapped_file_new (v->path, FALSE, NULL);
  if (sealed) {
    v->bytes = g_mapped_file_get_length (sealed);
    g_checksum_update (sum, (const guchar *) g_mapped_file_get_contents (sealed),
                       (gssize) v->bytes);
    v->checksum = g_strdup (g_checksum_get_string (sum));
  }
  v->state = opened ? "partial" : "complete";
  v->reason = opened ? g_strdup_printf ("the daemon stopped while recording: kept up to %u.%03u s",
                                        v->ms / 1000, v->ms % 1000)
                     : NULL;
  g_task_return_boolean (task, TRUE);
}

static void
on_recovered (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recovery *v = g_task_get_task_data (G_TASK (result));
  g_autofree char *ms = g_strdup_printf ("%u", v->ms);
  g_autofree char *bytes = g_strdup_printf ("%" G_GUINT64_FORMAT, v->bytes);
  const char *params[] = { v->id, v->state, v->reason, ms, bytes, v->checksum };
  CdPgScope scope = { .company_id = v->company_id };
  g_autoptr (JsonObject) detail = json_object_new ();

  g_message ("recording %s of call %s recovered: %s%s%s", v->id, v->call_id, v->state,
             v->reason ? ", " : "", v->reason ? v->reason : "");
  cd_pg_pool_query_scoped_async (
      v->recorder->api->pool, &scope,
      "UPDATE recordings SET state = $2, reason = $3, duration_ms = $4, size_bytes = $5,"
      " checksum = $6, ended_at = now() WHERE id = $1 AND state = 'recording'",
      params, G_N_ELEMENTS (params), NULL, on_row_written, g_strdup ("recovered"));
  json_object_set_string_member (detail, "recording_id", v->id);
  json_object_set_string_member (detail, "state", v->state);
  json_object_set_int_member (detail, "duration_ms", v->ms);
  cd_call_store_add_event (v->recorder->api->calls, v->call_id, v->company_id,
                           "recording.recovered", detail, now_us ());
  if (g_str_equal (v->state, "failed"))
    count (v->recorder, "calldocker_recordings_failed_total", "kind=\"crash\"");
  else
    store_file (v->recorder, v->storage_key);
}

static void
on_recovery_key (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recovery *v = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GTask) task = NULL;

  v->key = cd_keyring_get_finish (CD_KEYRING (source), result, &error);
  if (v->key == NULL) {
    g_message ("recording %s cannot be recovered yet, no key: %s", v->id, error->message);
    recovery_free (v);
    return;
  }
  task = g_task_new (NULL, NULL, on_recovered, NULL);
  g_task_set_task_data (task, v, (GDestroyNotify) recovery_free);
  g_task_run_in_thread (task, recover_thread);
}

static void
on_claimed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Recovery *v = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL || PQntuples (res) == 0) {
    if (res == NULL)
      g_message ("recording %s cannot be claimed for recovery: %s", v->id, error->message);
    recovery_free (v);
    return;
  }
  cd_keyring_get_async (v->recorder->api->keyring, v->company_id, v->key_version, NULL,
                        on_recovery_key, v);
}

static void
on_orphans (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdCallRecorder) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    g_message ("recordings left by a stopped daemon cannot be looked for: %s", error->message);
    return;
  }
  for (int i = 0; i < PQntuples (res); i++) {
    Recovery *v;

    if (!writer_is_gone (PQgetvalue (res, i, 5), self->daemon_id))
      continue;
    v = g_new0 (Recovery, 1);
    v->recorder = g_object_ref (self);
    v->id = g_strdup (PQgetvalue (res, i, 0));
    v->company_id = g_strdup (PQgetvalue (res, i, 1));
    v->call_id = g_strdup (PQgetvalue (res, i, 2));
    v->storage_key = g_strdup (PQgetvalue (res, i, 3));
    v->path = cd_blob_store_local_path (self->api->blobs, v->storage_key);
    v->key_version = (guint32) g_ascii_strtoull (PQgetvalue (res, i, 4), NULL, 10);
    g_info ("recovering recording %s, left by %s", v->id, PQgetvalue (res, i, 5));
    {
      /* claimed first: another daemon of this host may be looking too */
      const char *params[] = { v->id, PQgetvalue (res, i, 5), self->daemon_id };
      CdPgScope scope = { .company_id = v->company_id };

      cd_pg_pool_query_scoped_async (self->api->pool, &scope,
                                     "UPDATE recordings SET daemon_id = $3 WHERE id = $1"
                                     " AND daemon_id = $2 AND state = 'recording' RETURNING id",
                                     params, G_N_ELEMENTS (params), NULL, on_claimed, v);
    }
  }
}

void
cd_call_recorder_recover (CdCallRecorder *self)
{
  CdPgScope scope = { .platform = TRUE };

  if (self->api->keyring == NULL || self->api->blobs == NULL || self->api->pool == NULL)
    return;
  cd_pg_pool_query_scoped_async (self->api->pool, &scope,
                                 "SELECT id, company_id, call_id, storage_key, key_version,"
                                 " daemon_id FROM recordings WHERE state = 'recording'",
                                 NULL, 0, NULL, on_orphans, g_object_ref (self));
}

/* A call's file reached its storage for good (with S3: uploaded): its row
 * says so. The key is recordings/COMPANY/ID.sealed or
 * voicemails/COMPANY/ID.sealed. */
static void
on_stored (CdBlobStore *blobs, const char *key, gpointer user_data)
{
  CdCallRecorder *self = user_data;
  g_auto (GStrv) parts = g_strsplit (key, "/", 4);
  const char *sql;

  if (g_strv_length (parts) != 3 || !g_uuid_string_is_valid (parts[1]))
    return;
  if (g_str_equal (parts[0], "recordings"))
    sql = "UPDATE recordings SET stored_at = now() WHERE company_id = $1 AND storage_key = $2";
  else if (g_str_equal (parts[0], "voicemails"))
    sql = "UPDATE voicemails SET stored_at = now() WHERE company_id = $1 AND storage_key = $2";
  else
    return;
  {
    const char *params[] = { parts[1], key };
    CdPgScope scope = { .company_id = parts[1] };

    cd_pg_pool_query_scoped_async (self->api->pool, &scope, sql, params, 2, NULL, on_row_written,
                                   g_strdup ("stored"));
  }
}

static void
cd_call_recorder_finalize (GObject *object)
{
  CdCallRecorder *self = CD_CALL_RECORDER (object);

  g_hash_table_unref (self->by_call);
  g_free (self->daemon_id);
  g_clear_object (&self->metrics);
  G_OBJECT_CLASS (cd_call_recorder_parent_class)->finalize (object);
}

static void
cd_call_recorder_class_init (CdCallRecorderClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_call_recorder_finalize;
}

static void
cd_call_recorder_init (CdCallRecorder *self)
{
  /* the recordings hold the recorder, not the other way round */
  self->by_call = g_hash_table_new (g_str_hash, g_str_equal);
}

CdCallRecorder *
cd_call_recorder_new (CdApi *api, const char *daemon_id, CdMetrics *metrics)
{
  CdCallRecorder *self = g_object_new (CD_TYPE_CALL_RECORDER, NULL);

  self->api = api;
  self->daemon_id = g_strdup (daemon_id);
  if (api->blobs && api->pool)
    g_signal_connect_object (api->blobs, "stored", G_CALLBACK (on_stored), self, 0);
  if (metrics) {
    self->metrics = g_object_ref (metrics);
    cd_metrics_register (metrics, "calldocker_recordings_started_total", CD_METRIC_COUNTER,
                         "call recordings started", NULL, 0);
    cd_metrics_register (metrics, "calldocker_recordings_failed_total", CD_METRIC_COUNTER,
                         "call recordings that failed, by kind: key (no key to seal it), write "
                         "(a folder or file that cannot be written, a full disk), media, "
                         "database, ended (the call ended first)",
                         NULL, 0);
  }
  return self;
}
