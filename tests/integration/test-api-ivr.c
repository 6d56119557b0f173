/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The IVR flow API against the real daemon and PostgreSQL: a flow is
 * created as a draft, published as numbered versions that never change,
 * edited again without touching the live version; flows naming queues,
 * agents or prompts the company does not have are refused with the node,
 * and nothing is stored; what a live flow uses cannot be deleted; widget
 * entry points name published flows only; one company never sees or names
 * another's flows. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"

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
create_in (const char *token, const char *company_id, const char *kind, const char *json)
{
  g_autoptr (JsonObject) reply = NULL;

  g_assert_cmpuint (api (token, "POST", company_id, kind, json, &reply), ==, 201);
  return g_strdup (json_object_get_string_member (reply, "id"));
}

static char *
create_queue (const char *name)
{
  g_autofree char *json = g_strdup_printf ("{\"name\":\"%s\"}", name);

  return create_in (admin_token, company, "queues", json);
}

/* A flow named @name: a greeting, a menu whose 1 enters @queue_id and
 * whose 2 says goodbye. */
static char *
flow_json (const char *name, const char *greeting, const char *queue_id)
{
  return g_strdup_printf (
      "{\"name\":\"%s\",\"flow\":{\"start\":\"greet\",\"nodes\":["
      "{\"id\":\"greet\",\"type\":\"say\",\"text\":\"%s\",\"next\":\"menu\"},"
      "{\"id\":\"menu\",\"type\":\"menu\",\"prompt\":{\"text\":\"Press 1 or 2.\"},"
      "\"options\":{\"1\":\"sales\",\"2\":\"bye\"},\"fallback\":\"bye\"},"
      "{\"id\":\"sales\",\"type\":\"queue\",\"queue_id\":\"%s\"},"
      "{\"id\":\"bye\",\"type\":\"hangup\"}]}}",
      name, greeting, queue_id);
}

static guint
count_flows (void)
{
  g_autoptr (JsonObject) page = NULL;

  g_assert_cmpuint (api (admin_token, "GET", company, "ivr-flows", NULL, &page), ==, 200);
  return json_array_get_length (json_object_get_array_member (page, "items"));
}

static void
assert_refused (const char *method, const char *path, const char *json, guint status,
                const char *detail)
{
  g_autoptr (JsonObject) problem = NULL;
  guint before = count_flows ();

  g_test_message ("%s %s %s", method, path, json ? json : "");
  g_assert_cmpuint (api (admin_token, method, company, path, json, &problem), ==, status);
  g_assert_nonnull (problem);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==, detail);
  g_assert_cmpuint (count_flows (), ==, before);
}

/* The greeting's text in @flow (a flow definition). */
static const char *
greeting_of (JsonObject *flow)
{
  JsonArray *nodes = json_object_get_array_member (flow, "nodes");

  return json_object_get_string_member (json_array_get_object_element (nodes, 0), "text");
}

static PGconn *
pg_connect (void)
{
  g_autofree char *pg_dir = g_build_filename (state, "postgres", NULL);
  g_autofree char *conninfo =
      g_strdup_printf ("host='%s' dbname=calldocker user=calldocker", pg_dir);
  PGconn *conn = PQconnectdb (conninfo);

  g_assert_cmpint (PQstatus (conn), ==, CONNECTION_OK);
  return conn;
}

/* @statement as the platform; NULL if it succeeded, else its error */
static char *
sql_error (PGconn *conn, const char *statement)
{
  g_autofree char *scoped =
      g_strdup_printf ("BEGIN; SET LOCAL calldocker.scope = 'platform'; %s; COMMIT", statement);
  PGresult *res = PQexec (conn, scoped);
  char *error = NULL;

  if (PQresultStatus (res) != PGRES_COMMAND_OK && PQresultStatus (res) != PGRES_TUPLES_OK)
    error = g_strdup (PQerrorMessage (conn));
  PQclear (res);
  if (error)
    PQclear (PQexec (conn, "ROLLBACK"));
  return error;
}

/* draft -> v1 -> edit (draft, v1 still live) -> v2; v1 stays as it was */
static void
test_draft_publish_versions (void)
{
  g_autofree char *queue = create_queue ("IVR sales");
  g_autofree char *v1_json = flow_json ("Main", "Welcome.", queue);
  g_autofree char *v2_json = flow_json ("Main", "Welcome back.", queue);
  g_autofree char *flow = create_in (admin_token, company, "ivr-flows", v1_json);
  g_autofree char *path = g_strdup_printf ("ivr-flows/%s", flow);
  g_autofree char *publish = g_strdup_printf ("ivr-flows/%s/publish", flow);
  g_autofree char *versions = g_strdup_printf ("ivr-flows/%s/versions", flow);
  g_autofree char *version_1 = g_strdup_printf ("ivr-flows/%s/versions/1", flow);
  g_autoptr (JsonObject) got = NULL;
  g_autoptr (JsonObject) problem = NULL;

  /* a new flow is a draft: nothing is live */
  g_assert_cmpuint (api (admin_token, "GET", company, path, NULL, &got), ==, 200);
  g_assert_cmpstr (json_object_get_string_member (got, "name"), ==, "Main");
  g_assert_true (json_object_get_boolean_member (got, "has_draft"));
  g_assert_cmpstr (greeting_of (json_object_get_object_member (got, "draft")), ==, "Welcome.");
  g_assert_true (json_object_get_null_member (got, "live_version"));
  g_assert_true (json_object_get_null_member (got, "live"));
  g_assert_cmpint (json_object_get_int_member (got, "versions"), ==, 0);
  g_clear_pointer (&got, json_object_unref);

  /* publishing makes version 1 live and clears the draft */
  g_assert_cmpuint (api (admin_token, "POST", company, publish, NULL, &got), ==, 200);
  g_assert_cmpint (json_object_get_int_member (got, "live_version"), ==, 1);
  g_assert_false (json_object_get_boolean_member (got, "has_draft"));
  g_clear_pointer (&got, json_object_unref);
  /* with nothing edited since, there is nothing to publish */
  g_assert_cmpuint (api (admin_token, "POST", company, publish, NULL, &problem), ==, 409);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                   "nothing to publish: the flow has no draft (its last edit is live already)");
  g_clear_pointer (&problem, json_object_unref);

  /* an edit is a draft beside the live version */
  g_assert_cmpuint (api (admin_token, "PUT", company, path, v2_json, &got), ==, 200);
  g_assert_true (json_object_get_boolean_member (got, "has_draft"));
  g_assert_cmpint (json_object_get_int_member (got, "live_version"), ==, 1);
  g_assert_cmpstr (greeting_of (json_object_get_object_member (got, "draft")), ==, "Welcome back.");
  g_assert_cmpstr (greeting_of (json_object_get_object_member (got, "live")), ==, "Welcome.");
  g_clear_pointer (&got, json_object_unref);
  g_assert_cmpuint (api (admin_token, "POST", company, publish, NULL, &got), ==, 200);
  g_assert_cmpint (json_object_get_int_member (got, "live_version"), ==, 2);
  g_clear_pointer (&got, json_object_unref);

  /* both versions are kept, the newest first; the first as it was */
  g_assert_cmpuint (api (admin_token, "GET", company, versions, NULL, &got), ==, 200);
  {
    JsonArray *items = json_object_get_array_member (got, "items");
    g_autofree char *admin = cd_test_user_id (admin_token);

    g_assert_cmpuint (json_array_get_length (items), ==, 2);
    g_assert_cmpint (
        json_object_get_int_member (json_array_get_object_element (items, 0), "version"), ==, 2);
    g_assert_cmpstr (
        json_object_get_string_member (json_array_get_object_element (items, 1), "published_by"),
        ==, admin);
  }
  g_clear_pointer (&got, json_object_unref);
  g_assert_cmpuint (api (admin_token, "GET", company, version_1, NULL, &got), ==, 200);
  g_assert_cmpstr (greeting_of (json_object_get_object_member (got, "flow")), ==, "Welcome.");
  g_assert_false (json_object_get_boolean_member (got, "live"));
  g_clear_pointer (&got, json_object_unref);
  {
    g_autofree char *v3 = g_strdup_printf ("ivr-flows/%s/versions/3", flow);
    g_autofree char *v0 = g_strdup_printf ("ivr-flows/%s/versions/0", flow);
    g_autofree char *vx = g_strdup_printf ("ivr-flows/%s/versions/x1", flow);

    g_assert_cmpuint (api (admin_token, "GET", company, v3, NULL, NULL), ==, 404);
    g_assert_cmpuint (api (admin_token, "GET", company, v0, NULL, NULL), ==, 404);
    g_assert_cmpuint (api (admin_token, "GET", company, vx, NULL, NULL), ==, 404);
  }
  /* versions are kept as published: the database refuses to change one */
  {
    PGconn *conn = pg_connect ();
    g_autofree char *update = g_strdup_printf (
        "UPDATE ivr_flow_versions SET definition = '{}' WHERE flow_id = '%s'", flow);
    g_autofree char *error = NULL;

    PQclear (PQexec (conn, "SET ROLE calldocker_app"));
    error = sql_error (conn, update);
    g_assert_nonnull (error);
    g_assert_nonnull (strstr (error, "permission denied"));
    PQfinish (conn);
  }

  /* the queue a live flow sends calls to stays */
  {
    g_autofree char *queue_path = g_strdup_printf ("queues/%s", queue);

    g_assert_cmpuint (api (admin_token, "DELETE", company, queue_path, NULL, &problem), ==, 409);
    g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                     "the queue still receives calls from: IVR flow Main");
    g_clear_pointer (&problem, json_object_unref);
    g_assert_cmpuint (api (admin_token, "DELETE", company, path, NULL, NULL), ==, 204);
    g_assert_cmpuint (api (admin_token, "GET", company, path, NULL, NULL), ==, 404);
    g_assert_cmpuint (api (admin_token, "GET", company, version_1, NULL, NULL), ==, 404);
    g_assert_cmpuint (api (admin_token, "DELETE", company, queue_path, NULL, NULL), ==, 204);
  }
}

static void
test_refusals (void)
{
  g_autofree char *queue = create_queue ("IVR refusals");
  g_autofree char *valid = flow_json ("Checked", "Hello.", queue);
  g_autofree char *flow = create_in (admin_token, company, "ivr-flows", valid);
  g_autofree char *path = g_strdup_printf ("ivr-flows/%s", flow);
  g_autofree char *publish = g_strdup_printf ("ivr-flows/%s/publish", flow);
  g_autofree char *foreign_queue = NULL;
  g_autofree char *other_admin = cd_test_user_id (other_admin_token);
  const char *unknown = "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab";
  g_autoptr (JsonObject) got = NULL;

  {
    g_autofree char *json = g_strdup_printf ("{\"name\":\"Theirs\"}");
    foreign_queue = create_in (other_admin_token, other_company, "queues", json);
  }
  /* the parser's refusals reach the admin with the node (every one is
   * tested in test-ivr-flow) */
  assert_refused ("POST", "ivr-flows",
                  "{\"name\":\"X\",\"flow\":{\"start\":\"a\",\"nodes\":[{\"id\":\"a\","
                  "\"type\":\"dance\"}]}}",
                  422,
                  "flow: node \"a\": type: \"dance\" is not a node type (play, say, menu, "
                  "gather, branch, set, queue, voicemail, transfer, hangup)");
  assert_refused ("POST", "ivr-flows",
                  "{\"name\":\"X\",\"flow\":{\"start\":\"a\",\"nodes\":[{\"id\":\"a\","
                  "\"type\":\"say\",\"text\":\"Hi\",\"next\":\"nowhere\"}]}}",
                  422, "flow: node \"a\": next: no node \"nowhere\"");
  assert_refused ("POST", "ivr-flows", "{\"name\":\"X\"}", 422, "field 'flow': is required");
  assert_refused ("POST", "ivr-flows", "{\"name\":\"\",\"flow\":{}}", 422,
                  "field 'name': must have 1 to 100 characters");
  /* what a flow names must be the company's */
  {
    g_autofree char *json = flow_json ("X", "Hi", foreign_queue);
    g_autofree char *detail = g_strdup_printf (
        "flow: node \"sales\": queue_id: no queue %s in this company", foreign_queue);
    assert_refused ("POST", "ivr-flows", json, 422, detail);
  }
  {
    g_autofree char *json = g_strdup_printf (
        "{\"name\":\"X\",\"flow\":{\"start\":\"t\",\"nodes\":[{\"id\":\"t\",\"type\":"
        "\"transfer\",\"agent_id\":\"%s\"}]}}",
        other_admin);
    g_autofree char *detail = g_strdup_printf (
        "flow: node \"t\": agent_id: no active agent %s in this company", other_admin);
    assert_refused ("POST", "ivr-flows", json, 422, detail);
  }
  {
    g_autofree char *json = g_strdup_printf (
        "{\"name\":\"X\",\"flow\":{\"start\":\"p\",\"nodes\":[{\"id\":\"p\",\"type\":"
        "\"menu\",\"prompt\":{\"text\":\"Pick\"},\"options\":{\"1\":\"p\"},"
        "\"timeout_prompt\":{\"prompt_id\":\"%s\"}}]}}",
        unknown);
    g_autofree char *detail = g_strdup_printf (
        "flow: node \"p\": timeout_prompt.prompt_id: no prompt %s in this company", unknown);
    assert_refused ("POST", "ivr-flows", json, 422, detail);
  }
  /* an edit is checked the same way and leaves the draft as it was */
  {
    g_autofree char *json = flow_json ("Checked", "Changed", unknown);
    g_autofree char *detail =
        g_strdup_printf ("flow: node \"sales\": queue_id: no queue %s in this company", unknown);
    assert_refused ("PUT", path, json, 422, detail);
    g_assert_cmpuint (api (admin_token, "GET", company, path, NULL, &got), ==, 200);
    g_assert_cmpstr (greeting_of (json_object_get_object_member (got, "draft")), ==, "Hello.");
    g_clear_pointer (&got, json_object_unref);
  }
  /* names are unique in a company */
  assert_refused ("POST", "ivr-flows", valid, 409, "an IVR flow with this name exists");

  /* a draft's queue deleted before publishing: the publish names it */
  {
    g_autofree char *queue_path = g_strdup_printf ("queues/%s", queue);
    g_autofree char *detail =
        g_strdup_printf ("flow: node \"sales\": queue_id: no queue %s in this company", queue);

    g_assert_cmpuint (api (admin_token, "DELETE", company, queue_path, NULL, NULL), ==, 204);
    assert_refused ("POST", publish, NULL, 422, detail);
    g_assert_cmpuint (api (admin_token, "GET", company, path, NULL, &got), ==, 200);
    g_assert_true (json_object_get_null_member (got, "live_version"));
  }

  /* another company's flows are not there, and agents manage none */
  g_assert_cmpuint (api (other_admin_token, "GET", other_company, path, NULL, NULL), ==, 404);
  g_assert_cmpuint (api (admin_token, "GET", other_company, path, NULL, NULL), ==, 404);
  g_assert_cmpuint (api (agent_token, "GET", company, "ivr-flows", NULL, NULL), ==, 403);
  g_assert_cmpuint (api (agent_token, "POST", company, "ivr-flows", valid, NULL), ==, 403);
  g_assert_cmpuint (api (admin_token, "GET", company, "ivr-flows/not-a-flow", NULL, NULL), ==, 404);
}

/* A prompt a live flow plays cannot be deleted (prompts are stored by the
 * prompt API; here one is made in the database). */
static void
test_prompt_references (void)
{
  PGconn *conn = pg_connect ();
  g_autofree char *prompt = g_uuid_string_random ();
  g_autofree char *insert = g_strdup_printf (
      "INSERT INTO prompts (id, company_id, name, storage_key, duration_ms, size_bytes,"
      " source_type, source_bytes) VALUES ('%s', '%s', 'beep', 'prompts/beep.ogg', 1000, 4000,"
      " 'audio/wav', 96000)",
      prompt, company);
  g_autofree char *delete = g_strdup_printf ("DELETE FROM prompts WHERE id = '%s'", prompt);
  g_autofree char *json = g_strdup_printf (
      "{\"name\":\"Beeper\",\"flow\":{\"start\":\"p\",\"nodes\":[{\"id\":\"p\",\"type\":\"play\","
      "\"prompt_id\":\"%s\",\"next\":\"bye\"},{\"id\":\"bye\",\"type\":\"hangup\"}]}}",
      prompt);
  g_autofree char *flow = NULL;
  g_autofree char *publish = NULL;
  g_autofree char *error = NULL;

  g_assert_null (sql_error (conn, insert));
  flow = create_in (admin_token, company, "ivr-flows", json);
  publish = g_strdup_printf ("ivr-flows/%s/publish", flow);
  g_assert_cmpuint (api (admin_token, "POST", company, publish, NULL, NULL), ==, 200);
  error = sql_error (conn, delete);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error, "ivr_flow_prompts"));
  /* once the flow is gone, so is what held the prompt */
  {
    g_autofree char *path = g_strdup_printf ("ivr-flows/%s", flow);
    g_assert_cmpuint (api (admin_token, "DELETE", company, path, NULL, NULL), ==, 204);
  }
  g_assert_null (sql_error (conn, delete));
  PQfinish (conn);
}

static void
test_entry_points (void)
{
  g_autofree char *queue = create_queue ("IVR entry");
  g_autofree char *json = flow_json ("Front door", "Hi.", queue);
  g_autofree char *flow = create_in (admin_token, company, "ivr-flows", json);
  g_autofree char *path = g_strdup_printf ("ivr-flows/%s", flow);
  g_autofree char *publish = g_strdup_printf ("ivr-flows/%s/publish", flow);
  g_autofree char *map = g_strdup_printf ("{\"entry_points\":{\"default\":\"%s\"}}", flow);
  g_autofree char *unpublished =
      g_strdup_printf ("entry_points.default: the flow is not published yet (publish it first)");
  g_autoptr (JsonObject) got = NULL;
  g_autoptr (JsonObject) problem = NULL;

  /* only a published flow */
  g_assert_cmpuint (api (admin_token, "PUT", company, "ivr-entry-points", map, &problem), ==, 422);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==, unpublished);
  g_clear_pointer (&problem, json_object_unref);
  g_assert_cmpuint (api (admin_token, "POST", company, publish, NULL, NULL), ==, 200);
  g_assert_cmpuint (api (admin_token, "PUT", company, "ivr-entry-points", map, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "GET", company, "ivr-entry-points", NULL, &got), ==, 200);
  g_assert_cmpstr (json_object_get_string_member (
                       json_object_get_object_member (got, "entry_points"), "default"),
                   ==, flow);
  g_clear_pointer (&got, json_object_unref);
  g_assert_cmpuint (api (admin_token, "GET", company, path, NULL, &got), ==, 200);
  g_assert_cmpstr (
      json_array_get_string_element (json_object_get_array_member (got, "entry_points"), 0), ==,
      "default");

  /* bad names and flows are refused, and the map stays */
  {
    static const char *const bad[][2] = {
      { "{\"entry_points\":{\"Sales Page\":\"6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab\"}}",
        "entry_points: \"Sales Page\" is not an entry point name (1 to 40 lower-case letters, "
        "digits, _ or -, e.g. \"default\")" },
      { "{\"entry_points\":{\"sales\":7}}", "entry_points.sales: an IVR flow's id (UUID)" },
      { "{\"entry_points\":{\"sales\":\"6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab\"}}",
        "entry_points.sales: no IVR flow 6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab in this company" },
      { "{\"entry_points\":[]}", "field 'entry_points': must be an object" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
      g_test_message ("%s", bad[i][0]);
      g_assert_cmpuint (api (admin_token, "PUT", company, "ivr-entry-points", bad[i][0], &problem),
                        ==, 422);
      g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==, bad[i][1]);
      g_clear_pointer (&problem, json_object_unref);
    }
  }
  /* another company cannot point at this flow */
  {
    g_autofree char *detail =
        g_strdup_printf ("entry_points.default: no IVR flow %s in this company", flow);
    g_assert_cmpuint (
        api (other_admin_token, "PUT", other_company, "ivr-entry-points", map, &problem), ==, 422);
    g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==, detail);
    g_clear_pointer (&problem, json_object_unref);
  }

  /* a flow calls start in stays until the entry point moves */
  g_assert_cmpuint (api (admin_token, "DELETE", company, path, NULL, &problem), ==, 409);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                   "widget calls start in this flow (entry points: default); point them at "
                   "another flow first");
  g_assert_cmpuint (
      api (admin_token, "PUT", company, "ivr-entry-points", "{\"entry_points\":{}}", NULL), ==,
      204);
  g_assert_cmpuint (api (admin_token, "DELETE", company, path, NULL, NULL), ==, 204);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-api-ivr-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, NULL);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "shop", "https://shop.test", 1, PASSWORD);
  other_company = cd_test_seed_company (state, "other", "https://other.test", 0, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@shop.test", PASSWORD);
  other_admin_token = cd_test_login (daemon_proc->base_url, "admin@other.test", PASSWORD);
  agent_token = cd_test_login (daemon_proc->base_url, "agent1@shop.test", PASSWORD);
  g_test_add_func ("/api-ivr/draft-publish-versions", test_draft_publish_versions);
  g_test_add_func ("/api-ivr/refusals", test_refusals);
  g_test_add_func ("/api-ivr/prompt-references", test_prompt_references);
  g_test_add_func ("/api-ivr/entry-points", test_entry_points);
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
