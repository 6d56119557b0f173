/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The bad call-message catalogue: each refused message is answered with its
 * error, and afterwards every session answers, every live call is as it was
 * (state and timeline, read through the REST API) and the daemon is ready. */

#include "auth/cd-password.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-ws.h"
#include "store/cd-pg-pool.h"

#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>

#define PASSWORD     "correct horse battery staple"
#define ORIGIN       "https://shop.test"
#define OTHER_ORIGIN "https://other.test"
#define UNKNOWN_CALL "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab"

static char *state;
static CdTestDaemon *daemon_proc;
static guint probes;

/* ---- the WebSocket client ---- */

typedef CdTestWs Client;

static const char *
type_of (JsonObject *o)
{
  return json_object_get_string_member_with_default (o, "type", "");
}

static void
assert_answers_ping (Client *c)
{
  guint before = c->received->len;

  g_assert_false (c->closed);
  cd_test_ws_send (c, "{\"type\":\"ping\"}");
  cd_test_ws_wait (c, before, "pong", NULL);
}

/* ---- the seeded world ---- */

typedef struct {
  char *id;
  char *company_id;
  char *admin_token; /* the company admin's: reads the call */
  char *visitor_token;
  Client *visitor; /* the call's visitor session */
} LiveCall;

static LiveCall own, media, other; /* own: queued; media: its visitor's offer answered */
static Client *agent;              /* an agent of own's company, away */
static char *agent_token;
static char *media_answer; /* the SDP answer to media's offer */

static char *
http_post_json (const char *path, const char *json, const char *origin, guint expected)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, path, NULL);
  const char *headers[] = { "Origin", origin, NULL };
  g_autofree char *body = NULL;

  g_assert_cmpuint (cd_test_http_request ("POST", url, "application/json", json, strlen (json),
                                          origin ? headers : NULL, &body, NULL),
                    ==, expected);
  return g_steal_pointer (&body);
}

static char *
token_from (const char *body, const char *member)
{
  g_autoptr (JsonObject) o = cd_json_parse_object (body, strlen (body), NULL, NULL);

  g_assert_nonnull (o);
  return g_strdup (json_object_get_string_member (o, member));
}

static char *
login (const char *email)
{
  g_autofree char *json =
      g_strdup_printf ("{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
  g_autofree char *body = http_post_json ("api/v1/auth/login", json, NULL, 200);

  return token_from (body, "access_token");
}

/* A visitor of @company_id signs in and starts a call; it stays queued. */
static void
live_call_start (LiveCall *call, const char *company_id, const char *origin,
                 const char *admin_token)
{
  g_autofree char *json = g_strdup_printf ("{\"company_id\":\"%s\"}", company_id);
  g_autofree char *body = http_post_json ("api/v1/widget/session", json, origin, 201);
  JsonObject *created, *queued;
  guint at = 0;

  call->company_id = g_strdup (company_id);
  call->admin_token = g_strdup (admin_token);
  call->visitor_token = token_from (body, "visitor_token");
  call->visitor = cd_test_ws_connect (daemon_proc->base_url, call->visitor_token);
  cd_test_ws_send (call->visitor, "{\"type\":\"call.start\",\"page\":\"%s/basket\"}", origin);
  created = cd_test_ws_wait (call->visitor, 0, "call.created", &at);
  call->id = g_strdup (json_object_get_string_member (created, "call_id"));
  queued = cd_test_ws_wait (call->visitor, at, "call.state", NULL);
  g_assert_cmpstr (json_object_get_string_member (queued, "state"), ==, "queued");
}

static void
live_call_clear (LiveCall *call)
{
  g_clear_pointer (&call->visitor, cd_test_ws_free);
  g_clear_pointer (&call->id, g_free);
  g_clear_pointer (&call->company_id, g_free);
  g_clear_pointer (&call->admin_token, g_free);
  g_clear_pointer (&call->visitor_token, g_free);
}

static JsonObject *
get_call (LiveCall *call)
{
  g_autofree char *url = g_strdup_printf ("%sapi/v1/companies/%s/calls/%s", daemon_proc->base_url,
                                          call->company_id, call->id);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", call->admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *body = NULL;

  g_assert_cmpuint (cd_test_http_request ("GET", url, NULL, NULL, 0, headers, &body, NULL), ==,
                    200);
  return cd_json_parse_object (body, strlen (body), NULL, NULL);
}

static gboolean
has_chat (JsonObject *call, const char *text)
{
  JsonArray *events = json_object_get_array_member (call, "events");

  for (guint i = 0; i < json_array_get_length (events); i++) {
    JsonObject *e = json_array_get_object_element (events, i);
    JsonObject *detail = json_object_get_object_member (e, "detail");
    if (g_str_equal (json_object_get_string_member (e, "kind"), "chat") &&
        g_strcmp0 (json_object_get_string_member_with_default (detail, "text", NULL), text) == 0)
      return TRUE;
  }
  return FALSE;
}

/* The call's state and how many events of each kind its timeline holds
 * (probes left out), with @add_kind counted @add more times:
 * "queued chat=1 state=2". */
static char *
describe (JsonObject *call, const char *add_kind, guint add)
{
  JsonArray *events = json_object_get_array_member (call, "events");
  g_autoptr (GHashTable) kinds = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GList) names = NULL;
  GString *text = g_string_new (json_object_get_string_member (call, "state"));

  for (guint i = 0; i < json_array_get_length (events); i++) {
    JsonObject *e = json_array_get_object_element (events, i);
    const char *kind = json_object_get_string_member (e, "kind");
    JsonObject *detail = json_object_get_object_member (e, "detail");

    if (g_str_has_prefix (json_object_get_string_member_with_default (detail, "text", ""),
                          "probe "))
      continue; /* settled_call()'s */
    g_hash_table_insert (
        kinds, (gpointer) kind,
        GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (kinds, kind)) + 1));
  }
  if (add_kind)
    g_hash_table_insert (
        kinds, (gpointer) add_kind,
        GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (kinds, add_kind)) + add));
  names = g_list_sort (g_hash_table_get_keys (kinds), (GCompareFunc) strcmp);
  for (GList *l = names; l; l = l->next)
    g_string_append_printf (text, " %s=%u", (char *) l->data,
                            GPOINTER_TO_UINT (g_hash_table_lookup (kinds, l->data)));
  g_assert_false (json_object_get_boolean_member (call, "events_truncated"));
  return g_string_free (text, FALSE);
}

/* The timeline once everything sent so far has been written: the visitor
 * chats a probe, and a call's writes land in order, so once the probe is
 * there so is anything a message before it added. */
static JsonObject *
settled_call (LiveCall *call)
{
  g_autofree char *probe = g_strdup_printf ("probe %u", ++probes);
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  JsonObject *o = NULL;

  cd_test_ws_send (call->visitor, "{\"type\":\"chat\",\"call_id\":\"%s\",\"text\":\"%s\"}",
                   call->id, probe);
  while (g_get_monotonic_time () < deadline) {
    g_clear_pointer (&o, json_object_unref);
    o = get_call (call);
    if (has_chat (o, probe))
      return o;
    cd_test_iterate (20);
  }
  g_error ("the probe chat of call %s never reached its timeline", call->id);
}

/* ---- raw frames: libsoup sends no fragmented messages ---- */

typedef struct {
  GSocketConnection *connection;
  GInputStream *in;
  GOutputStream *out;
} RawClient;

static RawClient *
raw_connect (void)
{
  g_autoptr (GUri) uri = g_uri_parse (daemon_proc->base_url, G_URI_FLAGS_NONE, NULL);
  g_autoptr (GSocketClient) socket_client = g_socket_client_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *request = NULL;
  g_autoptr (GString) response = g_string_new (NULL);
  RawClient *raw = g_new0 (RawClient, 1);

  g_socket_client_set_timeout (socket_client, 10);
  raw->connection = g_socket_client_connect_to_host (socket_client, g_uri_get_host (uri),
                                                     g_uri_get_port (uri), NULL, &error);
  g_assert_no_error (error);
  raw->in = g_io_stream_get_input_stream (G_IO_STREAM (raw->connection));
  raw->out = g_io_stream_get_output_stream (G_IO_STREAM (raw->connection));
  request =
      g_strdup_printf ("GET /api/v1/ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n",
                       g_uri_get_host (uri), g_uri_get_port (uri));
  g_output_stream_write_all (raw->out, request, strlen (request), NULL, NULL, &error);
  g_assert_no_error (error);
  while (!g_str_has_suffix (response->str, "\r\n\r\n")) {
    char byte;
    g_assert_cmpint (g_input_stream_read (raw->in, &byte, 1, NULL, &error), ==, 1);
    g_string_append_c (response, byte);
  }
  g_assert_true (g_str_has_prefix (response->str, "HTTP/1.1 101"));
  return raw;
}

/* One masked client frame. */
static void
raw_send_frame (RawClient *raw, guint8 opcode, gboolean fin, const char *data, gsize length)
{
  g_autoptr (GByteArray) frame = g_byte_array_new ();
  const guint8 mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
  guint8 head[2] = { (fin ? 0x80 : 0) | opcode, 0x80 };
  g_autoptr (GError) error = NULL;

  g_assert_cmpuint (length, <=, G_MAXUINT16);
  if (length < 126) {
    head[1] |= length;
    g_byte_array_append (frame, head, 2);
  } else {
    guint8 extended[2] = { length >> 8, length & 0xff };
    head[1] |= 126;
    g_byte_array_append (frame, head, 2);
    g_byte_array_append (frame, extended, 2);
  }
  g_byte_array_append (frame, mask, 4);
  for (gsize i = 0; i < length; i++) {
    guint8 b = data[i] ^ mask[i % 4];
    g_byte_array_append (frame, &b, 1);
  }
  g_output_stream_write_all (raw->out, frame->data, frame->len, NULL, NULL, &error);
  g_assert_no_error (error);
}

/* The next text message from the server (control frames skipped); NULL
 * when the server closes, with its close code in @close_code. */
static JsonObject *
raw_read_message (RawClient *raw, gushort *close_code)
{
  for (;;) {
    guint8 head[2];
    guint8 extended[2];
    gsize length;
    gsize got = 0;
    g_autofree guint8 *payload = NULL;

    *close_code = 0;
    if (!g_input_stream_read_all (raw->in, head, 2, &got, NULL, NULL) || got < 2)
      return NULL;
    length = head[1] & 0x7f;
    if (length == 126) {
      g_assert_true (g_input_stream_read_all (raw->in, extended, 2, &got, NULL, NULL));
      length = (extended[0] << 8) | extended[1];
    } else {
      g_assert_cmpuint (length, <, 127);
    }
    payload = g_malloc (length + 1);
    g_assert_true (g_input_stream_read_all (raw->in, payload, length, &got, NULL, NULL));
    payload[length] = '\0';
    if ((head[0] & 0x0f) == 0x8) {
      if (length >= 2)
        *close_code = (payload[0] << 8) | payload[1];
      return NULL;
    }
    if ((head[0] & 0x0f) == 0x1)
      return cd_json_parse_object ((char *) payload, length, NULL, NULL);
  }
}

static void
raw_free (RawClient *raw)
{
  g_io_stream_close (G_IO_STREAM (raw->connection), NULL, NULL);
  g_object_unref (raw->connection);
  g_free (raw);
}

/* ---- SDP ---- */

/* What a browser offers for one microphone (trickle ICE, no candidates). */
static const char valid_sdp[] =
    "v=0\r\n"
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "a=extmap-allow-mixed\r\n"
    "a=msid-semantic: WMS\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Kp3b\r\n"
    "a=ice-pwd:8Jx0yXmTq3vRk2LsW9cD4eFh\r\n"
    "a=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:"
    "43:F0:A1:58:D0:A1:2C:19:08\r\n"
    "a=setup:actpass\r\n"
    "a=mid:0\r\n"
    "a=sendrecv\r\n"
    "a=msid:- 3b0f1d3c-8e2a-4c7e-9c1e-5b2f0e4d6a71\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=rtcp-fb:111 transport-cc\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:101 telephone-event/48000\r\n"
    "a=ssrc:1001 cname:visitor\r\n";

static GHashTable *sdps; /* name -> the SDP as a JSON string literal */

static char *
json_quote (const char *text)
{
  g_autoptr (JsonNode) node = json_node_new (JSON_NODE_VALUE);

  json_node_set_string (node, text);
  return json_to_string (node, FALSE);
}

/* @sdp with the first line starting with @from replaced by @to (NULL: removed). */
static char *
sdp_edit (const char *sdp, const char *from, const char *to)
{
  g_auto (GStrv) lines = g_strsplit (sdp, "\r\n", -1);
  GString *text = g_string_new (NULL);
  gboolean done = FALSE;

  for (char **l = lines; *l && **l; l++) {
    if (!done && g_str_has_prefix (*l, from)) {
      done = TRUE;
      if (to)
        g_string_append_printf (text, "%s\r\n", to);
      continue;
    }
    g_string_append_printf (text, "%s\r\n", *l);
  }
  g_assert_true (done);
  return g_string_free (text, FALSE);
}

/* sdp_edit() of an SDP that is freed */
static char *
sdp_edit_take (char *sdp, const char *from, const char *to)
{
  g_autofree char *owned = sdp;

  return sdp_edit (owned, from, to);
}

static void
add_sdp (const char *name, char *sdp)
{
  g_hash_table_insert (sdps, (gpointer) name, json_quote (sdp));
  g_free (sdp);
}

static void
make_sdps (void)
{
  g_autofree char *pad_ascii = g_strnfill (33000, 'x');
  g_autoptr (GString) pad_wide = g_string_new (NULL);
  g_autofree char *no_ufrag = sdp_edit (valid_sdp, "a=ice-ufrag:", NULL);

  for (int i = 0; i < 16500; i++)
    g_string_append (pad_wide, "\xc3\xa9"); /* é: 2 bytes, 1 character */
  sdps = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, g_free);
  add_sdp ("valid", g_strdup (valid_sdp));
  add_sdp ("not-sdp", g_strdup ("hello, I am an offer"));
  add_sdp ("bad-lines", g_strdup ("v=0\r\nm=audio\r\nthis is not SDP\r\n"));
  add_sdp ("video-only",
           sdp_edit_take (sdp_edit (valid_sdp, "m=audio", "m=video 9 UDP/TLS/RTP/SAVPF 96"),
                          "a=rtpmap:111", "a=rtpmap:96 VP8/90000"));
  add_sdp ("two-media",
           g_strconcat (valid_sdp,
                        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n"
                        "a=sendrecv\r\na=rtpmap:96 VP8/90000\r\n",
                        NULL));
  add_sdp ("no-opus",
           sdp_edit_take (sdp_edit (valid_sdp, "m=audio", "m=audio 9 UDP/TLS/RTP/SAVPF 0"),
                          "a=rtpmap:111", "a=rtpmap:0 PCMU/8000"));
  add_sdp ("opus-16000", sdp_edit (valid_sdp, "a=rtpmap:111", "a=rtpmap:111 opus/16000/2"));
  add_sdp ("no-ice-credentials", sdp_edit (no_ufrag, "a=ice-pwd:", NULL));
  add_sdp ("no-ice-pwd", sdp_edit (valid_sdp, "a=ice-pwd:", NULL));
  add_sdp ("no-fingerprint", sdp_edit (valid_sdp, "a=fingerprint:", NULL));
  add_sdp ("port-0", sdp_edit (valid_sdp, "m=audio", "m=audio 0 UDP/TLS/RTP/SAVPF 111 101"));
  add_sdp ("plain-rtp", sdp_edit (valid_sdp, "m=audio", "m=audio 9 RTP/AVP 111 101"));
  add_sdp ("other-opus-pt",
           sdp_edit_take (sdp_edit (valid_sdp, "m=audio", "m=audio 9 UDP/TLS/RTP/SAVPF 109 101"),
                          "a=rtpmap:111", "a=rtpmap:109 opus/48000/2"));
  add_sdp ("over-32768-characters", g_strdup_printf ("%sa=x-pad:%s\r\n", valid_sdp, pad_ascii));
  add_sdp ("over-32768-bytes", g_strdup_printf ("%sa=x-pad:%s\r\n", valid_sdp, pad_wide->str));
}

/* ---- the catalogue ---- */

typedef enum {
  FROM_VISITOR, /* own's visitor, whose call is queued */
  FROM_MEDIA,   /* media's visitor, whose offer was answered */
  FROM_AGENT,   /* an agent of own's company, on no call */
  FROM_NEW,     /* a second session of own's visitor; expected to be cut */
  FROM_RAW,     /* frames written by hand on a session of its own */
} Sender;

typedef enum {
  AS_TEXT,
  AS_BINARY,
  AS_FRAGMENTS, /* FROM_RAW: a text message in 16 KiB fragments */
} Framing;

typedef struct {
  const char *name;
  Sender from;
  /* @CALL@ own's call, @MEDIA@ media's, @OTHER@ another company's,
   * @UNKNOWN@ no call, @SDP:name@ an SDP as a JSON string, @X:n@ n x's */
  const char *message;
  const char *code;        /* the error; NULL: none (taken, or the connection is cut) */
  const char *in_reply_to; /* NULL: none */
  Framing framing;
  guint repeat;           /* sent this many times at once (default once) */
  guint accepted;         /* of which this many are taken, */
  const char *adds;       /* each adding an event of this kind to own's timeline */
  gushort close_codes[2]; /* FROM_NEW, FROM_RAW: how the daemon may cut it */
} BadMessage;

/* Every call message with a call_id that is missing, of the wrong type, not
 * a UUID or no call's. */
/* clang-format off */
#define CALL_MESSAGE_FIELDS(type, extra, reply)                                                    \
  { type "/call-id-missing", FROM_VISITOR, "{\"type\":\"" type "\"" extra "}",                     \
    "invalid-field", reply },                                                                      \
  { type "/call-id-number", FROM_VISITOR, "{\"type\":\"" type "\",\"call_id\":42" extra "}",       \
    "invalid-field", reply },                                                                      \
  { type "/call-id-null", FROM_VISITOR, "{\"type\":\"" type "\",\"call_id\":null" extra "}",       \
    "invalid-field", reply },                                                                      \
  { type "/call-id-not-uuid", FROM_VISITOR,                                                        \
    "{\"type\":\"" type "\",\"call_id\":\"@CALL@x\"" extra "}", "invalid-field", reply },          \
  { type "/call-id-unknown", FROM_VISITOR,                                                         \
    "{\"type\":\"" type "\",\"call_id\":\"@UNKNOWN@\"" extra "}", "not-found", reply }

/* An agent's answer to a call not offered to them, and a visitor's. */
#define AGENT_MESSAGE_FIELDS(type)                                                                 \
  { type "/call-id-missing", FROM_AGENT, "{\"type\":\"" type "\"}", "invalid-field", type },       \
  { type "/call-id-number", FROM_AGENT, "{\"type\":\"" type "\",\"call_id\":42}",                  \
    "invalid-field", type },                                                                       \
  { type "/call-id-not-uuid", FROM_AGENT, "{\"type\":\"" type "\",\"call_id\":\"call-1\"}",        \
    "invalid-field", type },                                                                       \
  { type "/call-id-unknown", FROM_AGENT, "{\"type\":\"" type "\",\"call_id\":\"@UNKNOWN@\"}",      \
    "not-found", type },                                                                           \
  { type "/not-offered", FROM_AGENT, "{\"type\":\"" type "\",\"call_id\":\"@CALL@\"}",             \
    "not-found", type },                                                                           \
  { type "/other-company", FROM_AGENT, "{\"type\":\"" type "\",\"call_id\":\"@OTHER@\"}",          \
    "not-found", type },                                                                           \
  { type "/from-visitor", FROM_VISITOR, "{\"type\":\"" type "\",\"call_id\":\"@CALL@\"}",          \
    "forbidden", type }
/* clang-format on */

#define CANDIDATE(c)                                                       \
  "{\"type\":\"ice.candidate\",\"call_id\":\"@MEDIA@\",\"candidate\":\"" c \
  "\",\"sdp_mline_index\":0}"
#define GOOD_CANDIDATE "candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ host"
#define OFFER(sdp)     "{\"type\":\"sdp.offer\",\"call_id\":\"@CALL@\",\"sdp\":@SDP:" sdp "@}"

static const BadMessage catalogue[] = {
  /* not a message at all */
  { "json/malformed", FROM_VISITOR, "{\"type\":\"chat\",", "invalid-json", NULL },
  { "json/not-json", FROM_VISITOR, "hangup now", "invalid-json", NULL },
  { "json/array", FROM_VISITOR, "[{\"type\":\"hangup\",\"call_id\":\"@CALL@\"}]", "invalid-json",
    NULL },
  { "json/string", FROM_VISITOR, "\"hangup\"", "invalid-json", NULL },
  { "json/duplicate-keys", FROM_VISITOR,
    "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":\"a\",\"text\":\"b\"}", "invalid-json",
    NULL },
  { "json/duplicate-type", FROM_VISITOR,
    "{\"type\":\"ping\",\"type\":\"hangup\",\"call_id\":\"@CALL@\"}", "invalid-json", NULL },
  { "json/too-deep", FROM_VISITOR,
    "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":[[[[[[[[[\"x\"]]]]]]]]]}", "invalid-json",
    NULL },
  { "json/binary-frame", FROM_VISITOR, "{\"type\":\"hangup\",\"call_id\":\"@CALL@\"}",
    "invalid-json", NULL, AS_BINARY },
  { "type/missing", FROM_VISITOR, "{\"call_id\":\"@CALL@\"}", "invalid-field", NULL },
  { "type/number", FROM_VISITOR, "{\"type\":7,\"call_id\":\"@CALL@\"}", "invalid-field", NULL },
  { "type/object", FROM_VISITOR, "{\"type\":{\"name\":\"hangup\"},\"call_id\":\"@CALL@\"}",
    "invalid-field", NULL },
  { "type/unknown", FROM_VISITOR, "{\"type\":\"call.teleport\",\"call_id\":\"@CALL@\"}",
    "unknown-type", NULL },
  { "type/server-only", FROM_VISITOR, "{\"type\":\"call.state\",\"call_id\":\"@CALL@\"}",
    "unknown-type", NULL },
  { "type/unknown-field", FROM_VISITOR,
    "{\"type\":\"hangup\",\"call_id\":\"@CALL@\",\"reason\":\"bye\"}", "invalid-field", "hangup" },

  /* too big */
  { "size/frame-over-64k", FROM_NEW, "{\"type\":\"ping\",\"pad\":\"@X:70000@\"}", NULL, NULL,
    .close_codes = { SOUP_WEBSOCKET_CLOSE_TOO_BIG, 0 } },
  /* libsoup 3.2 bounds frames, not messages (CVE-2025-32049): the daemon's
   * own bound answers; a libsoup that bounds messages would cut it (1009) */
  { "size/fragments-over-64k", FROM_RAW, "{\"type\":\"ping\",\"pad\":\"@X:70000@\"}", "too-large",
    NULL, AS_FRAGMENTS, .close_codes = { SOUP_WEBSOCKET_CLOSE_TOO_BIG } },
  { "size/text-not-utf8", FROM_RAW, "{\"type\":\"ping\",\"pad\":\"\xff\xfe\"}", NULL, NULL,
    .close_codes = { SOUP_WEBSOCKET_CLOSE_BAD_DATA } },

  /* call.start */
  { "call.start/in-progress", FROM_VISITOR, "{\"type\":\"call.start\"}", "out-of-order",
    "call.start" },
  { "call.start/from-agent", FROM_AGENT, "{\"type\":\"call.start\"}", "forbidden", "call.start" },
  { "call.start/page-too-long", FROM_VISITOR, "{\"type\":\"call.start\",\"page\":\"@X:2001@\"}",
    "invalid-field", "call.start" },
  { "call.start/unknown-field", FROM_VISITOR,
    "{\"type\":\"call.start\",\"company_id\":\"@UNKNOWN@\"}", "invalid-field", "call.start" },

  /* sdp.offer */
  CALL_MESSAGE_FIELDS ("sdp.offer", ",\"sdp\":@SDP:valid@", "sdp.offer"),
  { "sdp.offer/other-company", FROM_VISITOR,
    "{\"type\":\"sdp.offer\",\"call_id\":\"@OTHER@\",\"sdp\":@SDP:valid@}", "not-found",
    "sdp.offer" },
  { "sdp.offer/agent-not-accepted", FROM_AGENT,
    "{\"type\":\"sdp.offer\",\"call_id\":\"@CALL@\",\"sdp\":@SDP:valid@}", "not-found",
    "sdp.offer" },
  { "sdp.offer/sdp-missing", FROM_VISITOR, "{\"type\":\"sdp.offer\",\"call_id\":\"@CALL@\"}",
    "invalid-field", "sdp.offer" },
  { "sdp.offer/sdp-empty", FROM_VISITOR,
    "{\"type\":\"sdp.offer\",\"call_id\":\"@CALL@\",\"sdp\":\"\"}", "invalid-field", "sdp.offer" },
  { "sdp.offer/sdp-object", FROM_VISITOR,
    "{\"type\":\"sdp.offer\",\"call_id\":\"@CALL@\",\"sdp\":{\"type\":\"offer\"}}", "invalid-field",
    "sdp.offer" },
  { "sdp.offer/over-32768-characters", FROM_VISITOR, OFFER ("over-32768-characters"),
    "invalid-field", "sdp.offer" },
  { "sdp.offer/over-32768-bytes", FROM_VISITOR, OFFER ("over-32768-bytes"), "invalid-sdp",
    "sdp.offer" },
  { "sdp.offer/not-sdp", FROM_VISITOR, OFFER ("not-sdp"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/bad-lines", FROM_VISITOR, OFFER ("bad-lines"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/video-only", FROM_VISITOR, OFFER ("video-only"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/two-media", FROM_VISITOR, OFFER ("two-media"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/no-opus", FROM_VISITOR, OFFER ("no-opus"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/opus-16000", FROM_VISITOR, OFFER ("opus-16000"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/no-ice-credentials", FROM_VISITOR, OFFER ("no-ice-credentials"), "invalid-sdp",
    "sdp.offer" },
  { "sdp.offer/no-ice-pwd", FROM_VISITOR, OFFER ("no-ice-pwd"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/no-fingerprint", FROM_VISITOR, OFFER ("no-fingerprint"), "invalid-sdp",
    "sdp.offer" },
  { "sdp.offer/port-0", FROM_VISITOR, OFFER ("port-0"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/plain-rtp", FROM_VISITOR, OFFER ("plain-rtp"), "invalid-sdp", "sdp.offer" },
  { "sdp.offer/renegotiation-changes-opus", FROM_MEDIA,
    "{\"type\":\"sdp.offer\",\"call_id\":\"@MEDIA@\",\"sdp\":@SDP:other-opus-pt@}", "invalid-sdp",
    "sdp.offer" },

  /* ice.candidate */
  CALL_MESSAGE_FIELDS ("ice.candidate",
                       ",\"candidate\":\"" GOOD_CANDIDATE "\",\"sdp_mline_index\":0",
                       "ice.candidate"),
  { "ice.candidate/other-company", FROM_VISITOR,
    "{\"type\":\"ice.candidate\",\"call_id\":\"@OTHER@\",\"candidate\":\"" GOOD_CANDIDATE
    "\",\"sdp_mline_index\":0}",
    "not-found", "ice.candidate" },
  { "ice.candidate/before-offer", FROM_VISITOR,
    "{\"type\":\"ice.candidate\",\"call_id\":\"@CALL@\",\"candidate\":\"" GOOD_CANDIDATE
    "\",\"sdp_mline_index\":0}",
    "out-of-order", "ice.candidate" },
  { "ice.candidate/not-candidate", FROM_MEDIA, CANDIDATE ("a=rtpmap:111 opus/48000/2"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/transport-sctp", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 1 sctp 1677729535 127.0.0.1 50000 typ host"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/port-70000", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 1 udp 1677729535 127.0.0.1 70000 typ host"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/port-not-number", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 1 udp 1677729535 127.0.0.1 5e4 typ host"), "invalid-candidate",
    "ice.candidate" },
  { "ice.candidate/no-typ", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 1 udp 1677729535 127.0.0.1 50000"), "invalid-candidate",
    "ice.candidate" },
  { "ice.candidate/typ-unknown", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ bogus"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/component-0", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 0 udp 1677729535 127.0.0.1 50000 typ host"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/priority-over-32-bits", FROM_MEDIA,
    CANDIDATE ("candidate:842163049 1 udp 4294967296 127.0.0.1 50000 typ host"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/control-character", FROM_MEDIA, CANDIDATE (GOOD_CANDIDATE "\\u0001"),
    "invalid-field", "ice.candidate" },
  { "ice.candidate/line-break", FROM_MEDIA, CANDIDATE (GOOD_CANDIDATE "\\na=ice-pwd:stolen"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/delete-character", FROM_MEDIA, CANDIDATE (GOOD_CANDIDATE "\\u007f"),
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/over-1024", FROM_MEDIA, CANDIDATE ("candidate:@X:1100@"), "invalid-field",
    "ice.candidate" },
  { "ice.candidate/mline-1", FROM_MEDIA,
    "{\"type\":\"ice.candidate\",\"call_id\":\"@MEDIA@\",\"candidate\":\"" GOOD_CANDIDATE
    "\",\"sdp_mline_index\":1}",
    "invalid-candidate", "ice.candidate" },
  { "ice.candidate/mline-negative", FROM_MEDIA,
    "{\"type\":\"ice.candidate\",\"call_id\":\"@MEDIA@\",\"candidate\":\"" GOOD_CANDIDATE
    "\",\"sdp_mline_index\":-1}",
    "invalid-field", "ice.candidate" },
  { "ice.candidate/mline-string", FROM_MEDIA,
    "{\"type\":\"ice.candidate\",\"call_id\":\"@MEDIA@\",\"candidate\":\"" GOOD_CANDIDATE
    "\",\"sdp_mline_index\":\"0\"}",
    "invalid-field", "ice.candidate" },

  /* dtmf */
  CALL_MESSAGE_FIELDS ("dtmf", ",\"digits\":\"1\"", "dtmf"),
  { "dtmf/other-company", FROM_VISITOR,
    "{\"type\":\"dtmf\",\"call_id\":\"@OTHER@\",\"digits\":\"1\"}", "not-found", "dtmf" },
  { "dtmf/from-agent-not-on-call", FROM_AGENT,
    "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"1\"}", "not-found", "dtmf" },
  { "dtmf/letters", FROM_VISITOR, "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"12x\"}",
    "invalid-field", "dtmf" },
  { "dtmf/lowercase", FROM_VISITOR, "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"a\"}",
    "invalid-field", "dtmf" },
  { "dtmf/empty", FROM_VISITOR, "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"\"}",
    "invalid-field", "dtmf" },
  { "dtmf/over-16", FROM_VISITOR,
    "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"12345678901234567\"}", "invalid-field",
    "dtmf" },
  { "dtmf/11-in-one-message", FROM_VISITOR,
    "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"12345678901\"}", "rate-limited",
    "dtmf" },
  { "dtmf/flood", FROM_VISITOR, "{\"type\":\"dtmf\",\"call_id\":\"@CALL@\",\"digits\":\"5\"}",
    "rate-limited", "dtmf", .repeat = 15, .accepted = 10, .adds = "dtmf" },

  /* chat */
  CALL_MESSAGE_FIELDS ("chat", ",\"text\":\"hello\"", "chat"),
  { "chat/other-company", FROM_VISITOR,
    "{\"type\":\"chat\",\"call_id\":\"@OTHER@\",\"text\":\"hi\"}", "not-found", "chat" },
  { "chat/from-agent-not-on-call", FROM_AGENT,
    "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":\"hi\"}", "not-found", "chat" },
  { "chat/over-2000", FROM_VISITOR,
    "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":\"@X:2001@\"}", "invalid-field", "chat" },
  { "chat/empty", FROM_VISITOR, "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":\"\"}",
    "invalid-field", "chat" },
  { "chat/control-character", FROM_VISITOR,
    "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":\"hi\\u001b[2J\"}", "invalid-field",
    "chat" },
  { "chat/number", FROM_VISITOR, "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":42}",
    "invalid-field", "chat" },

  /* hangup */
  CALL_MESSAGE_FIELDS ("hangup", "", "hangup"),
  { "hangup/other-company", FROM_VISITOR, "{\"type\":\"hangup\",\"call_id\":\"@OTHER@\"}",
    "not-found", "hangup" },
  { "hangup/from-agent-not-on-call", FROM_AGENT, "{\"type\":\"hangup\",\"call_id\":\"@CALL@\"}",
    "not-found", "hangup" },

  /* call.resume */
  CALL_MESSAGE_FIELDS ("call.resume", "", "call.resume"),
  { "call.resume/other-company", FROM_VISITOR, "{\"type\":\"call.resume\",\"call_id\":\"@OTHER@\"}",
    "not-found", "call.resume" },
  { "call.resume/another-visitors-call", FROM_VISITOR,
    "{\"type\":\"call.resume\",\"call_id\":\"@MEDIA@\"}", "not-found", "call.resume" },
  { "call.resume/agent-not-on-call", FROM_AGENT,
    "{\"type\":\"call.resume\",\"call_id\":\"@CALL@\"}", "not-found", "call.resume" },

  /* call.accept, call.reject */
  AGENT_MESSAGE_FIELDS ("call.accept"),
  AGENT_MESSAGE_FIELDS ("call.reject"),

/* call.transfer, call.transfer.complete, call.transfer.cancel: only the
 * call's agent, on a connected call (the rest: test-call-transfer) */
#define TRANSFER_TO ",\"mode\":\"blind\",\"agent_id\":\"00000000-0000-4000-8000-000000000001\""
  CALL_MESSAGE_FIELDS ("call.transfer", TRANSFER_TO, "call.transfer"),
  { "call.transfer/from-visitor", FROM_VISITOR,
    "{\"type\":\"call.transfer\",\"call_id\":\"@CALL@\"" TRANSFER_TO "}", "forbidden",
    "call.transfer" },
  { "call.transfer/agent-not-on-call", FROM_AGENT,
    "{\"type\":\"call.transfer\",\"call_id\":\"@CALL@\"" TRANSFER_TO "}", "not-found",
    "call.transfer" },
  { "call.transfer/mode-missing", FROM_AGENT,
    "{\"type\":\"call.transfer\",\"call_id\":\"@CALL@\",\"queue_id\":\"@UNKNOWN@\"}",
    "invalid-field", "call.transfer" },
  { "call.transfer/agent-id-not-uuid", FROM_AGENT,
    "{\"type\":\"call.transfer\",\"call_id\":\"@CALL@\",\"mode\":\"warm\",\"agent_id\":\"bob\"}",
    "invalid-field", "call.transfer" },
  CALL_MESSAGE_FIELDS ("call.transfer.complete", "", "call.transfer.complete"),
  { "call.transfer.complete/from-visitor", FROM_VISITOR,
    "{\"type\":\"call.transfer.complete\",\"call_id\":\"@CALL@\"}", "forbidden",
    "call.transfer.complete" },
  CALL_MESSAGE_FIELDS ("call.transfer.cancel", "", "call.transfer.cancel"),
  { "call.transfer.cancel/agent-not-on-call", FROM_AGENT,
    "{\"type\":\"call.transfer.cancel\",\"call_id\":\"@CALL@\"}", "not-found",
    "call.transfer.cancel" },

  /* call.monitor: company admins only */
  { "call.monitor/from-visitor", FROM_VISITOR,
    "{\"type\":\"call.monitor\",\"call_id\":\"@CALL@\",\"mode\":\"listen\"}", "forbidden",
    "call.monitor" },
  { "call.monitor/from-agent", FROM_AGENT,
    "{\"type\":\"call.monitor\",\"call_id\":\"@CALL@\",\"mode\":\"listen\"}", "forbidden",
    "call.monitor" },
  { "call.monitor/mode-missing", FROM_AGENT, "{\"type\":\"call.monitor\",\"call_id\":\"@CALL@\"}",
    "invalid-field", "call.monitor" },
  { "call.monitor/call-id-not-uuid", FROM_AGENT,
    "{\"type\":\"call.monitor\",\"call_id\":\"x\",\"mode\":\"listen\"}", "invalid-field",
    "call.monitor" },

  /* presence.set */
  { "presence.set/from-visitor", FROM_VISITOR,
    "{\"type\":\"presence.set\",\"status\":\"available\"}", "forbidden", "presence.set" },
  { "presence.set/bad-status", FROM_AGENT, "{\"type\":\"presence.set\",\"status\":\"busy\"}",
    "invalid-field", "presence.set" },
  { "presence.set/status-missing", FROM_AGENT, "{\"type\":\"presence.set\"}", "invalid-field",
    "presence.set" },
};

/* The message with its placeholders filled in. */
static char *
expand (const char *message)
{
  GString *text = g_string_new (NULL);
  const char *p = message;

  while (*p) {
    const char *end;
    g_autofree char *name = NULL;

    if (*p != '@' || (end = strchr (p + 1, '@')) == NULL) {
      g_string_append_c (text, *p++);
      continue;
    }
    name = g_strndup (p + 1, end - p - 1);
    if (g_str_equal (name, "CALL"))
      g_string_append (text, own.id);
    else if (g_str_equal (name, "MEDIA"))
      g_string_append (text, media.id);
    else if (g_str_equal (name, "OTHER"))
      g_string_append (text, other.id);
    else if (g_str_equal (name, "UNKNOWN"))
      g_string_append (text, UNKNOWN_CALL);
    else if (g_str_has_prefix (name, "SDP:"))
      g_string_append (text, g_hash_table_lookup (sdps, name + 4));
    else if (g_str_has_prefix (name, "X:")) {
      guint n = g_ascii_strtoull (name + 2, NULL, 10);
      for (guint i = 0; i < n; i++)
        g_string_append_c (text, 'x');
    } else
      g_error ("no placeholder @%s@", name);
    p = end + 1;
  }
  return g_string_free (text, FALSE);
}

static Client *
sender_client (Sender from)
{
  switch (from) {
  case FROM_VISITOR:
    return own.visitor;
  case FROM_MEDIA:
    return media.visitor;
  case FROM_AGENT:
    return agent;
  case FROM_NEW:
  case FROM_RAW:
  default:
    g_assert_not_reached ();
  }
}

/* Server messages that may come at any time: the answered leg's own ICE
 * candidates, and queue positions. */
static gboolean
is_unsolicited (JsonObject *o)
{
  return g_str_equal (type_of (o), "ice.candidate") ||
         (g_str_equal (type_of (o), "call.state") &&
          g_strcmp0 (json_object_get_string_member_with_default (o, "state", NULL), "queued") == 0);
}

static void
assert_error (JsonObject *o, const BadMessage *bad)
{
  g_assert_cmpstr (type_of (o), ==, "error");
  g_assert_cmpstr (json_object_get_string_member (o, "code"), ==, bad->code);
  g_assert_cmpstr (json_object_get_string_member_with_default (o, "in_reply_to", NULL), ==,
                   bad->in_reply_to);
  g_assert_nonnull (json_object_get_string_member (o, "detail"));
}

/* Sent as @bad says, then a ping: everything before the pong is the answer. */
static void
send_on_session (const BadMessage *bad, const char *text)
{
  Client *c = sender_client (bad->from);
  guint repeat = MAX (bad->repeat, 1);
  guint before = c->received->len;
  guint pong_at = 0;
  guint errors = 0;

  for (guint i = 0; i < repeat; i++) {
    if (bad->framing == AS_BINARY)
      soup_websocket_connection_send_binary (c->ws, text, strlen (text));
    else
      soup_websocket_connection_send_text (c->ws, text);
  }
  cd_test_ws_send (c, "{\"type\":\"ping\"}");
  cd_test_ws_wait (c, before, "pong", &pong_at);
  for (guint i = before; i < pong_at; i++) {
    JsonObject *o = g_ptr_array_index (c->received, i);
    if (is_unsolicited (o))
      continue;
    assert_error (o, bad);
    errors++;
  }
  g_assert_cmpuint (errors, ==, repeat - bad->accepted);
}

/* On a session of its own, which the daemon is expected to cut. */
static void
send_on_new_session (const BadMessage *bad, const char *text)
{
  Client *c = cd_test_ws_connect (daemon_proc->base_url, own.visitor_token);
  guint before = c->received->len;

  soup_websocket_connection_send_text (c->ws, text);
  WAIT_UNTIL (c->closed, 10000);
  g_test_message ("closed with %u", c->close_code);
  g_assert_true (c->close_code == bad->close_codes[0] || c->close_code == bad->close_codes[1]);
  g_assert_cmpuint (c->received->len, ==, before);
  cd_test_ws_free (c);
}

/* Frames written by hand: what libsoup's client does not send. */
static void
send_raw (const BadMessage *bad, const char *text)
{
  RawClient *raw = raw_connect ();
  gsize length = strlen (text);
  gsize piece = bad->framing == AS_FRAGMENTS ? 16 * 1024 : length;
  g_autoptr (JsonObject) reply = NULL;
  g_autoptr (JsonObject) pong = NULL;
  gushort close_code = 0;

  for (gsize at = 0; at < length; at += piece)
    raw_send_frame (raw, at == 0 ? 0x1 : 0x0, at + piece >= length, text + at,
                    MIN (piece, length - at));
  reply = raw_read_message (raw, &close_code);
  if (reply == NULL) {
    g_test_message ("closed with %u", close_code);
    g_assert_true (close_code == bad->close_codes[0] || close_code == bad->close_codes[1]);
    raw_free (raw);
    return;
  }
  g_assert_nonnull (bad->code);
  assert_error (reply, bad);
  raw_send_frame (raw, 0x1, TRUE, "{\"type\":\"ping\"}", strlen ("{\"type\":\"ping\"}"));
  pong = raw_read_message (raw, &close_code);
  g_assert_nonnull (pong);
  g_assert_cmpstr (type_of (pong), ==, "pong");
  raw_send_frame (raw, 0x8, TRUE, "\x03\xe8", 2);
  raw_free (raw);
}

static void
assert_ready (void)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, "readyz", NULL);
  g_autofree char *body = NULL;

  g_assert_cmpuint (cd_test_http_get (url, &body, NULL), ==, 200);
}

static void
test_refused (gconstpointer data)
{
  const BadMessage *bad = data;
  LiveCall *calls[] = { &own, &media, &other };
  g_autofree char *text = expand (bad->message);
  char *expected[G_N_ELEMENTS (calls)];

  for (gsize i = 0; i < G_N_ELEMENTS (calls); i++) {
    g_autoptr (JsonObject) o = settled_call (calls[i]);
    /* what the message may add: only the accepted part of a flood */
    expected[i] = calls[i] == &own ? describe (o, bad->adds, bad->accepted) : describe (o, NULL, 0);
  }
  if (bad->repeat > 1)
    cd_test_sleep (1100); /* a second of its own for the per-second limits */

  switch (bad->from) {
  case FROM_NEW:
    send_on_new_session (bad, text);
    break;
  case FROM_RAW:
    send_raw (bad, text);
    break;
  case FROM_VISITOR:
  case FROM_MEDIA:
  case FROM_AGENT:
  default:
    send_on_session (bad, text);
    break;
  }

  /* nobody was hurt: every session answers, every call is as it was */
  assert_answers_ping (own.visitor);
  assert_answers_ping (media.visitor);
  assert_answers_ping (other.visitor);
  assert_answers_ping (agent);
  for (gsize i = 0; i < G_N_ELEMENTS (calls); i++) {
    g_autoptr (JsonObject) o = settled_call (calls[i]);
    g_autofree char *after = describe (o, NULL, 0);

    g_assert_cmpstr (after, ==, expected[i]);
    g_free (expected[i]);
  }
  assert_ready ();
}

/* The control: the offer the SDP entries are cut from is taken. */
static void
test_valid_offer_answered (void)
{
  g_autoptr (JsonObject) o = settled_call (&media);
  g_autofree char *answer = g_ascii_strdown (media_answer, -1);

  g_test_message ("%s", media_answer);
  g_assert_true (g_str_has_prefix (answer, "v=0"));
  g_assert_nonnull (strstr (answer, "m=audio 9 udp/tls/rtp/savpf 111"));
  g_assert_nonnull (strstr (answer, "a=rtpmap:111 opus/48000"));
  g_assert_nonnull (strstr (answer, "a=rtpmap:101 telephone-event/48000"));
  g_assert_nonnull (strstr (answer, "a=fingerprint:sha-256"));
  g_assert_cmpstr (json_object_get_string_member (o, "state"), ==, "queued");
}

/* The other control: chat and an end-of-candidates are taken. */
static void
test_good_messages_taken (void)
{
  const BadMessage good[] = {
    { "chat", FROM_VISITOR, "{\"type\":\"chat\",\"call_id\":\"@CALL@\",\"text\":\"hello\"}", NULL,
      NULL, .accepted = 1, .adds = "chat" },
    { "end-of-candidates", FROM_MEDIA,
      "{\"type\":\"ice.candidate\",\"call_id\":\"@MEDIA@\",\"candidate\":\"\",\"sdp_mline_index\":"
      "0}",
      NULL, NULL, .accepted = 1 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++) {
    LiveCall *call = good[i].from == FROM_MEDIA ? &media : &own;
    g_autofree char *text = expand (good[i].message);
    g_autoptr (JsonObject) before = settled_call (call);
    g_autoptr (JsonObject) after = NULL;
    g_autofree char *expected = describe (before, good[i].adds, good[i].accepted);
    g_autofree char *now = NULL;

    send_on_session (&good[i], text);
    after = settled_call (call);
    now = describe (after, NULL, 0);
    g_assert_cmpstr (now, ==, expected);
  }
}

static JsonObject *
stored_if_ended (LiveCall *call, JsonObject *previous)
{
  JsonObject *o = get_call (call);

  g_assert_null (previous);
  if (g_strcmp0 (json_object_get_string_member (o, "state"), "ended") == 0)
    return o;
  json_object_unref (o);
  return NULL;
}

static void
hang_up (LiveCall *call)
{
  guint before = call->visitor->received->len;
  g_autoptr (JsonObject) stored = NULL;
  JsonObject *ended;

  cd_test_ws_send (call->visitor, "{\"type\":\"hangup\",\"call_id\":\"%s\"}", call->id);
  /* queue positions may come first */
  do {
    ended = cd_test_ws_wait (call->visitor, before, "call.state", &before);
    before++;
  } while (is_unsolicited (ended));
  g_assert_cmpstr (json_object_get_string_member (ended, "state"), ==, "ended");
  g_assert_cmpstr (json_object_get_string_member (ended, "reason"), ==, "visitor-hangup");
  WAIT_UNTIL ((stored = stored_if_ended (call, stored)) != NULL, 10000);
  g_assert_cmpstr (json_object_get_string_member (stored, "end_reason"), ==, "visitor-hangup");
}

static void
seed (void)
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
  const char *params[] = { hash };
  g_autofree char *admin = NULL;
  g_autofree char *other_admin = NULL;
  g_autofree char *company = NULL;
  g_autofree char *other_company = NULL;
  guint before = 0;
  g_autofree char *offer = NULL;
  JsonObject *answer;

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (
      owner,
      "WITH a AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Shop', 'shop', 'approved', ARRAY['" ORIGIN "']) RETURNING id),"
      " b AS (INSERT INTO companies (name, slug, status, allowed_origins)"
      "  VALUES ('Other', 'other', 'approved', ARRAY['" OTHER_ORIGIN "']) RETURNING id),"
      " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
      "  SELECT a.id, 'admin@shop.test', $1, 'company_admin', 'Admin' FROM a"
      "  UNION ALL SELECT a.id, 'agent@shop.test', $1, 'agent', 'Agent' FROM a"
      "  UNION ALL SELECT b.id, 'admin@other.test', $1, 'company_admin', 'Other' FROM b"
      "  RETURNING 1)"
      " SELECT (SELECT id FROM a), (SELECT id FROM b), (SELECT count(*) FROM u)",
      params, 1, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  company = g_strdup (PQgetvalue (res, 0, 0));
  other_company = g_strdup (PQgetvalue (res, 0, 1));
  cd_pg_pool_close (owner);
  admin = login ("admin@shop.test");
  other_admin = login ("admin@other.test");
  agent_token = login ("agent@shop.test");

  /* the agent is signed in but away: the calls stay queued */
  agent = cd_test_ws_connect (daemon_proc->base_url, agent_token);
  cd_test_ws_send (agent, "{\"type\":\"presence.set\",\"status\":\"away\"}");
  cd_test_ws_wait (agent, 0, "presence", NULL);
  live_call_start (&own, company, ORIGIN, admin);
  live_call_start (&other, other_company, OTHER_ORIGIN, other_admin);
  live_call_start (&media, company, ORIGIN, admin);
  before = media.visitor->received->len;
  offer = g_strdup_printf ("{\"type\":\"sdp.offer\",\"call_id\":\"%s\",\"sdp\":%s}", media.id,
                           (char *) g_hash_table_lookup (sdps, "valid"));
  soup_websocket_connection_send_text (media.visitor->ws, offer);
  WAIT_UNTIL (cd_test_ws_find (media.visitor, before, "sdp.answer", NULL) ||
                  cd_test_ws_find (media.visitor, before, "error", NULL),
              60000);
  g_assert_null (cd_test_ws_find (media.visitor, before, "error", NULL));
  answer = cd_test_ws_find (media.visitor, before, "sdp.answer", NULL);
  media_answer = g_strdup (json_object_get_string_member (answer, "sdp"));
}

int
main (int argc, char **argv)
{
  /* the calls live through the whole catalogue: no ICE, agent or flood
   * timeout may end them or the sessions */
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1",
                        "CALLDOCKER_CALLS_ICE_TIMEOUT_S=600", "CALLDOCKER_CALLS_MAX_WAIT_S=3600",
                        "CALLDOCKER_SIGNAL_MAX_MESSAGES_PER_SECOND=1000", NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  make_sdps ();
  state = cd_test_make_tmp_dir ("cd-call-signaling-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  seed ();
  for (gsize i = 0; i < G_N_ELEMENTS (catalogue); i++) {
    g_autofree char *path = g_strconcat ("/call-signaling/refused/", catalogue[i].name, NULL);
    g_test_add_data_func (path, &catalogue[i], test_refused);
  }
  g_test_add_func ("/call-signaling/taken/valid-offer", test_valid_offer_answered);
  g_test_add_func ("/call-signaling/taken/good-messages", test_good_messages_taken);
  status = g_test_run ();

  /* the calls went through it all and still end the ordinary way */
  hang_up (&own);
  hang_up (&media);
  hang_up (&other);
  live_call_clear (&own);
  live_call_clear (&media);
  live_call_clear (&other);
  cd_test_ws_free (agent);
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_hash_table_unref (sdps);
  g_free (agent_token);
  g_free (media_answer);
  return status;
}
