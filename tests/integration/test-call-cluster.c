/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Two daemons on one PostgreSQL and one Redis: an agent signed in to both
 * is reserved by one daemon at a time (never two calls at once), and a
 * daemon that dies loses its reservation when the lease runs out, so the
 * other daemon's waiting call reaches the agent. */

#include "auth/cd-password.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"
#include "cd-test-ws.h"
#include "routing/cd-presence.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://shop.test"

static CdTestStores *stores;
static char *dir;
static char *company;
static char *password_file;
static guint agent_count;

/* ---- the database, as its owner ---- */

static PGresult *
sql (const char *query, const char *const *params, int n_params)
{
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (stores->pg_conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  PGresult *res;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (owner, query, params, n_params, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (owner);
  return res;
}

static char *
new_agent (void)
{
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
  g_autofree char *email = g_strdup_printf ("agent%u@shop.test", ++agent_count);
  const char *params[] = { company, email, hash };
  PGresult *res = sql ("INSERT INTO users (company_id, email, password_hash, role, display_name)"
                       " VALUES ($1, $2, $3, 'agent', 'Agent') RETURNING id",
                       params, 3);

  PQclear (res);
  return g_steal_pointer (&email);
}

/* The call's timeline kinds, in order, joined by spaces. */
static char *
timeline (const char *call_id)
{
  const char *params[] = { call_id };
  g_autoptr (PGresult) res = sql (
      "SELECT string_agg(kind || coalesce(':' || (detail->>'reason'), ''), ' ' ORDER BY at, id)"
      " FROM call_events WHERE call_id = $1",
      params, 1);

  return g_strdup (PQgetisnull (res, 0, 0) ? "" : PQgetvalue (res, 0, 0));
}

/* The call's @column (a timestamp) in seconds since the epoch, once the
 * daemon has written it (the call store writes behind). */
static double
epoch_of (const char *call_id, const char *column)
{
  g_autofree char *query =
      g_strdup_printf ("SELECT extract(epoch FROM %s) FROM calls WHERE id = $1", column);
  const char *params[] = { call_id };
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  for (;;) {
    g_autoptr (PGresult) res = sql (query, params, 1);

    if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 0))
      return g_ascii_strtod (PQgetvalue (res, 0, 0), NULL);
    if (g_get_monotonic_time () > deadline)
      g_error ("call %s has no %s", call_id, column);
    cd_test_iterate (200);
  }
}

/* ---- daemons and peers ---- */

static CdTestDaemon *
daemon_start (const char *name)
{
  g_autofree char *config = g_strdup_printf ("%s/%s.conf", dir, name);
  g_autofree char *state = g_strdup_printf ("%s/%s", dir, name);
  g_autofree char *text = g_strdup_printf ("[postgres]\nconninfo = %s\n[redis]\nurl = unix:%s\n",
                                           stores->pg_conninfo, stores->redis_address->path);
  const char *args[] = { "--config", config, NULL };
  const char *env[] = {
    "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1", "CALLDOCKER_CALLS_RESERVATION_LEASE_S=2",
    "CALLDOCKER_SIGNAL_RESUME_GRACE_S=1", "CALLDOCKER_WIDGET_SESSION_LIMIT_PER_ADDRESS=1000",
    "CALLDOCKER_AUTH_LOGIN_LIMIT_PER_ADDRESS=1000", "CALLDOCKER_CALLS_MAX_WAIT_S=120",
    /* idle sessions wait while hundreds more are opened */
    "CALLDOCKER_SIGNAL_KEEPALIVE_S=600", NULL
  };
  CdTestDaemon *d;

  g_assert_true (g_file_set_contents (config, text, -1, NULL));
  d = cd_test_daemon_spawn (state, args, env);
  cd_test_daemon_wait_ready (d, 60000);
  return d;
}

/* Sends @sig and waits for the daemon to exit; its log stays readable. */
static void
daemon_kill (CdTestDaemon *d, int sig)
{
  if (!d->exited) {
    kill (g_ascii_strtoll (g_subprocess_get_identifier (d->process), NULL, 10), sig);
    cd_test_daemon_wait_exit (d, 30000);
  }
}

static void
daemon_stop (CdTestDaemon *d, int sig)
{
  daemon_kill (d, sig);
  cd_test_daemon_free (d);
}

/* The daemon's log lines that mention @what, on stderr. */
static void
daemon_show_lines (CdTestDaemon *d, const char *name, const char *what)
{
  g_auto (GStrv) lines = g_strsplit (d->err->str, "\n", -1);

  g_printerr ("daemon %s, its lines about %s:\n", name, what);
  for (guint k = 0; lines[k]; k++)
    if (strstr (lines[k], what))
      g_printerr ("  %s\n", lines[k]);
}

static CdTestPeer *
peer_start (CdTestDaemon *d, const char *name, ...)
{
  CdTestPeer *p;
  va_list args;

  va_start (args, name);
  p = cd_test_peer_start_va (name, d->base_url, NULL, args);
  va_end (args);
  return p;
}

static JsonObject *
only_call (JsonObject *report)
{
  JsonArray *calls = json_object_get_array_member (report, "calls");

  g_assert_cmpuint (json_array_get_length (calls), ==, 1);
  return json_array_get_object_element (calls, 0);
}

static const char *
call_id_of (JsonObject *report)
{
  return json_object_get_string_member (only_call (report), "call_id");
}

/* ---- tests ---- */

/* One agent, signed in to both daemons; a visitor calls each at the same
 * moment. Only one daemon wins the agent's reservation: the other call
 * waits, its timeline says why, and reaches the agent once the first
 * ends. Without the shared reservation both would ring at once and the
 * agent (who takes whatever is offered) would hold two calls. */
static void
test_one_agent_two_daemons (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autofree char *email = new_agent ();
  CdTestPeer *agent_a = peer_start (a, "calldocker-agent", "--email", email, "--password-file",
                                    password_file, "--calls", "1", "--timeout", "40", NULL);
  CdTestPeer *agent_b = peer_start (b, "calldocker-agent", "--email", email, "--password-file",
                                    password_file, "--calls", "1", "--timeout", "40", NULL);
  CdTestPeer *visitor_a, *visitor_b;
  g_autoptr (JsonObject) report_a = NULL;
  g_autoptr (JsonObject) report_b = NULL;
  g_autoptr (JsonObject) agent_report_a = NULL;
  g_autoptr (JsonObject) agent_report_b = NULL;
  g_autofree char *first_timeline = NULL;
  g_autofree char *second_timeline = NULL;
  const char *first, *second;
  double after_end;
  gboolean good_a, good_b;

  cd_test_sleep (1500); /* both sessions sign in and say available */
  visitor_a = peer_start (a, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "3", "--expect-hz", "880", "--timeout", "40", NULL);
  visitor_b = peer_start (b, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "3", "--expect-hz", "880", "--timeout", "40", NULL);
  report_a = cd_test_peer_finish (visitor_a, 90000, &good_a);
  report_b = cd_test_peer_finish (visitor_b, 90000, &good_b);
  agent_report_a = cd_test_peer_finish (agent_a, 90000, NULL);
  agent_report_b = cd_test_peer_finish (agent_b, 90000, NULL);
  /* both visitors talked to the agent and heard its tone */
  g_assert_true (good_a);
  g_assert_true (good_b);
  g_assert_cmpstr (json_object_get_string_member (only_call (report_a), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpstr (json_object_get_string_member (only_call (report_b), "end_reason"), ==,
                   "visitor-hangup");
  /* each daemon's agent session took its own daemon's call */
  g_assert_cmpstr (call_id_of (agent_report_a), ==, call_id_of (report_a));
  g_assert_cmpstr (call_id_of (agent_report_b), ==, call_id_of (report_b));

  /* one after the other: whichever was answered first ended before the
   * other was answered */
  if (epoch_of (call_id_of (report_a), "answered_at") <=
      epoch_of (call_id_of (report_b), "answered_at")) {
    first = call_id_of (report_a);
    second = call_id_of (report_b);
  } else {
    first = call_id_of (report_b);
    second = call_id_of (report_a);
  }
  after_end = epoch_of (second, "answered_at") - epoch_of (first, "ended_at");
  g_test_message ("the second call was answered %.2f s after the first ended", after_end);
  g_assert_cmpfloat (after_end, >=, 0);
  first_timeline = timeline (first);
  second_timeline = timeline (second);
  g_test_message ("first: %s", first_timeline);
  g_test_message ("second: %s", second_timeline);
  g_assert_null (strstr (first_timeline, "agent.held"));
  g_assert_nonnull (strstr (second_timeline, "agent.held:reserved-elsewhere"));
  g_assert_true (strstr (second_timeline, "agent.held") <
                 strstr (second_timeline, "agent.offered"));

  daemon_stop (a, SIGTERM);
  daemon_stop (b, SIGTERM);
}

/* The agent is on a call through daemon A when A is killed: its
 * reservation is no longer renewed, lapses after the lease (2 s here), and
 * daemon B's waiting call is offered to the agent's session on B. */
static void
test_dead_daemon_releases_agent (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autofree char *email = new_agent ();
  CdTestPeer *agent_a = peer_start (a, "calldocker-agent", "--email", email, "--password-file",
                                    password_file, "--calls", "1", "--timeout", "60", NULL);
  CdTestPeer *visitor_a, *agent_b, *visitor_b;
  g_autoptr (JsonObject) report_b = NULL;
  g_autoptr (JsonObject) agent_report_b = NULL;
  g_autofree char *held_timeline = NULL;
  gboolean good_b;
  gint64 deadline;
  guint connected = 0;

  cd_test_sleep (1000);
  visitor_a = peer_start (a, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "60", "--timeout", "60", NULL);
  /* the agent talks through A */
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while (connected == 0 && g_get_monotonic_time () < deadline) {
    g_autoptr (PGresult) res = sql (
        "SELECT count(*) FROM calls WHERE answered_at IS NOT NULL AND ended_at IS NULL", NULL, 0);
    connected = (guint) g_ascii_strtoull (PQgetvalue (res, 0, 0), NULL, 10);
    if (connected == 0)
      cd_test_iterate (200);
  }
  g_assert_cmpuint (connected, ==, 1);

  /* the same agent on B; a visitor calls B and waits: A holds the agent */
  agent_b = peer_start (b, "calldocker-agent", "--email", email, "--password-file", password_file,
                        "--calls", "1", "--timeout", "60", NULL);
  cd_test_sleep (1000);
  visitor_b = peer_start (b, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                          "--hold", "3", "--expect-hz", "880", "--timeout", "60", NULL);
  cd_test_sleep (3000);
  {
    g_autoptr (PGresult) res = sql ("SELECT id FROM calls WHERE answered_at IS NULL"
                                    " AND ended_at IS NULL",
                                    NULL, 0);
    g_assert_cmpint (PQntuples (res), ==, 1);
    held_timeline = timeline (PQgetvalue (res, 0, 0));
    g_test_message ("waiting on B: %s", held_timeline);
    g_assert_nonnull (strstr (held_timeline, "agent.held:reserved-elsewhere"));
    g_assert_null (strstr (held_timeline, "agent.offered"));
  }

  /* A dies without a word */
  daemon_stop (a, SIGKILL);
  report_b = cd_test_peer_finish (visitor_b, 90000, &good_b);
  agent_report_b = cd_test_peer_finish (agent_b, 90000, NULL);
  g_assert_true (good_b);
  g_assert_cmpstr (json_object_get_string_member (only_call (report_b), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpstr (call_id_of (agent_report_b), ==, call_id_of (report_b));
  json_object_unref (cd_test_peer_finish (visitor_a, 90000, NULL));
  json_object_unref (cd_test_peer_finish (agent_a, 90000, NULL));
  daemon_stop (b, SIGTERM);
}

/* ---- many calls, many agents, signaling only ---- */

#define DESK_AGENTS 20

/* An agent signed in to both daemons, played by the test: it accepts
 * every offer, holds the call a moment (or until told), then hangs up. An
 * offer that reaches it while it holds a call is a violation. */
typedef struct {
  char *user_id;
  CdTestWs *ws[2]; /* its sessions on daemon a and b */
  guint seen[2];   /* messages handled so far */
  char *call_id;   /* the call it holds */
  int call_on;     /* through which session */
  gint64 hangup_at_us;
  guint taken[2];
} DeskAgent;

typedef struct {
  DeskAgent agents[DESK_AGENTS];
  guint violations;
  gboolean hold;        /* keep calls until told */
  GHashTable *accepted; /* call id -> times accepted */
  CdTestDaemon *daemons[2];
} Desk;

static void
desk_open (Desk *d, CdTestDaemon *a, CdTestDaemon *b, gboolean hold)
{
  memset (d, 0, sizeof *d);
  d->hold = hold;
  d->accepted = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  d->daemons[0] = a;
  d->daemons[1] = b;
  for (guint i = 0; i < DESK_AGENTS; i++) {
    g_autofree char *email = new_agent ();
    g_autofree char *token_a = cd_test_login (a->base_url, email, PASSWORD);
    g_autofree char *token_b = cd_test_login (b->base_url, email, PASSWORD);

    d->agents[i].user_id = cd_test_user_id (token_a);
    d->agents[i].ws[0] = cd_test_ws_agent_online (a->base_url, token_a, "available");
    d->agents[i].ws[1] = cd_test_ws_agent_online (b->base_url, token_b, "available");
  }
}

static void
desk_close (Desk *d)
{
  for (guint i = 0; i < DESK_AGENTS; i++) {
    for (int side = 0; side < 2; side++)
      g_clear_pointer (&d->agents[i].ws[side], cd_test_ws_free);
    g_free (d->agents[i].user_id);
    g_free (d->agents[i].call_id);
  }
  g_hash_table_unref (d->accepted);
}

/* Handles what reached the agents since the last step. */
static void
desk_step (Desk *d)
{
  gint64 now = g_get_monotonic_time ();

  for (guint i = 0; i < DESK_AGENTS; i++) {
    DeskAgent *g = &d->agents[i];

    for (int side = 0; side < 2; side++) {
      CdTestWs *ws = g->ws[side];

      for (; ws && g->seen[side] < ws->received->len; g->seen[side]++) {
        JsonObject *m = g_ptr_array_index (ws->received, g->seen[side]);
        const char *type = json_object_get_string_member_with_default (m, "type", "");
        const char *call_id = json_object_get_string_member_with_default (m, "call_id", "");

        if (soup_websocket_connection_get_state (ws->ws) != SOUP_WEBSOCKET_STATE_OPEN &&
            !d->daemons[side]->exited) {
          /* the daemon is alive: it should not have closed the session */
          g_auto (GStrv) lines = g_strsplit (d->daemons[side]->err->str, "\n", -1);
          guint n = g_strv_length (lines);

          for (guint k = n > 40 ? n - 40 : 0; k < n; k++)
            g_printerr ("%s\n", lines[k]);
          g_error ("agent %s: daemon %c closed its session (code %u: %s)", g->user_id, 'a' + side,
                   soup_websocket_connection_get_close_code (ws->ws),
                   soup_websocket_connection_get_close_data (ws->ws));
        }
        if (g_str_equal (type, "call.offer")) {
          if (g->call_id) {
            d->violations++;
            g_printerr (
                "agent %s was offered call %s through %c while holding call %s through %c\n",
                g->user_id, call_id, 'a' + side, g->call_id, 'a' + g->call_on);
            daemon_show_lines (d->daemons[0], "a", g->user_id);
            daemon_show_lines (d->daemons[1], "b", g->user_id);
            cd_test_ws_send (ws, "{\"type\":\"call.reject\",\"call_id\":\"%s\"}", call_id);
            continue;
          }
          cd_test_ws_send (ws, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", call_id);
          g->call_id = g_strdup (call_id);
          g->call_on = side;
          g->hangup_at_us = d->hold ? 0 : now + 100 * 1000;
          g->taken[side]++;
          g_hash_table_insert (
              d->accepted, g_strdup (call_id),
              GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (d->accepted, call_id)) + 1));
        } else if (g_str_equal (type, "call.state") && g->call_id &&
                   g_str_equal (call_id, g->call_id) &&
                   g_strcmp0 (json_object_get_string_member_with_default (m, "state", ""),
                              "ended") == 0) {
          g_clear_pointer (&g->call_id, g_free);
        }
      }
      /* its daemon is gone: so is the call it held there */
      if (ws && ws->closed && g->call_id && g->call_on == side)
        g_clear_pointer (&g->call_id, g_free);
    }
    if (g->call_id && g->hangup_at_us && now >= g->hangup_at_us) {
      cd_test_ws_send (g->ws[g->call_on], "{\"type\":\"hangup\",\"call_id\":\"%s\"}", g->call_id);
      g->hangup_at_us = 0;
    }
  }
}

static guint
desk_holding (Desk *d)
{
  guint n = 0;

  for (guint i = 0; i < DESK_AGENTS; i++)
    n += d->agents[i].call_id != NULL;
  return n;
}

typedef struct {
  CdTestWs *ws;
  char *call_id;
  char *end_reason;
} Visitor;

static Visitor *
visitors_call (CdTestDaemon *d, guint n)
{
  Visitor *v = g_new0 (Visitor, n);

  for (guint i = 0; i < n; i++) {
    g_autofree char *token = cd_test_visitor_token (d->base_url, company, ORIGIN);
    v[i].ws = cd_test_ws_connect (d->base_url, token);
  }
  /* all at once */
  for (guint i = 0; i < n; i++)
    cd_test_ws_send (v[i].ws, "{\"type\":\"call.start\"}");
  return v;
}

/* Whether every visitor's call ended, noting how. */
static gboolean
visitors_ended (Visitor *v, guint n)
{
  gboolean all = TRUE;

  for (guint i = 0; i < n; i++) {
    JsonObject *created, *ended;

    if (v[i].end_reason)
      continue;
    created = cd_test_ws_find (v[i].ws, 0, "call.created", NULL);
    if (created && v[i].call_id == NULL)
      v[i].call_id = g_strdup (json_object_get_string_member (created, "call_id"));
    ended =
        v[i].call_id ? cd_test_ws_find_where (v[i].ws, 0, "call.state", "state", "ended") : NULL;
    if (ended)
      v[i].end_reason = g_strdup (json_object_get_string_member (ended, "reason"));
    else
      all = FALSE;
  }
  return all;
}

static void
visitors_free (Visitor *v, guint n)
{
  for (guint i = 0; i < n; i++) {
    cd_test_ws_free (v[i].ws);
    g_free (v[i].call_id);
    g_free (v[i].end_reason);
  }
  g_free (v);
}

/* The agent's state as Redis has it (a lapsed lease reads as available
 * with reason lease-expired), and whether a reservation key exists. */
static CdAgentPresence *
presence_of (CdPresence *p, CdRedis *redis, const char *agent_id, gboolean *reserved)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GAsyncResult) exists = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *key = g_strdup_printf ("cd:reservation:%s:%s", company, agent_id);
  const char *argv[] = { "EXISTS", key };
  g_autoptr (CdRedisReply) reply = NULL;
  CdAgentPresence *presence;

  cd_presence_get_async (p, company, agent_id, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  presence = cd_presence_get_finish (p, result, &error);
  g_assert_no_error (error);
  cd_redis_command_async (redis, argv, NULL, 2, NULL, cd_test_capture, &exists);
  cd_test_wait_result (&exists, 10000);
  reply = cd_redis_command_finish (redis, exists, &error);
  g_assert_no_error (error);
  g_assert_cmpint (reply->type, ==, CD_REDIS_REPLY_INTEGER);
  *reserved = reply->integer == 1;
  return presence;
}

static CdRedis *
redis_client (void)
{
  CdRedis *redis = cd_redis_new (stores->redis_address, 2000, 20, 200);

  cd_redis_start (redis);
  WAIT_UNTIL (cd_redis_is_connected (redis), 10000);
  return redis;
}

/* 200 by default; CD_CLUSTER_CALLS (even) for a slow build such as the
 * sanitizers' */
static guint cluster_calls = 200;

/* Where things stand, on stderr, when the calls did not all end in time. */
static void
desk_explain (Desk *d, Visitor *va, Visitor *vb, guint n)
{
  guint created = 0, ended = 0, closed = 0;

  for (guint i = 0; i < 2 * n; i++) {
    Visitor *v = i < n ? &va[i] : &vb[i - n];

    created += v->call_id != NULL;
    ended += v->end_reason != NULL;
    closed += v->ws->closed;
  }
  g_printerr ("visitors: %u calls created, %u ended, %u connections closed; "
              "%u calls accepted, %u agents holding one\n",
              created, ended, closed, g_hash_table_size (d->accepted), desk_holding (d));
  for (guint i = 0; i < DESK_AGENTS; i++)
    g_printerr ("agent %s: took %u + %u, holds %s, sessions %s/%s\n", d->agents[i].user_id,
                d->agents[i].taken[0], d->agents[i].taken[1],
                d->agents[i].call_id ? d->agents[i].call_id : "nothing",
                d->agents[i].ws[0]->closed ? "closed" : "open",
                d->agents[i].ws[1]->closed ? "closed" : "open");
}

/* A Redis command's reply, readable (for the explanations below). */
static char *
redis_show (CdRedis *redis, const char *const *argv, int argc)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) reply = NULL;
  GString *s = g_string_new (NULL);

  cd_redis_command_async (redis, argv, NULL, argc, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  reply = cd_redis_command_finish (redis, result, &error);
  if (reply == NULL)
    g_string_append_printf (s, "(error: %s)", error->message);
  else if (reply->type == CD_REDIS_REPLY_ARRAY)
    for (gsize i = 0; i < reply->n_elements; i++)
      g_string_append_printf (s, "%s%s", i ? (i % 2 ? "=" : " ") : "",
                              reply->elements[i]->str ? reply->elements[i]->str : "?");
  else if (reply->type == CD_REDIS_REPLY_INTEGER)
    g_string_append_printf (s, "%" G_GINT64_FORMAT, reply->integer);
  else
    g_string_append (s, reply->str ? reply->str : "nil");
  return g_string_free (s, FALSE);
}

/* Where each agent stands, for the test and in Redis (read without
 * changing it), and what @live's log says of those not yet on one of
 * @live's calls and of @waiting's calls (@n of them, or none), on stderr:
 * the last of the log first, the test's view last (a test log may keep
 * only its end). */
static void
desk_explain_agents (Desk *d, CdRedis *redis, CdTestDaemon *live, Visitor *waiting, guint n)
{
  g_auto (GStrv) lines = g_strsplit (live->err->str, "\n", -1);
  guint n_lines = g_strv_length (lines);
  int side = live == d->daemons[0] ? 0 : 1;

  g_printerr ("the last of the live daemon's log:\n");
  for (guint k = n_lines > 30 ? n_lines - 30 : 0; k < n_lines; k++)
    g_printerr ("%s\n", lines[k]);
  for (guint i = 0; i < DESK_AGENTS; i++)
    if (d->agents[i].taken[side] == 0)
      daemon_show_lines (live, "live", d->agents[i].user_id);
  for (guint i = 0; waiting && i < n; i++) {
    JsonObject *created = cd_test_ws_find (waiting[i].ws, 0, "call.created", NULL);
    const char *call_id = created ? json_object_get_string_member (created, "call_id") : NULL;
    GString *states = g_string_new (NULL);

    if (call_id && g_hash_table_contains (d->accepted, call_id))
      continue;
    if (call_id)
      daemon_show_lines (live, "live", call_id);
    for (guint k = 0; k < waiting[i].ws->received->len; k++) {
      JsonObject *m = g_ptr_array_index (waiting[i].ws->received, k);
      g_string_append_printf (states, " %s%s%s",
                              json_object_get_string_member_with_default (m, "type", "?"),
                              json_object_has_member (m, "state") ? ":" : "",
                              json_object_get_string_member_with_default (m, "state", ""));
    }
    g_printerr ("visitor %u: call %s, not taken, connection %s; it received:%s\n", i,
                call_id ? call_id : "(none)", waiting[i].ws->closed ? "closed" : "open",
                states->str);
    g_string_free (states, TRUE);
  }
  for (guint i = 0; i < DESK_AGENTS; i++) {
    DeskAgent *g = &d->agents[i];
    g_autofree char *agent_key = g_strdup_printf ("cd:agent:%s:%s", company, g->user_id);
    g_autofree char *reservation_key =
        g_strdup_printf ("cd:reservation:%s:%s", company, g->user_id);
    const char *hgetall[] = { "HGETALL", agent_key };
    const char *get[] = { "GET", reservation_key };
    const char *pttl[] = { "PTTL", reservation_key };
    g_autofree char *hash = redis_show (redis, hgetall, 2);
    g_autofree char *holder = redis_show (redis, get, 2);
    g_autofree char *ttl = redis_show (redis, pttl, 2);

    g_printerr ("agent %s: took %u + %u, holds %s, sessions %s/%s; Redis: %s; reservation %s "
                "(%s ms left)\n",
                g->user_id, g->taken[0], g->taken[1], g->call_id ? g->call_id : "nothing",
                g->ws[0]->closed ? "closed" : "open", g->ws[1]->closed ? "closed" : "open", hash,
                holder, ttl);
  }
  g_printerr ("%u offers reached an agent holding a call\n", d->violations);
}

/* Every agent takes one of as many calls made through @via and holds it;
 * the visitors. */
static Visitor *
desk_hold_all (Desk *d, CdTestDaemon *via, CdRedis *redis)
{
  Visitor *v = visitors_call (via, DESK_AGENTS);
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;

  while (desk_holding (d) < DESK_AGENTS) {
    if (g_get_monotonic_time () > deadline)
      desk_explain_agents (d, redis, via, v, DESK_AGENTS);
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    desk_step (d);
    cd_test_iterate (10);
  }
  return v;
}

/* The agents go on handling what reaches them for @ms; none is offered a
 * call while holding one (each such offer is printed on stderr). */
static void
desk_run (Desk *d, guint ms)
{
  gint64 deadline = g_get_monotonic_time () + ms * 1000;

  while (g_get_monotonic_time () < deadline) {
    desk_step (d);
    g_assert_cmpuint (d->violations, ==, 0);
    cd_test_iterate (10);
  }
}

/* 200 calls at once, 100 through each daemon, for 20 agents signed in to
 * both: no agent is ever offered a call while it holds one, every call is
 * taken exactly once, and afterwards no agent is left reserved (each was
 * released, none merely lapsed). */
static void
test_many_calls_many_agents (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autoptr (CdRedis) redis = redis_client ();
  g_autoptr (CdPresence) presence = cd_presence_new (redis, "test", 1000);
  Desk desk;
  Visitor *va, *vb;
  gint64 started, deadline;
  guint taken_a = 0, taken_b = 0, agent_hangups = 0;

  desk_open (&desk, a, b, FALSE);
  started = g_get_monotonic_time ();
  va = visitors_call (a, cluster_calls / 2);
  vb = visitors_call (b, cluster_calls / 2);
  deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  while (!(visitors_ended (va, cluster_calls / 2) && visitors_ended (vb, cluster_calls / 2))) {
    if (g_get_monotonic_time () > deadline)
      desk_explain (&desk, va, vb, cluster_calls / 2);
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    desk_step (&desk);
    g_assert_cmpuint (desk.violations, ==, 0); /* (each is printed on stderr) */
    cd_test_iterate (10);
  }
  g_test_message ("%u calls through two daemons for %u agents in %.1f s", cluster_calls,
                  DESK_AGENTS, (g_get_monotonic_time () - started) / 1e6);
  g_assert_cmpuint (desk.violations, ==, 0);
  for (guint i = 0; i < cluster_calls; i++) {
    Visitor *v = i < cluster_calls / 2 ? &va[i] : &vb[i - cluster_calls / 2];

    /* every call was taken, once; none waited past its time */
    g_assert_cmpuint (GPOINTER_TO_UINT (g_hash_table_lookup (desk.accepted, v->call_id)), ==, 1);
    agent_hangups += g_str_equal (v->end_reason, "agent-hangup");
  }
  g_assert_cmpuint (agent_hangups, ==, cluster_calls);
  for (guint i = 0; i < DESK_AGENTS; i++) {
    taken_a += desk.agents[i].taken[0];
    taken_b += desk.agents[i].taken[1];
  }
  g_test_message ("taken through a: %u, through b: %u", taken_a, taken_b);
  g_assert_cmpuint (taken_a, ==, cluster_calls / 2);
  g_assert_cmpuint (taken_b, ==, cluster_calls / 2);

  /* the releases are on their way when the calls end: give them a moment */
  cd_test_sleep (500);
  for (guint i = 0; i < DESK_AGENTS; i++) {
    gboolean reserved;
    g_autoptr (CdAgentPresence) p =
        presence_of (presence, redis, desk.agents[i].user_id, &reserved);

    g_assert_cmpstr (cd_agent_state_to_string (p->state), ==, "available");
    g_assert_cmpstr (p->reason, !=, "lease-expired");
    g_assert_false (reserved);
  }
  visitors_free (va, cluster_calls / 2);
  visitors_free (vb, cluster_calls / 2);
  desk_close (&desk);
  daemon_stop (a, SIGTERM);
  daemon_stop (b, SIGTERM);
}

/* Every agent is on a call through daemon A, and daemon B has as many
 * calls waiting, when A is killed: within the lease (2 s here) every
 * agent's reservation for A's calls has lapsed, and B's calls reach the
 * agents through their sessions on B. */
static void
test_killed_daemon_agents_recover (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autoptr (CdRedis) redis = redis_client ();
  g_autoptr (CdPresence) presence = cd_presence_new (redis, "test", 1000);
  g_autoptr (GHashTable) b_calls = g_hash_table_new (g_str_hash, g_str_equal);
  Desk desk;
  Visitor *va, *vb;
  gint64 deadline, killed;
  guint taken_b = 0;
  double recovered_s;

  desk_open (&desk, a, b, TRUE);
  va = desk_hold_all (&desk, a, redis);
  /* B's calls wait: every agent is held through A */
  vb = visitors_call (b, DESK_AGENTS);
  desk_run (&desk, 3000);
  for (guint i = 0; i < DESK_AGENTS; i++)
    g_assert_cmpuint (desk.agents[i].taken[1], ==, 0);

  daemon_kill (a, SIGKILL);
  killed = g_get_monotonic_time ();
  deadline = killed + 30 * G_USEC_PER_SEC;
  for (;;) {
    taken_b = 0;
    for (guint i = 0; i < DESK_AGENTS; i++)
      taken_b += desk.agents[i].taken[1];
    if (taken_b == DESK_AGENTS)
      break;
    if (g_get_monotonic_time () > deadline)
      desk_explain_agents (&desk, redis, b, vb, DESK_AGENTS);
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    desk_step (&desk);
    g_assert_cmpuint (desk.violations, ==, 0); /* (each is printed on stderr) */
    cd_test_iterate (10);
  }
  recovered_s = (g_get_monotonic_time () - killed) / 1e6;
  g_test_message ("all %u agents took a call through b %.1f s after a was killed", DESK_AGENTS,
                  recovered_s);
  /* the lease (2 s) and one retry (2 s) of the held agents, with room */
  g_assert_cmpfloat (recovered_s, <, 10);
  visitors_ended (vb, DESK_AGENTS);
  for (guint i = 0; i < DESK_AGENTS; i++) {
    g_assert_nonnull (cd_test_ws_find (vb[i].ws, 0, "call.created", NULL));
    g_hash_table_add (b_calls, (gpointer) json_object_get_string_member (
                                   cd_test_ws_find (vb[i].ws, 0, "call.created", NULL), "call_id"));
  }
  /* each agent is now on one of B's calls, none still on A's (the last
   * accepts were just sent: B stores their answers a moment later) */
  for (guint i = 0; i < DESK_AGENTS; i++) {
    gboolean reserved;
    g_autoptr (CdAgentPresence) p = NULL;
    gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;

    for (;;) {
      p = presence_of (presence, redis, desk.agents[i].user_id, &reserved);
      if (p->state != CD_AGENT_RESERVED || g_get_monotonic_time () > until)
        break;
      g_clear_pointer (&p, cd_agent_presence_free);
      desk_step (&desk);
      cd_test_iterate (50);
    }
    g_assert_cmpstr (cd_agent_state_to_string (p->state), ==, "on_call");
    g_assert_true (reserved);
    g_assert_true (g_hash_table_contains (b_calls, p->call_id));
  }
  g_assert_cmpuint (desk.violations, ==, 0);
  visitors_free (va, DESK_AGENTS);
  visitors_free (vb, DESK_AGENTS);
  desk_close (&desk);
  cd_test_daemon_free (a);
  daemon_stop (b, SIGTERM);
}

/* Daemon A stalls (stopped) for longer than the lease while every agent
 * is on a call through it, and nobody else wants the agents meanwhile:
 * when A runs again its renewals take the agents back, so the calls that
 * then wait on B are not offered to agents who are still talking. */
static void
test_stalled_daemon_keeps_agents (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autoptr (CdRedis) redis = redis_client ();
  g_autoptr (CdPresence) presence = cd_presence_new (redis, "test", 1000);
  pid_t pid_a;
  Desk desk;
  Visitor *va, *vb;

  desk_open (&desk, a, b, TRUE);
  va = desk_hold_all (&desk, a, redis);

  /* A stops for twice the lease (2 s); the leases lapse */
  pid_a = g_ascii_strtoll (g_subprocess_get_identifier (a->process), NULL, 10);
  kill (pid_a, SIGSTOP);
  cd_test_sleep (4000);
  {
    g_autofree char *key =
        g_strdup_printf ("cd:reservation:%s:%s", company, desk.agents[0].user_id);
    const char *exists[] = { "EXISTS", key };
    g_autofree char *held = redis_show (redis, exists, 2);

    g_assert_cmpstr (held, ==, "0");
  }
  kill (pid_a, SIGCONT);
  /* its renewals (every lease / 3) run again */
  cd_test_sleep (1500);

  /* B's calls wait: A holds every agent again */
  vb = visitors_call (b, DESK_AGENTS);
  desk_run (&desk, 4000);
  for (guint i = 0; i < DESK_AGENTS; i++) {
    gboolean reserved;
    g_autoptr (CdAgentPresence) p =
        presence_of (presence, redis, desk.agents[i].user_id, &reserved);

    g_assert_cmpuint (desk.agents[i].taken[1], ==, 0);
    if (p->state != CD_AGENT_ON_CALL) {
      desk_explain_agents (&desk, redis, a, NULL, 0);
      daemon_show_lines (a, "a", desk.agents[i].user_id);
    }
    g_assert_cmpstr (cd_agent_state_to_string (p->state), ==, "on_call");
    g_assert_true (reserved);
    g_assert_cmpstr (p->call_id, ==, desk.agents[i].call_id);
  }
  visitors_free (va, DESK_AGENTS);
  visitors_free (vb, DESK_AGENTS);
  desk_close (&desk);
  daemon_stop (a, SIGTERM);
  daemon_stop (b, SIGTERM);
}

/* An agent signed in to both daemons who leaves one stays available;
 * leaving the other too makes them offline. */
static void
test_sign_out_of_both (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autoptr (CdRedis) redis = redis_client ();
  g_autoptr (CdPresence) presence = cd_presence_new (redis, "test", 1000);
  g_autofree char *email = new_agent ();
  g_autofree char *token_a = cd_test_login (a->base_url, email, PASSWORD);
  g_autofree char *token_b = cd_test_login (b->base_url, email, PASSWORD);
  g_autofree char *agent_id = cd_test_user_id (token_a);
  CdTestWs *on_a = cd_test_ws_agent_online (a->base_url, token_a, "available");
  CdTestWs *on_b = cd_test_ws_agent_online (b->base_url, token_b, "available");
  gboolean reserved;
  gint64 deadline;

  cd_test_ws_free (on_a);
  cd_test_sleep (1000);
  {
    g_autoptr (CdAgentPresence) p = presence_of (presence, redis, agent_id, &reserved);
    g_assert_cmpstr (cd_agent_state_to_string (p->state), ==, "available");
  }
  cd_test_ws_free (on_b);
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  for (;;) {
    g_autoptr (CdAgentPresence) p = presence_of (presence, redis, agent_id, &reserved);

    if (p->state == CD_AGENT_OFFLINE)
      break;
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    cd_test_iterate (100);
  }
  daemon_stop (a, SIGTERM);
  daemon_stop (b, SIGTERM);
}

/* Daemon A rings an agent and stalls (stopped) past the lease; daemon B's
 * call reserves the agent meanwhile. When A runs again its renewal is
 * refused and it withdraws its offer (reserved-elsewhere): the agent is
 * never left ringing for two calls at once. */
static void
test_stalled_offer_withdrawn (void)
{
  CdTestDaemon *a = daemon_start ("a");
  CdTestDaemon *b = daemon_start ("b");
  g_autofree char *email = new_agent ();
  g_autofree char *token_a = cd_test_login (a->base_url, email, PASSWORD);
  g_autofree char *token_b = cd_test_login (b->base_url, email, PASSWORD);
  g_autoptr (CdTestWs) on_a = cd_test_ws_agent_online (a->base_url, token_a, "available");
  g_autoptr (CdTestWs) on_b = cd_test_ws_agent_online (b->base_url, token_b, "available");
  Visitor *va, *vb;
  const char *call_a, *call_b;
  JsonObject *offer_a, *offer_b, *ended = NULL;
  pid_t pid_a = g_ascii_strtoll (g_subprocess_get_identifier (a->process), NULL, 10);
  gint64 deadline;

  va = visitors_call (a, 1);
  offer_a = cd_test_ws_wait (on_a, 0, "call.offer", NULL);
  call_a = json_object_get_string_member (offer_a, "call_id");
  kill (pid_a, SIGSTOP);
  cd_test_sleep (2500); /* past the lease (2 s) */
  vb = visitors_call (b, 1);
  offer_b = cd_test_ws_wait (on_b, 0, "call.offer", NULL);
  call_b = json_object_get_string_member (offer_b, "call_id");
  g_assert_cmpstr (call_a, !=, call_b);
  kill (pid_a, SIGCONT);
  deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (ended == NULL) {
    g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    cd_test_iterate (50);
    ended = cd_test_ws_find_where (on_a, 0, "call.state", "state", "ended");
  }
  g_assert_cmpstr (json_object_get_string_member (ended, "call_id"), ==, call_a);
  g_assert_cmpstr (json_object_get_string_member (ended, "reason"), ==, "reserved-elsewhere");
  /* B's offer still rings, and A's call waits again */
  g_assert_null (cd_test_ws_find_where (on_b, 0, "call.state", "state", "ended"));
  {
    g_autofree char *t = NULL;
    gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

    for (;;) {
      g_free (t);
      t = timeline (call_a);
      if (strstr (t, "agent.declined:reserved-elsewhere"))
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, until);
      cd_test_iterate (200);
    }
    g_test_message ("A's call: %s", t);
  }
  visitors_free (va, 1);
  visitors_free (vb, 1);
  daemon_stop (a, SIGTERM);
  daemon_stop (b, SIGTERM);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  if (g_getenv ("CD_CLUSTER_CALLS"))
    cluster_calls =
        MAX (2, (guint) g_ascii_strtoull (g_getenv ("CD_CLUSTER_CALLS"), NULL, 10) / 2 * 2);
  stores = cd_test_stores_start ();
  dir = cd_test_make_tmp_dir ("cd-cluster-XXXXXX");
  {
    /* the first daemon creates the schema */
    CdTestDaemon *first = daemon_start ("a");
    g_autoptr (PGresult) res = NULL;

    daemon_stop (first, SIGTERM);
    res = sql ("INSERT INTO companies (name, slug, status, allowed_origins)"
               " VALUES ('Shop', 'shop', 'approved', ARRAY['" ORIGIN "']) RETURNING id",
               NULL, 0);
    company = g_strdup (PQgetvalue (res, 0, 0));
  }
  password_file = g_build_filename (dir, "agent-password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
  g_test_add_func ("/cluster/one-agent-two-daemons", test_one_agent_two_daemons);
  g_test_add_func ("/cluster/dead-daemon-releases-agent", test_dead_daemon_releases_agent);
  g_test_add_func ("/cluster/200-calls-20-agents", test_many_calls_many_agents);
  g_test_add_func ("/cluster/killed-daemon-agents-recover", test_killed_daemon_agents_recover);
  g_test_add_func ("/cluster/stalled-daemon-keeps-agents", test_stalled_daemon_keeps_agents);
  g_test_add_func ("/cluster/sign-out-of-both", test_sign_out_of_both);
  g_test_add_func ("/cluster/stalled-offer-withdrawn", test_stalled_offer_withdrawn);
  status = g_test_run ();
  cd_test_stores_stop (stores);
  cd_test_remove_tree (dir);
  g_free (company);
  g_free (password_file);
  return status;
}
