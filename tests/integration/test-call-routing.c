/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Offering calls to agents, through the signaling WebSocket of the real
 * daemon: an agent whose connection goes while a call rings it. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"
#include "cd-test-ws.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://shop.test"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company;
static char *admin_token;

/* A visitor's session that has started a call; the call's id. */
static CdTestWs *
visitor_start (char **call_id)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, "api/v1/widget/session", NULL);
  g_autofree char *json = g_strdup_printf ("{\"company_id\":\"%s\"}", company);
  const char *headers[] = { "Origin", ORIGIN, NULL };
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) session = NULL;
  CdTestWs *visitor;

  g_assert_cmpuint (cd_test_http_request ("POST", url, "application/json", json, strlen (json),
                                          headers, &body, NULL),
                    ==, 201);
  session = cd_json_parse_object (body, strlen (body), NULL, NULL);
  visitor = cd_test_ws_connect (daemon_proc->base_url,
                                json_object_get_string_member (session, "visitor_token"));
  cd_test_ws_send (visitor, "{\"type\":\"call.start\",\"page\":\"" ORIGIN "/basket\"}");
  *call_id = g_strdup (json_object_get_string_member (
      cd_test_ws_wait (visitor, 0, "call.created", NULL), "call_id"));
  return visitor;
}

/* The offer of @call_id that reached @agent from message @from on. */
static gboolean
offered (CdTestWs *agent, guint from, const char *call_id)
{
  for (guint at = from; cd_test_ws_find (agent, at, "call.offer", &at); at++)
    if (g_str_equal (
            json_object_get_string_member (g_ptr_array_index (agent->received, at), "call_id"),
            call_id))
      return TRUE;
  return FALSE;
}

/* The call's stored timeline holds an agent.declined by @agent_id for
 * @reason (the store writes behind: waits for it). */
static void
assert_declined (const char *call_id, const char *agent_id, const char *reason)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", daemon_proc->base_url, company, call_id);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline) {
    g_autofree char *body = NULL;
    g_autoptr (JsonObject) call = NULL;
    JsonArray *events;

    g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL), ==,
                      200);
    call = cd_json_parse_object (body, strlen (body), NULL, NULL);
    events = json_object_get_array_member (call, "events");
    for (guint i = 0; i < json_array_get_length (events); i++) {
      JsonObject *e = json_array_get_object_element (events, i);
      JsonObject *detail = json_object_get_object_member (e, "detail");
      if (g_str_equal (json_object_get_string_member (e, "kind"), "agent.declined") &&
          g_strcmp0 (json_object_get_string_member (detail, "agent_id"), agent_id) == 0 &&
          g_strcmp0 (json_object_get_string_member (detail, "reason"), reason) == 0)
        return;
    }
    cd_test_sleep (100);
  }
  g_error ("call %s: no agent.declined by %s (%s) on its timeline", call_id, agent_id, reason);
}

static void
assert_daemon_serves (void)
{
  g_autoptr (CdTestWs) c = cd_test_ws_connect (daemon_proc->base_url, NULL);

  cd_test_ws_send (c, "{\"type\":\"ping\"}");
  cd_test_ws_wait (c, 0, "pong", NULL);
  g_assert_nonnull (g_subprocess_get_identifier (daemon_proc->process));
}

static void
hang_up (CdTestWs *visitor, const char *call_id)
{
  guint before = visitor->received->len;

  cd_test_ws_send (visitor, "{\"type\":\"hangup\",\"call_id\":\"%s\"}", call_id);
  for (guint at = before; cd_test_ws_wait (visitor, at, "call.state", &at); at++)
    if (g_str_equal (
            json_object_get_string_member (g_ptr_array_index (visitor->received, at), "state"),
            "ended"))
      break;
}

/* The agent's only connection goes while the call rings it: the call goes
 * back to the queue, on to the next agent, and the daemon keeps serving. */
static void
test_ringing_agent_leaves (void)
{
  g_autofree char *token1 = cd_test_login (daemon_proc->base_url, "agent1@shop.test", PASSWORD);
  g_autofree char *token2 = cd_test_login (daemon_proc->base_url, "agent2@shop.test", PASSWORD);
  g_autofree char *agent1_id = cd_test_user_id (token1);
  g_autofree char *call_id = NULL;
  g_autoptr (CdTestWs) agent2 = cd_test_ws_agent_online (daemon_proc->base_url, token2, "away");
  CdTestWs *agent1 = cd_test_ws_agent_online (daemon_proc->base_url, token1, "available");
  g_autoptr (CdTestWs) visitor = visitor_start (&call_id);
  guint before;

  WAIT_UNTIL (offered (agent1, 0, call_id), 10000);
  /* agent 2 is free now, but the call rings agent 1 */
  before = agent2->received->len;
  cd_test_ws_send (agent2, "{\"type\":\"presence.set\",\"status\":\"available\"}");
  cd_test_ws_wait (agent2, before, "presence", NULL);
  g_assert_false (offered (agent2, 0, call_id));

  g_clear_pointer (&agent1, cd_test_ws_free);
  WAIT_UNTIL (offered (agent2, before, call_id), 10000);
  assert_declined (call_id, agent1_id, "disconnected");
  assert_daemon_serves ();
  hang_up (visitor, call_id);
  assert_daemon_serves ();
}

/* One of two connections of the agent goes while the call rings: it rings
 * on, and the other connection answers it. */
static void
test_ringing_agent_keeps_a_connection (void)
{
  g_autofree char *token = cd_test_login (daemon_proc->base_url, "agent3@shop.test", PASSWORD);
  g_autofree char *call_id = NULL;
  g_autoptr (CdTestWs) desk = cd_test_ws_agent_online (daemon_proc->base_url, token, "available");
  CdTestWs *laptop = cd_test_ws_connect (daemon_proc->base_url, token);
  g_autoptr (CdTestWs) visitor = NULL;
  JsonObject *state_message;
  guint at = 0;

  visitor = visitor_start (&call_id);
  WAIT_UNTIL (offered (desk, 0, call_id) && offered (laptop, 0, call_id), 10000);
  g_clear_pointer (&laptop, cd_test_ws_free);
  assert_daemon_serves ();
  cd_test_ws_send (desk, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", call_id);
  for (;; at++) {
    state_message = cd_test_ws_wait (desk, at, "call.state", &at);
    if (g_str_equal (json_object_get_string_member (state_message, "call_id"), call_id))
      break;
  }
  g_assert_cmpstr (json_object_get_string_member (state_message, "state"), ==, "connecting");
  hang_up (visitor, call_id);
  assert_daemon_serves ();
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1", NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-call-routing-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "shop", ORIGIN, 3, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@shop.test", PASSWORD);
  g_test_add_func ("/call-routing/ringing-agent-leaves", test_ringing_agent_leaves);
  g_test_add_func ("/call-routing/ringing-agent-keeps-a-connection",
                   test_ringing_agent_keeps_a_connection);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (admin_token);
  return status;
}
