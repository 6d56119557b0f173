/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The signaling WebSocket against the real daemon: authentication by an
 * agent's or a visitor's token, presence, and bad messages answered with an
 * error or a closed connection, never with harm. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-ws.h"
#include "store/cd-pg-pool.h"
#include "auth/cd-password.h"

#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company;
static char *agent_token;
static char *admin_token;

typedef CdTestWs Client;

/* Sends @text and waits for the next message. */
static JsonObject *
exchange (Client *c, const char *text)
{
  guint before = c->received->len;

  soup_websocket_connection_send_text (c->ws, text);
  WAIT_UNTIL (c->received->len > before || c->closed, 10000);
  g_assert_cmpuint (c->received->len, >, before);
  return g_ptr_array_index (c->received, before);
}

static void
assert_reply (JsonObject *o, const char *type, const char *code)
{
  g_assert_cmpstr (json_object_get_string_member (o, "type"), ==, type);
  if (code)
    g_assert_cmpstr (json_object_get_string_member (o, "code"), ==, code);
}

static void
test_ping_and_bad_messages (void)
{
  Client *c = cd_test_ws_connect (daemon_proc->base_url, NULL);
  const struct {
    const char *text;
    const char *code;
  } bad[] = {
    { "not json", "invalid-json" },
    { "{\"type\":", "invalid-json" },
    { "[1,2]", "invalid-json" },
    { "{\"type\":\"a\",\"type\":\"b\"}", "invalid-json" },
    { "{}", "invalid-field" },
    { "{\"type\":42}", "invalid-field" },
    { "{\"type\":null}", "invalid-field" },
    { "{\"type\":\"presence.set\",\"status\":\"available\"}", "not-authenticated" },
    { "{\"type\":\"call.start\"}", "not-authenticated" },
    { "{\"type\":\"auth\"}", "invalid-field" },
    { "{\"type\":\"auth\",\"token\":42}", "invalid-field" },
  };

  assert_reply (exchange (c, "{\"type\":\"ping\"}"), "pong", NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_test_message ("%s", bad[i].text);
    assert_reply (exchange (c, bad[i].text), "error", bad[i].code);
  }
  /* still open, still answering */
  g_assert_false (c->closed);
  assert_reply (exchange (c, "{\"type\":\"ping\"}"), "pong", NULL);
  cd_test_ws_free (c);
}

static void
test_agent_session (void)
{
  Client *c = cd_test_ws_connect (daemon_proc->base_url, NULL);
  g_autofree char *auth = g_strdup_printf ("{\"type\":\"auth\",\"token\":\"%s\"}", agent_token);
  JsonObject *ok = exchange (c, auth);

  assert_reply (ok, "auth.ok", NULL);
  g_assert_cmpstr (json_object_get_string_member (ok, "role"), ==, "agent");
  g_assert_cmpstr (json_object_get_string_member (ok, "company_id"), ==, company);
  assert_reply (exchange (c, auth), "error", "out-of-order");
  assert_reply (exchange (c, "{\"type\":\"presence.set\",\"status\":\"available\"}"), "presence",
                NULL);
  assert_reply (exchange (c, "{\"type\":\"presence.set\",\"status\":\"asleep\"}"), "error",
                "invalid-field");
  assert_reply (exchange (c, "{\"type\":\"presence.set\",\"status\":\"away\",\"x\":1}"), "error",
                "invalid-field");
  assert_reply (exchange (c, "{\"type\":\"teleport\"}"), "error", "unknown-type");
  cd_test_ws_free (c);
}

static void
test_visitor_session (void)
{
  g_autofree char *u = g_strconcat (daemon_proc->base_url, "api/v1/widget/session", NULL);
  g_autofree char *json = g_strdup_printf ("{\"company_id\":\"%s\"}", company);
  const char *h[] = { "Origin", "https://shop.test", NULL };
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) session = NULL;
  g_autofree char *auth = NULL;
  Client *c;

  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", json, strlen (json), h, &body, NULL), ==,
      201);
  session = cd_json_parse_object (body, strlen (body), NULL, NULL);
  auth = g_strdup_printf ("{\"type\":\"auth\",\"token\":\"%s\"}",
                          json_object_get_string_member (session, "visitor_token"));
  c = cd_test_ws_connect (daemon_proc->base_url, NULL);
  assert_reply (exchange (c, auth), "auth.ok", NULL);
  assert_reply (exchange (c, "{\"type\":\"presence.set\",\"status\":\"available\"}"), "error",
                "forbidden");
  cd_test_ws_free (c);
}

static void
test_bad_tokens_close (void)
{
  const char *tokens[] = { "garbage", "a.b.c", NULL };

  for (gsize i = 0; i < G_N_ELEMENTS (tokens); i++) {
    Client *c = cd_test_ws_connect (daemon_proc->base_url, NULL);
    g_autofree char *auth = g_strdup_printf ("{\"type\":\"auth\",\"token\":\"%s\"}",
                                             tokens[i] ? tokens[i] : admin_token);
    /* the super admin (last) has no signaling either */
    assert_reply (exchange (c, auth), "error", "unauthorized");
    WAIT_UNTIL (c->closed, 5000);
    g_assert_cmpuint (c->close_code, ==, 4401);
    cd_test_ws_free (c);
  }
}

static void
test_flood_closes (void)
{
  Client *c = cd_test_ws_connect (daemon_proc->base_url, NULL);

  for (int i = 0; i < 100 && !c->closed; i++)
    soup_websocket_connection_send_text (c->ws, "{\"type\":\"ping\"}");
  WAIT_UNTIL (c->closed, 10000);
  g_assert_cmpuint (c->close_code, ==, 4429);
  cd_test_ws_free (c);
}

static void
test_oversized_closes (void)
{
  Client *c = cd_test_ws_connect (daemon_proc->base_url, NULL);
  g_autofree char *big = g_strnfill (200 * 1024, 'x');

  soup_websocket_connection_send_text (c->ws, big);
  /* libsoup cuts the connection: with 1009 when its close frame gets
   * through, without one when the client is still sending */
  WAIT_UNTIL (c->closed, 10000);
  g_assert_true (c->close_code == SOUP_WEBSOCKET_CLOSE_TOO_BIG || c->close_code == 0);
  cd_test_ws_free (c);
  /* and the daemon goes on serving */
  c = cd_test_ws_connect (daemon_proc->base_url, NULL);
  assert_reply (exchange (c, "{\"type\":\"ping\"}"), "pong", NULL);
  cd_test_ws_free (c);
}

static void
test_auth_timeout_closes (void)
{
  Client *c = cd_test_ws_connect (daemon_proc->base_url, NULL);

  /* the daemon runs with signal.auth_timeout_s = 1 */
  WAIT_UNTIL (c->closed, 10000);
  g_assert_cmpuint (c->close_code, ==, 4408);
  cd_test_ws_free (c);
}

static char *
login_token (const char *email)
{
  g_autofree char *u = g_strconcat (daemon_proc->base_url, "api/v1/auth/login", NULL);
  g_autofree char *json =
      g_strdup_printf ("{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) o = NULL;

  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", json, strlen (json), NULL, &body, NULL),
      ==, 200);
  o = cd_json_parse_object (body, strlen (body), NULL, NULL);
  return g_strdup (json_object_get_string_member (o, "access_token"));
}

static void
seed (void)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  const char *params[] = { hash };

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (
      owner,
      "WITH a AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Shop', 'shop', 'approved', ARRAY['https://shop.test']) RETURNING id),"
      " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
      "  SELECT a.id, 'agent@shop.test', $1, 'agent', 'Agent' FROM a"
      "  UNION ALL SELECT NULL, 'root@shop.test', $1, 'superadmin', 'Root' RETURNING 1)"
      " SELECT (SELECT id FROM a), (SELECT count(*) FROM u)",
      params, 1, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  company = g_strdup (PQgetvalue (res, 0, 0));
  cd_pg_pool_close (owner);
  agent_token = login_token ("agent@shop.test");
  admin_token = login_token ("root@shop.test");
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_SIGNAL_AUTH_TIMEOUT_S=1", NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-signal-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  seed ();
  g_test_add_func ("/signal/ping-and-bad-messages", test_ping_and_bad_messages);
  g_test_add_func ("/signal/agent-session", test_agent_session);
  g_test_add_func ("/signal/visitor-session", test_visitor_session);
  g_test_add_func ("/signal/bad-tokens-close", test_bad_tokens_close);
  g_test_add_func ("/signal/flood-closes", test_flood_closes);
  g_test_add_func ("/signal/oversized-closes", test_oversized_closes);
  g_test_add_func ("/signal/auth-timeout-closes", test_auth_timeout_closes);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (agent_token);
  g_free (admin_token);
  return status;
}
