/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdPgPool: non-blocking libpq on the main loop. Each connection has a GSource
 * on PQsocket; requests wait in one queue for a free connection. */

#define G_LOG_DOMAIN "calldocker-pg"

#include "cd-pg-pool.h"

#include <glib-unix.h>
#include <string.h>

/* All fields belong to the main context that created the pool. */

typedef enum {
  CONN_DOWN,
  CONN_CONNECTING,
  CONN_READY,
} ConnState;

typedef struct _PgConn PgConn;
typedef struct _PgRequest PgRequest;

struct _PgConn {
  CdPgPool *pool; /* unowned: the pool owns its connections */
  guint index;
  ConnState state;
  PGconn *conn;
  GSource *io_source;
  int io_fd;
  GIOCondition io_condition;
  PostgresPollingStatusType poll_status;
  guint retry_id;
  guint connect_timeout_id;
  guint backoff_ms;
  guint generation; /* bumped on every (re)connect: stale leases notice */
  gboolean setup_done;
  gboolean leased;
  CdPgLease *lease;
  PgRequest *current;
};

struct _PgRequest {
  GTask *task; /* NULL for the pool's own statements */
  char *sql;
  char **params; /* NULL-able entries */
  int n_params;
  gboolean script; /* several statements, no parameters */
  gboolean for_lease;
  CdPgLease *lease; /* run on this lease's connection */
  gboolean scoped;  /* BEGIN; set the tenant; the statement; COMMIT: one pipeline */
  char *scope_company;
  gboolean scope_platform;
  int pipeline_step; /* which of the pipeline's statements is answering */
  guint timeout_id;
  PGresult *result;
  PGresult *error_result;
  PgConn *conn;
};

struct _CdPgLease {
  CdPgPool *pool; /* owned */
  PgConn *conn;
  guint generation;
  gboolean released;
};

struct _CdPgPool {
  GObject parent_instance;

  char *conninfo;
  char *role;      /* SET ROLE at connect (startup option), or NULL */
  char **keywords; /* the parsed conninfo plus our session options */
  char **values;
  guint query_timeout_ms;
  guint reconnect_min_ms;
  guint reconnect_max_ms;
  GPtrArray *conns; /* PgConn* */
  GQueue waiting;   /* PgRequest* for any free connection */
  gboolean started;
  gboolean closed;
  CdPgPoolStats stats;
};

G_DEFINE_FINAL_TYPE (CdPgPool, cd_pg_pool, G_TYPE_OBJECT)

static void conn_schedule_reconnect (PgConn *pc);
static void pool_dispatch (CdPgPool *self);
static void conn_run (PgConn *pc, PgRequest *req);

static void
request_free (PgRequest *req)
{
  g_clear_handle_id (&req->timeout_id, g_source_remove);
  g_clear_object (&req->task);
  g_free (req->sql);
  /* not g_strfreev(): SQL NULLs are NULL entries in the middle */
  for (int i = 0; i < req->n_params; i++)
    g_free (req->params[i]);
  g_free (req->params);
  g_clear_pointer (&req->result, PQclear);
  g_clear_pointer (&req->error_result, PQclear);
  g_free (req->scope_company);
  g_free (req);
}

static void
request_fail (PgRequest *req, GError *error)
{
  if (req->task)
    g_task_return_error (req->task, error);
  else {
    g_debug ("internal statement failed: %s", error->message);
    g_error_free (error);
  }
  request_free (req);
}

static char *
result_error_summary (const PGresult *res)
{
  const char *state = PQresultErrorField (res, PG_DIAG_SQLSTATE);
  const char *primary = PQresultErrorField (res, PG_DIAG_MESSAGE_PRIMARY);

  return g_strdup_printf ("SQLSTATE %s: %s", state ? state : "?????",
                          primary ? primary : "unknown error");
}

static void
request_complete (PgRequest *req)
{
  CdPgPool *pool = req->conn ? req->conn->pool : NULL;

  if (req->error_result != NULL) {
    const char *state = PQresultErrorField (req->error_result, PG_DIAG_SQLSTATE);
    g_autofree char *summary = result_error_summary (req->error_result);
    int code =
        state && g_str_has_prefix (state, "23") ? CD_STORE_ERROR_CONSTRAINT : CD_STORE_ERROR_QUERY;
    if (pool)
      pool->stats.query_errors++;
    request_fail (req, g_error_new_literal (CD_STORE_ERROR, code, summary));
    return;
  }
  if (req->task) {
    PGresult *res = g_steal_pointer (&req->result);
    if (res == NULL)
      res = PQmakeEmptyPGresult (NULL, PGRES_COMMAND_OK);
    g_task_return_pointer (req->task, res, (GDestroyNotify) PQclear);
  }
  request_free (req);
}

static guint
next_backoff (CdPgPool *self, guint current)
{
  guint next = current == 0 ? self->reconnect_min_ms : MIN (current * 2, self->reconnect_max_ms);
  return next;
}

static guint
jittered (guint ms)
{
  /* ±20 % so a fleet of daemons does not reconnect in lockstep */
  return ms + (guint) g_random_int_range (-(gint) ms / 5, (gint) ms / 5 + 1);
}

static void
conn_clear_io (PgConn *pc)
{
  if (pc->io_source) {
    g_source_destroy (pc->io_source);
    g_clear_pointer (&pc->io_source, g_source_unref);
  }
  pc->io_fd = -1;
  pc->io_condition = 0;
}

static gboolean on_conn_io (int fd, GIOCondition condition, gpointer user_data);

static void
conn_watch (PgConn *pc, GIOCondition condition)
{
  int fd = PQsocket (pc->conn);

  condition |= G_IO_ERR | G_IO_HUP;
  if (pc->io_source && fd == pc->io_fd && condition == pc->io_condition)
    return;
  conn_clear_io (pc);
  if (fd < 0)
    return;
  pc->io_fd = fd;
  pc->io_condition = condition;
  pc->io_source = g_unix_fd_source_new (fd, condition);
  g_source_set_callback (pc->io_source, G_SOURCE_FUNC (on_conn_io), pc, NULL);
  g_source_set_static_name (pc->io_source, "calldocker-pg-io");
  g_source_attach (pc->io_source, NULL);
}

/* The connection is lost: fail what runs on it, forget leases, retry later. */
static void
conn_lost (PgConn *pc, const char *why)
{
  CdPgPool *self = pc->pool;
  PgRequest *req = g_steal_pointer (&pc->current);
  gboolean was_ready = pc->state == CONN_READY;
  /* @why often points into the connection that is freed below */
  g_autofree char *reason = g_strstrip (g_strdup (why && *why ? why : "closed"));

  conn_clear_io (pc);
  g_clear_handle_id (&pc->connect_timeout_id, g_source_remove);
  g_clear_pointer (&pc->conn, PQfinish);
  pc->state = CONN_DOWN;
  pc->setup_done = FALSE;
  if (pc->lease) {
    pc->lease->conn = NULL;
    pc->lease = NULL;
  }
  pc->leased = FALSE;

  if (was_ready)
    g_message ("PostgreSQL connection %u lost: %s; reconnecting", pc->index, reason);
  else
    g_debug ("PostgreSQL connection %u failed: %s", pc->index, reason);

  if (req)
    request_fail (req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE,
                                    "PostgreSQL connection lost"));
  if (!self->closed)
    conn_schedule_reconnect (pc);
}

static void
conn_became_idle (PgConn *pc)
{
  conn_watch (pc, G_IO_IN);
  if (!pc->leased)
    pool_dispatch (pc->pool);
}

/* Reads every result that is ready; completes the request when libpq says done. */
/* A scoped request's pipeline: BEGIN, set_config, the statement, COMMIT,
 * then the sync. Only the statement's result is kept; the first error wins. */
static void
conn_collect_pipeline (PgConn *pc)
{
  while (pc->current && !PQisBusy (pc->conn)) {
    PgRequest *req = pc->current;
    PGresult *res = PQgetResult (pc->conn);

    if (res == NULL) {
      req->pipeline_step++; /* the end of one statement's results */
      continue;
    }
    switch (PQresultStatus (res)) {
    case PGRES_PIPELINE_SYNC:
      PQclear (res);
      while (!PQexitPipelineMode (pc->conn)) {
        PGresult *extra = PQgetResult (pc->conn);
        if (extra == NULL && PQisBusy (pc->conn)) {
          conn_lost (pc, "pipeline did not end");
          return;
        }
        PQclear (extra);
      }
      pc->current = NULL;
      if (PQtransactionStatus (pc->conn) != PQTRANS_IDLE) {
        /* the statement failed: end the transaction before anyone (the
         * callback below included) can use the connection again */
        PgRequest *rollback = g_new0 (PgRequest, 1);
        rollback->sql = g_strdup ("ROLLBACK");
        conn_run (pc, rollback);
        request_complete (req);
        return;
      }
      request_complete (req);
      if (pc->conn && pc->current == NULL)
        conn_became_idle (pc);
      return;
    case PGRES_FATAL_ERROR:
    case PGRES_BAD_RESPONSE:
    case PGRES_NONFATAL_ERROR:
      if (req->error_result == NULL)
        req->error_result = res;
      else
        PQclear (res);
      break;
    case PGRES_PIPELINE_ABORTED:
      PQclear (res);
      break;
    case PGRES_EMPTY_QUERY:
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
    default:
      if (req->pipeline_step == 2) {
        g_clear_pointer (&req->result, PQclear);
        req->result = res;
      } else {
        PQclear (res);
      }
      break;
    }
  }
}

static void
conn_collect (PgConn *pc)
{
  if (pc->current && pc->current->scoped) {
    conn_collect_pipeline (pc);
    return;
  }
  while (pc->current && !PQisBusy (pc->conn)) {
    PGresult *res = PQgetResult (pc->conn);
    PgRequest *req = pc->current;

    if (res == NULL) {
      pc->current = NULL;
      /* The task's callback may run now and start the next statement on
       * this connection (a lease) or close the pool. */
      request_complete (req);
      if (pc->conn && pc->current == NULL)
        conn_became_idle (pc);
      return;
    }
    switch (PQresultStatus (res)) {
    case PGRES_FATAL_ERROR:
    case PGRES_BAD_RESPONSE:
    case PGRES_NONFATAL_ERROR:
      if (req->error_result == NULL)
        req->error_result = res;
      else
        PQclear (res);
      break;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      PQclear (res);
      conn_lost (pc, "COPY is not supported through the pool");
      return;
    case PGRES_EMPTY_QUERY:
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
    case PGRES_PIPELINE_SYNC:
    case PGRES_PIPELINE_ABORTED:
    default:
      g_clear_pointer (&req->result, PQclear);
      req->result = res;
      break;
    }
  }
}

static void
conn_flush (PgConn *pc)
{
  int r = PQflush (pc->conn);

  if (r < 0)
    conn_lost (pc, PQerrorMessage (pc->conn));
  else
    conn_watch (pc, r == 1 ? G_IO_IN | G_IO_OUT : G_IO_IN);
}

static void
conn_drain_notices (PgConn *pc)
{
  PGnotify *notify;

  while ((notify = PQnotifies (pc->conn)) != NULL)
    PQfreemem (notify);
}

static void
on_notice (void *user_data, const char *message)
{
  g_autofree char *text = g_strstrip (g_strdup (message));

  g_debug ("server notice: %s", text);
}

static gboolean
on_conn_io (int fd, GIOCondition condition, gpointer user_data)
{
  PgConn *pc = user_data;
  G_GNUC_UNUSED g_autoptr (CdPgPool) hold = g_object_ref (pc->pool);

  if (pc->state == CONN_CONNECTING) {
    pc->poll_status = PQconnectPoll (pc->conn);
    switch (pc->poll_status) {
    case PGRES_POLLING_READING:
      conn_watch (pc, G_IO_IN);
      return G_SOURCE_CONTINUE;
    case PGRES_POLLING_WRITING:
      conn_watch (pc, G_IO_OUT);
      return G_SOURCE_CONTINUE;
    case PGRES_POLLING_OK:
      g_clear_handle_id (&pc->connect_timeout_id, g_source_remove);
      pc->state = CONN_READY;
      pc->backoff_ms = 0;
      pc->generation++;
      if (PQsetnonblocking (pc->conn, 1) != 0) {
        conn_lost (pc, "cannot make the connection non-blocking");
        return G_SOURCE_REMOVE;
      }
      PQsetNoticeProcessor (pc->conn, on_notice, pc);
      pc->setup_done = TRUE;
      g_info ("PostgreSQL connection %u established (server %d)", pc->index,
              PQserverVersion (pc->conn));
      conn_became_idle (pc);
      return G_SOURCE_CONTINUE;
    case PGRES_POLLING_FAILED:
    case PGRES_POLLING_ACTIVE:
    default:
      conn_lost (pc, PQerrorMessage (pc->conn));
      return G_SOURCE_REMOVE;
    }
  }

  if (pc->state != CONN_READY)
    return G_SOURCE_REMOVE;

  if (condition & G_IO_OUT) {
    conn_flush (pc);
    if (pc->conn == NULL)
      return G_SOURCE_REMOVE;
  }
  if (condition & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
    if (!PQconsumeInput (pc->conn) || PQstatus (pc->conn) == CONNECTION_BAD) {
      conn_lost (pc, PQerrorMessage (pc->conn));
      return G_SOURCE_REMOVE;
    }
    conn_drain_notices (pc);
    conn_collect (pc);
    if (pc->conn && PQstatus (pc->conn) == CONNECTION_BAD) {
      conn_lost (pc, PQerrorMessage (pc->conn));
      return G_SOURCE_REMOVE;
    }
  }
  /* conn_watch() may have replaced this source: it is destroyed then */
  return G_SOURCE_CONTINUE;
}

static gboolean
on_connect_timeout (gpointer user_data)
{
  PgConn *pc = user_data;
  G_GNUC_UNUSED g_autoptr (CdPgPool) hold = g_object_ref (pc->pool);

  pc->connect_timeout_id = 0;
  conn_lost (pc, "connection attempt timed out");
  return G_SOURCE_REMOVE;
}

static void
conn_connect (PgConn *pc)
{
  CdPgPool *self = pc->pool;

  pc->conn = PQconnectStartParams ((const char *const *) self->keywords,
                                   (const char *const *) self->values, 0);
  if (pc->conn == NULL) {
    conn_schedule_reconnect (pc);
    return;
  }
  if (PQstatus (pc->conn) == CONNECTION_BAD) {
    conn_lost (pc, PQerrorMessage (pc->conn));
    return;
  }
  pc->state = CONN_CONNECTING;
  pc->connect_timeout_id = g_timeout_add (self->query_timeout_ms, on_connect_timeout, pc);
  /* libpq: behave as if the last poll returned WRITING */
  conn_watch (pc, G_IO_OUT);
}

static gboolean
on_retry (gpointer user_data)
{
  PgConn *pc = user_data;

  pc->retry_id = 0;
  pc->pool->stats.reconnects++;
  conn_connect (pc);
  return G_SOURCE_REMOVE;
}

static void
conn_schedule_reconnect (PgConn *pc)
{
  if (pc->retry_id != 0)
    return;
  pc->backoff_ms = next_backoff (pc->pool, pc->backoff_ms);
  pc->retry_id = g_timeout_add (jittered (pc->backoff_ms), on_retry, pc);
}

static void
conn_run (PgConn *pc, PgRequest *req)
{
  int ok;

  g_assert (pc->current == NULL);
  req->conn = pc;
  pc->current = req;
  if (req->task)
    pc->pool->stats.queries++;
  if (req->scoped) {
    const char *scope[] = { req->scope_company ? req->scope_company : "",
                            req->scope_platform ? "platform" : "" };
    req->pipeline_step = 0;
    ok = PQenterPipelineMode (pc->conn) &&
         PQsendQueryParams (pc->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
         PQsendQueryParams (pc->conn,
                            "SELECT set_config('calldocker.company_id', $1, true),"
                            " set_config('calldocker.scope', $2, true)",
                            2, NULL, scope, NULL, NULL, 0) &&
         PQsendQueryParams (pc->conn, req->sql, req->n_params, NULL,
                            (const char *const *) req->params, NULL, NULL, 0) &&
         PQsendQueryParams (pc->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
         PQpipelineSync (pc->conn);
  } else if (req->script)
    ok = PQsendQuery (pc->conn, req->sql);
  else
    ok = PQsendQueryParams (pc->conn, req->sql, req->n_params, NULL,
                            (const char *const *) req->params, NULL, NULL, 0);
  if (!ok) {
    conn_lost (pc, PQerrorMessage (pc->conn));
    return;
  }
  conn_flush (pc);
}

static PgConn *
pool_find_idle (CdPgPool *self)
{
  for (guint i = 0; i < self->conns->len; i++) {
    PgConn *pc = g_ptr_array_index (self->conns, i);
    if (pc->state == CONN_READY && pc->setup_done && !pc->leased && pc->current == NULL &&
        PQtransactionStatus (pc->conn) == PQTRANS_IDLE)
      return pc;
  }
  return NULL;
}

static void
pool_dispatch (CdPgPool *self)
{
  PgConn *pc;

  while (!g_queue_is_empty (&self->waiting) && (pc = pool_find_idle (self)) != NULL) {
    PgRequest *req = g_queue_pop_head (&self->waiting);

    /* the deadline keeps running: it covers the wait and the answer */
    if (req->task && g_task_return_error_if_cancelled (req->task)) {
      request_free (req);
      continue;
    }
    if (req->for_lease) {
      CdPgLease *lease = g_new0 (CdPgLease, 1);
      lease->pool = g_object_ref (self);
      lease->conn = pc;
      lease->generation = pc->generation;
      pc->leased = TRUE;
      pc->lease = lease;
      g_task_return_pointer (req->task, lease, (GDestroyNotify) cd_pg_lease_release);
      request_free (req);
      continue;
    }
    conn_run (pc, req);
  }
}

static gboolean
on_request_timeout (gpointer user_data)
{
  PgRequest *req = user_data;
  CdPgPool *self = g_task_get_source_object (req->task);
  G_GNUC_UNUSED g_autoptr (CdPgPool) hold = g_object_ref (self);

  req->timeout_id = 0;
  self->stats.timeouts++;
  if (req->conn == NULL) {
    g_queue_remove (&self->waiting, req);
    request_fail (req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT,
                                    "no PostgreSQL connection became free in time"));
  } else {
    /* The server's statement_timeout should have fired first: the server or
     * the network is stuck, so the connection is not trusted any more. */
    PgConn *pc = req->conn;
    if (pc->current == req)
      pc->current = NULL;
    request_fail (req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT,
                                    "PostgreSQL did not answer in time"));
    conn_lost (pc, "query did not answer in time");
  }
  return G_SOURCE_REMOVE;
}

static PgRequest *
request_new (CdPgPool *self, gpointer source_tag, const char *sql, const char *const *params,
             int n_params, GCancellable *cancellable, GAsyncReadyCallback callback,
             gpointer user_data)
{
  PgRequest *req = g_new0 (PgRequest, 1);

  req->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (req->task, source_tag);
  req->sql = g_strdup (sql);
  req->n_params = n_params;
  if (n_params > 0) {
    req->params = g_new0 (char *, (gsize) n_params + 1);
    for (int i = 0; i < n_params; i++)
      req->params[i] = g_strdup (params[i]);
  }
  return req;
}

static void
pool_enqueue (CdPgPool *self, PgRequest *req)
{
  if (self->closed) {
    request_fail (
        req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_CLOSED, "the PostgreSQL pool is closed"));
    return;
  }
  req->timeout_id = g_timeout_add (self->query_timeout_ms, on_request_timeout, req);
  g_queue_push_tail (&self->waiting, req);
  pool_dispatch (self);
}

/* The server enforces the query timeout (statement_timeout in the startup
 * options, so RESET on a session returns to it). */
static void
build_connect_params (CdPgPool *self)
{
  g_autoptr (GPtrArray) kw = g_ptr_array_new ();
  g_autoptr (GPtrArray) vals = g_ptr_array_new ();
  g_autofree char *options = NULL;
  char *err = NULL;
  PQconninfoOption *parsed = PQconninfoParse (self->conninfo, &err);

  if (parsed == NULL) {
    /* refused by config validation already; connecting will report it */
    g_ptr_array_add (kw, g_strdup ("dbname"));
    g_ptr_array_add (vals, g_strdup (self->conninfo));
    PQfreemem (err);
  } else {
    for (PQconninfoOption *o = parsed; o->keyword != NULL; o++) {
      if (o->val == NULL)
        continue;
      if (g_str_equal (o->keyword, "options")) {
        options = g_strdup (o->val);
        continue;
      }
      g_ptr_array_add (kw, g_strdup (o->keyword));
      g_ptr_array_add (vals, g_strdup (o->val));
    }
    PQconninfoFree (parsed);
  }
  g_ptr_array_add (kw, g_strdup ("fallback_application_name"));
  g_ptr_array_add (vals, g_strdup ("calldockerd"));
  g_ptr_array_add (kw, g_strdup ("options"));
  g_ptr_array_add (vals,
                   g_strdup_printf ("%s%s-c statement_timeout=%u%s%s", options ? options : "",
                                    options ? " " : "", self->query_timeout_ms,
                                    self->role ? " -c role=" : "", self->role ? self->role : ""));
  g_ptr_array_add (kw, NULL);
  g_ptr_array_add (vals, NULL);
  self->keywords = (char **) g_ptr_array_free (g_steal_pointer (&kw), FALSE);
  self->values = (char **) g_ptr_array_free (g_steal_pointer (&vals), FALSE);
}

static void
cd_pg_pool_finalize (GObject *object)
{
  CdPgPool *self = CD_PG_POOL (object);

  cd_pg_pool_close (self);
  g_ptr_array_unref (self->conns);
  g_free (self->conninfo);
  g_free (self->role);
  g_strfreev (self->keywords);
  g_strfreev (self->values);
  G_OBJECT_CLASS (cd_pg_pool_parent_class)->finalize (object);
}

static void
cd_pg_pool_class_init (CdPgPoolClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_pg_pool_finalize;
}

static void
cd_pg_pool_init (CdPgPool *self)
{
  self->conns = g_ptr_array_new_with_free_func (g_free);
  g_queue_init (&self->waiting);
}

/**
 * cd_pg_pool_new:
 * @conninfo: a libpq connection string
 * @size: connections to keep open
 * @query_timeout_ms: the longest a query may wait for a connection and an answer
 *
 * Returns: (transfer full): a pool that connects once cd_pg_pool_start() is called
 */
CdPgPool *
cd_pg_pool_new (const char *conninfo, guint size, guint query_timeout_ms, guint reconnect_min_ms,
                guint reconnect_max_ms)
{
  CdPgPool *self;

  g_return_val_if_fail (size > 0, NULL);
  self = g_object_new (CD_TYPE_PG_POOL, NULL);
  self->conninfo = g_strdup (conninfo);
  self->query_timeout_ms = MAX (query_timeout_ms, 1);
  self->reconnect_min_ms = MAX (reconnect_min_ms, 1);
  self->reconnect_max_ms = MAX (reconnect_max_ms, self->reconnect_min_ms);
  for (guint i = 0; i < size; i++) {
    PgConn *pc = g_new0 (PgConn, 1);
    pc->pool = self;
    pc->index = i;
    pc->io_fd = -1;
    g_ptr_array_add (self->conns, pc);
  }
  self->stats.size = size;
  return self;
}

/**
 * cd_pg_pool_start:
 *
 * Starts connecting every connection; failures are retried with backoff.
 */
void
cd_pg_pool_start (CdPgPool *self)
{
  g_return_if_fail (CD_IS_PG_POOL (self));
  if (self->started || self->closed)
    return;
  self->started = TRUE;
  build_connect_params (self);
  for (guint i = 0; i < self->conns->len; i++)
    conn_connect (g_ptr_array_index (self->conns, i));
}

/**
 * cd_pg_pool_close:
 *
 * Closes every connection; queued and running requests fail with
 * %CD_STORE_ERROR_CLOSED. Idempotent.
 */
void
cd_pg_pool_close (CdPgPool *self)
{
  PgRequest *req;

  g_return_if_fail (CD_IS_PG_POOL (self));
  if (self->closed)
    return;
  self->closed = TRUE;
  for (guint i = 0; i < self->conns->len; i++) {
    PgConn *pc = g_ptr_array_index (self->conns, i);
    PgRequest *current = g_steal_pointer (&pc->current);
    g_clear_handle_id (&pc->retry_id, g_source_remove);
    g_clear_handle_id (&pc->connect_timeout_id, g_source_remove);
    conn_clear_io (pc);
    g_clear_pointer (&pc->conn, PQfinish);
    if (pc->lease) {
      pc->lease->conn = NULL;
      pc->lease = NULL;
    }
    pc->state = CONN_DOWN;
    if (current)
      request_fail (current, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_CLOSED,
                                          "the PostgreSQL pool was closed"));
  }
  while ((req = g_queue_pop_head (&self->waiting)) != NULL)
    request_fail (
        req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_CLOSED, "the PostgreSQL pool was closed"));
}

/**
 * cd_pg_pool_is_connected:
 *
 * Returns: whether at least one connection is up
 */
gboolean
cd_pg_pool_is_connected (CdPgPool *self)
{
  for (guint i = 0; i < self->conns->len; i++) {
    PgConn *pc = g_ptr_array_index (self->conns, i);
    if (pc->state == CONN_READY && pc->setup_done)
      return TRUE;
  }
  return FALSE;
}

void
cd_pg_pool_get_stats (CdPgPool *self, CdPgPoolStats *stats)
{
  *stats = self->stats;
  stats->connected = stats->leased = stats->busy = 0;
  for (guint i = 0; i < self->conns->len; i++) {
    PgConn *pc = g_ptr_array_index (self->conns, i);
    stats->connected += pc->state == CONN_READY;
    stats->leased += pc->leased;
    stats->busy += pc->current != NULL;
  }
  stats->waiting = g_queue_get_length (&self->waiting);
}

/**
 * cd_pg_pool_query_async:
 * @sql: one statement with $1.. placeholders
 * @params: (array length=n_params) (nullable): text values; %NULL entries are SQL NULL
 *
 * Runs @sql on the first free connection.
 */
void
cd_pg_pool_query_async (CdPgPool *self, const char *sql, const char *const *params, int n_params,
                        GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_return_if_fail (CD_IS_PG_POOL (self));
  g_return_if_fail (sql != NULL);
  g_return_if_fail (n_params >= 0);

  pool_enqueue (self, request_new (self, cd_pg_pool_query_async, sql, params, n_params, cancellable,
                                   callback, user_data));
}

/**
 * cd_pg_pool_query_finish:
 *
 * Returns: (transfer full): the statement's result (status OK), or %NULL with @error
 */
PGresult *
cd_pg_pool_query_finish (CdPgPool *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * cd_pg_pool_acquire_async:
 *
 * Leases a connection for a sequence of statements (a transaction). Release
 * it with cd_pg_lease_release(); an open transaction is rolled back then.
 */
void
cd_pg_pool_acquire_async (CdPgPool *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                          gpointer user_data)
{
  PgRequest *req;

  g_return_if_fail (CD_IS_PG_POOL (self));
  req = request_new (self, cd_pg_pool_acquire_async, "", NULL, 0, cancellable, callback, user_data);
  req->for_lease = TRUE;
  pool_enqueue (self, req);
}

/**
 * cd_pg_pool_acquire_finish:
 *
 * Returns: (transfer full): the lease
 */
CdPgLease *
cd_pg_pool_acquire_finish (CdPgPool *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

static gboolean
on_lease_request_timeout (gpointer user_data)
{
  PgRequest *req = user_data;
  G_GNUC_UNUSED g_autoptr (CdPgPool) hold = g_object_ref (req->conn->pool);

  req->timeout_id = 0;
  req->conn->pool->stats.timeouts++;
  conn_lost (req->conn, "query did not answer in time");
  return G_SOURCE_REMOVE;
}

static void
lease_submit (CdPgLease *lease, PgRequest *req, guint timeout_ms)
{
  PgConn *pc = lease->conn;

  if (lease->released || pc == NULL || pc->generation != lease->generation ||
      pc->state != CONN_READY) {
    request_fail (req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE,
                                    "the leased PostgreSQL connection was lost"));
    return;
  }
  if (pc->current != NULL) {
    request_fail (req, g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_QUERY,
                                    "a statement is already running on this lease"));
    return;
  }
  conn_run (pc, req);
  if (pc->current == req && timeout_ms > 0)
    req->timeout_id = g_timeout_add (timeout_ms, on_lease_request_timeout, req);
}

/**
 * cd_pg_lease_query_async:
 * @timeout_ms: client-side deadline; 0 for none (the session's
 *   statement_timeout still applies unless changed on the lease)
 */
void
cd_pg_lease_query_async (CdPgLease *lease, const char *sql, const char *const *params, int n_params,
                         guint timeout_ms, GCancellable *cancellable, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  lease_submit (lease,
                request_new (lease->pool, cd_pg_lease_query_async, sql, params, n_params,
                             cancellable, callback, user_data),
                timeout_ms);
}

/**
 * cd_pg_lease_exec_script_async:
 * @script: several SQL statements separated by semicolons (no parameters)
 *
 * Runs a script such as a migration file; fails on its first error.
 */
void
cd_pg_lease_exec_script_async (CdPgLease *lease, const char *script, guint timeout_ms,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  PgRequest *req = request_new (lease->pool, cd_pg_lease_query_async, script, NULL, 0, cancellable,
                                callback, user_data);
  req->script = TRUE;
  lease_submit (lease, req, timeout_ms);
}

PGresult *
cd_pg_lease_query_finish (CdPgLease *lease, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, lease->pool), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

CdPgPool *
cd_pg_lease_get_pool (CdPgLease *lease)
{
  return lease->pool;
}

/**
 * cd_pg_lease_release:
 *
 * Gives the connection back. A transaction left open is rolled back first;
 * a statement still running makes the connection be dropped.
 */
void
cd_pg_lease_release (CdPgLease *lease)
{
  PgConn *pc;

  if (lease == NULL)
    return;
  pc = lease->conn;
  lease->released = TRUE;
  if (pc != NULL && pc->generation == lease->generation && pc->lease == lease) {
    pc->lease = NULL;
    pc->leased = FALSE;
    if (pc->current != NULL) {
      conn_lost (pc, "lease released while a statement was running");
    } else if (PQtransactionStatus (pc->conn) != PQTRANS_IDLE) {
      PgRequest *rollback = g_new0 (PgRequest, 1);
      rollback->sql = g_strdup ("ROLLBACK");
      conn_run (pc, rollback);
    } else {
      pool_dispatch (pc->pool);
    }
  }
  g_object_unref (lease->pool);
  g_free (lease);
}

/**
 * cd_pg_pool_set_role:
 * @role: (nullable): a role name ([a-z_][a-z0-9_]*) to run as, or %NULL
 *
 * Every connection runs as @role (the startup option `role`), e.g. a role
 * that row-level security applies to. Call before cd_pg_pool_start().
 */
void
cd_pg_pool_set_role (CdPgPool *self, const char *role)
{
  g_return_if_fail (CD_IS_PG_POOL (self));
  g_return_if_fail (!self->started);
  g_return_if_fail (role == NULL || cd_pg_is_identifier (role));
  g_free (self->role);
  self->role = g_strdup (role);
}

gboolean
cd_pg_is_identifier (const char *name)
{
  if (name == NULL || name[0] == '\0' || strlen (name) > 63)
    return FALSE;
  if (!g_ascii_islower (name[0]) && name[0] != '_')
    return FALSE;
  for (const char *p = name; *p; p++) {
    if (!g_ascii_islower (*p) && !g_ascii_isdigit (*p) && *p != '_')
      return FALSE;
  }
  return TRUE;
}

/**
 * cd_pg_pool_query_scoped_async:
 * @scope: whose rows the statement may see
 *
 * Runs one statement in its own transaction with the tenant settings that
 * row-level security reads (calldocker.company_id, calldocker.scope), in a
 * single round trip (pipeline mode).
 */
void
cd_pg_pool_query_scoped_async (CdPgPool *self, const CdPgScope *scope, const char *sql,
                               const char *const *params, int n_params, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  PgRequest *req;

  g_return_if_fail (CD_IS_PG_POOL (self));
  g_return_if_fail (scope != NULL);
  req = request_new (self, cd_pg_pool_query_async, sql, params, n_params, cancellable, callback,
                     user_data);
  req->scoped = TRUE;
  req->scope_company = g_strdup (scope->company_id);
  req->scope_platform = scope->platform;
  pool_enqueue (self, req);
}
