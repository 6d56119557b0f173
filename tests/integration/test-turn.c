/* SPDX-License-Identifier: GPL-3.0-or-later */
/* TURN with a real coturn: the credentials the widget session hands out
 * open a relay that carries a relay-only visitor's call, and coturn refuses
 * credentials made with another secret or past their expiry. */

#include "auth/cd-password.h"
#include "auth/cd-turn.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://shop.test"
#define REALM    "calldocker.test"
#define TTL_S    600
/* coturn closes allocations this long after they were made or refreshed:
 * libnice, in the peer, never releases them; see test_relay_only_call() */
#define MAX_ALLOCATE_LIFETIME_S 20

/* coturn in a child process: its own config, log, pid file and user
 * database in a temporary folder (nothing from /etc or /var/lib/turn). */
typedef struct {
  GSubprocess *process;
  char *dir;
  char *log_path;
  char *secret;
  guint16 port;
  gboolean exited;
} Turn;

static Turn *turn;
static char *state;
static CdTestDaemon *daemon_proc;
static char *daemon_secret; /* the secret daemon_proc was started with */
static char *company;
static char *password_file;
static guint agent_count;

/* ---- coturn ---- */

static void
die_with_test (gpointer user_data)
{
  prctl (PR_SET_PDEATHSIG, SIGKILL);
}

static char *
turnserver_binary (void)
{
  char *path = g_find_program_in_path ("turnserver");

  if (path == NULL && g_file_test ("/usr/sbin/turnserver", G_FILE_TEST_IS_EXECUTABLE))
    path = g_strdup ("/usr/sbin/turnserver");
  return path;
}

/* A UDP port on 127.0.0.1 that is free now, and free for TCP too (coturn
 * listens on both). */
static guint16
free_port (void)
{
  for (int attempt = 0; attempt < 20; attempt++) {
    g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
    g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
    g_autoptr (GSocket) udp =
        g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
    g_autoptr (GSocket) tcp =
        g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, NULL);
    g_autoptr (GSocketAddress) bound = NULL;
    g_autoptr (GSocketAddress) same = NULL;
    guint16 port;

    g_assert_true (g_socket_bind (udp, any, FALSE, NULL));
    bound = g_socket_get_local_address (udp, NULL);
    port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (bound));
    same = g_inet_socket_address_new (loopback, port);
    if (g_socket_bind (tcp, same, FALSE, NULL))
      return port;
  }
  g_error ("no free port on 127.0.0.1");
}

static void
on_turn_exit (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Turn *t = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  t->exited = TRUE;
}

static char *
turn_log (void)
{
  char *text = NULL;

  if (!g_file_get_contents (turn->log_path, &text, NULL, NULL))
    return g_strdup ("");
  return text;
}

/* Sends @request, a STUN Binding request (RFC 5389), again; TRUE once an
 * answer to it came back. */
static gboolean
stun_binding_answered (GSocket *socket, GSocketAddress *server, const guint8 request[20])
{
  guint8 answer[512];
  gssize got;

  if (g_socket_send_to (socket, server, (const char *) request, 20, NULL, NULL) < 0)
    return FALSE;
  if (!g_socket_condition_timed_wait (socket, G_IO_IN, 100 * 1000, NULL, NULL))
    return FALSE;
  got = g_socket_receive (socket, (char *) answer, sizeof answer, NULL, NULL);
  return got >= 20 && answer[0] == 0x01 && answer[1] == 0x01 &&
         memcmp (answer + 8, request + 8, 12) == 0;
}

static Turn *
turn_start (const char *binary)
{
  Turn *t = g_new0 (Turn, 1);
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) config = g_string_new (NULL);
  g_autofree char *config_path = NULL;
  g_autofree char *out_path = NULL;
  g_autoptr (GSocket) probe = NULL;
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) server = NULL;
  g_autoptr (GSocketAddress) any = NULL;
  gint64 deadline;
  guint8 binding[20] = { 0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42 };

  t->dir = cd_test_make_tmp_dir ("cd-turn-XXXXXX");
  t->log_path = g_build_filename (t->dir, "turnserver.log", NULL);
  t->secret = g_strdup_printf ("%08x%08x%08x%08x", g_random_int (), g_random_int (),
                               g_random_int (), g_random_int ());
  t->port = free_port ();
  /* what docs/operations.md shows, on loopback and without TLS */
  g_string_append_printf (config,
                          "listening-ip=127.0.0.1\n"
                          "relay-ip=127.0.0.1\n"
                          "listening-port=%u\n"
                          "fingerprint\n"
                          "use-auth-secret\n"
                          "static-auth-secret=%s\n"
                          "realm=" REALM "\n"
                          "no-tls\n"
                          "no-dtls\n"
                          "no-multicast-peers\n"
                          "allow-loopback-peers\n"
                          "no-cli\n"
                          "no-software-attribute\n"
                          "verbose\n"
                          "max-allocate-lifetime=%d\n"
                          "log-file=%s\n"
                          "simple-log\n"
                          "no-stdout-log\n"
                          "pidfile=%s/turnserver.pid\n"
                          "userdb=%s/turndb\n",
                          t->port, t->secret, MAX_ALLOCATE_LIFETIME_S, t->log_path, t->dir, t->dir);
  config_path = g_build_filename (t->dir, "turnserver.conf", NULL);
  g_assert_true (g_file_set_contents (config_path, config->str, -1, NULL));
  out_path = g_build_filename (t->dir, "turnserver.out", NULL);
  g_subprocess_launcher_set_stdout_file_path (launcher, out_path);
  g_subprocess_launcher_set_stderr_file_path (launcher, out_path);
  g_subprocess_launcher_set_child_setup (launcher, die_with_test, NULL, NULL);
  t->process = g_subprocess_launcher_spawn (launcher, &error, binary, "-c", config_path, NULL);
  g_assert_no_error (error);
  g_subprocess_wait_async (t->process, NULL, on_turn_exit, t);

  /* it listens once it answers a Binding request (one transaction, sent
   * again until then: late answers to it still count) */
  for (int i = 8; i < 20; i++)
    binding[i] = g_random_int_range (0, 256);
  probe = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
  any = g_inet_socket_address_new (loopback, 0);
  g_assert_true (g_socket_bind (probe, any, FALSE, NULL));
  server = g_inet_socket_address_new (loopback, t->port);
  deadline = g_get_monotonic_time () + 15 * G_USEC_PER_SEC;
  while (!stun_binding_answered (probe, server, binding)) {
    cd_test_iterate (10);
    if (t->exited || g_get_monotonic_time () > deadline) {
      g_autofree char *out = NULL;
      g_file_get_contents (out_path, &out, NULL, NULL);
      turn = t;
      g_error ("turnserver %s:\n%s\n%s", t->exited ? "exited" : "does not answer", out,
               turn_log ());
    }
  }
  return t;
}

static void
turn_stop (Turn *t)
{
  if (!t->exited) {
    g_subprocess_send_signal (t->process, SIGTERM);
    WAIT_UNTIL (t->exited, 10000);
  }
  g_clear_object (&t->process);
  cd_test_remove_tree (t->dir);
  g_free (t->dir);
  g_free (t->log_path);
  g_free (t->secret);
  g_free (t);
}

/* ---- a minimal TURN client (RFC 5766) with long-term credentials
 * (RFC 5389 10.2), to ask coturn directly ---- */

typedef struct {
  GSocket *socket;
  char *username;
  char *password;
  char *realm; /* and nonce: from coturn's first 401 */
  char *nonce;
} TurnClient;

static void
turn_client_free (TurnClient *c)
{
  g_clear_object (&c->socket);
  g_free (c->username);
  g_free (c->password);
  g_free (c->realm);
  g_free (c->nonce);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TurnClient, turn_client_free)

static void
stun_append (GByteArray *m, guint16 type, const void *value, gsize length)
{
  static const guint8 zero[3];
  const guint8 head[4] = { type >> 8, type & 0xff, length >> 8, length & 0xff };

  g_byte_array_append (m, head, 4);
  g_byte_array_append (m, value, length);
  g_byte_array_append (m, zero, (4 - length % 4) % 4);
  m->data[2] = (m->len - 20) >> 8;
  m->data[3] = (m->len - 20) & 0xff;
}

static TurnClient *
turn_client_new (const char *username, const char *password)
{
  TurnClient *c = g_new0 (TurnClient, 1);
  g_autoptr (GInetAddress) loopback = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) any = g_inet_socket_address_new (loopback, 0);
  g_autoptr (GSocketAddress) server = g_inet_socket_address_new (loopback, turn->port);

  c->socket =
      g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM, G_SOCKET_PROTOCOL_UDP, NULL);
  g_assert_true (g_socket_bind (c->socket, any, FALSE, NULL));
  g_assert_true (g_socket_connect (c->socket, server, NULL, NULL));
  c->username = g_strdup (username);
  c->password = g_strdup (password);
  return c;
}

/* One request of @method (0x003 Allocate, 0x004 Refresh), signed once coturn
 * has given its realm and nonce; 0 when it succeeded, else the ERROR-CODE. */
static guint
turn_client_request (TurnClient *c, guint16 method)
{
  g_autoptr (GByteArray) m = g_byte_array_new ();
  const guint8 head[8] = { method >> 8, method & 0xff, 0, 0, 0x21, 0x12, 0xa4, 0x42 };
  const guint8 udp[4] = { 17, 0, 0, 0 };
  const guint8 lifetime[4] = { 0, 0, 600 >> 8, 600 & 0xff };
  guint8 answer[1024];
  gssize got;
  gsize at = 20;
  guint code = 0;
  guint16 type;

  g_byte_array_append (m, head, sizeof head);
  for (int i = 0; i < 12; i++) {
    guint8 b = g_random_int_range (0, 256);
    g_byte_array_append (m, &b, 1);
  }
  if (method == 0x003)
    stun_append (m, 0x0019, udp, sizeof udp); /* REQUESTED-TRANSPORT */
  else
    stun_append (m, 0x000d, lifetime, sizeof lifetime); /* LIFETIME */
  if (c->nonce) {
    g_autoptr (GChecksum) md5 = g_checksum_new (G_CHECKSUM_MD5);
    g_autoptr (GHmac) hmac = NULL;
    guint8 key[16], integrity[20];
    gsize key_length = sizeof key, integrity_length = sizeof integrity;

    stun_append (m, 0x0006, c->username, strlen (c->username)); /* USERNAME */
    stun_append (m, 0x0014, c->realm, strlen (c->realm));       /* REALM */
    stun_append (m, 0x0015, c->nonce, strlen (c->nonce));       /* NONCE */
    /* MESSAGE-INTEGRITY: HMAC-SHA1 keyed with MD5 (username:realm:password)
     * over the message, its length already counting the attribute */
    g_checksum_update (md5, (const guchar *) c->username, -1);
    g_checksum_update (md5, (const guchar *) ":", 1);
    g_checksum_update (md5, (const guchar *) c->realm, -1);
    g_checksum_update (md5, (const guchar *) ":", 1);
    g_checksum_update (md5, (const guchar *) c->password, -1);
    g_checksum_get_digest (md5, key, &key_length);
    m->data[2] = (m->len - 20 + 24) >> 8;
    m->data[3] = (m->len - 20 + 24) & 0xff;
    hmac = g_hmac_new (G_CHECKSUM_SHA1, key, key_length);
    g_hmac_update (hmac, m->data, m->len);
    g_hmac_get_digest (hmac, integrity, &integrity_length);
    stun_append (m, 0x0008, integrity, integrity_length);
  }

  g_assert_cmpint (g_socket_send (c->socket, (const char *) m->data, m->len, NULL, NULL), ==,
                   m->len);
  g_assert_true (
      g_socket_condition_timed_wait (c->socket, G_IO_IN, 5 * G_USEC_PER_SEC, NULL, NULL));
  got = g_socket_receive (c->socket, (char *) answer, sizeof answer, NULL, NULL);
  g_assert_cmpint (got, >=, 20);
  g_assert_cmpmem (answer + 8, 12, m->data + 8, 12);
  while (at + 4 <= (gsize) got) {
    guint16 attribute = answer[at] << 8 | answer[at + 1];
    gsize length = answer[at + 2] << 8 | answer[at + 3];
    const guint8 *value = answer + at + 4;

    if (at + 4 + length > (gsize) got)
      break;
    if (attribute == 0x0009 && length >= 4) { /* ERROR-CODE */
      code = (value[2] & 7) * 100 + value[3];
    } else if (attribute == 0x0014) {
      g_free (c->realm);
      c->realm = g_strndup ((const char *) value, length);
    } else if (attribute == 0x0015) {
      g_free (c->nonce);
      c->nonce = g_strndup ((const char *) value, length);
    }
    at += 4 + length + (4 - length % 4) % 4;
  }
  type = answer[0] << 8 | answer[1];
  if (type == (0x0100 | method))
    return 0;
  g_assert_cmphex (type, ==, 0x0110 | method);
  g_assert_cmpuint (code, !=, 0);
  return code;
}

/* Allocates a relay: the first Allocate, unsigned, learns the realm and a
 * nonce from coturn's 401; the second is signed. */
static guint
turn_client_allocate (TurnClient *c)
{
  g_assert_cmpuint (turn_client_request (c, 0x003), ==, 401);
  g_assert_cmpstr (c->realm, ==, REALM);
  g_assert_nonnull (c->nonce);
  return turn_client_request (c, 0x003);
}

/* ---- the daemon, seeded ---- */

static CdPgPool *
owner_pool (void)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  CdPgPool *owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);

  cd_pg_pool_start (owner);
  return owner;
}

static PGresult *
owner_query (const char *sql, const char *const *params, int n_params)
{
  g_autoptr (CdPgPool) owner = owner_pool ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  PGresult *res;

  cd_pg_pool_query_async (owner, sql, params, n_params, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (owner);
  return res;
}

static void
daemon_stop (void)
{
  if (daemon_proc == NULL)
    return;
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  g_clear_pointer (&daemon_proc, cd_test_daemon_free);
  g_clear_pointer (&daemon_secret, g_free);
}

/* calldockerd handing out TURN credentials made with @secret: restarted on
 * the same state folder when it runs with another one. */
static void
daemon_with_secret (const char *secret)
{
  g_autofree char *urls =
      g_strdup_printf ("CALLDOCKER_ICE_TURN_URLS=turn:127.0.0.1:%u?transport=udp", turn->port);
  g_autofree char *secret_env = g_strconcat ("CALLDOCKER_ICE_TURN_SECRET=", secret, NULL);
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1",
                        "CALLDOCKER_CALLS_ICE_TIMEOUT_S=4",
                        "CALLDOCKER_ICE_TURN_TTL_S=" G_STRINGIFY (TTL_S),
                        urls,
                        secret_env,
                        NULL };

  if (g_strcmp0 (daemon_secret, secret) == 0)
    return;
  daemon_stop ();
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  daemon_secret = g_strdup (secret);
}

static void
seed_company (void)
{
  g_autoptr (PGresult) res =
      owner_query ("INSERT INTO companies (name, slug, status, allowed_origins)"
                   " VALUES ('Shop', 'shop', 'approved', ARRAY['" ORIGIN "']) RETURNING id",
                   NULL, 0);

  company = g_strdup (PQgetvalue (res, 0, 0));
  password_file = g_build_filename (state, "agent-password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
}

static char *
new_agent (void)
{
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
  g_autofree char *email = g_strdup_printf ("agent%u@shop.test", ++agent_count);
  const char *params[] = { company, email, hash };

  PQclear (owner_query ("INSERT INTO users (company_id, email, password_hash, role, display_name)"
                        " VALUES ($1, $2, $3, 'agent', 'Agent')",
                        params, 3));
  return g_steal_pointer (&email);
}

static char *
visitor_of_call (const char *call_id)
{
  const char *params[] = { call_id };
  g_autoptr (PGresult) res = owner_query ("SELECT visitor_id FROM calls WHERE id = $1", params, 1);

  g_assert_cmpint (PQntuples (res), ==, 1);
  return g_strdup (PQgetvalue (res, 0, 0));
}

/* ---- peers in child processes ---- */

typedef CdTestPeer Peer;

/* @g_debug: G_DEBUG for the peer, NULL to keep the test's */
static Peer *
peer_start (const char *g_debug, const char *name, ...)
{
  Peer *p;
  va_list args;

  va_start (args, name);
  p = cd_test_peer_start_va (name, daemon_proc->base_url, g_debug, args);
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

/* ---- what coturn logged ---- */

/* The first line of coturn's log holding every one of the NULL-terminated
 * needles, or NULL. */
static char *
turn_log_line (const char *first, ...)
{
  g_autofree char *log = turn_log ();
  g_auto (GStrv) lines = g_strsplit (log, "\n", -1);

  for (char **line = lines; *line; line++) {
    gboolean all = TRUE;
    va_list args;

    va_start (args, first);
    for (const char *n = first; n && all; n = va_arg (args, const char *))
      all = strstr (*line, n) != NULL;
    va_end (args);
    if (all)
      return g_strdup (*line);
  }
  return NULL;
}

/* The rp, rb, sp, sb of coturn's "usage:" (@kind ": usage: ", between the
 * client and coturn) or "peer usage:" (": peer usage: ", between coturn and
 * the peer it relays to) line for @user, written when the session closed. */
static void
turn_log_usage (const char *kind, const char *user, guint64 counts[4])
{
  g_autofree char *field = g_strdup_printf ("username=<%s>", user);
  g_autofree char *line = turn_log_line (kind, field, NULL);
  const char *at;

  g_assert_nonnull (line);
  at = strstr (line, ", rp=");
  g_assert_nonnull (at);
  g_assert_cmpint (sscanf (at,
                           ", rp=%" G_GUINT64_FORMAT ", rb=%" G_GUINT64_FORMAT
                           ", sp=%" G_GUINT64_FORMAT ", sb=%" G_GUINT64_FORMAT,
                           &counts[0], &counts[1], &counts[2], &counts[3]),
                   ==, 4);
  g_test_message ("%s", line);
}

/* ---- tests ---- */

static gboolean
turn_available (void)
{
  if (turn)
    return TRUE;
  if (g_getenv ("CALLDOCKER_TURN_REQUIRED"))
    g_error ("turnserver is not installed (apt-get install coturn)");
  g_test_skip ("turnserver is not installed (apt-get install coturn)");
  return FALSE;
}

/* Credentials made by cd_turn_credentials() as coturn checks them, without
 * the daemon: made with the secret and not expired they open a relay; made
 * with another secret, or expired, they do not. An allocation outlives
 * them: coturn checks the expiry when the session authenticates, not on
 * its refreshes, so a call longer than ice.turn_ttl_s keeps its relay. */
static void
test_credentials_checked_by_coturn (void)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  struct {
    const char *user;
    const char *secret;
    gint64 expiry;
    guint code;
  } cases[] = {
    { "probe-fresh", NULL, now + 60, 0 },
    { "probe-other-secret", "another-secret", now + 60, 401 },
    { "probe-expired", NULL, now - 60, 401 },
  };
  g_autofree char *username = NULL;
  g_autofree char *password = NULL;
  g_autofree char *line = NULL;
  g_autoptr (TurnClient) client = NULL;
  gint64 expiry;

  if (!turn_available ())
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *user = NULL;
    g_autofree char *secret = NULL;
    g_autofree char *bracketed = NULL;
    g_autoptr (TurnClient) c = NULL;

    cd_turn_credentials (cases[i].secret ? cases[i].secret : turn->secret, cases[i].user,
                         cases[i].expiry, &user, &secret);
    c = turn_client_new (user, secret);
    g_assert_cmpuint (turn_client_allocate (c), ==, cases[i].code);
    bracketed = g_strdup_printf ("user <%s>", user);
    g_clear_pointer (&line, g_free);
    if (cases[i].code == 0)
      line = turn_log_line (bracketed, "ALLOCATE processed, success", NULL);
    else
      line = turn_log_line ("check_stun_auth: Cannot find credentials of", bracketed, NULL);
    g_assert_nonnull (line);
    g_test_message ("%s", line);
  }

  /* valid for two more seconds: allocated now, still refreshed after */
  expiry = g_get_real_time () / G_USEC_PER_SEC + 2;
  cd_turn_credentials (turn->secret, "probe-expiring", expiry, &username, &password);
  client = turn_client_new (username, password);
  g_assert_cmpuint (turn_client_allocate (client), ==, 0);
  g_assert_cmpuint (turn_client_request (client, 0x004), ==, 0);
  while (g_get_real_time () / G_USEC_PER_SEC <= expiry + 1)
    cd_test_sleep (100);
  g_assert_cmpuint (turn_client_request (client, 0x004), ==, 0);
}

/* A visitor that may only use relayed candidates calls an agent through
 * coturn with the credentials its widget session gave it. */
static void
test_relay_only_call (void)
{
  g_autofree char *email = NULL;
  Peer *agent, *visitor;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autofree char *visitor_id = NULL;
  g_autofree char *line = NULL;
  g_autofree char *needle = NULL;
  g_autofree char *user = NULL;
  gboolean agent_good, visitor_good;
  guint64 client[4], peer[4];
  gint64 before, after, expiry, deadline;
  const char *start, *colon;

  if (!turn_available ())
    return;
  daemon_with_secret (turn->secret);
  email = new_agent ();
  agent =
      peer_start (NULL, "calldocker-agent", "--email", email, "--password-file", password_file,
                  "--calls", "1", "--tone", "880", "--expect-hz", "440", "--timeout", "30", NULL);
  cd_test_sleep (1000); /* the agent signs in and says it is available */
  before = g_get_real_time () / G_USEC_PER_SEC;
  /* GStreamer 1.22's webrtcbin never closes its libnice agent, which warns
   * when it is freed holding a TURN allocation: only criticals are fatal */
  visitor = peer_start ("gc-friendly,fatal-criticals", "calldocker-visitor", "--company", company,
                        "--origin", ORIGIN, "--relay-only", "--tone", "440", "--expect-hz", "880",
                        "--hold", "4", "--timeout", "30", NULL);
  visitor_report = cd_test_peer_finish (visitor, 60000, &visitor_good);
  after = g_get_real_time () / G_USEC_PER_SEC;
  agent_report = cd_test_peer_finish (agent, 60000, &agent_good);
  g_assert_true (visitor_good);
  g_assert_true (agent_good);
  g_assert_cmpstr (json_object_get_string_member (first_call (visitor_report), "end_reason"), ==,
                   "visitor-hangup");
  g_assert_cmpstr (json_object_get_string_member (first_call (agent_report), "end_reason"), ==,
                   "visitor-hangup");

  /* coturn gave a relay to EXPIRY:VISITOR_ID, expiring turn_ttl_s from the
   * widget session */
  visitor_id =
      visitor_of_call (json_object_get_string_member (first_call (visitor_report), "call_id"));
  needle = g_strdup_printf (":%s>: incoming packet ALLOCATE processed, success", visitor_id);
  line = turn_log_line (needle, NULL);
  if (line == NULL) {
    g_autofree char *log = turn_log ();
    g_test_message ("coturn log:\n%s", log);
  }
  g_assert_nonnull (line);
  g_test_message ("%s", line);
  start = strstr (line, "user <") + strlen ("user <");
  user = g_strndup (start, strchr (start, '>') - start);
  colon = strchr (user, ':');
  expiry = g_ascii_strtoll (user, NULL, 10);
  g_assert_cmpint (colon - user, >, 0);
  g_assert_cmpstr (colon + 1, ==, visitor_id);
  g_assert_cmpint (expiry, >=, before + TTL_S);
  g_assert_cmpint (expiry, <=, after + TTL_S);
  g_clear_pointer (&needle, g_free);
  g_clear_pointer (&line, g_free);
  needle = g_strdup_printf ("user <%s>: incoming packet CHANNEL_BIND processed, success", user);
  line = turn_log_line (needle, NULL);
  g_assert_nonnull (line);
  g_test_message ("%s", line);

  /* and relayed the call both ways: coturn writes the session's counts
   * when it closes, MAX_ALLOCATE_LIFETIME_S after the allocation at most
   * (the peer leaves it behind, see above) */
  g_clear_pointer (&needle, g_free);
  g_clear_pointer (&line, g_free);
  needle = g_strdup_printf ("closed (2nd stage), user <%s>", user);
  deadline = g_get_monotonic_time () + (MAX_ALLOCATE_LIFETIME_S + 5) * G_USEC_PER_SEC;
  while ((line = turn_log_line (needle, NULL)) == NULL) {
    if (g_get_monotonic_time () > deadline)
      g_error ("coturn did not close the session of %s", user);
    cd_test_sleep (250);
  }
  g_test_message ("%s", line);
  turn_log_usage (": usage: ", user, client);
  turn_log_usage (": peer usage: ", user, peer);
  /* a 4 s call of 20 ms packets is about 200 each way; at least half of
   * that (a sanitizer build sets up slower): received from the visitor and
   * sent to it, sent to the daemon and received from it */
  for (int i = 0; i < 4; i += 2) {
    g_assert_cmpuint (client[i], >=, 100);
    g_assert_cmpuint (peer[i], >=, 100);
    g_assert_cmpuint (client[i + 1], >=, 100 * 60);
    g_assert_cmpuint (peer[i + 1], >=, 100 * 60);
  }
}

/* The daemon signs credentials with a secret coturn does not know: the
 * relay-only visitor gets no relay, so no candidate, and the call ends. */
static void
test_wrong_secret_refused (void)
{
  g_autofree char *wrong = NULL;
  Peer *visitor;
  g_autoptr (JsonObject) report = NULL;
  g_autofree char *visitor_id = NULL;
  g_autofree char *needle = NULL;
  g_autofree char *line = NULL;

  if (!turn_available ())
    return;
  wrong = g_strconcat ("not-", turn->secret, NULL);
  daemon_with_secret (wrong);
  visitor = peer_start (NULL, "calldocker-visitor", "--company", company, "--origin", ORIGIN,
                        "--relay-only", "--timeout", "20", NULL);
  report = cd_test_peer_finish (visitor, 60000, NULL);
  g_assert_cmpstr (json_object_get_string_member (first_call (report), "end_reason"), ==,
                   "ice-failed");
  g_assert_cmpint (json_object_get_int_member (first_call (report), "connected_us"), ==, 0);

  visitor_id = visitor_of_call (json_object_get_string_member (first_call (report), "call_id"));
  needle = g_strdup_printf (":%s>: incoming packet message processed, error 401: Unauthorized",
                            visitor_id);
  line = turn_log_line (needle, NULL);
  g_assert_nonnull (line);
  g_test_message ("%s", line);
  g_clear_pointer (&line, g_free);
  line = turn_log_line ("check_stun_auth: Cannot find credentials of user <", visitor_id, NULL);
  g_assert_nonnull (line);
  g_test_message ("%s", line);
  g_clear_pointer (&needle, g_free);
  needle = g_strdup_printf (":%s>: incoming packet ALLOCATE processed, success", visitor_id);
  g_assert_null (turn_log_line (needle, NULL));
}

int
main (int argc, char **argv)
{
  g_autofree char *binary = turnserver_binary ();
  int status;

  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/turn/credentials-checked-by-coturn", test_credentials_checked_by_coturn);
  g_test_add_func ("/turn/relay-only-call", test_relay_only_call);
  g_test_add_func ("/turn/wrong-secret-refused", test_wrong_secret_refused);
  if (binary) {
    turn = turn_start (binary);
    state = cd_test_make_tmp_dir ("cd-turn-state-XXXXXX");
    daemon_with_secret (turn->secret);
    seed_company ();
  }
  status = g_test_run ();
  if (binary) {
    daemon_stop ();
    turn_stop (turn);
    cd_test_remove_tree (state);
  }
  g_free (state);
  g_free (company);
  g_free (password_file);
  return status;
}
