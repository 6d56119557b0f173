/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Many calls in a row (CD_SOAK_CALLS, 200 by default) through the real
 * daemon with the C peers: every call ends the ordinary way and the daemon's
 * threads and file descriptors come back to where they started. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://shop.test"
#define AGENTS   4
#define HOLD_S   "0.3"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company;
static char *admin_token;
static char *password_file;
static char *agent_emails[AGENTS];

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

/* Waits for the peer and checks it exited 0; its report. */
static JsonObject *
peer_finish (Peer *p, guint timeout_s)
{
  JsonObject *report;
  gboolean good;

  good = cd_test_peer_wait (p, timeout_s * 1000);
  if (!good) {
    g_auto (GStrv) lines = NULL;
    g_autofree char *logged = NULL;

    /* what the daemon makes of it may be a moment behind */
    cd_test_sleep (1000);
    logged = g_strconcat (daemon_proc->out->str, daemon_proc->err->str, NULL);
    lines = g_strsplit (logged, "\n", -1);
    /* on stderr: the test runner shows it with the failure */
    g_printerr ("a peer failed:\n%s\n%s\n", p->err, p->out);
    /* what the daemon said about sessions and calls that went wrong */
    for (char **l = lines; *l; l++)
      if (strstr (*l, "signaling session") || strstr (*l, "WARNING") || strstr (*l, "CRITICAL") ||
          strstr (*l, "ERROR") || strstr (*l, "media failed"))
        g_printerr ("daemon: %s\n", *l);
    if (g_subprocess_get_identifier (daemon_proc->process) == NULL)
      g_printerr ("the daemon has exited\n");
  }
  g_assert_true (good);
  report = cd_json_parse_object (p->out, strlen (p->out), NULL, NULL);
  g_assert_nonnull (report);
  cd_test_peer_free (p);
  return report;
}

/* K visitors and K agents side by side, @calls in all, each visitor's one
 * after another; the ids of the calls made. */
static GPtrArray *
run_calls (guint calls)
{
  Peer *agents[AGENTS], *visitors[AGENTS];
  GPtrArray *ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) unique = g_hash_table_new (g_str_hash, g_str_equal);
  guint agent_calls = 0;
  /* about a second a call, one after another, and some slack */
  guint timeout_s = 60 + 3 * (calls / AGENTS + 1);
  g_autofree char *timeout = g_strdup_printf ("%u", timeout_s);

  for (guint i = 0; i < AGENTS; i++) {
    g_autofree char *n = g_strdup_printf ("%u", calls / AGENTS + (i < calls % AGENTS));
    agents[i] = n[0] == '0' ? NULL
                            : peer_start ("calldocker-agent", "--quiet", "--email", agent_emails[i],
                                          "--password-file", password_file, "--calls", n,
                                          "--timeout", timeout, NULL);
    visitors[i] = n[0] == '0' ? NULL
                              : peer_start ("calldocker-visitor", "--quiet", "--company", company,
                                            "--origin", ORIGIN, "--repeat", n, "--hold", HOLD_S,
                                            "--timeout", timeout, NULL);
  }
  for (guint i = 0; i < AGENTS; i++) {
    g_autoptr (JsonObject) report = NULL;
    JsonArray *made;

    if (visitors[i] == NULL)
      continue;
    report = peer_finish (visitors[i], timeout_s + 10);
    made = json_object_get_array_member (report, "calls");
    for (guint k = 0; k < json_array_get_length (made); k++) {
      JsonObject *call = json_array_get_object_element (made, k);
      const char *id = json_object_get_string_member (call, "call_id");
      g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "visitor-hangup");
      g_ptr_array_add (ids, g_strdup (id));
    }
  }
  for (guint i = 0; i < AGENTS; i++) {
    g_autoptr (JsonObject) report = NULL;
    JsonArray *answered;

    if (agents[i] == NULL)
      continue;
    report = peer_finish (agents[i], 30);
    answered = json_object_get_array_member (report, "calls");
    for (guint k = 0; k < json_array_get_length (answered); k++) {
      JsonObject *call = json_array_get_object_element (answered, k);
      g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "visitor-hangup");
      agent_calls++;
    }
  }
  for (guint i = 0; i < ids->len; i++)
    g_hash_table_add (unique, g_ptr_array_index (ids, i));
  g_assert_cmpuint (ids->len, ==, calls);
  g_assert_cmpuint (g_hash_table_size (unique), ==, calls);
  g_assert_cmpuint (agent_calls, ==, calls);
  return ids;
}

/* ---- the daemon's resources ---- */

static GPid
daemon_pid (void)
{
  return (GPid) g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10);
}

static guint
count_entries (const char *what)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/%s", (int) daemon_pid (), what);
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  guint n = 0;

  g_assert_nonnull (dir);
  while (g_dir_read_name (dir) != NULL)
    n++;
  return n;
}

typedef struct {
  guint threads;
  guint fds;
  /* of which TCP connections to the daemon's port in CLOSE_WAIT: the client
   * closed them and the daemon never did */
  guint closed_by_client;
} Resources;

/* "socket:[INODE]" of the daemon's HTTP connections that the client closed. */
static GHashTable *
closed_by_client (void)
{
  g_autoptr (GUri) uri = g_uri_parse (daemon_proc->base_url, G_URI_FLAGS_NONE, NULL);
  g_autofree char *port = g_strdup_printf (":%04X", g_uri_get_port (uri));
  GHashTable *found = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const char *tables[] = { "tcp", "tcp6" };

  for (gsize t = 0; t < G_N_ELEMENTS (tables); t++) {
    g_autofree char *path = g_strdup_printf ("/proc/%d/net/%s", (int) daemon_pid (), tables[t]);
    g_autofree char *text = NULL;
    g_auto (GStrv) lines = NULL;

    if (!g_file_get_contents (path, &text, NULL, NULL))
      continue;
    lines = g_strsplit (text, "\n", -1);
    /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
    for (char **l = lines; *l; l++) {
      g_auto (GStrv) f = g_strsplit_set (g_strstrip (*l), " ", -1);
      g_autoptr (GPtrArray) fields = g_ptr_array_new ();

      for (char **x = f; *x; x++)
        if (**x)
          g_ptr_array_add (fields, *x);
      if (fields->len > 9 && g_str_has_suffix (g_ptr_array_index (fields, 1), port) &&
          g_str_equal (g_ptr_array_index (fields, 3), "08"))
        g_hash_table_add (found,
                          g_strdup_printf ("socket:[%s]", (char *) g_ptr_array_index (fields, 9)));
    }
  }
  return found;
}

static void
resources_read (Resources *r)
{
  g_autofree char *path = g_strdup_printf ("/proc/%d/fd", (int) daemon_pid ());
  g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
  g_autoptr (GHashTable) closed = closed_by_client ();
  const char *name;

  g_assert_nonnull (dir);
  r->threads = count_entries ("task");
  r->fds = 0;
  r->closed_by_client = 0;
  while ((name = g_dir_read_name (dir)) != NULL) {
    g_autofree char *entry = g_build_filename (path, name, NULL);
    g_autofree char *target = g_file_read_link (entry, NULL);

    r->fds++;
    if (target && g_hash_table_contains (closed, target))
      r->closed_by_client++;
  }
}

static gboolean
resources_equal (const Resources *a, const Resources *b)
{
  return a->threads == b->threads && a->fds == b->fds && a->closed_by_client == b->closed_by_client;
}

/* What socket:[INODE] is, from /proc/PID/net: "udp 0100007F:C350". */
static char *
describe_socket (const char *target)
{
  const char *tables[] = { "tcp", "tcp6", "udp", "udp6", "unix" };
  g_autofree char *inode = NULL;

  if (!g_str_has_prefix (target, "socket:["))
    return g_strdup (target);
  inode = g_strndup (target + 8, strlen (target) - 9);
  for (gsize t = 0; t < G_N_ELEMENTS (tables); t++) {
    g_autofree char *path = g_strdup_printf ("/proc/%d/net/%s", (int) daemon_pid (), tables[t]);
    g_autofree char *text = NULL;
    g_auto (GStrv) lines = NULL;

    if (!g_file_get_contents (path, &text, NULL, NULL))
      continue;
    lines = g_strsplit (text, "\n", -1);
    for (char **l = lines; *l; l++) {
      g_auto (GStrv) f = g_strsplit_set (g_strstrip (*l), " ", -1);
      g_autoptr (GPtrArray) fields = g_ptr_array_new ();
      for (char **x = f; *x; x++)
        if (**x)
          g_ptr_array_add (fields, *x);
      /* tcp/udp: the inode is the 10th field; unix: the 7th */
      if (t < 4 && fields->len > 9 && g_str_equal (g_ptr_array_index (fields, 9), inode))
        return g_strdup_printf ("%s:%s>%s/%s", tables[t], (char *) g_ptr_array_index (fields, 1),
                                (char *) g_ptr_array_index (fields, 2),
                                (char *) g_ptr_array_index (fields, 3));
      if (t == 4 && fields->len > 6 && g_str_equal (g_ptr_array_index (fields, 6), inode))
        return g_strdup_printf ("unix:%s",
                                fields->len > 7 ? (char *) g_ptr_array_index (fields, 7) : "-");
    }
  }
  return g_strdup (target);
}

/* The daemon's threads by name and its descriptors by target, for when the
 * counts do not come back. */
static void
log_resources (void)
{
  const char *what[] = { "task", "fd" };

  for (gsize i = 0; i < G_N_ELEMENTS (what); i++) {
    g_autofree char *path = g_strdup_printf ("/proc/%d/%s", (int) daemon_pid (), what[i]);
    g_autoptr (GDir) dir = g_dir_open (path, 0, NULL);
    g_autoptr (GString) list = g_string_new (NULL);
    const char *name;

    while (dir && (name = g_dir_read_name (dir)) != NULL) {
      g_autofree char *entry = g_build_filename (path, name, NULL);
      g_autofree char *comm_path = g_build_filename (entry, "comm", NULL);
      g_autofree char *text = NULL;

      if (i == 0)
        g_file_get_contents (comm_path, &text, NULL, NULL);
      else {
        g_autofree char *target = g_file_read_link (entry, NULL);
        text = target ? describe_socket (target) : NULL;
      }
      g_string_append_printf (list, " %s", text ? g_strstrip (text) : "?");
    }
    g_test_message ("%s:%s", what[i], list->str);
  }
}

/* GLib keeps up to two idle pool threads (GStreamer's streaming threads
 * come from its pool) for 15 s before they exit. */
#define POOL_IDLE_MS 15000

/* Waits until the pool's idle threads are gone and nothing has moved for a
 * while: everything the daemon keeps is there, nothing passing. */
static void
settle (Resources *r)
{
  gint64 start = g_get_monotonic_time ();
  gint64 since = start;
  Resources now;

  resources_read (r);
  while (g_get_monotonic_time () - start < (POOL_IDLE_MS + 2000) * (gint64) 1000 ||
         g_get_monotonic_time () - since < 3 * G_USEC_PER_SEC) {
    g_assert_cmpint (g_get_monotonic_time () - start, <, 60 * G_USEC_PER_SEC);
    cd_test_sleep (250);
    resources_read (&now);
    if (!resources_equal (&now, r))
      since = g_get_monotonic_time ();
    *r = now;
  }
}

/* ---- the database side ---- */

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

static void
assert_stored_ended (GPtrArray *ids)
{
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

  for (guint i = 0; i < ids->len; i++) {
    g_autoptr (JsonObject) call = get_call (g_ptr_array_index (ids, i));

    /* the store writes behind: the last ones may still be on their way */
    while (g_strcmp0 (json_object_get_string_member (call, "state"), "ended") != 0 &&
           g_get_monotonic_time () < deadline) {
      cd_test_sleep (100);
      g_clear_pointer (&call, json_object_unref);
      call = get_call (g_ptr_array_index (ids, i));
    }
    g_assert_cmpstr (json_object_get_string_member (call, "state"), ==, "ended");
    g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "visitor-hangup");
    g_assert_false (json_object_get_null_member (call, "answered_at"));
  }
}

/* ---- the test ---- */

static void
test_calls_leave_no_leaks (void)
{
  guint calls = 200;
  const char *env = g_getenv ("CD_SOAK_CALLS");
  g_autoptr (GPtrArray) warm_up = NULL;
  g_autoptr (GPtrArray) ids = NULL;
  Resources start, end;
  gint64 started;
  double seconds;

  if (env)
    calls = (guint) g_ascii_strtoull (env, NULL, 10);
  g_assert_cmpuint (calls, >=, 1);

  /* one call per pair first: whatever is made once and kept (pools,
   * plugins, caches) is there before counting */
  warm_up = run_calls (AGENTS);
  settle (&start);
  g_test_message ("after the warm-up: %u threads, %u descriptors (%u closed by the client)",
                  start.threads, start.fds, start.closed_by_client);
  log_resources ();

  started = g_get_monotonic_time ();
  ids = run_calls (calls);
  seconds = (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC;
  g_test_message ("%u calls in %.1f s (%.2f s a call per pair)", calls, seconds,
                  seconds * AGENTS / calls);

  /* pipelines are torn down by short-lived threads, and the pool's idle
   * threads leave after POOL_IDLE_MS */
  started = g_get_monotonic_time ();
  resources_read (&end);
  g_test_message ("right after the calls: %u threads, %u descriptors", end.threads, end.fds);
  while ((end.threads != start.threads || end.fds != start.fds) &&
         g_get_monotonic_time () - started < (POOL_IDLE_MS + 10000) * (gint64) 1000) {
    cd_test_sleep (250);
    resources_read (&end);
  }
  g_test_message ("%.1f s later: %u threads, %u descriptors (%u closed by the client)",
                  (g_get_monotonic_time () - started) / (double) G_USEC_PER_SEC, end.threads,
                  end.fds, end.closed_by_client);
  if (!resources_equal (&start, &end))
    log_resources ();
  g_assert_cmpuint (end.threads, ==, start.threads);
  g_assert_cmpuint (end.fds, ==, start.fds);
  /* libsoup 3.2's server never closes a kept-alive connection that the
   * client closed while idle (CLOSE_WAIT); the daemon answers with
   * "Connection: close" so there are none */
  g_assert_cmpuint (end.closed_by_client, ==, 0);

  assert_stored_ended (warm_up);
  assert_stored_ended (ids);
}

static void
seed (void)
{
  company = cd_test_seed_company (state, "shop", ORIGIN, AGENTS, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@shop.test", PASSWORD);
  for (guint i = 0; i < AGENTS; i++)
    agent_emails[i] = g_strdup_printf ("agent%u@shop.test", i + 1);
  password_file = g_build_filename (state, "agent-password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1", NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  state = cd_test_make_tmp_dir ("cd-call-soak-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  seed ();
  g_test_add_func ("/call-soak/calls-leave-no-leaks", test_calls_leave_no_leaks);
  status = g_test_run ();
  kill (daemon_pid (), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  for (guint i = 0; i < AGENTS; i++)
    g_free (agent_emails[i]);
  g_free (company);
  g_free (admin_token);
  g_free (password_file);
  return status;
}
