/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Calls end to end: the C visitor and agent peers call through the real
 * daemon; tones must cross both ways, DTMF must reach the timeline, and
 * every way a call ends must end it with the right reason. */

#include "auth/cd-password.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <libsoup/soup.h>
#include <math.h>
#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://shop.test"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company, *other_company;
static char *admin_token;
static char *password_file;
static guint agent_count;

/* ---- peers in child processes ---- */

typedef CdTestPeer Peer;

static Peer *
peer_start (const char *name, ...)
{
  Peer *p;
  va_list args;

  va_start (args, name);
  p = cd_test_peer_start_va (name, daemon_proc->base_url, NULL, args);
  va_end (args);
  return p;
}

static JsonObject *
first_call (JsonObject *report)
{
  JsonArray *calls = json_object_get_array_member (report, "calls");

  g_assert_cmpuint (json_array_get_length (calls), >=, 1);
  return json_array_get_object_element (calls, 0);
}

/* ---- the database side ---- */

static char *
new_agent (const char *for_company)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
  g_autofree char *email = g_strdup_printf ("agent%u@shop.test", ++agent_count);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  const char *params[] = { for_company, email, hash };

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (owner,
                          "INSERT INTO users (company_id, email, password_hash, role, display_name)"
                          " VALUES ($1, $2, $3, 'agent', 'Agent') RETURNING id",
                          params, 3, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (owner);
  return g_steal_pointer (&email);
}

static JsonObject *
get_call (const char *call_id)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", daemon_proc->base_url, company, call_id);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;

  g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL), ==,
                    200);
  return cd_json_parse_object (body, strlen (body), NULL, NULL);
}

/* The call as stored, once its end has been written. */
static JsonObject *
get_ended_call (const char *call_id)
{
  JsonObject *call = NULL;
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline) {
    g_clear_pointer (&call, json_object_unref);
    call = get_call (call_id);
    if (g_strcmp0 (json_object_get_string_member (call, "state"), "ended") == 0)
      return call;
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

/* What the daemon saw of a call whose audio did not arrive, on stderr:
 * its stored timeline and quality, and the end of the daemon's log. */
static void
explain_silence (JsonObject *call)
{
  const char *call_id = json_object_get_string_member_with_default (call, "call_id", NULL);
  g_autofree char *url = NULL;
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;
  g_auto (GStrv) lines = g_strsplit (daemon_proc->err->str, "\n", -1);
  g_autoptr (GPtrArray) kept = g_ptr_array_new ();

  /* the daemon's lines about calls and media (not its HTTP requests), the
   * last 30: the runner shows only the end of a failing test's output */
  for (char **l = lines; *l; l++)
    if (**l != '\0' && strstr (*l, "calldocker-http") == NULL)
      g_ptr_array_add (kept, *l);
  g_printerr ("the daemon's log about calls and media, last lines:\n");
  for (guint i = kept->len > 30 ? kept->len - 30 : 0; i < kept->len; i++)
    g_printerr ("%s\n", (char *) g_ptr_array_index (kept, i));
  if (call_id) {
    url =
        g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", daemon_proc->base_url, company, call_id);
    cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL);
    g_printerr ("the call as stored: %s\n", body ? body : "(nothing)");
  }
}

static void
assert_heard (JsonObject *call, double hz)
{
  if (fabs (json_object_get_double_member (call, "heard_hz") - hz) > 3 ||
      json_object_get_int_member (call, "matching_windows") < 20)
    explain_silence (call);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (call, "heard_hz"), hz, 3);
  g_assert_cmpint (json_object_get_int_member (call, "matching_windows"), >=, 20);
}

static void
test_tones_cross_both_ways (void)
{
  g_autofree char *email = new_agent (company);
  Peer *agent =
      peer_start ("calldocker-agent", "--email", email, "--password-file", password_file, "--calls",
                  "1", "--tone", "880", "--expect-hz", "440", "--timeout", "40", NULL);
  Peer *visitor;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) stored = NULL;
  g_autoptr (GString) rtp_digits = NULL;
  g_autoptr (GString) sources = NULL;
  JsonObject *quality;
  gboolean agent_good, visitor_good;

  cd_test_sleep (1000); /* the agent signs in and says it is available */
  visitor =
      peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--tone", "440",
                  "--expect-hz", "880", "--hold", "4", "--dtmf", "12#", "--dtmf-signaling", "9",
                  "--page", "https://shop.test/basket", "--timeout", "40", NULL);
  visitor_report = cd_test_peer_finish (visitor, 90000, &visitor_good);
  agent_report = cd_test_peer_finish (agent, 90000, &agent_good);
  g_assert_true (visitor_good);
  g_assert_true (agent_good);
  assert_heard (first_call (visitor_report), 880);
  assert_heard (first_call (agent_report), 440);
  g_assert_cmpstr (json_object_get_string_member (first_call (visitor_report), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpstr (json_object_get_string_member (first_call (agent_report), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpint (json_object_get_int_member (first_call (visitor_report), "dtmf_sent"), ==, 3);

  stored = get_ended_call (json_object_get_string_member (first_call (visitor_report), "call_id"));
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "visitor-hangup");
  g_assert_cmpstr (json_object_get_string_member (stored, "page"), ==, "https://shop.test/basket");
  g_assert_false (json_object_get_null_member (stored, "answered_at"));
  g_assert_false (json_object_get_null_member (stored, "agent_id"));
  /* RFC 4733 digits from the media, and the one sent as a message */
  rtp_digits = events_of (stored, "dtmf", "digits");
  sources = events_of (stored, "dtmf", "source");
  g_assert_cmpstr (rtp_digits->str, ==, "912#");
  g_assert_cmpstr (sources->str, ==, "signalingrtprtprtp");
  quality = json_object_get_object_member (stored, "quality");
  g_assert_nonnull (quality);
  {
    g_autoptr (JsonNode) qn = json_node_init_object (json_node_alloc (), quality);
    g_autofree char *qt = json_to_string (qn, FALSE);
    g_test_message ("quality: %s", qt);
  }
  g_assert_cmpfloat (json_object_get_double_member (quality, "mos"), >, 4.0);
  g_assert_true (json_object_has_member (quality, "visitor"));
  g_assert_true (json_object_has_member (quality, "agent"));

  /* and the metrics counted it */
  {
    g_autofree char *url = g_strconcat (daemon_proc->base_url, "metrics", NULL);
    g_autofree char *metrics = NULL;

    g_assert_cmpuint (cd_test_http_get (url, &metrics, NULL), ==, 200);
    cd_test_assert_prometheus_text (metrics);
    g_assert_nonnull (strstr (metrics, "calldocker_calls_ended_total{reason=\"visitor-hangup\"} "));
    g_assert_nonnull (strstr (metrics, "calldocker_call_setup_seconds_count 1\n"));
    g_assert_nonnull (strstr (metrics, "calldocker_calls_active 0\n"));
  }
}

static void
test_agent_hangs_up (void)
{
  g_autofree char *email = new_agent (company);
  Peer *agent = peer_start ("calldocker-agent", "--email", email, "--password-file", password_file,
                            "--calls", "1", "--hold", "2", "--timeout", "40", NULL);
  Peer *visitor;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) stored = NULL;

  cd_test_sleep (1000);
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--timeout",
                        "40", NULL);
  visitor_report = cd_test_peer_finish (visitor, 90000, NULL);
  agent_report = cd_test_peer_finish (agent, 90000, NULL);
  g_assert_cmpstr (json_object_get_string_member (first_call (visitor_report), "end_reason"), ==,
                   "agent-hangup");
  stored = get_ended_call (json_object_get_string_member (first_call (visitor_report), "call_id"));
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "agent-hangup");
}

/* No agent is available: the visitor hears the ringing tone the daemon
 * encodes (425 Hz, one second in four) while the call waits. */
static void
test_ringback_while_waiting (void)
{
  Peer *visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                              "--expect-hz", "425", "--keep-listening", "--timeout", "9", NULL);
  gboolean good;
  g_autoptr (JsonObject) report = cd_test_peer_finish (visitor, 90000, &good);
  JsonObject *call = first_call (report);

  g_assert_true (good);
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (call, "heard_hz"), 425, 3);
  /* one second in four: about a quarter of what was heard, not all of it */
  g_assert_cmpint (json_object_get_int_member (call, "matching_windows"), >=, 15);
  g_assert_cmpint (json_object_get_int_member (call, "matching_windows"), <,
                   json_object_get_int_member (call, "windows") * 6 / 10);
}

static void
test_ice_failure_ends_call (void)
{
  Peer *visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                              "--block-ice", "--timeout", "30", NULL);
  g_autoptr (JsonObject) report = cd_test_peer_finish (visitor, 90000, NULL);
  g_autoptr (JsonObject) stored = NULL;

  g_assert_cmpstr (json_object_get_string_member (first_call (report), "end_reason"), ==,
                   "ice-failed");
  stored = get_ended_call (json_object_get_string_member (first_call (report), "call_id"));
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "ice-failed");
  g_assert_true (json_object_get_null_member (stored, "answered_at"));
}

/* The agent's leg never connects while the visitor's audio already flows
 * towards it: the call ends ice-failed and its pipeline is torn down (a
 * sender blocked inside webrtcbin once kept teardown waiting for ever). */
static void
test_agent_ice_failure_tears_down (void)
{
  g_autofree char *email = new_agent (company);
  Peer *agent = peer_start ("calldocker-agent", "--email", email, "--password-file", password_file,
                            "--calls", "1", "--block-ice", "--timeout", "40", NULL);
  Peer *visitor;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autofree char *url = g_strconcat (daemon_proc->base_url, "metrics", NULL);
  gint64 deadline;
  gboolean torn_down = FALSE;

  cd_test_sleep (1000);
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--timeout",
                        "40", NULL);
  visitor_report = cd_test_peer_finish (visitor, 90000, NULL);
  agent_report = cd_test_peer_finish (agent, 90000, NULL);
  g_assert_cmpstr (json_object_get_string_member (first_call (visitor_report), "end_reason"), ==,
                   "ice-failed");
  deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  while (!torn_down && g_get_monotonic_time () < deadline) {
    g_autofree char *metrics = NULL;
    g_assert_cmpuint (cd_test_http_get (url, &metrics, NULL), ==, 200);
    torn_down = strstr (metrics, "calldocker_call_pipelines 0\n") != NULL;
    if (!torn_down)
      cd_test_iterate (200);
  }
  g_assert_true (torn_down);
}

static void
test_signaling_lost_past_grace (void)
{
  g_autofree char *email = new_agent (company);
  Peer *agent = peer_start ("calldocker-agent", "--email", email, "--password-file", password_file,
                            "--calls", "1", "--timeout", "40", NULL);
  Peer *visitor;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) stored = NULL;
  g_autoptr (GString) parties = NULL;

  cd_test_sleep (1000);
  /* the visitor's WebSocket goes 1 s into the call and never comes back */
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                        "--drop-after", "1", "--timeout", "10", NULL);
  agent_report = cd_test_peer_finish (agent, 90000, NULL);
  visitor_report = cd_test_peer_finish (visitor, 90000, NULL);
  g_assert_cmpstr (json_object_get_string_member (first_call (agent_report), "end_reason"), ==,
                   "signaling-lost");
  stored = get_ended_call (json_object_get_string_member (first_call (agent_report), "call_id"));
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "signaling-lost");
  parties = events_of (stored, "party.disconnected", "party");
  g_assert_cmpstr (parties->str, ==, "visitor");
}

static void
test_resume_within_grace (void)
{
  g_autofree char *email = new_agent (company);
  Peer *agent = peer_start ("calldocker-agent", "--email", email, "--password-file", password_file,
                            "--calls", "1", "--expect-hz", "440", "--timeout", "40", NULL);
  Peer *visitor;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) stored = NULL;
  g_autoptr (GString) resumed = NULL;
  gboolean good;

  cd_test_sleep (1000);
  /* gone 1 s into the call, back 1 s later (the grace is 3 s), hangs up at 5 s */
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                        "--drop-after", "1", "--resume-after", "1", "--hold", "5", "--expect-hz",
                        "880", "--timeout", "30", NULL);
  visitor_report = cd_test_peer_finish (visitor, 90000, &good);
  agent_report = cd_test_peer_finish (agent, 90000, NULL);
  g_assert_true (good);
  g_assert_true (json_object_get_boolean_member (first_call (visitor_report), "resumed"));
  g_assert_cmpstr (json_object_get_string_member (first_call (visitor_report), "end_reason"), ==,
                   "visitor-hangup");
  assert_heard (first_call (agent_report), 440);
  stored = get_ended_call (json_object_get_string_member (first_call (visitor_report), "call_id"));
  resumed = events_of (stored, "party.resumed", "party");
  g_assert_cmpstr (resumed->str, ==, "visitor");
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "visitor-hangup");
}

/* @o's member @name if it is an object, else NULL (also for a NULL @o). */
static JsonObject *
object_member (JsonObject *o, const char *name)
{
  JsonNode *n = o ? json_object_get_member (o, name) : NULL;

  return n && JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
}

static guint
get_as_admin (const char *path, char **body, GHashTable **headers)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, path, NULL);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *extra[] = { "Authorization", auth, NULL };

  return cd_test_http_request ("GET", url, NULL, NULL, 0, extra, body, headers);
}

static void
test_pipeline_and_stats_while_live (void)
{
  g_autofree char *email = new_agent (company);
  Peer *agent = peer_start ("calldocker-agent", "--email", email, "--password-file", password_file,
                            "--calls", "1", "--timeout", "40", NULL);
  Peer *visitor;
  g_autofree char *list_path =
      g_strdup_printf ("api/v1/companies/%s/calls?state=connected", company);
  g_autofree char *call_id = NULL;
  g_autofree char *path = NULL;
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) stats = NULL;
  g_autoptr (JsonObject) report = NULL;
  gint64 deadline;

  cd_test_sleep (1000);
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--hold",
                        "6", "--timeout", "40", NULL);
  deadline = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;
  while (call_id == NULL && g_get_monotonic_time () < deadline) {
    g_autofree char *list = NULL;
    g_autoptr (JsonObject) o = NULL;
    JsonArray *items;

    g_assert_cmpuint (get_as_admin (list_path, &list, NULL), ==, 200);
    o = cd_json_parse_object (list, strlen (list), NULL, NULL);
    items = json_object_get_array_member (o, "items");
    if (json_array_get_length (items) > 0)
      call_id =
          g_strdup (json_object_get_string_member (json_array_get_object_element (items, 0), "id"));
    else
      cd_test_iterate (200);
  }
  if (call_id == NULL)
    g_test_message ("daemon log:\n%s", daemon_proc->err->str);
  g_assert_nonnull (call_id);
  path = g_strdup_printf ("api/v1/companies/%s/calls/%s/pipeline", company, call_id);
  g_assert_cmpuint (get_as_admin (path, &body, NULL), ==, 200);
  g_assert_true (g_str_has_prefix (body, "digraph"));
  g_assert_nonnull (strstr (body, "GstWebRTCBin"));
  g_assert_nonnull (strstr (body, "visitor-to-agent"));
  g_assert_nonnull (strstr (body, "agent-to-visitor"));
  g_assert_null (strstr (body, "opusdec")); /* forwarded, not decoded */
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&path, g_free);

  /* audio flows a while (one packet each 20 ms): read the counters until
   * every one passed 50, however slow the machine is to connect */
  path = g_strdup_printf ("api/v1/companies/%s/calls/%s/stats", company, call_id);
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  for (;;) {
    gboolean flowing = TRUE;

    g_clear_pointer (&stats, json_object_unref);
    g_assert_cmpuint (get_as_admin (path, &body, NULL), ==, 200);
    stats = cd_json_parse_object (body, strlen (body), NULL, NULL);
    g_clear_pointer (&body, g_free);
    for (int i = 0; i < 2; i++) {
      /* a leg, or its counters, may not be there yet */
      JsonObject *leg = object_member (stats, i ? "agent" : "visitor");
      JsonObject *in = object_member (leg, "inbound");
      JsonObject *out = object_member (leg, "outbound");
      flowing = flowing && in && out &&
                json_object_get_double_member_with_default (in, "packets_received", 0) > 50 &&
                json_object_get_double_member_with_default (out, "packets_sent", 0) > 50 &&
                json_object_get_int_member_with_default (leg, "audio_packets", 0) > 50;
    }
    if (flowing || g_get_monotonic_time () > deadline)
      break;
    cd_test_sleep (250);
  }
  for (int i = 0; i < 2; i++) {
    JsonObject *leg = object_member (stats, i ? "agent" : "visitor");
    JsonObject *in = object_member (leg, "inbound");
    JsonObject *out = object_member (leg, "outbound");
    g_assert_nonnull (in);
    g_assert_nonnull (out);
    g_assert_cmpfloat (json_object_get_double_member (in, "packets_received"), >, 50);
    g_assert_cmpfloat (json_object_get_double_member (out, "packets_sent"), >, 50);
    g_assert_cmpint (json_object_get_int_member (leg, "audio_packets"), >, 50);
  }
  g_clear_pointer (&path, g_free);

  /* unknown and not live calls are 404 */
  path = g_strdup_printf ("api/v1/companies/%s/calls/%s/stats", company,
                          "00000000-0000-4000-8000-000000000000");
  g_assert_cmpuint (get_as_admin (path, &body, NULL), ==, 404);
  report = cd_test_peer_finish (visitor, 90000, NULL);
  json_object_unref (cd_test_peer_finish (agent, 90000, NULL));
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&path, g_free);
  path = g_strdup_printf ("api/v1/companies/%s/calls/%s/pipeline", company, call_id);
  g_assert_cmpuint (get_as_admin (path, &body, NULL), ==, 404);
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1",
                        "CALLDOCKER_CALLS_ICE_TIMEOUT_S=3", "CALLDOCKER_SIGNAL_RESUME_GRACE_S=3",
                        NULL };
  g_autofree char *conninfo = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-calls-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  {
    g_autoptr (CdPgPool) owner = NULL;
    g_autoptr (CdPasswordPolicy) policy =
        cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
    g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
    g_autoptr (GAsyncResult) result = NULL;
    g_autoptr (GError) error = NULL;
    g_autoptr (PGresult) res = NULL;
    const char *params[] = { hash };
    g_autofree char *url = NULL;
    g_autofree char *json = NULL;
    g_autofree char *body = NULL;
    g_autoptr (JsonObject) o = NULL;

    conninfo = g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
    owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
    cd_pg_pool_start (owner);
    cd_pg_pool_query_async (
        owner,
        "WITH a AS (INSERT INTO companies (name, slug, status, allowed_origins)"
        "  VALUES ('Shop', 'shop', 'approved', ARRAY['" ORIGIN "']) RETURNING id),"
        " b AS (INSERT INTO companies (name, slug, status, allowed_origins)"
        "  VALUES ('Other', 'other', 'approved', ARRAY['https://other.test']) RETURNING id),"
        " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
        "  SELECT a.id, 'admin@shop.test', $1, 'company_admin', 'Admin' FROM a RETURNING 1)"
        " SELECT (SELECT id FROM a), (SELECT id FROM b), (SELECT count(*) FROM u)",
        params, 1, NULL, cd_test_capture, &result);
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
  g_test_add_func ("/calls/tones-cross-both-ways", test_tones_cross_both_ways);
  g_test_add_func ("/calls/agent-hangs-up", test_agent_hangs_up);
  g_test_add_func ("/calls/pipeline-and-stats-while-live", test_pipeline_and_stats_while_live);
  g_test_add_func ("/calls/ringback-while-waiting", test_ringback_while_waiting);
  g_test_add_func ("/calls/ice-failure-ends-call", test_ice_failure_ends_call);
  g_test_add_func ("/calls/agent-ice-failure-tears-down", test_agent_ice_failure_tears_down);
  g_test_add_func ("/calls/signaling-lost-past-grace", test_signaling_lost_past_grace);
  g_test_add_func ("/calls/resume-within-grace", test_resume_within_grace);
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
  return status;
}
