/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdCallStore: each call's writes wait in a queue of their own and run one at
 * a time, in order; different calls are written side by side. */

#define G_LOG_DOMAIN "calldocker-calls"

#include "cd-call-store.h"

#include "../../common/cd-json.h"

#include <string.h>

/* Everything here belongs to the main thread (the context that made the
 * store): callers, queues, timers and the pool's callbacks. */

#define MAX_PARAMS           6
#define MAX_PENDING          50000 /* beyond, new writes are dropped until the database catches up */
#define DEFAULT_RETRY_MIN_MS 200
#define DEFAULT_RETRY_MAX_MS 10000
#define DEFAULT_GIVE_UP_MS   (2 * 60 * 1000)

/* Times arrive as microseconds since the epoch and are added to it exactly
 * ("timestamptz 'epoch' + $n::bigint * interval '1 microsecond'"): a double
 * would round them. */

/* A retried create inserts nothing the second time; the timeline starts with it. */
static const char create_sql[] =
    "WITH ins AS (INSERT INTO calls (id, company_id, visitor_id, visitor_address, page, state,"
    "  created_at) VALUES ($1, $2, $3, $4, $5, 'new',"
    "  timestamptz 'epoch' + $6::bigint * interval '1 microsecond')"
    "  ON CONFLICT (id) DO NOTHING RETURNING id, company_id, created_at)"
    " INSERT INTO call_events (call_id, company_id, at, kind, detail)"
    " SELECT id, company_id, created_at, 'state', '{\"state\": \"new\"}' FROM ins";

/* An ended call keeps its state; the given detail cannot override "state". */
static const char state_sql[] =
    "WITH upd AS (UPDATE calls SET state = $3 WHERE id = $1 AND company_id = $2"
    "  AND ended_at IS NULL RETURNING id, company_id)"
    " INSERT INTO call_events (call_id, company_id, at, kind, detail)"
    " SELECT id, company_id, timestamptz 'epoch' + $4::bigint * interval '1 microsecond',"
    "  'state', coalesce($5::jsonb, '{}') || jsonb_build_object('state', $3::text) FROM upd";

static const char agent_sql[] =
    "WITH upd AS (UPDATE calls SET agent_id = $3 WHERE id = $1 AND company_id = $2"
    "  RETURNING id, company_id)"
    " INSERT INTO call_events (call_id, company_id, at, kind, detail)"
    " SELECT id, company_id, timestamptz 'epoch' + $4::bigint * interval '1 microsecond',"
    "  'agent', jsonb_build_object('agent_id', $3::uuid) FROM upd";

static const char queue_sql[] =
    "WITH upd AS (UPDATE calls SET queue_id = $3 WHERE id = $1 AND company_id = $2"
    "  RETURNING id, company_id)"
    " INSERT INTO call_events (call_id, company_id, at, kind, detail)"
    " SELECT id, company_id, timestamptz 'epoch' + $5::bigint * interval '1 microsecond',"
    "  'queue.entered', jsonb_build_object('queue_id', $3::uuid, 'name', $4::text, 'by', $6::text)"
    " FROM upd";

/* the first answer counts (a transfer answers again) */
static const char answered_sql[] = "UPDATE calls SET answered_at = coalesce(answered_at,"
                                   "  timestamptz 'epoch' + $3::bigint * interval '1 microsecond')"
                                   " WHERE id = $1 AND company_id = $2";

static const char event_sql[] =
    "INSERT INTO call_events (call_id, company_id, at, kind, detail) VALUES ($1, $2,"
    "  timestamptz 'epoch' + $4::bigint * interval '1 microsecond', $3,"
    "  coalesce($5::jsonb, '{}'))";

static const char end_sql[] =
    "WITH upd AS (UPDATE calls SET state = 'ended',"
    "  ended_at = timestamptz 'epoch' + $5::bigint * interval '1 microsecond',"
    "  end_reason = $3, quality = $4::jsonb"
    "  WHERE id = $1 AND company_id = $2 AND ended_at IS NULL RETURNING id, company_id, ended_at)"
    " INSERT INTO call_events (call_id, company_id, at, kind, detail)"
    " SELECT id, company_id, ended_at, 'state',"
    "  jsonb_strip_nulls(jsonb_build_object('state', 'ended', 'reason', $3::text)) FROM upd";

typedef struct {
  const char *what; /* static: names the write in logs */
  const char *sql;  /* static */
  gboolean expects_row;
  char *company_id;
  char *params[MAX_PARAMS]; /* NULL entries are SQL NULL */
  int n_params;
} CallWrite;

typedef struct {
  CdCallStore *store; /* unowned: the store owns its queues */
  char *call_id;
  GQueue writes; /* CallWrite*, oldest first: the head runs or waits for its retry */
  gboolean running;
  guint retry_id;
  guint backoff_ms;
  guint attempts;       /* of the head */
  gint64 failing_since; /* monotonic time of the head's first failure, or 0 */
} CallQueue;

typedef struct {
  GTask *task;
  GSource *cancelled_source; /* NULL without a cancellable */
} Flush;

struct _CdCallStore {
  GObject parent_instance;

  CdPgPool *pool;
  GHashTable *calls;  /* call id -> CallQueue* that has writes */
  GPtrArray *flushes; /* Flush* waiting for pending == 0 */
  CdCallStoreStats stats;
  guint backing_off; /* queues waiting for a retry */
  guint retry_min_ms;
  guint retry_max_ms;
  guint give_up_ms;
  gboolean overflowing;
};

G_DEFINE_FINAL_TYPE (CdCallStore, cd_call_store, G_TYPE_OBJECT)

static void run_head (CallQueue *q);

static void
write_free (CallWrite *w)
{
  for (int i = 0; i < w->n_params; i++)
    g_free (w->params[i]);
  g_free (w->company_id);
  g_free (w);
}

static void
queue_free (gpointer data)
{
  CallQueue *q = data;

  g_clear_handle_id (&q->retry_id, g_source_remove);
  g_queue_clear_full (&q->writes, (GDestroyNotify) write_free);
  g_free (q->call_id);
  g_free (q);
}

static void
flush_free (Flush *flush)
{
  if (flush->cancelled_source) {
    g_source_destroy (flush->cancelled_source);
    g_source_unref (flush->cancelled_source);
  }
  g_clear_object (&flush->task);
  g_free (flush);
}

/* NULL and "" give NULL; otherwise valid UTF-8 of at most @max characters
 * (the column's bound: a call is not lost over a long page address). */
static char *
bounded_text (const char *text, glong max)
{
  g_autofree char *valid = NULL;

  if (text == NULL || text[0] == '\0')
    return NULL;
  valid = g_utf8_make_valid (text, -1);
  if (g_utf8_strlen (valid, -1) <= max)
    return g_steal_pointer (&valid);
  return g_utf8_substring (valid, 0, max);
}

static char *
object_text (JsonObject *object)
{
  g_autoptr (JsonNode) node = NULL;

  if (object == NULL)
    return NULL;
  node = json_node_init_object (json_node_alloc (), object);
  return cd_json_to_string (node);
}

/* Worth another try: no connection, no answer in time, or a server that
 * is shutting down, overloaded or cancelled the statement. A statement the
 * server refuses (constraint, type, permission) would be refused again. */
static gboolean
is_transient (const GError *error)
{
  const char *state;

  if (error->domain != CD_STORE_ERROR)
    return FALSE;
  switch (error->code) {
  case CD_STORE_ERROR_UNAVAILABLE:
  case CD_STORE_ERROR_TIMED_OUT:
    return TRUE;
  case CD_STORE_ERROR_QUERY:
    /* the pool words it "SQLSTATE XXXXX: message" */
    if (!g_str_has_prefix (error->message, "SQLSTATE ") || strlen (error->message) < 14)
      return FALSE;
    state = error->message + strlen ("SQLSTATE ");
    return g_str_has_prefix (state, "08") || g_str_has_prefix (state, "40") ||
           g_str_has_prefix (state, "53") || g_str_has_prefix (state, "57") ||
           g_str_has_prefix (state, "58");
  default:
    return FALSE;
  }
}

static void
complete_flushes (CdCallStore *self)
{
  g_autoptr (GPtrArray) done = NULL;
  G_GNUC_UNUSED g_autoptr (CdCallStore) hold = NULL;

  if (self->stats.pending > 0 || self->flushes->len == 0)
    return;
  hold = g_object_ref (self);
  /* a callback may flush again: that one waits in a new list */
  done = g_steal_pointer (&self->flushes);
  self->flushes = g_ptr_array_new ();
  for (guint i = 0; i < done->len; i++) {
    Flush *flush = g_ptr_array_index (done, i);
    g_autoptr (GTask) task = g_steal_pointer (&flush->task);
    flush_free (flush);
    g_task_return_boolean (task, TRUE);
  }
}

static gboolean
on_retry (gpointer user_data)
{
  CallQueue *q = user_data;

  q->retry_id = 0;
  q->store->backing_off--;
  run_head (q);
  return G_SOURCE_REMOVE;
}

/* The database took a write: those waiting for their retry go now. */
static void
retry_waiting_now (CdCallStore *self)
{
  GHashTableIter iter;
  gpointer value;

  if (self->backing_off == 0)
    return;
  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    CallQueue *q = value;
    if (q->retry_id != 0) {
      g_clear_handle_id (&q->retry_id, g_source_remove);
      self->backing_off--;
      run_head (q);
    }
  }
}

static void
no_longer_pending (CdCallStore *self, guint n)
{
  self->stats.pending -= n;
  if (self->overflowing && self->stats.pending < MAX_PENDING / 2) {
    self->overflowing = FALSE;
    g_message ("call writes are accepted again (%u waiting)", self->stats.pending);
  }
}

/* The head is done (written or dropped): the next write of the call runs. */
static void
finish_head (CdCallStore *self, CallQueue *q)
{
  write_free (g_queue_pop_head (&q->writes));
  q->attempts = 0;
  q->backoff_ms = 0;
  q->failing_since = 0;
  no_longer_pending (self, 1);
  if (g_queue_is_empty (&q->writes))
    g_hash_table_remove (self->calls, q->call_id);
  else
    run_head (q);
}

static guint
jittered (guint ms)
{
  return (guint) (ms * g_random_double_range (0.8, 1.2));
}

static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CallQueue *q = user_data;
  g_autoptr (CdCallStore) self = q->store; /* the reference run_head() took */
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  CallWrite *w = g_queue_peek_head (&q->writes);
  gint64 now = g_get_monotonic_time ();

  q->running = FALSE;
  if (res != NULL) {
    if (q->attempts > 1)
      g_message ("call %s: %s written after %u attempts", q->call_id, w->what, q->attempts);
    if (w->expects_row && g_str_equal (PQcmdTuples (res), "0"))
      g_message ("call %s: %s changed nothing: the call is not stored, or it ended", q->call_id,
                 w->what);
    self->stats.written++;
    finish_head (self, q);
    retry_waiting_now (self);
    complete_flushes (self);
    return;
  }

  if (is_transient (error)) {
    guint n;

    if (q->failing_since == 0) {
      q->failing_since = now;
      g_message ("call %s: writing %s failed (%s); retrying", q->call_id, w->what, error->message);
    } else {
      g_debug ("call %s: %s failed again (%s)", q->call_id, w->what, error->message);
    }
    if (now - q->failing_since < (gint64) self->give_up_ms * 1000) {
      self->stats.retried++;
      q->backoff_ms =
          q->backoff_ms == 0 ? self->retry_min_ms : MIN (q->backoff_ms * 2, self->retry_max_ms);
      q->retry_id = g_timeout_add (jittered (q->backoff_ms), on_retry, q);
      self->backing_off++;
      return;
    }
    /* the call's later writes build on this one: they go too */
    n = g_queue_get_length (&q->writes);
    g_message ("call %s: gave up writing %s after %u attempts in %.1f s (%s); %u writes of the "
               "call dropped",
               q->call_id, w->what, q->attempts, (now - q->failing_since) / (double) G_USEC_PER_SEC,
               error->message, n);
    self->stats.dropped += n;
    g_hash_table_remove (self->calls, q->call_id);
    no_longer_pending (self, n);
    complete_flushes (self);
    return;
  } else {
    g_message ("call %s: %s dropped: %s", q->call_id, w->what, error->message);
  }
  self->stats.dropped++;
  finish_head (self, q);
  complete_flushes (self);
}

static void
run_head (CallQueue *q)
{
  CallWrite *w = g_queue_peek_head (&q->writes);
  CdPgScope scope = { w->company_id, FALSE };

  q->running = TRUE;
  q->attempts++;
  g_object_ref (q->store); /* released in on_written() */
  cd_pg_pool_query_scoped_async (q->store->pool, &scope, w->sql, (const char *const *) w->params,
                                 w->n_params, NULL, on_written, q);
}

static void
enqueue (CdCallStore *self, const char *call_id, const char *company_id, const char *what,
         const char *sql, gboolean expects_row, const char *const *params, int n_params)
{
  CallWrite *w;
  CallQueue *q;

  g_assert (n_params <= MAX_PARAMS);
  if (self->stats.pending >= MAX_PENDING) {
    self->stats.dropped++;
    if (!self->overflowing)
      g_message ("%u call writes wait already: new ones are dropped until the database catches up",
                 self->stats.pending);
    self->overflowing = TRUE;
    return;
  }
  w = g_new0 (CallWrite, 1);
  w->what = what;
  w->sql = sql;
  w->expects_row = expects_row;
  w->company_id = g_strdup (company_id);
  w->n_params = n_params;
  for (int i = 0; i < n_params; i++)
    w->params[i] = g_strdup (params[i]);

  q = g_hash_table_lookup (self->calls, call_id);
  if (q == NULL) {
    q = g_new0 (CallQueue, 1);
    q->store = self;
    q->call_id = g_strdup (call_id);
    g_queue_init (&q->writes);
    g_hash_table_insert (self->calls, q->call_id, q);
  }
  g_queue_push_tail (&q->writes, w);
  self->stats.pending++;
  if (!q->running && q->retry_id == 0)
    run_head (q);
}

static gboolean
on_flush_cancelled (GCancellable *cancellable, gpointer user_data)
{
  Flush *flush = user_data;
  CdCallStore *self = g_task_get_source_object (flush->task);
  g_autoptr (GTask) task = g_object_ref (flush->task);

  g_ptr_array_remove (self->flushes, flush);
  flush_free (flush);
  g_task_return_error_if_cancelled (task);
  return G_SOURCE_REMOVE;
}

static void
cd_call_store_dispose (GObject *object)
{
  CdCallStore *self = CD_CALL_STORE (object);
  GHashTableIter iter;
  gpointer value;

  /* retries wait no longer: what is left is counted in finalize */
  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_clear_handle_id (&((CallQueue *) value)->retry_id, g_source_remove);
  self->backing_off = 0;
  G_OBJECT_CLASS (cd_call_store_parent_class)->dispose (object);
}

static void
cd_call_store_finalize (GObject *object)
{
  CdCallStore *self = CD_CALL_STORE (object);

  if (self->stats.pending > 0)
    g_message ("%u call writes were not stored", self->stats.pending);
  g_hash_table_unref (self->calls);
  /* each flush holds a reference: none is left here */
  g_ptr_array_unref (self->flushes);
  g_clear_object (&self->pool);
  G_OBJECT_CLASS (cd_call_store_parent_class)->finalize (object);
}

static void
cd_call_store_class_init (CdCallStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = cd_call_store_dispose;
  object_class->finalize = cd_call_store_finalize;
}

static void
cd_call_store_init (CdCallStore *self)
{
  self->calls = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, queue_free);
  self->flushes = g_ptr_array_new ();
  self->retry_min_ms = DEFAULT_RETRY_MIN_MS;
  self->retry_max_ms = DEFAULT_RETRY_MAX_MS;
  self->give_up_ms = DEFAULT_GIVE_UP_MS;
}

/**
 * cd_call_store_new:
 * @pool: the pool to write with (as the application role: the writes run in
 *   each call's company scope)
 *
 * Returns: (transfer full): a store that writes calls and their timelines
 *   behind their callers
 */
CdCallStore *
cd_call_store_new (CdPgPool *pool)
{
  CdCallStore *self;

  g_return_val_if_fail (CD_IS_PG_POOL (pool), NULL);
  self = g_object_new (CD_TYPE_CALL_STORE, NULL);
  self->pool = g_object_ref (pool);
  return self;
}

/**
 * cd_call_store_set_retry_limits:
 * @min_ms: the first wait after a failed write (200 ms by default)
 * @max_ms: the longest wait, doubling up to it (10 s)
 * @give_up_ms: how long a write is retried before it is dropped, with the
 *   call's later writes (2 minutes)
 *
 * While the database cannot be reached, writes are retried with backoff
 * (±20 %); a write the database refuses is dropped at once. Any write that
 * lands retries the waiting ones at once.
 */
void
cd_call_store_set_retry_limits (CdCallStore *self, guint min_ms, guint max_ms, guint give_up_ms)
{
  g_return_if_fail (CD_IS_CALL_STORE (self));
  self->retry_min_ms = MAX (min_ms, 1);
  self->retry_max_ms = MAX (max_ms, self->retry_min_ms);
  self->give_up_ms = give_up_ms;
}

/**
 * cd_call_store_create:
 * @call_id: the call's UUID, given by the daemon
 * @visitor_id: the visitor token's subject
 * @visitor_address: (nullable): where the visitor connects from
 * @page: (nullable): the web page the call came from (cut at 2048 characters)
 * @at_us: when the call began, g_get_real_time() microseconds
 *
 * Records a new call (state "new") and starts its timeline.
 */
void
cd_call_store_create (CdCallStore *self, const char *call_id, const char *company_id,
                      const char *visitor_id, const char *visitor_address, const char *page,
                      gint64 at_us)
{
  g_autofree char *visitor = NULL;
  g_autofree char *address = NULL;
  g_autofree char *from_page = NULL;
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL && visitor_id != NULL);
  visitor = bounded_text (visitor_id, 200);
  address = bounded_text (visitor_address, 100);
  from_page = bounded_text (page, 2048);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, visitor, address, from_page, at };
    enqueue (self, call_id, company_id, "create", create_sql, FALSE, params, 6);
  }
}

/**
 * cd_call_store_set_state:
 * @state: new, ivr, queued, ringing, connected or ended (prefer
 *   cd_call_store_end() for the last)
 * @detail: (nullable): more members for the timeline's "state" event, such
 *   as a reason or a queue position; copied
 *
 * Sets the call's state and appends a "state" event {"state": ..., detail}.
 * An ended call keeps its state.
 */
void
cd_call_store_set_state (CdCallStore *self, const char *call_id, const char *company_id,
                         const char *state, JsonObject *detail, gint64 at_us)
{
  g_autofree char *detail_text = NULL;
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL && state != NULL);
  detail_text = object_text (detail);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, state, at, detail_text };
    enqueue (self, call_id, company_id, "state", state_sql, TRUE, params, 5);
  }
}

/**
 * cd_call_store_set_agent:
 * @agent_id: (nullable): the agent (a user of the call's company), or %NULL
 *   for none
 *
 * Sets the call's agent and appends an "agent" event {"agent_id": ...}.
 */
void
cd_call_store_set_agent (CdCallStore *self, const char *call_id, const char *company_id,
                         const char *agent_id, gint64 at_us)
{
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, agent_id, at };
    enqueue (self, call_id, company_id, "agent", agent_sql, TRUE, params, 4);
  }
}

/**
 * cd_call_store_set_queue:
 *
 * Records the queue the call waits in (named @name), with an event.
 */
void
cd_call_store_set_queue (CdCallStore *self, const char *call_id, const char *company_id,
                         const char *queue_id, const char *name, const char *by, gint64 at_us)
{
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL && queue_id != NULL && by != NULL);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, queue_id, name, at, by };
    enqueue (self, call_id, company_id, "queue", queue_sql, TRUE, params, 6);
  }
}

/**
 * cd_call_store_answered:
 *
 * Records when an agent first answered the call.
 */
void
cd_call_store_answered (CdCallStore *self, const char *call_id, const char *company_id,
                        gint64 at_us)
{
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, at };
    enqueue (self, call_id, company_id, "answered", answered_sql, TRUE, params, 3);
  }
}

/**
 * cd_call_store_add_event:
 * @kind: what happened: lower-case letters, digits, '.', '_', '-', such as
 *   dtmf, chat, agent.offered, agent.rejected, media, error
 * @detail: (nullable): the event's members; copied
 *
 * Appends an event to the call's timeline.
 */
void
cd_call_store_add_event (CdCallStore *self, const char *call_id, const char *company_id,
                         const char *kind, JsonObject *detail, gint64 at_us)
{
  g_autofree char *detail_text = NULL;
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL && kind != NULL);
  detail_text = object_text (detail);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, kind, at, detail_text };
    enqueue (self, call_id, company_id, "event", event_sql, TRUE, params, 5);
  }
}

/**
 * cd_call_store_end:
 * @reason: (nullable): why it ended, such as hangup, no-agent (cut at 200
 *   characters)
 * @quality: (nullable): the call's quality figures; copied
 *
 * Ends the call (state "ended", the time, the reason, the quality) and
 * appends a "state" event {"state": "ended", "reason": ...}. Once only.
 */
void
cd_call_store_end (CdCallStore *self, const char *call_id, const char *company_id,
                   const char *reason, JsonObject *quality, gint64 at_us)
{
  g_autofree char *why = NULL;
  g_autofree char *quality_text = NULL;
  g_autofree char *at = NULL;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  g_return_if_fail (call_id != NULL && company_id != NULL);
  why = bounded_text (reason, 200);
  quality_text = object_text (quality);
  at = g_strdup_printf ("%" G_GINT64_FORMAT, at_us);
  {
    const char *params[] = { call_id, company_id, why, quality_text, at };
    enqueue (self, call_id, company_id, "end", end_sql, TRUE, params, 5);
  }
}

/**
 * cd_call_store_flush_async:
 *
 * Completes once no write is pending: all were stored or dropped. Writes
 * recorded meanwhile are waited for too.
 */
void
cd_call_store_flush_async (CdCallStore *self, GCancellable *cancellable,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  Flush *flush;

  g_return_if_fail (CD_IS_CALL_STORE (self));
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, cd_call_store_flush_async);
  if (g_task_return_error_if_cancelled (task))
    return;
  if (self->stats.pending == 0) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  flush = g_new0 (Flush, 1);
  flush->task = g_steal_pointer (&task);
  if (cancellable) {
    flush->cancelled_source = g_cancellable_source_new (cancellable);
    g_source_set_callback (flush->cancelled_source, G_SOURCE_FUNC (on_flush_cancelled), flush,
                           NULL);
    g_source_attach (flush->cancelled_source, g_task_get_context (flush->task));
  }
  g_ptr_array_add (self->flushes, flush);
}

gboolean
cd_call_store_flush_finish (CdCallStore *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * cd_call_store_get_pending:
 *
 * Returns: the writes queued, running or waiting to be retried
 */
guint
cd_call_store_get_pending (CdCallStore *self)
{
  g_return_val_if_fail (CD_IS_CALL_STORE (self), 0);
  return self->stats.pending;
}

void
cd_call_store_get_stats (CdCallStore *self, CdCallStoreStats *stats)
{
  g_return_if_fail (CD_IS_CALL_STORE (self));
  *stats = self->stats;
}
