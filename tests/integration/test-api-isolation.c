/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The isolation matrix: every route of the API against no token, an expired
 * token, a token signed with another key, alg none, garbage, another
 * company's token (404, never its data), an agent on admin routes (403), and
 * bad bodies and paths. Every answer is a 4xx problem, the database is
 * unchanged afterwards, and the daemon keeps serving. */

#include "auth/cd-jwt.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <sodium.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company_a, *company_b, *user_a, *queue_a, *call_a;
static char *root_token, *admin_a, *agent_a, *admin_b;
static char *expired, *foreign, *alg_none;

typedef enum {
  ALLOW_SUPERADMIN = 1,
  ALLOW_ADMIN = 2,
  ALLOW_AGENT = 4,
} Allow;

typedef struct {
  const char *method;
  const char *path; /* {A}: company A; {U}, {Q}, {C}: a user, a queue, a call of A */
  const char *body; /* a valid body, or NULL */
  Allow allow;
  gboolean company_scoped;
  const char *string_field; /* a string field of the body, for oversized values */
} Route;

static const Route routes[] = {
  { "GET", "/api/v1/me", NULL, 7, FALSE, NULL },
  { "POST", "/api/v1/me/password",
    "{\"current_password\":\"wrong one\",\"new_password\":\"another long passphrase\"}", 7, FALSE,
    "new_password" },
  { "GET", "/api/v1/admin/companies", NULL, 1, FALSE, NULL },
  { "POST", "/api/v1/admin/companies/{B}/approve", "{}", 1, FALSE, NULL },
  { "POST", "/api/v1/admin/companies/{B}/reject", "{\"reason\":\"no\"}", 1, FALSE, "reason" },
  { "POST", "/api/v1/admin/companies/{B}/suspend", "{\"reason\":\"no\"}", 1, FALSE, "reason" },
  { "GET", "/api/v1/companies/{A}", NULL, 3, TRUE, NULL },
  { "PATCH", "/api/v1/companies/{A}", "{\"name\":\"Renamed\"}", 3, TRUE, "name" },
  { "GET", "/api/v1/companies/{A}/users", NULL, 3, TRUE, NULL },
  { "POST", "/api/v1/companies/{A}/users",
    "{\"email\":\"new@alpha.test\",\"display_name\":\"New\",\"password\":\"" PASSWORD
    "\",\"role\":\"agent\"}",
    3, TRUE, "display_name" },
  { "GET", "/api/v1/companies/{A}/users/{U}", NULL, 3, TRUE, NULL },
  { "PATCH", "/api/v1/companies/{A}/users/{U}", "{\"display_name\":\"X\"}", 3, TRUE,
    "display_name" },
  { "DELETE", "/api/v1/companies/{A}/users/{U}", NULL, 3, TRUE, NULL },
  { "GET", "/api/v1/companies/{A}/queues", NULL, 3, TRUE, NULL },
  { "POST", "/api/v1/companies/{A}/queues", "{\"name\":\"New queue\"}", 3, TRUE, "name" },
  { "GET", "/api/v1/companies/{A}/queues/{Q}", NULL, 3, TRUE, NULL },
  { "PUT", "/api/v1/companies/{A}/queues/{Q}", "{\"name\":\"Renamed queue\"}", 3, TRUE, "name" },
  { "DELETE", "/api/v1/companies/{A}/queues/{Q}", NULL, 3, TRUE, NULL },
  { "PUT", "/api/v1/companies/{A}/queues/{Q}/members", "{\"members\":{}}", 3, TRUE, NULL },
  { "POST", "/api/v1/companies/{A}/queues/{Q}/simulate", "{\"language\":\"de\"}", 3, TRUE,
    "language" },
  /* agents read the calls they took: company-scoped all the same */
  { "GET", "/api/v1/companies/{A}/calls", NULL, 7, TRUE, NULL },
  { "GET", "/api/v1/companies/{A}/calls/{C}", NULL, 7, TRUE, NULL },
  { "GET", "/api/v1/companies/{A}/calls/{C}/pipeline", NULL, 3, TRUE, NULL },
  { "GET", "/api/v1/companies/{A}/calls/{C}/stats", NULL, 3, TRUE, NULL },
};

/* @inner, when given, stands for the user, queue or call */
static char *
expand (const char *path, const char *a, const char *inner)
{
  g_autoptr (GString) s = g_string_new (path);

  g_string_replace (s, "{A}", a, 0);
  g_string_replace (s, "{B}", company_b, 0);
  g_string_replace (s, "{U}", inner ? inner : user_a, 0);
  g_string_replace (s, "{Q}", inner ? inner : queue_a, 0);
  g_string_replace (s, "{C}", inner ? inner : call_a, 0);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static guint
call (const char *method, const char *path, const char *token, const char *content_type,
      const char *body, char **response)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, path + 1, NULL);
  g_autofree char *bearer = token ? g_strconcat ("Bearer ", token, NULL) : NULL;
  const char *headers[] = { "Authorization", bearer, NULL };

  return cd_test_http_request (method, url, content_type, body, body ? strlen (body) : 0,
                               token ? headers : NULL, response, NULL);
}

/* A 4xx problem+json whose status member agrees. */
static void
expect (const char *what, guint status, guint want, const char *body)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) problem = NULL;

  if (status != want)
    g_error ("%s: answered %u, expected %u: %s", what, status, want, body ? body : "");
  problem = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_object_get_int_member (problem, "status"), ==, want);
  g_assert_true (g_str_has_prefix (json_object_get_string_member (problem, "type"),
                                   "urn:calldocker:problem:"));
}

static void
test_tokens_refused_everywhere (void)
{
  const char *bad[] = { NULL, expired, foreign, alg_none, "not.a.token" };

  for (gsize r = 0; r < G_N_ELEMENTS (routes); r++) {
    g_autofree char *path = expand (routes[r].path, company_a, NULL);
    for (gsize t = 0; t < G_N_ELEMENTS (bad); t++) {
      g_autofree char *body = NULL;
      g_autofree char *what =
          g_strdup_printf ("%s %s with bad token %zu", routes[r].method, routes[r].path, t);
      guint status = call (routes[r].method, path, bad[t],
                           routes[r].body ? "application/json" : NULL, routes[r].body, &body);
      expect (what, status, 401, body);
    }
  }
}

static void
test_other_company_gets_404 (void)
{
  for (gsize r = 0; r < G_N_ELEMENTS (routes); r++) {
    g_autofree char *path = expand (routes[r].path, company_a, NULL);
    g_autofree char *body = NULL;
    g_autofree char *what =
        g_strdup_printf ("%s %s as company B's admin", routes[r].method, routes[r].path);
    guint status;

    if ((routes[r].allow & ALLOW_AGENT) && !routes[r].company_scoped)
      continue; /* the caller's own resources */
    status = call (routes[r].method, path, admin_b, routes[r].body ? "application/json" : NULL,
                   routes[r].body, &body);
    expect (what, status, routes[r].company_scoped ? 404 : 403, body);
    g_assert_null (strstr (body, company_a));
    g_assert_null (strstr (body, "alpha.test"));
  }
}

/* the 404s above mean something: A's admin reaches the same things */
static void
test_owner_reaches_them (void)
{
  const char *paths[] = { "/api/v1/companies/{A}/queues/{Q}", "/api/v1/companies/{A}/calls/{C}",
                          "/api/v1/companies/{A}/users/{U}" };

  for (gsize i = 0; i < G_N_ELEMENTS (paths); i++) {
    g_autofree char *path = expand (paths[i], company_a, NULL);
    g_autofree char *body = NULL;

    g_assert_cmpuint (call ("GET", path, admin_a, NULL, NULL, &body), ==, 200);
    g_assert_nonnull (strstr (body, company_a));
  }
}

static void
test_agent_refused_on_admin_routes (void)
{
  for (gsize r = 0; r < G_N_ELEMENTS (routes); r++) {
    g_autofree char *path = expand (routes[r].path, company_a, NULL);
    g_autofree char *body = NULL;
    g_autofree char *what = g_strdup_printf ("%s %s as an agent", routes[r].method, routes[r].path);
    guint status;

    if (routes[r].allow & ALLOW_AGENT)
      continue;
    status = call (routes[r].method, path, agent_a, routes[r].body ? "application/json" : NULL,
                   routes[r].body, &body);
    expect (what, status, 403, body);
  }
}

static void
test_bad_paths (void)
{
  const char *ids[] = { "not-a-uuid", "1'%20OR%20'1'%3D'1", "00000000-0000-0000-0000-000000000000",
                        "%2e%2e" };

  for (gsize r = 0; r < G_N_ELEMENTS (routes); r++) {
    if (!routes[r].company_scoped)
      continue;
    for (gsize i = 0; i < G_N_ELEMENTS (ids); i++) {
      g_autofree char *path = expand (routes[r].path, ids[i], NULL);
      g_autofree char *user_path = expand (routes[r].path, company_a, ids[i]);
      g_autofree char *body = NULL;
      g_autofree char *body2 = NULL;
      g_autofree char *what =
          g_strdup_printf ("%s %s with id %s", routes[r].method, routes[r].path, ids[i]);
      guint status = call (routes[r].method, path, admin_a,
                           routes[r].body ? "application/json" : NULL, routes[r].body, &body);
      expect (what, status, 404, body);
      if (strstr (routes[r].path, "{U}") || strstr (routes[r].path, "{Q}") ||
          strstr (routes[r].path, "{C}")) {
        status = call (routes[r].method, user_path, admin_a,
                       routes[r].body ? "application/json" : NULL, routes[r].body, &body2);
        expect (what, status, 404, body2);
      }
    }
  }
}

static void
check_bad_bodies (const char *method, const char *path, const char *token, const char *field,
                  const char *email_field)
{
  g_autofree char *huge = g_strnfill (1024 * 1024, 'x');
  g_autofree char *local = g_strnfill (300, 'a');
  g_autofree char *long_email = g_strdup_printf ("%s@example.com", local);
  g_autofree char *wrong_type =
      field ? g_strdup_printf ("{\"%s\":12345}", field) : g_strdup ("{\"zz\":[]}");
  g_autofree char *null_value =
      field ? g_strdup_printf ("{\"%s\":null}", field) : g_strdup ("{\"email\":null}");
  g_autofree char *oversized = field ? g_strdup_printf ("{\"%s\":\"%s\"}", field, huge) : NULL;
  g_autofree char *bad_email =
      email_field ? g_strdup_printf ("{\"%s\":\"%s\"}", email_field, long_email) : NULL;
  g_autofree char *sql_email =
      email_field ? g_strdup_printf ("{\"%s\":\"x' OR '1'='1\"}", email_field) : NULL;
  const struct {
    const char *body;
    guint status;
  } cases[] = {
    { "{\"a\":", 400 },           { "[1,2]", 400 },
    { "{\"a\":1,\"a\":2}", 400 }, { "{\"no_such_field\":1}", 422 },
    { wrong_type, 422 },          { oversized, 413 },
    { null_value, 422 },          { bad_email, 422 },
    { sql_email, 422 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *body = NULL;
    g_autofree char *what = NULL;
    guint status;
    if (cases[i].body == NULL)
      continue;
    what = g_strdup_printf ("%s %s with body case %zu", method, path, i);
    status = call (method, path, token, "application/json", cases[i].body, &body);
    expect (what, status, cases[i].status, body);
  }
  {
    g_autofree char *body = NULL;
    guint status = call (method, path, token, "text/plain", "{}", &body);
    expect ("wrong content type", status, 415, body);
  }
}

static void
test_bad_bodies (void)
{
  for (gsize r = 0; r < G_N_ELEMENTS (routes); r++) {
    g_autofree char *path = expand (routes[r].path, company_a, NULL);
    const char *token = routes[r].allow & ALLOW_ADMIN ? admin_a : root_token;
    if (routes[r].body == NULL)
      continue;
    if (routes[r].allow == 7)
      token = agent_a;
    check_bad_bodies (routes[r].method, path, token, routes[r].string_field,
                      strstr (routes[r].body, "\"email\"") ? "email" : NULL);
  }
  check_bad_bodies ("POST", "/api/v1/auth/login", NULL, "password", "email");
  check_bad_bodies ("POST", "/api/v1/auth/refresh", NULL, "refresh_token", NULL);
  check_bad_bodies ("POST", "/api/v1/auth/logout", NULL, "refresh_token", NULL);
  check_bad_bodies ("POST", "/api/v1/companies", NULL, "company_name", "email");
  check_bad_bodies ("POST", "/api/v1/auth/password-reset", NULL, NULL, "email");
  check_bad_bodies ("POST", "/api/v1/auth/password-reset/confirm", NULL, "token", NULL);
}

/* ---- set-up: the daemon, two approved companies, their people, tokens ---- */

/* one statement as the database's owner (no tenant scope); the first value */
static char *
owner_query (const char *statement, const char *const *params, int n_params)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  char *out;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (owner, statement, params, n_params, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  out = g_strdup (PQgetvalue (res, 0, 0));
  cd_pg_pool_close (owner);
  return out;
}

static char *
fingerprint (void)
{
  return owner_query (
      "SELECT md5(concat_ws('/',"
      " (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM companies t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM users t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM refresh_tokens t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM audit_log t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM queues t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.queue_id, t.user_id) FROM queue_members t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.from_queue, t.to_queue) FROM queue_links t),"
      " (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM calls t)))",
      NULL, 0);
}

static JsonObject *
post_json (const char *path, const char *token, const char *json, guint want)
{
  g_autofree char *body = NULL;
  g_autoptr (GError) error = NULL;
  guint status = call ("POST", path, token, "application/json", json, &body);
  JsonObject *o;

  if (status != want)
    g_error ("set-up %s: %u %s", path, status, body);
  o = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_assert_no_error (error);
  return o;
}

static char *
login_token (const char *email)
{
  g_autofree char *json =
      g_strdup_printf ("{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
  g_autoptr (JsonObject) o = post_json ("/api/v1/auth/login", NULL, json, 200);

  return g_strdup (json_object_get_string_member (o, "access_token"));
}

static char *
signup (const char *name, const char *email)
{
  g_autofree char *json = g_strdup_printf ("{\"company_name\":\"%s\",\"admin_name\":\"Admin\","
                                           "\"email\":\"%s\",\"password\":\"%s\"}",
                                           name, email, PASSWORD);
  g_autoptr (JsonObject) o = post_json ("/api/v1/companies", NULL, json, 201);
  char *id =
      g_strdup (json_object_get_string_member (json_object_get_object_member (o, "company"), "id"));
  g_autofree char *approve = g_strdup_printf ("/api/v1/admin/companies/%s/approve", id);
  g_autoptr (JsonObject) approved = post_json (approve, root_token, "{}", 200);

  g_assert_cmpstr (json_object_get_string_member (approved, "status"), ==, "approved");
  return id;
}

static void
start (void)
{
  g_autofree char *password_file = NULL;
  const char *create[] = { "--create-superadmin", "root@example.com", "--password-file", NULL,
                           NULL };
  CdTestDaemon *once;
  g_autoptr (CdJwtKeys) keys = cd_jwt_keys_new ();
  g_autoptr (CdJwtKeys) other = cd_jwt_keys_new ();
  g_autofree char *key_path = NULL;
  guint8 secret[32];
  g_autofree char *users_path = NULL;
  g_autoptr (JsonObject) agent = NULL;

  state = cd_test_make_tmp_dir ("cd-iso-XXXXXX");
  password_file = g_build_filename (state, "password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD "\n", -1, NULL));
  create[3] = password_file;
  once = cd_test_daemon_spawn (state, create, NULL);
  cd_test_daemon_wait_exit (once, 60000);
  g_assert_cmpint (once->exit_status, ==, 0);
  cd_test_daemon_free (once);
  daemon_proc = cd_test_daemon_spawn (state, NULL, NULL);
  cd_test_daemon_wait_ready (daemon_proc, 60000);

  root_token = login_token ("root@example.com");
  company_a = signup ("Alpha", "admin@alpha.test");
  company_b = signup ("Beta", "admin@beta.test");
  admin_a = login_token ("admin@alpha.test");
  admin_b = login_token ("admin@beta.test");
  users_path = g_strdup_printf ("/api/v1/companies/%s/users", company_a);
  agent = post_json (
      users_path, admin_a,
      "{\"email\":\"agent@alpha.test\",\"display_name\":\"Agent\",\"password\":\"" PASSWORD
      "\",\"role\":\"agent\"}",
      201);
  user_a = g_strdup (json_object_get_string_member (agent, "id"));
  agent_a = login_token ("agent@alpha.test");
  {
    g_autofree char *queues_path = g_strdup_printf ("/api/v1/companies/%s/queues", company_a);
    g_autofree char *members = g_strdup_printf ("{\"members\":{\"%s\":3}}", user_a);
    g_autofree char *members_path = NULL;
    g_autoptr (JsonObject) queue =
        post_json (queues_path, admin_a, "{\"name\":\"Alpha support\"}", 201);
    g_autofree char *body = NULL;
    const char *params[] = { company_a };

    queue_a = g_strdup (json_object_get_string_member (queue, "id"));
    members_path = g_strdup_printf ("%s/%s/members", queues_path, queue_a);
    g_assert_cmpuint (call ("PUT", members_path, admin_a, "application/json", members, &body), ==,
                      204);
    /* a finished call of A's, as the switchboard would have stored it */
    call_a = owner_query ("INSERT INTO calls (company_id, visitor_id, state, ended_at, end_reason)"
                          " VALUES ($1, 'visitor-of-alpha', 'ended', now(), 'visitor-hangup')"
                          " RETURNING id",
                          params, 1);
  }

  key_path = g_build_filename (state, "auth", "jwt-keys", NULL);
  g_assert_true (cd_jwt_keys_load_file (keys, key_path, FALSE, NULL));
  expired = cd_jwt_sign (keys, user_a, "company_admin", company_a,
                         g_get_real_time () / G_USEC_PER_SEC - 7200, 60, NULL);
  randombytes_buf (secret, sizeof secret);
  g_assert_true (cd_jwt_keys_add (other, cd_jwt_keys_get_active_kid (keys), secret, 32, NULL));
  foreign = cd_jwt_sign (other, user_a, "superadmin", NULL, g_get_real_time () / G_USEC_PER_SEC,
                         600, NULL);
  {
    const char *h = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
    g_autofree char *p = g_strdup_printf ("{\"iss\":\"calldocker\",\"sub\":\"%s\",\"role\":"
                                          "\"superadmin\",\"iat\":1790000000,\"exp\":4000000000}",
                                          user_a);
    g_autofree char *h64 = cd_base64url_encode ((const guint8 *) h, strlen (h));
    g_autofree char *p64 = cd_base64url_encode ((const guint8 *) p, strlen (p));
    alg_none = g_strdup_printf ("%s.%s.", h64, p64);
  }
}

int
main (int argc, char **argv)
{
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *me = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  start ();
  before = fingerprint ();
  g_test_add_func ("/api/isolation/tokens-refused-everywhere", test_tokens_refused_everywhere);
  g_test_add_func ("/api/isolation/other-company-gets-404", test_other_company_gets_404);
  g_test_add_func ("/api/isolation/owner-reaches-them", test_owner_reaches_them);
  g_test_add_func ("/api/isolation/agent-refused-on-admin-routes",
                   test_agent_refused_on_admin_routes);
  g_test_add_func ("/api/isolation/bad-paths", test_bad_paths);
  g_test_add_func ("/api/isolation/bad-bodies", test_bad_bodies);
  status = g_test_run ();

  /* nothing changed, and the daemon still serves */
  after = fingerprint ();
  g_assert_cmpstr (before, ==, after);
  g_assert_cmpuint (call ("GET", "/api/v1/me", admin_a, NULL, NULL, &me), ==, 200);
  g_assert_cmpuint (call ("GET", "/readyz", NULL, NULL, NULL, NULL), ==, 200);

  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  return status;
}
