/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The call check page in headless Chromium: the browser (tests/browser/
 * call-check.mjs) calls, the C agent answers; 440 Hz must reach the agent,
 * 880 Hz the browser, and the keypad's RFC 4733 digits the call's timeline. */

#include "auth/cd-password.h"
#include "cd-audio.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define DIGITS   "12#"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company;
static char *other_company; /* allows another origin only */
static char *admin_token;
static char *password_file;
static char *wav; /* the browser's microphone: 440 Hz */

/* ---- child processes: the agent peer and the browser script ---- */

typedef struct {
  GSubprocess *process;
  char *out;
  char *err;
  gboolean done;
} Child;

static void
on_child_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Child *c = user_data;
  g_autoptr (GError) error = NULL;

  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &c->out, &c->err, &error);
  g_assert_no_error (error);
  c->done = TRUE;
}

static Child *
child_start (const char *const *argv)
{
  g_autoptr (GError) error = NULL;
  Child *c = g_new0 (Child, 1);

  c->process = g_subprocess_newv (
      argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, &error);
  g_assert_no_error (error);
  g_subprocess_communicate_utf8_async (c->process, NULL, NULL, on_child_done, c);
  return c;
}

/* Waits for the child; its JSON report, and whether it exited 0. */
static JsonObject *
child_finish (Child *c, const char *what, guint timeout_ms, gboolean *good)
{
  JsonObject *report;

  WAIT_UNTIL (c->done, timeout_ms);
  g_test_message ("%s, stderr:\n%s", what, c->err);
  g_test_message ("%s, stdout:\n%s", what, c->out);
  report = cd_json_parse_object (c->out, strlen (c->out), NULL, NULL);
  if (report == NULL)
    g_error ("%s printed no JSON report", what);
  *good = g_subprocess_get_if_exited (c->process) && g_subprocess_get_exit_status (c->process) == 0;
  g_object_unref (c->process);
  g_free (c->out);
  g_free (c->err);
  g_free (c);
  return report;
}

/* ---- what the browser test needs ---- */

static char *
chromium_path (void)
{
  const char *env = g_getenv ("CALLDOCKER_CHROMIUM");

  return g_strdup (env && *env ? env : "/usr/bin/chromium");
}

/* NULL when everything is there, else what is missing. */
static char *
missing_tools (void)
{
  g_autofree char *node = g_find_program_in_path ("node");
  g_autofree char *chromium = chromium_path ();
  g_autofree char *playwright =
      g_test_build_filename (G_TEST_DIST, "browser", "node_modules", "playwright-core", NULL);

  if (node == NULL)
    return g_strdup ("node is not installed");
  if (!g_file_test (chromium, G_FILE_TEST_IS_EXECUTABLE))
    return g_strdup_printf ("%s is missing (apt-get install chromium)", chromium);
  if (!g_file_test (playwright, G_FILE_TEST_IS_DIR))
    return g_strdup ("tests/browser/node_modules is missing (npm ci in tests/browser)");
  return NULL;
}

/* FALSE (the test skipped) when node, Chromium or playwright-core is
 * missing; tools/run-tests installs them and sets CALLDOCKER_BROWSER_REQUIRED,
 * which makes that a failure instead. */
static gboolean
browser_available (void)
{
  g_autofree char *missing = missing_tools ();

  if (missing == NULL)
    return TRUE;
  if (g_getenv ("CALLDOCKER_BROWSER_REQUIRED"))
    g_error ("the browser test cannot run: %s", missing);
  g_test_skip (missing);
  return FALSE;
}

/* node tests/browser/call-check.mjs on the call check page of @company_id */
static Child *
browser_start (const char *company_id, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *node = g_find_program_in_path ("node");
  va_list args;
  const char *arg;

  g_ptr_array_add (argv, g_steal_pointer (&node));
  g_ptr_array_add (argv, g_test_build_filename (G_TEST_DIST, "browser", "call-check.mjs", NULL));
  g_ptr_array_add (argv, g_strdup ("--url"));
  g_ptr_array_add (argv,
                   g_strdup_printf ("%scall-check?company=%s", daemon_proc->base_url, company_id));
  g_ptr_array_add (argv, g_strdup ("--wav"));
  g_ptr_array_add (argv, g_strdup (wav));
  g_ptr_array_add (argv, g_strdup ("--chromium"));
  g_ptr_array_add (argv, chromium_path ());
  g_ptr_array_add (argv, g_strdup ("--timeout"));
  g_ptr_array_add (argv, g_strdup ("60"));
  va_start (args, company_id);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return child_start ((const char *const *) argv->pdata);
}

/* ---- the database and the API ---- */

static void
seed (const char *origin)
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
  g_autofree char *url = NULL;
  g_autofree char *json = NULL;
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) o = NULL;
  const char *params[] = { hash, origin };

  /* the page's origin is the daemon's own: it is the one allowed */
  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (
      owner,
      "WITH a AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Shop', 'shop', 'approved', ARRAY[$2]) RETURNING id),"
      " b AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Other', 'other', 'approved', ARRAY['https://other.test']) RETURNING id),"
      " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
      "  SELECT a.id, 'admin@shop.test', $1, 'company_admin', 'Admin' FROM a"
      "  UNION ALL SELECT a.id, 'agent@shop.test', $1, 'agent', 'Agent' FROM a RETURNING 1)"
      " SELECT (SELECT id FROM a), (SELECT id FROM b), (SELECT count(*) FROM u)",
      params, 2, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  company = g_strdup (PQgetvalue (res, 0, 0));
  other_company = g_strdup (PQgetvalue (res, 0, 1));
  cd_pg_pool_close (owner);

  url = g_strconcat (daemon_proc->base_url, "api/v1/auth/login", NULL);
  json = g_strdup_printf ("{\"email\":\"admin@shop.test\",\"password\":\"%s\"}", PASSWORD);
  g_assert_cmpuint (cd_test_http_request ("POST", url, "application/json", json, strlen (json),
                                          NULL, &body, NULL),
                    ==, 200);
  o = cd_json_parse_object (body, strlen (body), NULL, NULL);
  admin_token = g_strdup (json_object_get_string_member (o, "access_token"));
  password_file = g_build_filename (state, "agent-password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
}

/* The call as stored, once its end has been written. */
static JsonObject *
get_ended_call (const char *call_id)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", daemon_proc->base_url, company, call_id);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline) {
    g_autofree char *body = NULL;
    JsonObject *call;

    g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL), ==,
                      200);
    call = cd_json_parse_object (body, strlen (body), NULL, NULL);
    if (g_strcmp0 (json_object_get_string_member (call, "state"), "ended") == 0)
      return call;
    json_object_unref (call);
    cd_test_iterate (100);
  }
  g_error ("call %s did not end in the database", call_id);
}

static GString *
events_of (JsonObject *call, const char *kind, const char *member)
{
  JsonArray *events = json_object_get_array_member (call, "events");
  GString *found = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (events); i++) {
    JsonObject *e = json_array_get_object_element (events, i);
    JsonObject *detail = json_object_get_object_member (e, "detail");
    if (g_str_equal (json_object_get_string_member (e, "kind"), kind) &&
        json_object_has_member (detail, member))
      g_string_append (found, json_object_get_string_member (detail, member));
  }
  return found;
}

/* ---- tests ---- */

static void
test_page_is_served (void)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, "call-check", NULL);
  g_autofree char *script = g_strconcat (daemon_proc->base_url, "call-check/call-check.js", NULL);
  g_autofree char *escape = g_strconcat (daemon_proc->base_url, "call-check/..%2Fsql", NULL);
  g_autofree char *dotfile = g_strconcat (daemon_proc->base_url, "call-check/.gitignore", NULL);
  g_autofree char *body = NULL;
  g_autofree char *etag = NULL;
  guint status;
  g_autoptr (GHashTable) headers = NULL;
  const char *csp;

  g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, NULL, &body, &headers), ==,
                    200);
  g_assert_nonnull (strstr (body, "call-check.js"));
  g_assert_true (g_str_has_prefix (g_hash_table_lookup (headers, "content-type"), "text/html"));
  csp = g_hash_table_lookup (headers, "content-security-policy");
  g_assert_nonnull (strstr (csp, "script-src 'self'"));
  g_assert_null (strstr (csp, "unsafe-inline"));
  g_assert_cmpstr (g_hash_table_lookup (headers, "x-content-type-options"), ==, "nosniff");
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&headers, g_hash_table_unref);

  /* the script, then again with its validator */
  g_assert_cmpuint (cd_test_http_request ("GET", script, NULL, NULL, 0, NULL, &body, &headers), ==,
                    200);
  g_assert_true (
      g_str_has_prefix (g_hash_table_lookup (headers, "content-type"), "text/javascript"));
  etag = g_strdup (g_hash_table_lookup (headers, "etag"));
  g_assert_nonnull (etag);
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&headers, g_hash_table_unref);
  {
    const char *conditional[] = { "If-None-Match", etag, NULL };
    g_assert_cmpuint (cd_test_http_request ("GET", script, NULL, NULL, 0, conditional, &body, NULL),
                      ==, 304);
    g_clear_pointer (&body, g_free);
  }

  /* nothing outside the folder (libsoup refuses an encoded '/' itself), no
   * dotfiles, no other methods */
  status = cd_test_http_request ("GET", escape, NULL, NULL, 0, NULL, &body, NULL);
  g_assert_true (status == 400 || status == 404);
  g_clear_pointer (&body, g_free);
  g_assert_cmpuint (cd_test_http_request ("GET", dotfile, NULL, NULL, 0, NULL, &body, NULL), ==,
                    404);
  g_clear_pointer (&body, g_free);
  g_assert_cmpuint (
      cd_test_http_request ("POST", url, "application/json", "{}", 2, NULL, &body, NULL), ==, 405);
}

static void
test_origin_not_allowed (void)
{
  g_autofree char *expected = NULL;
  g_autoptr (JsonObject) report = NULL;
  gboolean good;

  if (!browser_available ())
    return;
  /* the page says which origin to allow */
  expected = g_strndup (daemon_proc->base_url, strlen (daemon_proc->base_url) - 1);
  report = child_finish (browser_start (other_company, "--expect-failure", expected, NULL),
                         "the browser", 90000, &good);
  if (!good)
    g_error ("the page did not fail as expected: %s",
             json_object_get_string_member_with_default (report, "failure", "?"));
  g_assert_nonnull (strstr (json_object_get_string_member (report, "error"), "allowed origins"));
}

static void
test_browser_calls_agent (void)
{
  /* kept where CALLDOCKER_BROWSER_SCREENSHOT says, else in the state folder
   * (left behind when the test fails) */
  g_autofree char *screenshot = g_strdup (g_getenv ("CALLDOCKER_BROWSER_SCREENSHOT"));
  g_autofree char *dir = g_path_get_dirname (cd_test_daemon_binary ());
  g_autofree char *agent_bin = g_build_filename (dir, "calldocker-agent", NULL);
  g_autoptr (JsonObject) browser_report = NULL;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) stored = NULL;
  g_autoptr (GString) digits = NULL;
  g_autoptr (GString) sources = NULL;
  JsonObject *answered;
  gboolean browser_good, agent_good;
  Child *agent, *browser;

  if (!browser_available ())
    return;
  if (screenshot == NULL || screenshot[0] == '\0') {
    g_free (screenshot);
    screenshot = g_build_filename (state, "call-check.png", NULL);
  }
  g_test_message ("the page at the end of the call: %s", screenshot);
  {
    const char *argv[] = { agent_bin,
                           "--server",
                           daemon_proc->base_url,
                           "--local-address",
                           "127.0.0.1",
                           "--email",
                           "agent@shop.test",
                           "--password-file",
                           password_file,
                           "--calls",
                           "1",
                           "--tone",
                           "880",
                           "--expect-hz",
                           "440",
                           "--timeout",
                           "120",
                           NULL };
    agent = child_start (argv);
  }
  cd_test_sleep (1000); /* the agent signs in and says it is available */

  browser = browser_start (company, "--expect-hz", "880", "--digits", DIGITS, "--listen", "4",
                           "--screenshot", screenshot, NULL);
  browser_report = child_finish (browser, "the browser", 150000, &browser_good);
  agent_report = child_finish (agent, "the agent", 30000, &agent_good);
  if (!browser_good)
    g_error ("the browser's call check failed: %s",
             json_object_get_string_member_with_default (browser_report, "failure", "?"));
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (browser_report, "heard_hz"), 880,
                                  5);
  g_assert_cmpstr (json_object_get_string_member (browser_report, "dtmf_sent"), ==, DIGITS);
  g_assert_cmpstr (json_object_get_string_member (browser_report, "end_reason"), ==,
                   "visitor-hangup");

  /* the agent heard the browser's microphone */
  g_assert_true (agent_good);
  answered =
      json_array_get_object_element (json_object_get_array_member (agent_report, "calls"), 0);
  g_assert_cmpstr (json_object_get_string_member (answered, "call_id"), ==,
                   json_object_get_string_member (browser_report, "call_id"));
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (answered, "heard_hz"), 440, 5);

  /* the keypad's RFC 4733 events, read from the media, are on the timeline */
  stored = get_ended_call (json_object_get_string_member (browser_report, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "visitor-hangup");
  digits = events_of (stored, "dtmf", "digits");
  sources = events_of (stored, "dtmf", "source");
  g_assert_cmpstr (digits->str, ==, DIGITS);
  g_assert_cmpstr (sources->str, ==, "rtprtprtp");
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1", NULL };
  g_autofree char *origin = NULL;
  g_autoptr (GError) error = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-browser-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  /* http://127.0.0.1:PORT/ without its last slash */
  origin = g_strndup (daemon_proc->base_url, strlen (daemon_proc->base_url) - 1);
  seed (origin);
  /* 10 s of 440 Hz, looped by Chromium: a whole number of periods */
  wav = g_build_filename (state, "tone-440.wav", NULL);
  if (!cd_audio_write_tone_wav (wav, 48000, 1, 440, 0.5, 10, &error))
    g_error ("%s", error->message);

  g_test_add_func ("/browser/page-is-served", test_page_is_served);
  g_test_add_func ("/browser/origin-not-allowed", test_origin_not_allowed);
  g_test_add_func ("/browser/call-check-calls-an-agent", test_browser_calls_agent);
  status = g_test_run ();

  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (other_company);
  g_free (admin_token);
  g_free (password_file);
  g_free (wav);
  return status;
}
