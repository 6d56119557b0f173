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
/* the trusted proxy's country header, as the daemon here is configured */
#define COUNTRY_HEADER "X-Visitor-Country"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company;
static char *admin_token;

/* A visitor of @company_id (on @origin) whose session has started a call
 * with @extra members in call.start (or ""); the call's id. */
static CdTestWs *
visitor_start_from (const char *company_id, const char *origin, const char *extra,
                    const char *country, char **call_id)
{
  g_autofree char *token = cd_test_visitor_token (daemon_proc->base_url, company_id, origin);
  const char *headers[] = { COUNTRY_HEADER, country, NULL };
  CdTestWs *visitor =
      cd_test_ws_connect_with_headers (daemon_proc->base_url, token, country ? headers : NULL);

  cd_test_ws_send (visitor, "{\"type\":\"call.start\",\"page\":\"%s/basket\"%s}", origin, extra);
  *call_id = g_strdup (json_object_get_string_member (
      cd_test_ws_wait (visitor, 0, "call.created", NULL), "call_id"));
  return visitor;
}

static CdTestWs *
visitor_start_in (const char *company_id, const char *origin, const char *extra, char **call_id)
{
  return visitor_start_from (company_id, origin, extra, NULL, call_id);
}

static CdTestWs *
visitor_start (char **call_id)
{
  return visitor_start_in (company, ORIGIN, "", call_id);
}

/* The offer of @call_id that reached @agent from message @from on. */
static gboolean
offered (CdTestWs *agent, guint from, const char *call_id)
{
  return cd_test_ws_find_where (agent, from, "call.offer", "call_id", call_id) != NULL;
}

/* The detail of the call's first @kind event whose @key is @value (any,
 * with @key NULL) as stored now, or NULL; @stored: whether the call is
 * stored yet (the store writes behind). */
static JsonObject *
find_event_where (const char *company_id, const char *token, const char *call_id, const char *kind,
                  const char *key, const char *value, gboolean *stored)
{
  g_autofree char *url = g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", daemon_proc->base_url,
                                          company_id, call_id);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) call = NULL;
  JsonArray *events;
  guint status = cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL);

  *stored = status != 404;
  if (!*stored)
    return NULL;
  g_assert_cmpuint (status, ==, 200);
  call = cd_json_parse_object (body, strlen (body), NULL, NULL);
  events = json_object_get_array_member (call, "events");
  for (guint i = 0; i < json_array_get_length (events); i++) {
    JsonObject *e = json_array_get_object_element (events, i);
    JsonObject *detail = json_object_get_object_member (e, "detail");

    if (g_str_equal (json_object_get_string_member (e, "kind"), kind) &&
        (key == NULL ||
         g_strcmp0 (json_object_get_string_member_with_default (detail, key, NULL), value) == 0))
      return json_object_ref (detail);
  }
  return NULL;
}

/* The detail of the first event of @kind on the call's timeline whose
 * @key is @value (any, with @key NULL), waiting for the store to write it. */
static JsonObject *
wait_event (const char *company_id, const char *token, const char *call_id, const char *kind,
            const char *key, const char *value)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline) {
    gboolean stored;
    JsonObject *detail = find_event_where (company_id, token, call_id, kind, key, value, &stored);

    if (detail)
      return detail;
    cd_test_sleep (100);
  }
  g_error ("call %s: no %s (%s %s) on its timeline", call_id, kind, key, value);
}

/* The call's stored timeline holds an agent.declined by @agent_id for
 * @reason (the store writes behind: waits for it). */
static void
assert_declined (const char *call_id, const char *agent_id, const char *reason)
{
  g_autoptr (JsonObject) detail =
      wait_event (company, admin_token, call_id, "agent.declined", "agent_id", agent_id);

  g_assert_cmpstr (json_object_get_string_member (detail, "reason"), ==, reason);
}

static void
assert_daemon_serves (void)
{
  g_autoptr (CdTestWs) c = cd_test_ws_connect (daemon_proc->base_url, NULL);

  cd_test_ws_send (c, "{\"type\":\"ping\"}");
  cd_test_ws_wait (c, 0, "pong", NULL);
  g_assert_nonnull (g_subprocess_get_identifier (daemon_proc->process));
}

/* The call's first @kind event as stored now, or NULL (the call is). */
static JsonObject *
find_event (const char *company_id, const char *token, const char *call_id, const char *kind)
{
  gboolean stored;
  JsonObject *detail = find_event_where (company_id, token, call_id, kind, NULL, NULL, &stored);

  g_assert_true (stored);
  return detail;
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

/* ---- queues ---- */

#define DESK_ORIGIN "https://desk.test"

static char *desk, *desk_admin, *billing;
static char *desk_tokens[3], *desk_ids[3];

/* @method on the desk company's @path as its admin; the status, and the
 * id of what a POST created in @created (may be NULL) */
static guint
desk_api (const char *method, const char *path, const char *json, char **created)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/%s", daemon_proc->base_url, desk, path);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", desk_admin);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;
  guint status = cd_test_http_request (method, url, json ? "application/json" : NULL, json,
                                       json ? strlen (json) : 0, headers, &body, NULL);

  if (created && status == 201) {
    g_autoptr (JsonObject) o = cd_json_parse_object (body, strlen (body), NULL, NULL);
    *created = g_strdup (json_object_get_string_member (o, "id"));
  }
  return status;
}

/* a skills-based queue: agent 1 lacks the skill, agent 2 has it; agent 3
 * is no member */
static void
desk_setup (void)
{
  g_autofree char *members = NULL;
  g_autofree char *members_path = NULL;

  desk = cd_test_seed_company (state, "desk", DESK_ORIGIN, 3, PASSWORD);
  desk_admin = cd_test_login (daemon_proc->base_url, "admin@desk.test", PASSWORD);
  for (int i = 0; i < 3; i++) {
    g_autofree char *email = g_strdup_printf ("agent%d@desk.test", i + 1);
    g_autofree char *path = NULL;
    g_autofree char *skills = g_strdup_printf ("{\"skills\":{\"billing\":%d}}", i == 0 ? 1 : 5);

    desk_tokens[i] = cd_test_login (daemon_proc->base_url, email, PASSWORD);
    desk_ids[i] = cd_test_user_id (desk_tokens[i]);
    path = g_strdup_printf ("users/%s", desk_ids[i]);
    g_assert_cmpuint (desk_api ("PATCH", path, skills, NULL), ==, 200);
  }
  g_assert_cmpuint (desk_api ("POST", "queues",
                              "{\"name\":\"Billing\",\"strategy\":\"skills-based\","
                              "\"skills\":{\"billing\":3},\"ring_timeout_s\":7}",
                              &billing),
                    ==, 201);
  members = g_strdup_printf ("{\"members\":{\"%s\":1,\"%s\":2}}", desk_ids[0], desk_ids[1]);
  members_path = g_strdup_printf ("queues/%s/members", billing);
  g_assert_cmpuint (desk_api ("PUT", members_path, members, NULL), ==, 204);
}

/* The offer of @call_id to @agent from message @from on, or NULL. */
static JsonObject *
offer_of (CdTestWs *agent, guint from, const char *call_id)
{
  return cd_test_ws_find_where (agent, from, "call.offer", "call_id", call_id);
}

/* The call named its queue: the queue's strategy chose the agent with the
 * skill over the one idle longer, and the timeline says why. */
static void
test_queue_picks_by_skill (void)
{
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\",\"language\":\"DE\"", billing);
  g_autoptr (CdTestWs) agent1 =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[0], "available");
  g_autoptr (CdTestWs) agent2 = NULL;
  g_autoptr (CdTestWs) visitor = NULL;
  g_autoptr (JsonObject) entered = NULL;
  g_autoptr (JsonObject) decision = NULL;
  g_autofree char *call_id = NULL;
  JsonArray *outcomes;
  JsonObject *offer;

  cd_test_sleep (50); /* agent 1 has waited longer */
  agent2 = cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[1], "available");
  visitor = visitor_start_in (desk, DESK_ORIGIN, extra, &call_id);
  WAIT_UNTIL (offer_of (agent2, 0, call_id) != NULL, 10000);
  offer = offer_of (agent2, 0, call_id);
  g_assert_cmpstr (json_object_get_string_member (offer, "queue_id"), ==, billing);
  g_assert_cmpint (json_object_get_int_member (offer, "ring_timeout_s"), ==, 7);
  g_assert_null (offer_of (agent1, 0, call_id));

  entered = wait_event (desk, desk_admin, call_id, "queue.entered", "queue_id", billing);
  g_assert_cmpstr (json_object_get_string_member (entered, "name"), ==, "Billing");
  decision = wait_event (desk, desk_admin, call_id, "routing.decision", NULL, NULL);
  g_assert_cmpstr (json_object_get_string_member (decision, "strategy"), ==, "skills-based");
  g_assert_cmpstr (
      json_array_get_string_element (json_object_get_array_member (decision, "chosen"), 0), ==,
      desk_ids[1]);
  outcomes = json_object_get_array_member (decision, "outcomes");
  g_assert_cmpuint (json_array_get_length (outcomes), ==, 2);
  for (guint i = 0; i < 2; i++) {
    JsonObject *o = json_array_get_object_element (outcomes, i);
    gboolean first = g_str_equal (json_object_get_string_member (o, "agent_id"), desk_ids[0]);
    g_assert_cmpstr (json_object_get_string_member (o, "outcome"), ==, first ? "skill" : "chosen");
  }
  hang_up (visitor, call_id);
  assert_daemon_serves ();
}

/* Without a queue named, the company's first queue takes the call: an
 * agent who is no member of it is never offered it. */
static void
test_first_queue_by_default (void)
{
  g_autoptr (CdTestWs) outsider =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  g_autoptr (CdTestWs) member = NULL;
  g_autoptr (CdTestWs) visitor = NULL;
  g_autoptr (JsonObject) entered = NULL;
  g_autofree char *call_id = NULL;

  visitor = visitor_start_in (desk, DESK_ORIGIN, "", &call_id);
  entered = wait_event (desk, desk_admin, call_id, "queue.entered", "queue_id", billing);
  cd_test_sleep (500);
  g_assert_null (offer_of (outsider, 0, call_id));
  member = cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[1], "available");
  WAIT_UNTIL (offer_of (member, 0, call_id) != NULL, 10000);
  g_assert_null (offer_of (outsider, 0, call_id));
  hang_up (visitor, call_id);
}

/* A queue that is not the company's ends the call, saying so; a queue id
 * that is no id is refused before any call exists. */
static void
test_unknown_queue (void)
{
  g_autofree char *call_id = NULL;
  g_autofree char *foreign = NULL;
  g_autoptr (CdTestWs) visitor = NULL;
  g_autoptr (CdTestWs) bad = NULL;
  JsonObject *m;
  guint at = 0;

  /* the shop's company has no queue of this id: the desk's is not its own */
  foreign = g_strdup_printf (",\"queue_id\":\"%s\"", billing);
  visitor = visitor_start_in (company, ORIGIN, foreign, &call_id);
  for (;; at++) {
    m = cd_test_ws_wait (visitor, at, "call.state", &at);
    if (g_str_equal (json_object_get_string_member (m, "state"), "ended"))
      break;
  }
  g_assert_cmpstr (json_object_get_string_member (m, "reason"), ==, "no-such-queue");

  {
    g_autofree char *token = cd_test_visitor_token (daemon_proc->base_url, desk, DESK_ORIGIN);
    bad = cd_test_ws_connect (daemon_proc->base_url, token);
  }
  cd_test_ws_send (
      bad, "{\"type\":\"call.start\",\"queue_id\":\"not-a-queue-id-of-36-characters!!!!\"}");
  m = cd_test_ws_wait (bad, 0, "error", NULL);
  g_assert_cmpstr (json_object_get_string_member (m, "code"), ==, "invalid-field");
  g_assert_null (cd_test_ws_find (bad, 0, "call.created", NULL));
  assert_daemon_serves ();
}

/* A queue of its own whose only member is desk agent 3, with @definition's
 * extra fields; its id. */
static char *
solo_queue (const char *name, const char *extra)
{
  g_autofree char *json = g_strdup_printf ("{\"name\":\"%s\"%s}", name, extra);
  g_autofree char *members = g_strdup_printf ("{\"members\":{\"%s\":1}}", desk_ids[2]);
  g_autofree char *path = NULL;
  char *id = NULL;

  g_assert_cmpuint (desk_api ("POST", "queues", json, &id), ==, 201);
  path = g_strdup_printf ("queues/%s/members", id);
  g_assert_cmpuint (desk_api ("PUT", path, members, NULL), ==, 204);
  return id;
}

/* The first presence message with @status at or after @from, or NULL. */
static JsonObject *
presence_of (CdTestWs *agent, guint from, const char *status)
{
  return cd_test_ws_find_where (agent, from, "presence", "status", status);
}

/* An agent who lets calls.max_missed_offers (2 here) offers in a row ring
 * out is set away with reason missed, is told so, and is offered nothing
 * until back. */
static void
test_missed_offers_set_away (void)
{
  g_autofree char *quick = solo_queue ("Quick", ",\"ring_timeout_s\":5");
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", quick);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  g_autoptr (CdTestWs) v1 = NULL;
  g_autoptr (CdTestWs) v2 = NULL;
  g_autoptr (JsonObject) away = NULL;
  g_autofree char *c1 = NULL;
  g_autofree char *c2 = NULL;
  JsonObject *p;
  guint before;

  v1 = visitor_start_in (desk, DESK_ORIGIN, extra, &c1);
  v2 = visitor_start_in (desk, DESK_ORIGIN, extra, &c2);
  WAIT_UNTIL (offer_of (agent, 0, c1) != NULL, 10000);
  /* missed once: the next call rings it; missed twice: away */
  WAIT_UNTIL (offer_of (agent, 0, c2) != NULL, 10000);
  g_assert_null (presence_of (agent, 0, "away"));
  WAIT_UNTIL (presence_of (agent, 0, "away") != NULL, 10000);
  p = presence_of (agent, 0, "away");
  g_assert_cmpstr (json_object_get_string_member (p, "reason"), ==, "missed");
  away = wait_event (desk, desk_admin, c2, "agent.away", "agent_id", desk_ids[2]);
  g_assert_cmpstr (json_object_get_string_member (away, "reason"), ==, "missed");
  g_assert_cmpstr (json_object_get_string_member (away, "missed"), ==, "2");
  /* both calls wait on; the agent is not offered them while away */
  before = agent->received->len;
  cd_test_sleep (1000);
  g_assert_null (cd_test_ws_find (agent, before, "call.offer", NULL));
  /* back: offered again (a third call, the two it missed declined it) */
  hang_up (v1, c1);
  hang_up (v2, c2);
  {
    g_autoptr (CdTestWs) v3 = NULL;
    g_autofree char *c3 = NULL;

    before = agent->received->len;
    cd_test_ws_send (agent, "{\"type\":\"presence.set\",\"status\":\"available\"}");
    cd_test_ws_wait (agent, before, "presence", NULL);
    v3 = visitor_start_in (desk, DESK_ORIGIN, extra, &c3);
    WAIT_UNTIL (offer_of (agent, before, c3) != NULL, 10000);
    hang_up (v3, c3);
  }
}

/* After a call, the queue's wrap-up: no offer until it ends (the agent is
 * told both), or until the agent says it is available. */
static void
test_wrap_up (void)
{
  g_autofree char *calm = solo_queue ("Calm", ",\"wrap_up_s\":3");
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", calm);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  JsonObject *wrap;
  gint64 ended_us, offered_us;
  guint before;

  for (int round = 0; round < 2; round++) {
    g_autoptr (CdTestWs) v1 = NULL;
    g_autoptr (CdTestWs) v2 = NULL;
    g_autofree char *c1 = NULL;
    g_autofree char *c2 = NULL;

    before = agent->received->len;
    v1 = visitor_start_in (desk, DESK_ORIGIN, extra, &c1);
    WAIT_UNTIL (offer_of (agent, before, c1) != NULL, 10000);
    cd_test_ws_send (agent, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c1);
    cd_test_ws_wait (agent, before, "call.state", NULL);
    before = agent->received->len;
    hang_up (v1, c1);
    ended_us = g_get_monotonic_time ();
    WAIT_UNTIL (presence_of (agent, before, "wrap_up") != NULL, 10000);
    wrap = presence_of (agent, before, "wrap_up");
    g_assert_cmpint (json_object_get_int_member (wrap, "seconds"), ==, 3);
    v2 = visitor_start_in (desk, DESK_ORIGIN, extra, &c2);
    if (round == 0) {
      /* wrap-up runs out */
      WAIT_UNTIL (offer_of (agent, before, c2) != NULL, 10000);
      offered_us = g_get_monotonic_time ();
      g_assert_cmpint (offered_us - ended_us, >=, 2500 * 1000);
      g_assert_nonnull (presence_of (agent, before, "available"));
    } else {
      /* the agent ends it */
      cd_test_sleep (500);
      g_assert_null (offer_of (agent, before, c2));
      cd_test_ws_send (agent, "{\"type\":\"presence.set\",\"status\":\"available\"}");
      WAIT_UNTIL (offer_of (agent, before, c2) != NULL, 2000);
      g_assert_cmpint (g_get_monotonic_time () - ended_us, <, 2500 * 1000);
    }
    hang_up (v2, c2);
  }
}

/* Waits for the visitor's call to end; its end message. */
static JsonObject *
wait_ended (CdTestWs *visitor)
{
  for (guint at = 0;; at++) {
    JsonObject *m = cd_test_ws_wait (visitor, at, "call.state", &at);
    if (g_str_equal (json_object_get_string_member (m, "state"), "ended"))
      return m;
  }
}

static char *
desk_queue (const char *json)
{
  char *id = NULL;

  g_assert_cmpuint (desk_api ("POST", "queues", json, &id), ==, 201);
  return id;
}

/* Closed (business hours), full (max_length) and past overflow: the
 * queue's actions, hang up with its message or send the call on. */
static void
test_closed_full_overflow (void)
{
  g_autofree char *late = solo_queue ("Late", "");
  g_autofree char *closed =
      desk_queue ("{\"name\":\"Closed\",\"business_hours\":{\"time_zone\":\"UTC\",\"weekly\":{}},"
                  "\"when_closed\":{\"action\":\"hangup\",\"message\":\"We are closed\"}}");
  g_autofree char *night_json = g_strdup_printf (
      "{\"name\":\"Night\",\"business_hours\":{\"time_zone\":\"UTC\",\"weekly\":{}},"
      "\"when_closed\":{\"action\":\"queue\",\"queue_id\":\"%s\"}}",
      late);
  g_autofree char *night = desk_queue (night_json);
  g_autofree char *tiny =
      desk_queue ("{\"name\":\"Tiny\",\"max_length\":1,"
                  "\"when_full\":{\"action\":\"hangup\",\"message\":\"Too busy\"}}");
  g_autofree char *spill_json =
      g_strdup_printf ("{\"name\":\"Spill\",\"overflow\":{\"after_s\":1,\"action\":\"queue\","
                       "\"queue_id\":\"%s\"}}",
                       late);
  g_autofree char *spill = desk_queue (spill_json);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");

  /* closed: the message ends the call */
  {
    g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", closed);
    g_autofree char *c = NULL;
    g_autoptr (CdTestWs) v = visitor_start_in (desk, DESK_ORIGIN, extra, &c);
    JsonObject *ended = wait_ended (v);

    g_assert_cmpstr (json_object_get_string_member (ended, "reason"), ==, "queue-closed");
    g_assert_cmpstr (json_object_get_string_member (ended, "detail"), ==, "We are closed");
  }
  /* closed, sending calls on: the other queue's member is offered it */
  {
    g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", night);
    g_autofree char *c = NULL;
    g_autoptr (CdTestWs) v = visitor_start_in (desk, DESK_ORIGIN, extra, &c);
    g_autoptr (JsonObject) moved = NULL;

    WAIT_UNTIL (offer_of (agent, 0, c) != NULL, 10000);
    g_assert_cmpstr (json_object_get_string_member (offer_of (agent, 0, c), "queue_id"), ==, late);
    moved = wait_event (desk, desk_admin, c, "queue.moved", "to", late);
    g_assert_cmpstr (json_object_get_string_member (moved, "from"), ==, night);
    g_assert_cmpstr (json_object_get_string_member (moved, "why"), ==, "queue-closed");
    hang_up (v, c);
  }
  /* full: one waits (the queue has no members), the next is turned away */
  {
    g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", tiny);
    g_autofree char *c1 = NULL;
    g_autofree char *c2 = NULL;
    g_autoptr (CdTestWs) v1 = visitor_start_in (desk, DESK_ORIGIN, extra, &c1);
    g_autoptr (JsonObject) entered = wait_event (desk, desk_admin, c1, "queue.entered", NULL, NULL);
    g_autoptr (CdTestWs) v2 = visitor_start_in (desk, DESK_ORIGIN, extra, &c2);
    JsonObject *ended = wait_ended (v2);

    g_assert_cmpstr (json_object_get_string_member (entered, "queue_id"), ==, tiny);
    g_assert_cmpstr (json_object_get_string_member (ended, "reason"), ==, "queue-full");
    g_assert_cmpstr (json_object_get_string_member (ended, "detail"), ==, "Too busy");
    g_assert_null (cd_test_ws_find (v1, 0, "error", NULL));
    hang_up (v1, c1);
  }
  /* overflow: after a second in a queue without members, on to Late */
  {
    g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", spill);
    g_autofree char *c = NULL;
    guint before = agent->received->len;
    gint64 started = g_get_monotonic_time ();
    g_autoptr (CdTestWs) v = visitor_start_in (desk, DESK_ORIGIN, extra, &c);
    g_autoptr (JsonObject) moved = NULL;

    WAIT_UNTIL (offer_of (agent, before, c) != NULL, 10000);
    g_assert_cmpint (g_get_monotonic_time () - started, >=, 900 * 1000);
    moved = wait_event (desk, desk_admin, c, "queue.moved", "to", late);
    g_assert_cmpstr (json_object_get_string_member (moved, "why"), ==, "overflow");
    hang_up (v, c);
  }
}

/* Overflow that raises the priority: the newer call, raised, goes first. */
static void
test_overflow_raises_priority (void)
{
  g_autofree char *plain = solo_queue ("Plain", "");
  g_autofree char *prio =
      solo_queue ("Prio", ",\"overflow\":{\"after_s\":1,\"action\":\"priority\",\"raise_by\":10}");
  g_autofree char *e1 = g_strdup_printf (",\"queue_id\":\"%s\"", plain);
  g_autofree char *e2 = g_strdup_printf (",\"queue_id\":\"%s\"", prio);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "away");
  g_autoptr (CdTestWs) v1 = NULL;
  g_autoptr (CdTestWs) v2 = NULL;
  g_autoptr (JsonObject) raised = NULL;
  g_autofree char *c1 = NULL;
  g_autofree char *c2 = NULL;
  guint before;

  v1 = visitor_start_in (desk, DESK_ORIGIN, e1, &c1);
  cd_test_sleep (100);
  v2 = visitor_start_in (desk, DESK_ORIGIN, e2, &c2);
  raised = wait_event (desk, desk_admin, c2, "queue.overflow", "action", "priority");
  g_assert_cmpstr (json_object_get_string_member (raised, "priority"), ==, "10");
  before = agent->received->len;
  cd_test_ws_send (agent, "{\"type\":\"presence.set\",\"status\":\"available\"}");
  WAIT_UNTIL (offer_of (agent, before, c2) != NULL, 10000);
  g_assert_null (offer_of (agent, before, c1));
  hang_up (v2, c2);
  hang_up (v1, c1);
}

/* The last queued state the visitor heard from message @from on, or NULL. */
static JsonObject *
last_queued (CdTestWs *visitor, guint from)
{
  JsonObject *last = NULL;

  for (guint at = from; cd_test_ws_find (visitor, at, "call.state", &at); at++) {
    JsonObject *m = g_ptr_array_index (visitor->received, at);
    if (g_str_equal (json_object_get_string_member (m, "state"), "queued"))
      last = m;
  }
  return last;
}

/* Waiting visitors hear their place in the queue and, once the queue has
 * handled a call, the expected wait; again at the announcement interval. */
static void
test_position_and_expected_wait (void)
{
  g_autofree char *talky = solo_queue ("Talky", ",\"announce_every_s\":15");
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", talky);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  g_autoptr (CdTestWs) v1 = NULL;
  g_autoptr (CdTestWs) v2 = NULL;
  g_autoptr (CdTestWs) v3 = NULL;
  g_autoptr (CdTestWs) v4 = NULL;
  g_autofree char *c1 = NULL, *c2 = NULL, *c3 = NULL, *c4 = NULL;
  JsonObject *q3, *q4;
  gint64 expected3, expected4;
  guint before, heard;

  /* one call handled in about a second: the queue's handle time */
  v1 = visitor_start_in (desk, DESK_ORIGIN, extra, &c1);
  WAIT_UNTIL (offer_of (agent, 0, c1) != NULL, 10000);
  g_assert_false (json_object_has_member (last_queued (v1, 0), "expected_wait_s"));
  before = agent->received->len;
  cd_test_ws_send (agent, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c1);
  cd_test_ws_wait (agent, before, "call.state", NULL);
  cd_test_sleep (1000);
  hang_up (v1, c1);
  /* the agent takes the next and is busy with it */
  before = agent->received->len;
  v2 = visitor_start_in (desk, DESK_ORIGIN, extra, &c2);
  WAIT_UNTIL (offer_of (agent, before, c2) != NULL, 10000);
  cd_test_ws_send (agent, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c2);
  cd_test_ws_wait (agent, before, "call.state", NULL);

  v3 = visitor_start_in (desk, DESK_ORIGIN, extra, &c3);
  WAIT_UNTIL (last_queued (v3, 0) &&
                  json_object_has_member (last_queued (v3, 0), "expected_wait_s"),
              10000);
  v4 = visitor_start_in (desk, DESK_ORIGIN, extra, &c4);
  WAIT_UNTIL (last_queued (v4, 0) &&
                  json_object_has_member (last_queued (v4, 0), "expected_wait_s"),
              10000);
  q3 = last_queued (v3, 0);
  q4 = last_queued (v4, 0);
  g_assert_cmpint (json_object_get_int_member (q3, "position"), ==, 1);
  g_assert_cmpint (json_object_get_int_member (q4, "position"), ==, 2);
  expected3 = json_object_get_int_member (q3, "expected_wait_s");
  expected4 = json_object_get_int_member (q4, "expected_wait_s");
  /* one agent, about a second a call */
  g_assert_cmpint (expected3, >=, 1);
  g_assert_cmpint (expected3, <=, 3);
  g_assert_cmpint (expected4, >, expected3 - 1);
  g_assert_cmpint (expected4, <=, 2 * expected3 + 1);

  /* the announcement comes again after announce_every_s */
  heard = v4->received->len;
  WAIT_UNTIL (last_queued (v4, heard) != NULL, 20000);
  g_assert_cmpint (json_object_get_int_member (last_queued (v4, heard), "position"), ==, 2);

  hang_up (v4, c4);
  hang_up (v3, c3);
  hang_up (v2, c2);
}

/* The first call.state at or after @from for @call_id, or NULL. */
static JsonObject *
state_of (CdTestWs *ws, guint from, const char *call_id)
{
  return cd_test_ws_find_where (ws, from, "call.state", "call_id", call_id);
}

/* Ring-all rings every free member at once: the first to accept takes
 * the call and the others stop ringing; one who rejects leaves the others
 * ringing. */
static void
test_ring_all (void)
{
  g_autofree char *members =
      g_strdup_printf ("{\"members\":{\"%s\":1,\"%s\":1}}", desk_ids[1], desk_ids[2]);
  g_autofree char *all =
      desk_queue ("{\"name\":\"All\",\"strategy\":\"ring-all\",\"ring_timeout_s\":5}");
  g_autofree char *path = g_strdup_printf ("queues/%s/members", all);
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", all);
  g_autoptr (CdTestWs) a2 = NULL;
  g_autoptr (CdTestWs) a3 = NULL;

  g_assert_cmpuint (desk_api ("PUT", path, members, NULL), ==, 204);
  a2 = cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[1], "available");
  a3 = cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  for (int round = 0; round < 3; round++) {
    g_autoptr (CdTestWs) v = NULL;
    g_autofree char *c = NULL;
    guint b2 = a2->received->len, b3 = a3->received->len;
    JsonObject *m;

    v = visitor_start_in (desk, DESK_ORIGIN, extra, &c);
    WAIT_UNTIL (offer_of (a2, b2, c) != NULL && offer_of (a3, b3, c) != NULL, 10000);
    if (round == 0) {
      /* agent 3 accepts: agent 2 hears it was answered elsewhere */
      cd_test_ws_send (a3, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c);
      WAIT_UNTIL (state_of (a2, b2, c) != NULL && state_of (a3, b3, c) != NULL, 10000);
      m = state_of (a2, b2, c);
      g_assert_cmpstr (json_object_get_string_member (m, "state"), ==, "ended");
      g_assert_cmpstr (json_object_get_string_member (m, "reason"), ==, "answered-elsewhere");
      g_assert_cmpstr (json_object_get_string_member (state_of (a3, b3, c), "state"), ==,
                       "connecting");
    } else if (round == 2) {
      /* nobody answers: both missed it, and the call waits again */
      WAIT_UNTIL (state_of (a2, b2, c) != NULL && state_of (a3, b3, c) != NULL, 10000);
      g_assert_cmpstr (json_object_get_string_member (state_of (a2, b2, c), "reason"), ==,
                       "missed");
      g_assert_cmpstr (json_object_get_string_member (state_of (a3, b3, c), "reason"), ==,
                       "missed");
      {
        guint rang = 0;

        /* queued again after ringing */
        for (;; rang++) {
          JsonObject *st = cd_test_ws_wait (v, rang, "call.state", &rang);
          if (g_str_equal (json_object_get_string_member (st, "state"), "ringing"))
            break;
        }
        WAIT_UNTIL (last_queued (v, rang + 1) != NULL, 10000);
      }
    } else {
      /* agent 2 rejects, agent 3 still rings and takes it */
      cd_test_ws_send (a2, "{\"type\":\"call.reject\",\"call_id\":\"%s\"}", c);
      WAIT_UNTIL (state_of (a2, b2, c) != NULL, 10000);
      g_assert_cmpstr (json_object_get_string_member (state_of (a2, b2, c), "reason"), ==,
                       "rejected");
      g_assert_null (state_of (a3, b3, c));
      cd_test_ws_send (a3, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c);
      WAIT_UNTIL (state_of (a3, b3, c) != NULL, 10000);
      g_assert_cmpstr (json_object_get_string_member (state_of (a3, b3, c), "state"), ==,
                       "connecting");
    }
    hang_up (v, c);
  }
  /* two calls wait: once agent 3 takes the first, agent 2 rings for the
   * second at once */
  {
    g_autoptr (CdTestWs) v1 = NULL;
    g_autoptr (CdTestWs) v2 = NULL;
    g_autofree char *c1 = NULL;
    g_autofree char *c2 = NULL;
    guint b2 = a2->received->len, b3 = a3->received->len;

    v1 = visitor_start_in (desk, DESK_ORIGIN, extra, &c1);
    WAIT_UNTIL (offer_of (a2, b2, c1) != NULL && offer_of (a3, b3, c1) != NULL, 10000);
    v2 = visitor_start_in (desk, DESK_ORIGIN, extra, &c2);
    cd_test_ws_wait (v2, 0, "call.state", NULL);
    cd_test_ws_send (a3, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c1);
    WAIT_UNTIL (offer_of (a2, b2, c2) != NULL, 3000);
    g_assert_null (offer_of (a3, b3, c2));
    hang_up (v2, c2);
    hang_up (v1, c1);
  }
  assert_daemon_serves ();
}

/* The visitor's country comes from the trusted proxy's header: a queue's
 * rule reads it; a value that is no country code is no country (and the
 * GeoIP database is not asked: the proxy spoke). */
static void
test_country_from_proxy (void)
{
  g_autofree char *germany = solo_queue ("Germany", ",\"rule\":\"call.country == \\\"DE\\\"\"");
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", germany);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  const char *others[] = { "FR", "Germany", "" };

  for (gsize i = 0; i < G_N_ELEMENTS (others); i++) {
    g_autofree char *c = NULL;
    g_autoptr (CdTestWs) v = visitor_start_from (desk, DESK_ORIGIN, extra, others[i], &c);
    g_autoptr (JsonObject) entered =
        wait_event (desk, desk_admin, c, "queue.entered", "queue_id", germany);

    g_assert_cmpstr (json_object_get_string_member (entered, "name"), ==, "Germany");
    cd_test_sleep (300);
    g_assert_null (offer_of (agent, 0, c));
    hang_up (v, c);
  }
  {
    g_autofree char *c = NULL;
    g_autoptr (CdTestWs) v = visitor_start_from (desk, DESK_ORIGIN, extra, "de", &c);
    g_autoptr (JsonObject) decision = NULL;

    WAIT_UNTIL (offer_of (agent, 0, c) != NULL, 10000);
    decision = wait_event (desk, desk_admin, c, "routing.decision", NULL, NULL);
    g_assert_cmpstr (
        json_object_get_string_member (json_object_get_object_member (decision, "call"), "country"),
        ==, "DE");
    hang_up (v, c);
  }
}

/* A call its only agent rejected waits: it is offered to nobody else and,
 * after calls.reoffer_after_s (4 s here), to that agent again; the agent
 * takes it the second time. */
static void
test_declined_offered_again (void)
{
  g_autofree char *solo = solo_queue ("Second chance", "");
  g_autofree char *extra = g_strdup_printf (",\"queue_id\":\"%s\"", solo);
  g_autoptr (CdTestWs) agent =
      cd_test_ws_agent_online (daemon_proc->base_url, desk_tokens[2], "available");
  g_autoptr (CdTestWs) v = NULL;
  g_autoptr (JsonObject) declined = NULL;
  g_autofree char *c = NULL;
  gint64 rejected_us;
  double again_s;
  guint before;

  v = visitor_start_in (desk, DESK_ORIGIN, extra, &c);
  WAIT_UNTIL (offer_of (agent, 0, c) != NULL, 10000);
  before = agent->received->len;
  rejected_us = g_get_monotonic_time ();
  cd_test_ws_send (agent, "{\"type\":\"call.reject\",\"call_id\":\"%s\"}", c);
  declined = wait_event (desk, desk_admin, c, "agent.declined", "agent_id", desk_ids[2]);
  g_assert_cmpstr (json_object_get_string_member (declined, "reason"), ==, "rejected");
  cd_test_sleep (2000);
  g_assert_null (offer_of (agent, before, c));
  WAIT_UNTIL (offer_of (agent, before, c) != NULL, 10000);
  again_s = (g_get_monotonic_time () - rejected_us) / 1e6;
  g_test_message ("offered again %.1f s after the rejection", again_s);
  /* not before the daemon's 4 s ran out (measured from before it) */
  g_assert_cmpfloat (again_s, >=, 4.0);
  before = agent->received->len;
  cd_test_ws_send (agent, "{\"type\":\"call.accept\",\"call_id\":\"%s\"}", c);
  WAIT_UNTIL (cd_test_ws_find_where (agent, before, "call.state", "state", "connecting") != NULL,
              10000);
  hang_up (v, c);
}

/* Countries to queues: a visitor who names no queue enters the queue the
 * company maps the visitor's country to: from the proxy's header, else
 * (no header at all) from the GeoIP database (every visitor here comes from
 * 127.0.0.1, which the test's database places in France); an unknown or
 * unmapped country enters the first queue; a queue the visitor names wins.
 * The timeline says which and why. */
static void
test_country_queues (void)
{
  g_autofree char *germany = solo_queue ("Deutschland", "");
  g_autofree char *france = solo_queue ("France", "");
  g_autofree char *map =
      g_strdup_printf ("{\"countries\":{\"DE\":\"%s\",\"FR\":\"%s\"}}", germany, france);
  g_autofree char *named = g_strdup_printf (",\"queue_id\":\"%s\"", france);
  const struct {
    const char *header; /* the proxy's country header, or NULL */
    const char *extra;  /* in call.start */
    const char *queue;
    const char *by;
    const char *country, *source;
  } cases[] = {
    { "de", "", germany, "country", "DE", "header" },
    { NULL, "", france, "country", "FR", "geoip" },
    { "XX", "", billing, "first", NULL, NULL }, /* the proxy does not know: nobody does */
    { "IT", "", billing, "first", "IT", "header" },
    { "DE", named, france, "visitor", "DE", "header" },
  };

  g_assert_cmpuint (desk_api ("PUT", "country-queues", map, NULL), ==, 204);
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *c = NULL;
    g_autoptr (CdTestWs) v =
        visitor_start_from (desk, DESK_ORIGIN, cases[i].extra, cases[i].header, &c);
    g_autoptr (JsonObject) entered =
        wait_event (desk, desk_admin, c, "queue.entered", "queue_id", cases[i].queue);
    g_autoptr (JsonObject) country = NULL;

    g_test_message ("header %s, call.start {%s}: %s by %s", cases[i].header, cases[i].extra,
                    json_object_get_string_member (entered, "name"),
                    json_object_get_string_member (entered, "by"));
    g_assert_cmpstr (json_object_get_string_member (entered, "by"), ==, cases[i].by);
    /* (stored before queue.entered, which is there) */
    country = find_event (desk, desk_admin, c, "visitor.country");
    if (cases[i].country == NULL) {
      g_assert_null (country);
    } else {
      g_assert_nonnull (country);
      g_assert_cmpstr (json_object_get_string_member (country, "country"), ==, cases[i].country);
      g_assert_cmpstr (json_object_get_string_member (country, "source"), ==, cases[i].source);
    }
    hang_up (v, c);
  }
  g_assert_cmpuint (desk_api ("PUT", "country-queues", "{\"countries\":{}}", NULL), ==, 204);
}

int
main (int argc, char **argv)
{
  const char *networks[] = { "127.0.0.0/8=FR", "203.0.113.0/24=DE", NULL };
  g_autofree char *geoip = NULL;
  g_autofree char *geoip_env = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-call-routing-XXXXXX");
  geoip = g_build_filename (state, "country.mmdb", NULL);
  cd_test_make_geoip (geoip, "GeoLite2-Country", networks);
  geoip_env = g_strconcat ("CALLDOCKER_SIGNAL_GEOIP_DATABASE=", geoip, NULL);
  {
    const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1",
                          "CALLDOCKER_CALLS_MAX_MISSED_OFFERS=2",
                          "CALLDOCKER_CALLS_REOFFER_AFTER_S=4",
                          "CALLDOCKER_SIGNAL_COUNTRY_HEADER=" COUNTRY_HEADER, geoip_env,
                          /* every visitor here comes from 127.0.0.1 */
                          "CALLDOCKER_WIDGET_SESSION_LIMIT_PER_ADDRESS=1000", NULL };

    daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  }
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "shop", ORIGIN, 3, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@shop.test", PASSWORD);
  g_test_add_func ("/call-routing/ringing-agent-leaves", test_ringing_agent_leaves);
  g_test_add_func ("/call-routing/ringing-agent-keeps-a-connection",
                   test_ringing_agent_keeps_a_connection);
  desk_setup ();
  g_test_add_func ("/call-routing/queue-picks-by-skill", test_queue_picks_by_skill);
  g_test_add_func ("/call-routing/first-queue-by-default", test_first_queue_by_default);
  g_test_add_func ("/call-routing/unknown-queue", test_unknown_queue);
  g_test_add_func ("/call-routing/missed-offers-set-away", test_missed_offers_set_away);
  g_test_add_func ("/call-routing/wrap-up", test_wrap_up);
  g_test_add_func ("/call-routing/closed-full-overflow", test_closed_full_overflow);
  g_test_add_func ("/call-routing/overflow-raises-priority", test_overflow_raises_priority);
  g_test_add_func ("/call-routing/position-and-expected-wait", test_position_and_expected_wait);
  g_test_add_func ("/call-routing/ring-all", test_ring_all);
  g_test_add_func ("/call-routing/country-from-proxy", test_country_from_proxy);
  g_test_add_func ("/call-routing/country-queues", test_country_queues);
  g_test_add_func ("/call-routing/declined-offered-again", test_declined_offered_again);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (admin_token);
  g_free (desk);
  g_free (desk_admin);
  g_free (billing);
  for (int i = 0; i < 3; i++) {
    g_free (desk_tokens[i]);
    g_free (desk_ids[i]);
  }
  return status;
}
