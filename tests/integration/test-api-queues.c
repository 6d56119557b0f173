/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The queue API against the real daemon and PostgreSQL: create, read,
 * replace, members, delete; bad definitions refused with the field and
 * nothing stored; one company never sees or names another's queues. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"
#include "cd-test-ws.h"

#include <libpq-fe.h>
#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company, *other_company;
static char *admin_token, *other_admin_token, *agent_token;

/* @method on /api/v1/companies/COMPANY/@path as @token; the status, and the
 * body parsed when it is JSON */
static guint
api (const char *token, const char *method, const char *company_id, const char *path,
     const char *json, JsonObject **reply)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/%s", daemon_proc->base_url, company_id, path);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;
  guint status = cd_test_http_request (method, url, json ? "application/json" : NULL, json,
                                       json ? strlen (json) : 0, headers, &body, NULL);

  if (reply)
    *reply = body && *body ? cd_json_parse_object (body, strlen (body), NULL, NULL) : NULL;
  return status;
}

static char *
create (const char *json)
{
  g_autoptr (JsonObject) reply = NULL;

  g_assert_cmpuint (api (admin_token, "POST", company, "queues", json, &reply), ==, 201);
  return g_strdup (json_object_get_string_member (reply, "id"));
}

static guint
count_queues (void)
{
  g_autoptr (JsonObject) page = NULL;

  g_assert_cmpuint (api (admin_token, "GET", company, "queues", NULL, &page), ==, 200);
  return json_array_get_length (json_object_get_array_member (page, "items"));
}

static void
assert_refused (const char *method, const char *path, const char *json, guint status,
                const char *detail)
{
  g_autoptr (JsonObject) problem = NULL;
  guint before = count_queues ();

  g_test_message ("%s %s %s", method, path, json);
  g_assert_cmpuint (api (admin_token, method, company, path, json, &problem), ==, status);
  g_assert_nonnull (problem);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==, detail);
  g_assert_cmpuint (count_queues (), ==, before);
}

static void
test_create_read_replace (void)
{
  g_autofree char *support = create ("{\"name\":\"Support\"}");
  g_autofree char *json = g_strdup_printf (
      "{\"name\":\"Billing\",\"strategy\":\"skills-based\",\"skills\":{\"billing\":3},"
      "\"languages\":[\"de\"],\"rule\":\"call.wait_s > 60 or level >= 2\","
      "\"business_hours\":{\"time_zone\":\"Europe/Berlin\",\"weekly\":{\"mon\":[\"09:00-17:00\"]}},"
      "\"ring_timeout_s\":15,\"overflow\":{\"after_s\":120,\"action\":\"queue\",\"queue_id\":\"%"
      "s\"}}",
      support);
  g_autofree char *billing = create (json);
  g_autoptr (JsonObject) got = NULL;
  g_autoptr (JsonObject) replaced = NULL;
  g_autofree char *replacement = NULL;

  g_assert_cmpuint (api (admin_token, "GET", company, "queues/", NULL, NULL), ==, 404);
  {
    g_autofree char *path = g_strdup_printf ("queues/%s", billing);
    g_assert_cmpuint (api (admin_token, "GET", company, path, NULL, &got), ==, 200);
    g_assert_cmpstr (json_object_get_string_member (got, "name"), ==, "Billing");
    g_assert_cmpstr (json_object_get_string_member (got, "strategy"), ==, "skills-based");
    g_assert_cmpstr (json_object_get_string_member (got, "rule"), ==,
                     "call.wait_s > 60 or level >= 2");
    g_assert_cmpint (json_object_get_int_member (got, "ring_timeout_s"), ==, 15);
    g_assert_cmpstr (
        json_object_get_string_member (json_object_get_object_member (got, "overflow"), "queue_id"),
        ==, support);
    g_assert_cmpuint (json_object_get_size (json_object_get_object_member (got, "members")), ==, 0);
    g_assert_cmpstr (json_object_get_string_member (got, "company_id"), ==, company);

    /* a PUT replaces the whole definition */
    replacement = g_strdup ("{\"name\":\"Billing\",\"strategy\":\"round-robin\"}");
    g_assert_cmpuint (api (admin_token, "PUT", company, path, replacement, &replaced), ==, 200);
    g_assert_cmpstr (json_object_get_string_member (replaced, "strategy"), ==, "round-robin");
    g_assert_false (json_object_has_member (replaced, "rule"));
    g_assert_cmpstr (json_object_get_string_member (replaced, "id"), ==, billing);
  }
  g_assert_cmpuint (count_queues (), >=, 2);
}

static void
test_refusals (void)
{
  g_autofree char *target = create ("{\"name\":\"Target\"}");
  g_autofree char *target_path = g_strdup_printf ("queues/%s", target);
  g_autofree char *self_ref = g_strdup_printf (
      "{\"name\":\"Target\",\"when_full\":{\"action\":\"queue\",\"queue_id\":\"%s\"}}", target);
  g_autofree char *foreign = NULL;
  g_autofree char *foreign_ref = NULL;
  g_autofree char *foreign_detail = NULL;

  assert_refused ("POST", "queues", "{\"name\":\"Q\",\"rule\":\"skills.billing >=\"}", 422,
                  "rule: at 18: expected a value (a number, a string, true, false, a name or "
                  "'('), not the end of the rule");
  assert_refused ("POST", "queues", "{\"name\":\"Q\",\"strategy\":\"fastest\"}", 422,
                  "strategy: one of ring-all, round-robin, longest-idle, fewest-calls, random, "
                  "skills-based");
  assert_refused ("POST", "queues",
                  "{\"name\":\"Q\",\"business_hours\":{\"time_zone\":\"Mars/Olympus\"}}", 422,
                  "business_hours.time_zone: \"Mars/Olympus\" is not a known time zone");
  assert_refused ("POST", "queues", "{\"name\":\"Target\"}", 409, "a queue with this name exists");
  assert_refused ("PUT", target_path, self_ref, 422,
                  "when_full.queue_id: a queue cannot send its calls to itself");

  /* another company's queue cannot be named */
  {
    g_autoptr (JsonObject) reply = NULL;
    g_assert_cmpuint (
        api (other_admin_token, "POST", other_company, "queues", "{\"name\":\"Theirs\"}", &reply),
        ==, 201);
    foreign = g_strdup (json_object_get_string_member (reply, "id"));
  }
  foreign_ref = g_strdup_printf (
      "{\"name\":\"Q\",\"when_closed\":{\"action\":\"queue\",\"queue_id\":\"%s\"}}", foreign);
  foreign_detail =
      g_strdup_printf ("queue_id: no queue %s in this company to send calls to", foreign);
  assert_refused ("POST", "queues", foreign_ref, 422, foreign_detail);
  {
    g_autofree char *theirs = g_strdup_printf ("queues/%s", foreign);
    g_assert_cmpuint (api (admin_token, "GET", company, theirs, NULL, NULL), ==, 404);
    /* nor through the other company's path: as if it did not exist */
    g_assert_cmpuint (api (admin_token, "GET", other_company, theirs, NULL, NULL), ==, 404);
    g_assert_cmpuint (api (admin_token, "DELETE", other_company, theirs, NULL, NULL), ==, 404);
    g_assert_cmpuint (api (other_admin_token, "GET", other_company, theirs, NULL, NULL), ==, 200);
  }
  /* agents do not manage queues */
  g_assert_cmpuint (api (agent_token, "GET", company, "queues", NULL, NULL), ==, 403);
  g_assert_cmpuint (api (agent_token, "POST", company, "queues", "{\"name\":\"Mine\"}", NULL), ==,
                    403);
}

static void
test_members_and_delete (void)
{
  g_autofree char *sales = create ("{\"name\":\"Sales\"}");
  g_autofree char *json = g_strdup_printf (
      "{\"name\":\"Sales overflow\",\"overflow\":{\"after_s\":30,\"action\":\"queue\","
      "\"queue_id\":\"%s\"}}",
      sales);
  g_autofree char *sender = create (json);
  g_autofree char *sales_path = g_strdup_printf ("queues/%s", sales);
  g_autofree char *sender_path = g_strdup_printf ("queues/%s", sender);
  g_autofree char *members_path = g_strdup_printf ("queues/%s/members", sales);
  g_autofree char *agent1 = cd_test_user_id (agent_token);
  g_autofree char *other_admin = cd_test_user_id (other_admin_token);
  g_autofree char *members = g_strdup_printf ("{\"members\":{\"%s\":2}}", agent1);
  g_autofree char *stranger = g_strdup_printf ("{\"members\":{\"%s\":1}}", other_admin);
  g_autofree char *stranger_detail =
      g_strdup_printf ("members.%s: no user of this company", other_admin);
  g_autoptr (JsonObject) got = NULL;
  g_autoptr (JsonObject) problem = NULL;

  g_assert_cmpuint (api (admin_token, "PUT", company, members_path, members, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "GET", company, sales_path, NULL, &got), ==, 200);
  g_assert_cmpint (
      json_object_get_int_member (json_object_get_object_member (got, "members"), agent1), ==, 2);
  g_clear_pointer (&got, json_object_unref);

  assert_refused ("PUT", members_path, stranger, 422, stranger_detail);
  assert_refused ("PUT", members_path, "{\"members\":{\"not-a-uuid\":1}}", 422,
                  "members: each member is a user id (UUID) with a level from 0 to 10, e.g. "
                  "{\"members\": {\"6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab\": 2}}");
  {
    g_autofree char *upper = g_ascii_strup (agent1, -1);
    g_autofree char *twice = g_strdup_printf ("{\"members\":{\"%s\":1,\"%s\":2}}", agent1, upper);
    g_autofree char *twice_detail = g_strdup_printf ("members.%s: listed twice", agent1);
    assert_refused ("PUT", members_path, twice, 422, twice_detail);
  }
  /* the refused changes left the member as it was */
  g_assert_cmpuint (api (admin_token, "GET", company, sales_path, NULL, &got), ==, 200);
  g_assert_cmpuint (json_object_get_size (json_object_get_object_member (got, "members")), ==, 1);
  g_clear_pointer (&got, json_object_unref);
  /* an empty map removes everyone */
  g_assert_cmpuint (api (admin_token, "PUT", company, members_path, "{\"members\":{}}", NULL), ==,
                    204);
  g_assert_cmpuint (api (admin_token, "GET", company, sales_path, NULL, &got), ==, 200);
  g_assert_cmpuint (json_object_get_size (json_object_get_object_member (got, "members")), ==, 0);

  /* a queue others send calls to stays */
  g_assert_cmpuint (api (admin_token, "DELETE", company, sales_path, NULL, &problem), ==, 409);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                   "the queue still receives calls from: Sales overflow");
  g_assert_cmpuint (api (admin_token, "DELETE", company, sender_path, NULL, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "DELETE", company, sales_path, NULL, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "GET", company, sales_path, NULL, NULL), ==, 404);
  g_assert_cmpuint (api (admin_token, "DELETE", company, sales_path, NULL, NULL), ==, 404);
}

static char *
overflow_to (const char *name, const char *target)
{
  return g_strdup_printf ("{\"name\":\"%s\",\"overflow\":{\"after_s\":60,\"action\":\"queue\","
                          "\"queue_id\":\"%s\"}}",
                          name, target);
}

/* A -> B -> C, then C -> A would send calls round for ever: refused with
 * the circle, and nothing changes; dropping a link frees its target */
static void
test_circles (void)
{
  g_autofree char *a = create ("{\"name\":\"Circle A\"}");
  g_autofree char *b_json = overflow_to ("Circle B", a);
  g_autofree char *b = create (b_json);
  g_autofree char *c_json = overflow_to ("Circle C", b);
  g_autofree char *c = create (c_json);
  g_autofree char *a_path = g_strdup_printf ("queues/%s", a);
  g_autofree char *b_path = g_strdup_printf ("queues/%s", b);
  g_autofree char *c_path = g_strdup_printf ("queues/%s", c);
  g_autofree char *a_to_c = g_strdup_printf (
      "{\"name\":\"Circle A\",\"when_full\":{\"action\":\"queue\",\"queue_id\":\"%s\"}}", c);
  g_autofree char *a_to_b = g_strdup_printf (
      "{\"name\":\"Circle A\",\"when_closed\":{\"action\":\"queue\",\"queue_id\":\"%s\"}}", b);
  g_autoptr (JsonObject) got = NULL;

  assert_refused ("PUT", a_path, a_to_c, 422,
                  "queue_id: calls would go round in a circle: "
                  "Circle A -> Circle C -> Circle B -> Circle A");
  assert_refused ("PUT", a_path, a_to_b, 422,
                  "queue_id: calls would go round in a circle: Circle A -> Circle B -> Circle A");
  g_assert_cmpuint (api (admin_token, "GET", company, a_path, NULL, &got), ==, 200);
  g_assert_false (json_object_has_member (got, "when_full"));
  g_assert_false (json_object_has_member (got, "when_closed"));

  /* B no longer sends calls to A: A may now send to C (A -> C -> B) */
  g_assert_cmpuint (api (admin_token, "PUT", company, b_path, "{\"name\":\"Circle B\"}", NULL), ==,
                    200);
  g_assert_cmpuint (api (admin_token, "PUT", company, a_path, a_to_c, NULL), ==, 200);
  /* and A, no longer a target, can go once nothing points at it... */
  g_assert_cmpuint (api (admin_token, "DELETE", company, c_path, NULL, NULL), ==, 409);
  g_assert_cmpuint (api (admin_token, "DELETE", company, a_path, NULL, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "DELETE", company, c_path, NULL, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "DELETE", company, b_path, NULL, NULL), ==, 204);
}

typedef struct {
  char *path;
  gint status; /* 0 until the answer came */
  JsonObject *problem;
} Pending;

static gpointer
delete_thread (gpointer data)
{
  Pending *p = data;

  g_atomic_int_set (&p->status,
                    (gint) api (admin_token, "DELETE", company, p->path, NULL, &p->problem));
  return NULL;
}

static PGresult *
sql (PGconn *conn, const char *statement)
{
  PGresult *res = PQexec (conn, statement);

  if (PQresultStatus (res) != PGRES_COMMAND_OK && PQresultStatus (res) != PGRES_TUPLES_OK)
    g_error ("%s: %s", statement, PQerrorMessage (conn));
  return res;
}

/* A queue is pointed at a target while the target is being deleted. The
 * delete looked for senders before the pointer was committed; the database
 * still refuses it, and the API says why (before the links table, the
 * target went and the pointer dangled). */
static void
test_delete_races_a_new_reference (void)
{
  g_autofree char *target = create ("{\"name\":\"Race target\"}");
  g_autofree char *sender = create ("{\"name\":\"Race sender\"}");
  g_autofree char *pg_dir = g_build_filename (state, "postgres", NULL);
  g_autofree char *conninfo =
      g_strdup_printf ("host='%s' dbname=calldocker user=calldocker", pg_dir);
  g_autofree char *link = g_strdup_printf (
      "INSERT INTO queue_links (company_id, from_queue, to_queue) VALUES ('%s', '%s', '%s')",
      company, sender, target);
  Pending pending = { .path = g_strdup_printf ("queues/%s", target) };
  PGconn *conn = PQconnectdb (conninfo);
  GThread *thread;

  g_assert_cmpint (PQstatus (conn), ==, CONNECTION_OK);
  PQclear (sql (conn, "BEGIN"));
  PQclear (sql (conn, "SET LOCAL calldocker.scope = 'platform'"));
  PQclear (sql (conn, link));
  thread = g_thread_new ("delete", delete_thread, &pending);
  /* the delete waits on the row the uncommitted link holds */
  cd_test_sleep (700);
  g_assert_cmpint (g_atomic_int_get (&pending.status), ==, 0);
  PQclear (sql (conn, "COMMIT"));
  g_thread_join (thread);
  g_assert_cmpint (pending.status, ==, 409);
  g_assert_cmpstr (json_object_get_string_member (pending.problem, "detail"), ==,
                   "the queue still receives calls from a queue or country changed meanwhile");
  g_assert_cmpuint (api (admin_token, "GET", company, pending.path, NULL, NULL), ==, 200);
  PQfinish (conn);
  g_free (pending.path);
  json_object_unref (pending.problem);
}

/* ---- simulate ---- */

/* the outcome the simulation gave @agent_id */
static const char *
outcome_of (JsonObject *answer, const char *agent_id)
{
  JsonArray *list = json_object_get_array_member (answer, "outcomes");

  for (guint i = 0; i < json_array_get_length (list); i++) {
    JsonObject *o = json_array_get_object_element (list, i);
    if (g_str_equal (json_object_get_string_member (o, "agent_id"), agent_id))
      return json_object_get_string_member (o, "outcome");
  }
  g_error ("no outcome for %s", agent_id);
}

static JsonObject *
simulate (const char *token, const char *company_id, const char *queue_id, const char *json,
          guint want)
{
  g_autofree char *path = g_strdup_printf ("queues/%s/simulate", queue_id);
  JsonObject *answer = NULL;
  guint status = api (token, "POST", company_id, path, json, &answer);

  if (status != want)
    g_error ("simulate %s: %u, expected %u", json, status, want);
  return answer;
}

/* Who would get a call now, and why the others would not: skills, the
 * queue's languages, presence; nobody is reserved by asking. */
static void
test_simulate (void)
{
  g_autofree char *sim = cd_test_seed_company (state, "sim", "https://sim.test", 4, PASSWORD);
  g_autofree char *admin = cd_test_login (daemon_proc->base_url, "admin@sim.test", PASSWORD);
  const char *attributes[] = { "{\"skills\":{\"billing\":5},\"languages\":[\"de\"]}",
                               "{\"skills\":{\"billing\":4},\"languages\":[\"de\",\"en\"]}",
                               "{\"skills\":{\"billing\":1},\"languages\":[\"de\"]}",
                               "{\"skills\":{\"billing\":9},\"languages\":[\"fr\"]}" };
  char *tokens[4], *ids[4];
  g_autoptr (GString) members = g_string_new ("{\"members\":{");
  g_autoptr (JsonObject) queue = NULL;
  g_autoptr (JsonObject) answer = NULL;
  g_autoptr (JsonObject) again = NULL;
  g_autoptr (JsonObject) after_away = NULL;
  g_autoptr (JsonObject) closed_answer = NULL;
  g_autoptr (CdTestWs) a1 = NULL;
  g_autoptr (CdTestWs) a2 = NULL;
  g_autoptr (CdTestWs) a3 = NULL;
  g_autofree char *members_path = NULL;
  const char *queue_id;

  for (int i = 0; i < 4; i++) {
    g_autofree char *email = g_strdup_printf ("agent%d@sim.test", i + 1);
    g_autofree char *user_path = NULL;

    tokens[i] = cd_test_login (daemon_proc->base_url, email, PASSWORD);
    ids[i] = cd_test_user_id (tokens[i]);
    user_path = g_strdup_printf ("users/%s", ids[i]);
    g_assert_cmpuint (api (admin, "PATCH", sim, user_path, attributes[i], NULL), ==, 200);
    g_string_append_printf (members, "%s\"%s\":%d", i ? "," : "", ids[i], i + 1);
  }
  g_string_append (members, "}}");
  g_assert_cmpuint (api (admin, "POST", sim, "queues",
                         "{\"name\":\"Billing\",\"strategy\":\"skills-based\","
                         "\"skills\":{\"billing\":3},\"languages\":[\"de\"]}",
                         &queue),
                    ==, 201);
  queue_id = json_object_get_string_member (queue, "id");
  members_path = g_strdup_printf ("queues/%s/members", queue_id);
  g_assert_cmpuint (api (admin, "PUT", sim, members_path, members->str, NULL), ==, 204);

  /* agents 1 to 3 are signed in and available; agent 4 is not */
  a1 = cd_test_ws_agent_online (daemon_proc->base_url, tokens[0], "available");
  a2 = cd_test_ws_agent_online (daemon_proc->base_url, tokens[1], "available");
  a3 = cd_test_ws_agent_online (daemon_proc->base_url, tokens[2], "available");

  answer = simulate (admin, sim, queue_id, "{\"language\":\"de\"}", 200);
  g_assert_cmpstr (json_object_get_string_member (answer, "strategy"), ==, "skills-based");
  g_assert_true (json_object_get_boolean_member (answer, "open"));
  g_assert_cmpint (json_object_get_int_member (answer, "members"), ==, 4);
  g_assert_cmpint (json_object_get_int_member (answer, "eligible"), ==, 2);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (answer, "chosen")), ==, 1);
  g_assert_cmpstr (
      json_array_get_string_element (json_object_get_array_member (answer, "chosen"), 0), ==,
      ids[0]);
  g_assert_cmpstr (outcome_of (answer, ids[0]), ==, "chosen");
  g_assert_cmpstr (outcome_of (answer, ids[1]), ==, "eligible");
  g_assert_cmpstr (outcome_of (answer, ids[2]), ==, "skill");
  g_assert_cmpstr (outcome_of (answer, ids[3]), ==, "offline");
  /* asking reserved nobody: the same answer again */
  again = simulate (admin, sim, queue_id, "{}", 200);
  g_assert_cmpstr (outcome_of (again, ids[0]), ==, "chosen");

  /* agent 1 steps away: agent 2 is next, agent 1 busy */
  {
    guint before = a1->received->len;
    cd_test_ws_send (a1, "{\"type\":\"presence.set\",\"status\":\"away\"}");
    cd_test_ws_wait (a1, before, "presence", NULL);
  }
  after_away = simulate (admin, sim, queue_id, "{}", 200);
  g_assert_cmpstr (outcome_of (after_away, ids[0]), ==, "busy");
  g_assert_cmpstr (outcome_of (after_away, ids[1]), ==, "chosen");

  /* a queue closed all week says so */
  {
    g_autoptr (JsonObject) closed = NULL;

    g_assert_cmpuint (api (admin, "POST", sim, "queues",
                           "{\"name\":\"Never\",\"business_hours\":{\"time_zone\":\"UTC\","
                           "\"weekly\":{}}}",
                           &closed),
                      ==, 201);
    closed_answer = simulate (admin, sim, json_object_get_string_member (closed, "id"), "{}", 200);
    g_assert_false (json_object_get_boolean_member (closed_answer, "open"));
    g_assert_cmpint (json_object_get_int_member (closed_answer, "members"), ==, 0);
  }

  /* bad input changes nothing and says what was wrong */
  {
    g_autofree char *path = g_strdup_printf ("queues/%s/simulate", queue_id);
    g_autofree char *nowhere =
        g_strdup_printf ("queues/%s/simulate", "00000000-0000-4000-8000-000000000000");
    g_autoptr (JsonObject) problem = NULL;

    g_assert_cmpuint (api (admin, "POST", sim, path, "{\"priority\":500}", &problem), ==, 422);
    g_assert_nonnull (strstr (json_object_get_string_member (problem, "detail"), "priority"));
    g_clear_pointer (&problem, json_object_unref);
    g_assert_cmpuint (api (admin, "POST", sim, path, "{\"country\":\"Germany\"}", &problem), ==,
                      422);
    g_assert_nonnull (strstr (json_object_get_string_member (problem, "detail"), "country"));
    g_assert_cmpuint (api (admin, "POST", sim, nowhere, "{}", NULL), ==, 404);
    g_assert_cmpuint (api (tokens[1], "POST", sim, path, "{}", NULL), ==, 403);
    g_assert_cmpuint (api (admin_token, "POST", sim, path, "{}", NULL), ==, 404);
  }
  for (int i = 0; i < 4; i++) {
    g_free (tokens[i]);
    g_free (ids[i]);
  }
}

/* The company's countries (as GET answers them), as "DE=ID AT=ID" in code
 * order */
static char *
countries_now (const char *token, const char *company_id)
{
  g_autoptr (JsonObject) got = NULL;
  g_autoptr (GList) codes = NULL;
  GString *s = g_string_new (NULL);
  JsonObject *map;

  g_assert_cmpuint (api (token, "GET", company_id, "country-queues", NULL, &got), ==, 200);
  map = json_object_get_object_member (got, "countries");
  codes = g_list_sort (json_object_get_members (map), (GCompareFunc) g_strcmp0);
  for (GList *l = codes; l; l = l->next)
    g_string_append_printf (s, "%s%s=%s", s->len ? " " : "", (char *) l->data,
                            json_object_get_string_member (map, l->data));
  return g_string_free (s, FALSE);
}

static void
assert_countries (const char *token, const char *company_id, const char *expected)
{
  g_autofree char *now = countries_now (token, company_id);

  g_assert_cmpstr (now, ==, expected);
}

/* Countries to queues: replaced whole, codes and ids in one spelling;
 * every bad map refused with the member and nothing changed; another
 * company's queue is no queue here; a queue a country sends calls to is
 * not deleted. */
static void
test_country_queues (void)
{
  g_autofree char *germany = create ("{\"name\":\"Germany\"}");
  g_autofree char *france = create ("{\"name\":\"France\"}");
  g_autofree char *theirs = NULL;
  g_autofree char *germany_upper = g_ascii_strup (germany, -1);
  g_autofree char *map =
      g_strdup_printf ("{\"countries\":{\"de\":\"%s\",\"AT\":\"%s\",\"Fr\":\"%s\"}}", germany_upper,
                       germany, france);
  g_autofree char *expected = g_strdup_printf ("AT=%s DE=%s FR=%s", germany, germany, france);
  g_autofree char *germany_path = g_strdup_printf ("queues/%s", germany);
  g_autoptr (JsonObject) problem = NULL;

  {
    g_autoptr (JsonObject) reply = NULL;

    g_assert_cmpuint (api (other_admin_token, "POST", other_company, "queues",
                           "{\"name\":\"Their country queue\"}", &reply),
                      ==, 201);
    theirs = g_strdup (json_object_get_string_member (reply, "id"));
  }
  assert_countries (admin_token, company, "");
  g_assert_cmpuint (api (admin_token, "PUT", company, "country-queues", map, NULL), ==, 204);
  assert_countries (admin_token, company, expected);

  /* refusals: each names what is wrong, and the map stays */
  {
    g_autofree char *foreign = g_strdup_printf ("{\"countries\":{\"IT\":\"%s\"}}", theirs);
    g_autofree char *foreign_detail =
        g_strdup_printf ("countries.IT: no queue %s in this company", theirs);
    g_autofree char *missing = g_strdup_printf (
        "{\"countries\":{\"ES\":\"%s\",\"IT\":\"00000000-0000-4000-8000-000000000000\"}}", germany);
    g_autofree char *twice =
        g_strdup_printf ("{\"countries\":{\"DE\":\"%s\",\"de\":\"%s\"}}", germany, france);
    const struct {
      const char *body;
      const char *detail; /* or a part of it */
    } cases[] = {
      { foreign, foreign_detail },
      { missing, "countries.IT: no queue 00000000-0000-4000-8000-000000000000 in this company" },
      { twice, "countries.DE: listed twice" },
      { "{\"countries\":{\"Germany\":\"x\"}}",
        "countries.Germany: not a two-letter country code (ISO 3166-1 alpha-2, e.g. \"DE\")" },
      { "{\"countries\":{\"XX\":\"x\"}}",
        "countries.XX: not a two-letter country code (ISO 3166-1 alpha-2, e.g. \"DE\")" },
      { "{\"countries\":{\"DE\":\"sales\"}}", "countries.DE: the value is a queue id (UUID)" },
      { "{\"countries\":[]}", "countries" },
      { "{}", "countries" },
      { "{\"countries\":{},\"extra\":1}", "extra" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
      const char *detail;

      g_test_message ("PUT country-queues %s", cases[i].body);
      g_assert_cmpuint (
          api (admin_token, "PUT", company, "country-queues", cases[i].body, &problem), ==, 422);
      g_assert_nonnull (problem);
      detail = json_object_get_string_member (problem, "detail");
      if (g_str_has_prefix (cases[i].detail, "countries."))
        g_assert_cmpstr (detail, ==, cases[i].detail);
      else
        g_assert_nonnull (strstr (detail, cases[i].detail));
      g_clear_pointer (&problem, json_object_unref);
      assert_countries (admin_token, company, expected);
    }
    g_assert_cmpuint (api (admin_token, "PUT", company, "country-queues", "{\"countries\":", NULL),
                      ==, 400);
    assert_countries (admin_token, company, expected);
  }

  /* one company neither reads nor changes another's (no such company there);
   * agents do neither */
  g_assert_cmpuint (api (other_admin_token, "GET", company, "country-queues", NULL, NULL), ==, 404);
  g_assert_cmpuint (
      api (other_admin_token, "PUT", company, "country-queues", "{\"countries\":{}}", NULL), ==,
      404);
  g_assert_cmpuint (api (agent_token, "GET", company, "country-queues", NULL, NULL), ==, 403);
  assert_countries (admin_token, company, expected);
  assert_countries (other_admin_token, other_company, "");

  /* a queue countries send calls to stays */
  g_assert_cmpuint (api (admin_token, "DELETE", company, germany_path, NULL, &problem), ==, 409);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                   "the queue still receives calls from: visitors from AT, visitors from DE");
  /* a smaller map replaces the whole; then the queue goes */
  {
    g_autofree char *only_france = g_strdup_printf ("{\"countries\":{\"FR\":\"%s\"}}", france);
    g_autofree char *france_only = g_strdup_printf ("FR=%s", france);

    g_assert_cmpuint (api (admin_token, "PUT", company, "country-queues", only_france, NULL), ==,
                      204);
    assert_countries (admin_token, company, france_only);
  }
  g_assert_cmpuint (api (admin_token, "DELETE", company, germany_path, NULL, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "PUT", company, "country-queues", "{\"countries\":{}}", NULL),
                    ==, 204);
  assert_countries (admin_token, company, "");
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-api-queues-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, NULL);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "shop", "https://shop.test", 1, PASSWORD);
  other_company = cd_test_seed_company (state, "other", "https://other.test", 0, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@shop.test", PASSWORD);
  other_admin_token = cd_test_login (daemon_proc->base_url, "admin@other.test", PASSWORD);
  agent_token = cd_test_login (daemon_proc->base_url, "agent1@shop.test", PASSWORD);
  g_test_add_func ("/api-queues/create-read-replace", test_create_read_replace);
  g_test_add_func ("/api-queues/refusals", test_refusals);
  g_test_add_func ("/api-queues/members-and-delete", test_members_and_delete);
  g_test_add_func ("/api-queues/circles", test_circles);
  g_test_add_func ("/api-queues/simulate", test_simulate);
  g_test_add_func ("/api-queues/delete-races-a-new-reference", test_delete_races_a_new_reference);
  g_test_add_func ("/api-queues/country-queues", test_country_queues);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (other_company);
  g_free (admin_token);
  g_free (other_admin_token);
  g_free (agent_token);
  return status;
}
