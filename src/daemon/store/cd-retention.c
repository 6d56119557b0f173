/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The retention job: find what is past its company's retention (a batch
 * at a time), delete each file, then its row with an audit entry in the
 * same statement. A file that cannot be deleted keeps its row: the next
 * run tries again. */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-retention.h"

#define BATCH 200

struct _CdRetention {
  GObject parent_instance;
  CdPgPool *pool;
  CdBlobStore *blobs;
  CdMetrics *metrics;
  GCancellable *cancellable;
  guint interval_s;
  guint timer;
  gboolean running;
  /* this run */
  GPtrArray *batch; /* Expired* */
  guint next;
  guint deleted[2];
  guint failed;
};

G_DEFINE_FINAL_TYPE (CdRetention, cd_retention, G_TYPE_OBJECT)

typedef enum { KIND_RECORDING, KIND_VOICEMAIL } Kind;
static const char *const kind_names[] = { "recording", "voicemail" };

typedef struct {
  Kind kind;
  char *id;
  char *company_id;
  char *storage_key;
  char *days;
} Expired;

static void
expired_free (gpointer data)
{
  Expired *e = data;

  g_free (e->id);
  g_free (e->company_id);
  g_free (e->storage_key);
  g_free (e->days);
  g_free (e);
}

static void schedule (CdRetention *self, guint seconds);
static void next_one (CdRetention *self);

static void
run_done (CdRetention *self, gboolean more)
{
  if (self->deleted[KIND_RECORDING] || self->deleted[KIND_VOICEMAIL] || self->failed)
    g_message ("retention: deleted %u recordings and %u voicemails past their company's "
               "retention%s%u%s",
               self->deleted[KIND_RECORDING], self->deleted[KIND_VOICEMAIL],
               self->failed ? " (" : "", self->failed, self->failed ? " to retry)" : "");
  g_clear_pointer (&self->batch, g_ptr_array_unref);
  self->running = FALSE;
  /* a full batch: the rest at once */
  schedule (self, more && self->failed == 0 ? 0 : self->interval_s);
}

static void
on_row_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdRetention *self = user_data;
  Expired *e = g_ptr_array_index (self->batch, self->next - 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      return;
    g_message ("retention: the %s %s's row cannot be deleted: %s", kind_names[e->kind], e->id,
               error->message);
    self->failed++;
  } else if (g_str_equal (PQgetvalue (res, 0, 0), "1")) {
    self->deleted[e->kind]++;
    if (self->metrics) {
      g_autofree char *labels = g_strdup_printf ("kind=\"%s\"", kind_names[e->kind]);

      cd_metrics_add (self->metrics, "calldocker_retention_deleted_total", labels, 1);
    }
  }
  next_one (self);
}

static void
on_file_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdRetention *self = user_data;
  Expired *e = g_ptr_array_index (self->batch, self->next - 1);
  g_autoptr (GError) error = NULL;
  CdPgScope scope = { .company_id = e->company_id };
  const char *params[] = { e->id, e->company_id, e->days };

  if (!cd_blob_store_delete_finish (CD_BLOB_STORE (source), result, &error)) {
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      return;
    g_message ("retention: the %s %s's file cannot be deleted (kept, to retry): %s",
               kind_names[e->kind], e->id, error->message);
    self->failed++;
    next_one (self);
    return;
  }
  /* the row and its audit entry at once: deleted once, audited once,
   * whichever daemon gets there first */
  cd_pg_pool_query_scoped_async (
      self->pool, &scope,
      e->kind == KIND_RECORDING
          ? "WITH d AS (DELETE FROM recordings WHERE id = $1 AND company_id = $2"
            "  RETURNING id, company_id, call_id, started_at, duration_ms),"
            " a AS (INSERT INTO audit_log (company_id, action, target, details)"
            "  SELECT company_id, 'recording.expired', id::text, jsonb_build_object('call_id',"
            "  call_id, 'started_at', started_at, 'duration_ms', duration_ms,"
            "  'retention_days', $3::int) FROM d RETURNING 1)"
            " SELECT count(*) FROM a"
          : "WITH d AS (DELETE FROM voicemails WHERE id = $1 AND company_id = $2"
            "  RETURNING id, company_id, call_id, created_at, duration_ms),"
            " a AS (INSERT INTO audit_log (company_id, action, target, details)"
            "  SELECT company_id, 'voicemail.expired', id::text, jsonb_build_object('call_id',"
            "  call_id, 'created_at', created_at, 'duration_ms', duration_ms,"
            "  'retention_days', $3::int) FROM d RETURNING 1)"
            " SELECT count(*) FROM a",
      params, G_N_ELEMENTS (params), self->cancellable, on_row_deleted, self);
}

static void
next_one (CdRetention *self)
{
  Expired *e;

  if (self->next >= self->batch->len) {
    run_done (self, self->batch->len == BATCH);
    return;
  }
  e = g_ptr_array_index (self->batch, self->next++);
  cd_blob_store_delete_async (self->blobs, e->storage_key, self->cancellable, on_file_deleted,
                              self);
}

static void
on_found (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdRetention *self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
      return;
    g_message ("retention: cannot look for what is past it: %s", error->message);
    self->running = FALSE;
    schedule (self, self->interval_s);
    return;
  }
  self->batch = g_ptr_array_new_with_free_func (expired_free);
  self->next = 0;
  self->deleted[0] = self->deleted[1] = 0;
  self->failed = 0;
  for (int i = 0; i < PQntuples (res); i++) {
    Expired *e = g_new0 (Expired, 1);

    e->kind = g_str_equal (PQgetvalue (res, i, 0), "voicemail") ? KIND_VOICEMAIL : KIND_RECORDING;
    e->id = g_strdup (PQgetvalue (res, i, 1));
    e->company_id = g_strdup (PQgetvalue (res, i, 2));
    e->storage_key = g_strdup (PQgetvalue (res, i, 3));
    e->days = g_strdup (PQgetvalue (res, i, 4));
    g_ptr_array_add (self->batch, e);
  }
  next_one (self);
}

static gboolean
on_timer (gpointer user_data)
{
  CdRetention *self = user_data;
  CdPgScope scope = { .platform = TRUE };
  g_autofree char *limit = g_strdup_printf ("%d", BATCH);
  const char *params[] = { limit };

  self->timer = 0;
  self->running = TRUE;
  /* a recording still being made is never expired; a company's days come
   * from its settings, when a positive number */
  cd_pg_pool_query_scoped_async (
      self->pool, &scope,
      "WITH c AS (SELECT id, (settings->>'recording_retention_days')::int AS days FROM companies"
      "  WHERE jsonb_typeof(settings->'recording_retention_days') = 'number'"
      "  AND (settings->>'recording_retention_days')::int > 0)"
      " (SELECT 'recording', r.id, r.company_id, r.storage_key, c.days FROM recordings r"
      "  JOIN c ON c.id = r.company_id WHERE r.state <> 'recording'"
      "  AND coalesce(r.ended_at, r.started_at) < now() - make_interval(days => c.days)"
      " UNION ALL"
      "  SELECT 'voicemail', v.id, v.company_id, v.storage_key, c.days FROM voicemails v"
      "  JOIN c ON c.id = v.company_id"
      "  WHERE v.created_at < now() - make_interval(days => c.days))"
      " LIMIT $1::int",
      params, 1, self->cancellable, on_found, self);
  return G_SOURCE_REMOVE;
}

static void
schedule (CdRetention *self, guint seconds)
{
  g_clear_handle_id (&self->timer, g_source_remove);
  self->timer =
      seconds ? g_timeout_add_seconds (seconds, on_timer, self) : g_idle_add (on_timer, self);
}

static void
cd_retention_dispose (GObject *object)
{
  CdRetention *self = CD_RETENTION (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_handle_id (&self->timer, g_source_remove);
  G_OBJECT_CLASS (cd_retention_parent_class)->dispose (object);
}

static void
cd_retention_finalize (GObject *object)
{
  CdRetention *self = CD_RETENTION (object);

  g_clear_pointer (&self->batch, g_ptr_array_unref);
  g_clear_object (&self->pool);
  g_clear_object (&self->blobs);
  g_clear_object (&self->metrics);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (cd_retention_parent_class)->finalize (object);
}

static void
cd_retention_class_init (CdRetentionClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = cd_retention_dispose;
  G_OBJECT_CLASS (klass)->finalize = cd_retention_finalize;
}

static void
cd_retention_init (CdRetention *self)
{
  self->cancellable = g_cancellable_new ();
}

CdRetention *
cd_retention_new (CdPgPool *pool, CdBlobStore *blobs, CdMetrics *metrics, guint interval_s)
{
  CdRetention *self = g_object_new (CD_TYPE_RETENTION, NULL);

  self->pool = g_object_ref (pool);
  self->blobs = g_object_ref (blobs);
  self->metrics = metrics ? g_object_ref (metrics) : NULL;
  self->interval_s = MAX (interval_s, 1);
  if (metrics)
    cd_metrics_register (metrics, "calldocker_retention_deleted_total", CD_METRIC_COUNTER,
                         "recordings and voicemails deleted past their company's retention, by "
                         "kind",
                         NULL, 0);
  schedule (self, MIN (self->interval_s, 60));
  return self;
}
