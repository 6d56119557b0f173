/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Transfers and supervision, end to end with the C peers: each party sends
 * its own tone and counts, second by second, the tones it hears, so who
 * heard whom and when is checked by frequency.
 *
 *   visitor 440 Hz, agent A 660 Hz, agent B 880 Hz, queue member 1100 Hz,
 *   supervisor 1300 Hz; the daemon's hold tone 350 Hz. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://xfer.test"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company, *admin_token, *password_file;
static char *front, *second_line;
static char *agent_ids[5]; /* agent1..agent4@xfer.test; [0] unused */

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

static Peer *
agent_start (guint n, const char *tone, const char *listen_for, ...)
{
  g_autofree char *email = g_strdup_printf ("agent%u@xfer.test", n);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  const char *arg;
  va_list args;
  Peer *p;

  g_ptr_array_add (argv, (char *) "--email");
  g_ptr_array_add (argv, email);
  g_ptr_array_add (argv, (char *) "--password-file");
  g_ptr_array_add (argv, password_file);
  g_ptr_array_add (argv, (char *) "--tone");
  g_ptr_array_add (argv, (char *) tone);
  g_ptr_array_add (argv, (char *) "--listen-for");
  g_ptr_array_add (argv, (char *) listen_for);
  va_start (args, listen_for);
  while ((arg = va_arg (args, const char *)))
    g_ptr_array_add (argv, (char *) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  p = cd_test_peer_start_argv ("calldocker-agent", daemon_proc->base_url, NULL,
                               (const char *const *) argv->pdata);
  return p;
}

static JsonObject *
only_call (JsonObject *report)
{
  JsonArray *calls = json_object_get_array_member (report, "calls");

  g_assert_cmpuint (json_array_get_length (calls), ==, 1);
  return json_array_get_object_element (calls, 0);
}

static JsonArray *
per_second (JsonObject *call, double hz)
{
  return cd_test_report_per_second (call, hz);
}

/* The windows of @hz the party of @call heard in the whole seconds between
 * the real times @from_us and @to_us. */
static guint
heard_between (JsonObject *call, double hz, gint64 from_us, gint64 to_us)
{
  JsonArray *counts = per_second (call, hz);
  gint64 base = json_object_get_int_member (call, "started_us");
  guint n = 0;

  for (guint i = 0; i < json_array_get_length (counts); i++) {
    gint64 start = base + (gint64) i * G_USEC_PER_SEC;
    if (start >= from_us && start + G_USEC_PER_SEC <= to_us)
      n += json_array_get_int_element (counts, i);
  }
  return n;
}

static guint
heard (JsonObject *call, double hz)
{
  return heard_between (call, hz, 0, G_MAXINT64);
}

/* The first and last second of the call in which @hz was heard, -1 if never. */
static int
first_second (JsonObject *call, double hz)
{
  return cd_test_report_first_second (call, hz);
}

static int
last_second (JsonObject *call, double hz)
{
  JsonArray *counts = per_second (call, hz);

  return (int) json_array_get_length (counts) - 1;
}

/* The real time of second @s of the call. */
static gint64
second_at (JsonObject *call, int s)
{
  return json_object_get_int_member (call, "started_us") + (gint64) s * G_USEC_PER_SEC;
}

static JsonObject *
get_call (const char *call_id)
{
  return cd_test_get_call (daemon_proc->base_url, company, admin_token, call_id);
}

/* The kinds of the call's stored events, in order, once it is stored ended. */
static char *
timeline_of (const char *call_id)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  for (;;) {
    g_autoptr (JsonObject) call = get_call (call_id);
    GString *kinds = g_string_new (NULL);
    JsonArray *events = json_object_get_array_member (call, "events");

    for (guint i = 0; i < json_array_get_length (events); i++) {
      JsonObject *e = json_array_get_object_element (events, i);
      const char *kind = json_object_get_string_member (e, "kind");
      if (!g_str_equal (kind, "media") && !g_str_equal (kind, "routing.decision"))
        g_string_append_printf (kinds, "%s%s", kinds->len ? " " : "", kind);
    }
    if (g_str_equal (json_object_get_string_member (call, "state"), "ended") ||
        g_get_monotonic_time () > deadline)
      return g_string_free (kinds, FALSE);
    g_string_free (kinds, TRUE);
    cd_test_sleep (100);
  }
}

static char *
stored_agent (const char *call_id)
{
  g_autoptr (JsonObject) call = get_call (call_id);

  return g_strdup (json_object_get_string_member_with_default (call, "agent_id", ""));
}

/* One series of the daemon's /metrics, e.g. name{label="value"}; 0 when
 * it is not there (yet). */
static double
metric (const char *series)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, "metrics", NULL);
  g_autofree char *body = NULL;
  g_autofree char *needle = g_strdup_printf ("\n%s ", series);
  const char *at;

  g_assert_cmpuint (cd_test_http_get (url, &body, NULL), ==, 200);
  at = strstr (body, needle);
  return at ? g_ascii_strtod (at + strlen (needle), NULL) : 0;
}

#define TRANSFERS(mode, event) "calldocker_transfers_total{mode=\"" mode "\",event=\"" event "\"}"
#define MODES(mode)            "calldocker_supervisor_modes_total{mode=\"" mode "\"}"

static JsonObject *
finish (Peer *peer, const char *who)
{
  gboolean good;
  JsonObject *report = cd_test_peer_finish (peer, 120000, &good);

  if (!good)
    g_printerr ("%s did not finish well\n", who);
  return report;
}

/* A call's three parties: their reports, and the call in each. */
typedef struct {
  JsonObject *reports[3];
  JsonObject *visitor, *a, *b;
} Parties;

static void
parties_clear (Parties *p)
{
  for (guint i = 0; i < G_N_ELEMENTS (p->reports); i++)
    g_clear_pointer (&p->reports[i], json_object_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Parties, parties_clear)

/* Once agents @a and @b (nullable) are signed in, a visitor calls,
 * listening for @listen_for and hanging up @hold seconds after it first
 * connects; every party's report once all are done. */
static void
call_through (Parties *p, Peer *a, Peer *b, const char *listen_for, const char *hold)
{
  Peer *visitor;

  cd_test_sleep (1500);
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                        "--listen-for", listen_for, "--hold", hold, "--timeout", "60", NULL);
  p->reports[0] = finish (visitor, "the visitor");
  p->reports[1] = finish (a, "agent A");
  p->reports[2] = b ? finish (b, "agent B") : NULL;
  p->visitor = only_call (p->reports[0]);
  p->a = only_call (p->reports[1]);
  p->b = b ? only_call (p->reports[2]) : NULL;
}

/* Blind, to an agent: A leaves at once; the visitor waits, is offered to
 * B alone (no member of any queue), and talks with B. */
static void
test_blind_to_agent (void)
{
  g_autofree char *to = g_strdup_printf ("agent:%s", agent_ids[2]);
  Peer *b = agent_start (2, "880", "440", "--calls", "1", "--timeout", "60", NULL);
  Peer *a = agent_start (1, "660", "440", "--calls", "1", "--transfer-to", to, "--transfer-after",
                         "3", "--timeout", "60", NULL);
  g_auto (Parties) p = { 0 };
  g_autofree char *timeline = NULL;
  g_autofree char *agent = NULL;
  double requested = metric (TRANSFERS ("blind", "requested"));

  call_through (&p, a, b, "660,880,350", "12");
  g_assert_cmpfloat (metric (TRANSFERS ("blind", "requested")), ==, requested + 1);
  g_assert_cmpstr (json_object_get_string_member (p.a, "end_reason"), ==, "transferred");
  g_assert_cmpstr (json_object_get_string_member (p.b, "call_id"), ==,
                   json_object_get_string_member (p.visitor, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (p.b, "end_reason"), ==, "visitor-hangup");
  /* the visitor heard A, then B: A's last second no later than B's first
   * (A heard the visitor before transferring: its 3 s start once A's
   * media is connected, which under the sanitizers on a loaded machine
   * has been seen to leave only 0.7 s of them heard) */
  g_assert_cmpuint (heard (p.a, 440), >=, 10);
  g_assert_cmpuint (heard (p.b, 440), >=, 20);
  g_assert_cmpuint (heard (p.visitor, 660), >=, 20);
  g_assert_cmpuint (heard (p.visitor, 880), >=, 20);
  g_assert_cmpint (last_second (p.visitor, 660), <=, first_second (p.visitor, 880));
  timeline = timeline_of (json_object_get_string_member (p.visitor, "call_id"));
  g_test_message ("timeline: %s", timeline);
  g_assert_nonnull (strstr (timeline, "transfer.requested"));
  agent = stored_agent (json_object_get_string_member (p.visitor, "call_id"));
  g_assert_cmpstr (agent, ==, agent_ids[2]);
}

/* Warm, completed: the visitor holds while A and B talk; A completes and
 * leaves; the visitor talks with B. */
static void
test_warm_completed (void)
{
  g_autofree char *to = g_strdup_printf ("agent:%s", agent_ids[2]);
  Peer *b = agent_start (2, "880", "440,660", "--calls", "1", "--timeout", "60", NULL);
  Peer *a = agent_start (1, "660", "440,880", "--calls", "1", "--transfer-to", to,
                         "--transfer-mode", "warm", "--transfer-after", "3", "--complete-after",
                         "4", "--timeout", "60", NULL);
  g_auto (Parties) p = { 0 };
  int hold_from, hold_to;
  g_autofree char *timeline = NULL;
  g_autofree char *agent = NULL;

  double completed = metric (TRANSFERS ("warm", "completed"));

  call_through (&p, a, b, "660,880,350", "16");
  g_assert_cmpfloat (metric (TRANSFERS ("warm", "completed")), ==, completed + 1);
  g_assert_cmpstr (json_object_get_string_member (p.a, "end_reason"), ==, "transferred");
  g_assert_cmpstr (json_object_get_string_member (p.b, "end_reason"), ==, "visitor-hangup");
  /* A and B talked while the visitor held */
  g_assert_cmpuint (heard (p.a, 880), >=, 20);
  g_assert_cmpuint (heard (p.b, 660), >=, 20);
  hold_from = first_second (p.visitor, 350);
  hold_to = last_second (p.visitor, 350);
  g_assert_cmpint (hold_from, >=, 0);
  g_assert_cmpuint (heard (p.visitor, 350), >=, 10);
  /* the visitor heard neither agent while holding (the seconds strictly
   * inside the hold), and B after it */
  g_assert_cmpuint (heard_between (p.visitor, 660, second_at (p.visitor, hold_from + 1),
                                   second_at (p.visitor, hold_to)),
                    ==, 0);
  g_assert_cmpuint (heard_between (p.visitor, 880, 0, second_at (p.visitor, hold_to)), ==, 0);
  g_assert_cmpuint (heard_between (p.visitor, 880, second_at (p.visitor, hold_to), G_MAXINT64), >=,
                    20);
  /* and B heard the visitor once it took the call */
  g_assert_cmpuint (heard (p.b, 440), >=, 20);
  timeline = timeline_of (json_object_get_string_member (p.visitor, "call_id"));
  g_test_message ("timeline: %s", timeline);
  g_assert_nonnull (strstr (timeline, "transfer.requested"));
  g_assert_nonnull (strstr (timeline, "transfer.completed"));
  agent = stored_agent (json_object_get_string_member (p.visitor, "call_id"));
  g_assert_cmpstr (agent, ==, agent_ids[2]);
}

/* Warm, cancelled: B leaves; the visitor and A talk again. */
static void
test_warm_cancelled (void)
{
  g_autofree char *to = g_strdup_printf ("agent:%s", agent_ids[2]);
  Peer *b = agent_start (2, "880", "440,660", "--calls", "1", "--timeout", "60", NULL);
  Peer *a =
      agent_start (1, "660", "440,880", "--calls", "1", "--transfer-to", to, "--transfer-mode",
                   "warm", "--transfer-after", "3", "--cancel-after", "3", "--timeout", "60", NULL);
  g_auto (Parties) p = { 0 };
  int hold_to;
  g_autofree char *timeline = NULL;

  double cancelled = metric (TRANSFERS ("warm", "cancelled"));

  call_through (&p, a, b, "660,880,350", "15");
  g_assert_cmpfloat (metric (TRANSFERS ("warm", "cancelled")), ==, cancelled + 1);
  g_assert_cmpstr (json_object_get_string_member (p.a, "end_reason"), ==, "visitor-hangup");
  g_assert_cmpstr (json_object_get_string_member (p.b, "end_reason"), ==, "transfer-cancelled");
  g_assert_cmpuint (heard (p.a, 880), >=, 20);
  g_assert_cmpuint (heard (p.visitor, 880), ==, 0);
  hold_to = last_second (p.visitor, 350);
  g_assert_cmpint (hold_to, >, 0);
  /* A again after the hold, and A heard the visitor again */
  g_assert_cmpuint (heard_between (p.visitor, 660, second_at (p.visitor, hold_to), G_MAXINT64), >=,
                    20);
  g_assert_cmpuint (heard_between (p.a, 440, second_at (p.visitor, hold_to + 1), G_MAXINT64), >=,
                    20);
  timeline = timeline_of (json_object_get_string_member (p.visitor, "call_id"));
  g_test_message ("timeline: %s", timeline);
  g_assert_nonnull (strstr (timeline, "transfer.cancelled"));
}

/* Blind, to a queue: its member takes the call. */
static void
test_blind_to_queue (void)
{
  g_autofree char *to = g_strdup_printf ("queue:%s", second_line);
  Peer *c = agent_start (4, "1100", "440", "--calls", "1", "--timeout", "60", NULL);
  Peer *a = agent_start (1, "660", "440", "--calls", "1", "--transfer-to", to, "--transfer-after",
                         "3", "--timeout", "60", NULL);
  g_auto (Parties) p = { 0 };
  g_autofree char *timeline = NULL;

  call_through (&p, a, c, "660,1100", "12");
  g_assert_cmpstr (json_object_get_string_member (p.a, "end_reason"), ==, "transferred");
  g_assert_cmpuint (heard (p.visitor, 660), >=, 20);
  g_assert_cmpuint (heard (p.visitor, 1100), >=, 20);
  g_assert_cmpint (last_second (p.visitor, 660), <=, first_second (p.visitor, 1100));
  g_assert_cmpuint (heard (p.b, 440), >=, 20);
  timeline = timeline_of (json_object_get_string_member (p.visitor, "call_id"));
  g_test_message ("timeline: %s", timeline);
  g_assert_nonnull (strstr (timeline, "queue.moved"));
}

/* Refused transfers change nothing: an unknown queue, an agent not signed
 * in; the call goes on with A. */
static void
test_refused_transfers (void)
{
  const char *targets[] = { "queue:00000000-0000-4000-8000-00000000abcd", NULL };
  g_autofree char *absent = g_strdup_printf ("agent:%s", agent_ids[3]);
  const char *codes[] = { "not-found: no queue", "unavailable: agent" };

  targets[1] = absent;
  for (guint i = 0; i < G_N_ELEMENTS (targets); i++) {
    Peer *a = agent_start (1, "660", "440", "--calls", "1", "--transfer-to", targets[i],
                           "--transfer-after", "2", "--timeout", "60", NULL);
    g_auto (Parties) p = { 0 };
    JsonArray *errors;

    call_through (&p, a, NULL, "660", "6");
    g_assert_cmpstr (json_object_get_string_member (p.a, "end_reason"), ==, "visitor-hangup");
    errors = json_object_get_array_member (p.reports[1], "errors");
    g_assert_cmpuint (json_array_get_length (errors), ==, 1);
    g_assert_true (g_str_has_prefix (json_array_get_string_element (errors, 0), codes[i]));
    /* A stayed on the call to its end */
    g_assert_cmpuint (heard_between (p.visitor, 660, second_at (p.visitor, 4), G_MAXINT64), >=, 20);
  }
}

/* The call connected now, or NULL. */
static char *
connected_call (void)
{
  g_autofree char *url = g_strdup_printf ("%sapi/v1/companies/%s/calls?state=connected",
                                          daemon_proc->base_url, company);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;
  g_autoptr (JsonObject) o = NULL;
  JsonArray *items;

  g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL), ==,
                    200);
  o = cd_json_parse_object (body, strlen (body), NULL, NULL);
  items = json_object_get_array_member (o, "items");
  if (json_array_get_length (items) == 0)
    return NULL;
  return g_strdup (json_object_get_string_member (json_array_get_object_element (items, 0), "id"));
}

/* One call supervised in @modes (see --monitor-modes): the visitor, the
 * agent and, as b, the supervisor; and when each mode began. */
static void
supervise (Parties *p, const char *modes, gint64 *at, guint n_modes)
{
  Peer *a = agent_start (1, "660", "440,1300", "--calls", "1", "--timeout", "90", NULL);
  Peer *visitor, *supervisor;
  g_autofree char *call_id = NULL;
  JsonArray *list;
  gint64 deadline;

  cd_test_sleep (1500);
  visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                        "--listen-for", "660,1300", "--hold", "20", "--timeout", "90", NULL);
  deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  while ((call_id = connected_call ()) == NULL && g_get_monotonic_time () < deadline)
    cd_test_sleep (200);
  g_assert_nonnull (call_id);
  supervisor = peer_start ("calldocker-agent", "--email", "admin@xfer.test", "--password-file",
                           password_file, "--tone", "1300", "--listen-for", "440,660", "--monitor",
                           call_id, "--monitor-modes", modes, "--timeout", "60", NULL);
  p->reports[2] = finish (supervisor, "the supervisor");
  p->reports[0] = finish (visitor, "the visitor");
  p->reports[1] = finish (a, "agent A");
  p->visitor = only_call (p->reports[0]);
  p->a = only_call (p->reports[1]);
  p->b = only_call (p->reports[2]);
  g_assert_cmpstr (json_object_get_string_member (p->b, "end_reason"), ==, "left");
  g_assert_cmpstr (json_object_get_string_member (p->visitor, "end_reason"), ==, "visitor-hangup");
  list = json_object_get_array_member (p->b, "modes");
  g_assert_cmpuint (json_array_get_length (list), ==, n_modes);
  for (guint i = 0; i < n_modes; i++)
    at[i] = json_object_get_int_member (json_array_get_object_element (list, i), "at_us");
}

/* A supervisor listens, then whispers, then leaves: the supervisor hears
 * both parties; the agent hears the supervisor only once whispered to;
 * the visitor never does. (What arrives late on a loaded machine arrives
 * later, never earlier: the checks hold however slow the peers are.) */
static void
test_listen_and_whisper (void)
{
  g_auto (Parties) p = { 0 };
  gint64 at[2];

  double listened = metric (MODES ("listen")), whispered = metric (MODES ("whisper"));

  supervise (&p, "listen:4,whisper:6", at, 2);
  g_assert_cmpfloat (metric (MODES ("listen")), ==, listened + 1);
  g_assert_cmpfloat (metric (MODES ("whisper")), ==, whispered + 1);
  g_assert_cmpuint (heard (p.b, 440), >=, 20);
  g_assert_cmpuint (heard (p.b, 660), >=, 20);
  g_assert_cmpuint (heard_between (p.a, 1300, 0, at[1]), ==, 0);
  g_assert_cmpuint (heard (p.a, 1300), >=, 20);
  g_assert_cmpuint (heard (p.visitor, 1300), ==, 0);
  /* and the parties heard each other throughout */
  g_assert_cmpuint (heard_between (p.a, 440, at[1], G_MAXINT64), >=, 20);
  g_assert_cmpuint (heard_between (p.visitor, 660, at[1], G_MAXINT64), >=, 20);
}

/* A supervisor barges in: both parties hear the supervisor. */
static void
test_barge (void)
{
  g_auto (Parties) p = { 0 };
  gint64 at[1];

  double barged = metric (MODES ("barge"));

  supervise (&p, "barge:6", at, 1);
  g_assert_cmpfloat (metric (MODES ("barge")), ==, barged + 1);
  g_assert_cmpuint (heard_between (p.visitor, 1300, 0, at[0]), ==, 0);
  g_assert_cmpuint (heard (p.visitor, 1300), >=, 20);
  g_assert_cmpuint (heard (p.a, 1300), >=, 20);
  g_assert_cmpuint (heard (p.b, 440), >=, 20);
  g_assert_cmpuint (heard (p.b, 660), >=, 20);
}

static guint
api (const char *method, const char *path, const char *json, char **created)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/%s", daemon_proc->base_url, company, path);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
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

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1", NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-transfer-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "xfer", ORIGIN, 4, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@xfer.test", PASSWORD);
  for (guint i = 1; i <= 4; i++) {
    g_autofree char *email = g_strdup_printf ("agent%u@xfer.test", i);
    g_autofree char *token = cd_test_login (daemon_proc->base_url, email, PASSWORD);
    agent_ids[i] = cd_test_user_id (token);
  }
  password_file = g_build_filename (state, "password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
  /* calls wait in Front (the first queue), where agent 1 alone answers;
   * agent 4 answers Second line; agents 2 and 3 belong to no queue */
  {
    g_autofree char *members = NULL;
    g_autofree char *path = NULL;

    g_assert_cmpuint (api ("POST", "queues", "{\"name\":\"Front\"}", &front), ==, 201);
    g_assert_cmpuint (api ("POST", "queues", "{\"name\":\"Second line\"}", &second_line), ==, 201);
    members = g_strdup_printf ("{\"members\":{\"%s\":1}}", agent_ids[1]);
    path = g_strdup_printf ("queues/%s/members", front);
    g_assert_cmpuint (api ("PUT", path, members, NULL), ==, 204);
    g_free (members);
    g_free (path);
    members = g_strdup_printf ("{\"members\":{\"%s\":1}}", agent_ids[4]);
    path = g_strdup_printf ("queues/%s/members", second_line);
    g_assert_cmpuint (api ("PUT", path, members, NULL), ==, 204);
  }
  g_test_add_func ("/call-transfer/blind-to-agent", test_blind_to_agent);
  g_test_add_func ("/call-transfer/warm-completed", test_warm_completed);
  g_test_add_func ("/call-transfer/warm-cancelled", test_warm_cancelled);
  g_test_add_func ("/call-transfer/blind-to-queue", test_blind_to_queue);
  g_test_add_func ("/call-transfer/refused", test_refused_transfers);
  g_test_add_func ("/call-transfer/listen-and-whisper", test_listen_and_whisper);
  g_test_add_func ("/call-transfer/barge", test_barge);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (admin_token);
  g_free (password_file);
  g_free (front);
  g_free (second_line);
  for (guint i = 1; i <= 4; i++)
    g_free (agent_ids[i]);
  return status;
}
