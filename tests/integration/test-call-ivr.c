/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A real IVR flow, published and set as the widget's entry point, driven
 * by the C test visitor over WebRTC: a spoken greeting (espeak), then a
 * menu whose prompts are stored tones, each a distinct frequency the
 * visitor listens for. Pressing 2 (RFC 4733) plays the second branch's
 * prompt and the call reaches the Support queue, where its agent answers;
 * a wrong digit and silence each play their prompt and retry, then take
 * the flow's fallback. The speech is synthesized once for all calls. */

#include "cd-audio.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"
#include "store/cd-seal.h"

#include <gst/gst.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define ORIGIN   "https://ivr.test"

/* the stored prompts: each a tone */
#define MENU_HZ    500
#define SUPPORT_HZ 700
#define INVALID_HZ 900
#define TIMEOUT_HZ 1100
#define SORRY_HZ   1300

static char *state;
static CdTestDaemon *daemon_proc;
static char *company, *admin_token, *password_file;
static char *sales, *support, *night;

static guint
api (const char *method, const char *path, const char *content_type, const char *body, gsize length,
     char **created)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/%s", daemon_proc->base_url, company, path);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  const char *headers[] = { "Authorization", auth, NULL };
  g_autofree char *reply = NULL;
  guint status =
      cd_test_http_request (method, url, content_type, body, length, headers, &reply, NULL);

  if (created && status == 201) {
    g_autoptr (JsonObject) o = cd_json_parse_object (reply, strlen (reply), NULL, NULL);
    *created = g_strdup (json_object_get_string_member (o, "id"));
  }
  if (status >= 300)
    g_test_message ("%s %s: %u %s", method, path, status, reply);
  return status;
}

static guint
api_json (const char *method, const char *path, const char *json, char **created)
{
  return api (method, path, json ? "application/json" : NULL, json, json ? strlen (json) : 0,
              created);
}

/* A stored prompt: @seconds of @hz. */
static char *
upload_tone (const char *name, double hz, double seconds)
{
  g_autofree char *wav = g_strdup_printf ("%s/%s.wav", state, name);
  g_autofree char *path = g_strdup_printf ("prompts?name=%s", name);
  g_autoptr (GError) error = NULL;
  g_autofree char *data = NULL;
  gsize length = 0;
  char *id = NULL;

  g_assert_true (cd_audio_write_tone_wav (wav, 16000, 1, hz, 0.5, seconds, &error));
  g_assert_true (g_file_get_contents (wav, &data, &length, NULL));
  g_assert_cmpuint (api ("POST", path, "audio/wav", data, length, &id), ==, 201);
  return id;
}

static CdTestPeer *
peer_start (const char *name, ...)
{
  CdTestPeer *p;
  va_list args;

  va_start (args, name);
  p = cd_test_peer_start_va (name, daemon_proc->base_url, NULL, args);
  va_end (args);
  return p;
}

static JsonObject *
only_call (JsonObject *report)
{
  JsonArray *calls = json_object_get_array_member (report, "calls");

  g_assert_cmpuint (json_array_get_length (calls), ==, 1);
  return json_array_get_object_element (calls, 0);
}

/* A second in which @hz sounded: 200 ms of it at least (the speech holds
 * a window of one frequency or another now and then; a tone cut short by a
 * digit pressed 200 ms into it still counts). */
#define SOUNDED 4

/* How many separate times @hz sounded: runs of seconds holding it. */
static guint
runs_of (JsonObject *call, double hz)
{
  JsonArray *counts = cd_test_report_per_second (call, hz);
  guint runs = 0;
  gboolean in = FALSE;

  for (guint i = 0; i < json_array_get_length (counts); i++) {
    gboolean now = json_array_get_int_element (counts, i) >= SOUNDED;
    if (now && !in)
      runs++;
    in = now;
  }
  return runs;
}

/* The first second a short tone began in: it holds some of @hz and, with
 * the next second, at least SOUNDED windows (a menu cut 200 ms in may
 * straddle two seconds; a stray window of the speech is not a tone). */
static int
first_heard (JsonObject *call, double hz)
{
  JsonArray *counts = cd_test_report_per_second (call, hz);
  guint n = json_array_get_length (counts);

  for (guint i = 0; i < n; i++) {
    gint64 here = json_array_get_int_element (counts, i);
    gint64 next = i + 1 < n ? json_array_get_int_element (counts, i + 1) : 0;

    if (here > 0 && here + next >= SOUNDED)
      return (int) i;
  }
  return -1;
}

/* All the 50 ms windows that held @hz. */
static guint
windows_of (JsonObject *call, double hz)
{
  JsonArray *counts = cd_test_report_per_second (call, hz);
  guint n = 0;

  for (guint i = 0; i < json_array_get_length (counts); i++)
    n += json_array_get_int_element (counts, i);
  return n;
}

/* The first second @hz sounded in, -1 if never. */
static int
first_sounded (JsonObject *call, double hz)
{
  JsonArray *counts = cd_test_report_per_second (call, hz);

  for (guint i = 0; i < json_array_get_length (counts); i++)
    if (json_array_get_int_element (counts, i) >= SOUNDED)
      return (int) i;
  return -1;
}

/* The call's stored events once it ended: their kinds, and the events. */
static JsonObject *
ended_call (const char *call_id)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;

  for (;;) {
    JsonObject *call = cd_test_get_call (daemon_proc->base_url, company, admin_token, call_id);

    if (g_str_equal (json_object_get_string_member (call, "state"), "ended") ||
        g_get_monotonic_time () > deadline)
      return call;
    json_object_unref (call);
    cd_test_sleep (100);
  }
}

/* The daemon's log lines about @call_id, in the test's log. */
static void
show_daemon_lines (const char *call_id)
{
  g_auto (GStrv) lines = g_strsplit (daemon_proc->err->str, "\n", -1);

  for (guint k = 0; lines[k]; k++)
    if (strstr (lines[k], call_id))
      g_test_message ("daemon: %s", lines[k]);
}

static char *
kinds_of (JsonObject *call)
{
  JsonArray *events = json_object_get_array_member (call, "events");
  GString *kinds = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (events); i++) {
    const char *kind =
        json_object_get_string_member (json_array_get_object_element (events, i), "kind");
    if (g_str_has_prefix (kind, "ivr."))
      g_string_append_printf (kinds, "%s%s", kinds->len ? " " : "", kind);
  }
  return g_string_free (kinds, FALSE);
}

/* The detail of the first event of @kind whose @key is @value. */
static JsonObject *
event_where (JsonObject *call, const char *kind, const char *key, const char *value)
{
  JsonArray *events = json_object_get_array_member (call, "events");

  for (guint i = 0; i < json_array_get_length (events); i++) {
    JsonObject *e = json_array_get_object_element (events, i);
    JsonObject *detail = json_object_get_object_member (e, "detail");

    if (g_str_equal (json_object_get_string_member (e, "kind"), kind) && detail &&
        g_strcmp0 (json_object_get_string_member_with_default (detail, key, NULL), value) == 0)
      return detail;
  }
  return NULL;
}

/* When the first event of @kind happened, in seconds (its "at"). */
static double
event_seconds (JsonObject *call, const char *kind)
{
  JsonArray *events = json_object_get_array_member (call, "events");

  for (guint i = 0; i < json_array_get_length (events); i++) {
    JsonObject *e = json_array_get_object_element (events, i);

    if (g_str_equal (json_object_get_string_member (e, "kind"), kind)) {
      g_autoptr (GDateTime) at =
          g_date_time_new_from_iso8601 (json_object_get_string_member (e, "at"), NULL);

      g_assert_nonnull (at);
      return g_date_time_to_unix (at) + g_date_time_get_microsecond (at) / 1e6;
    }
  }
  g_error ("no %s event", kind);
}

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

/* The greeting is spoken, the menu plays, the visitor presses 2 as an
 * RFC 4733 event on hearing it: the second option's prompt plays and the
 * call waits in Support, whose agent answers. */
static void
press_two (gboolean inband)
{
  g_autofree char *email = g_strdup ("agent1@ivr.test");
  CdTestPeer *agent =
      peer_start ("calldocker-agent", "--email", email, "--password-file", password_file, "--tone",
                  "440", "--calls", "1", "--timeout", "60", NULL);
  CdTestPeer *visitor;
  g_autoptr (JsonObject) report = NULL;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (JsonObject) stored = NULL;
  g_autofree char *kinds = NULL;
  JsonObject *call, *digits, *ended;
  gboolean good = FALSE;
  int menu_at, support_at;
  gint64 first_audio;

  cd_test_sleep (1000); /* the agent signs in and is available */
  visitor =
      peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--press-on",
                  "500:2", "--listen-for", "700,900,1100,1300", "--expect-hz", "440", "--hold", "2",
                  "--timeout", "60", inband ? "--press-inband" : NULL, NULL);
  report = cd_test_peer_finish (visitor, 90000, &good);
  agent_report = cd_test_peer_finish (agent, 90000, NULL);
  call = only_call (report);
  show_daemon_lines (json_object_get_string_member (call, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "visitor-hangup");
  /* the menu, then the second option's prompt; no retry, no fallback */
  /* (the menu is cut short by the digit: its windows may fall in two
   * seconds, too few in each to count as sounded) */
  g_assert_cmpuint (windows_of (call, MENU_HZ), >=, SOUNDED);
  menu_at = first_heard (call, MENU_HZ);
  support_at = first_sounded (call, SUPPORT_HZ);
  g_test_message ("menu heard from second %d, the support prompt from %d", menu_at, support_at);
  g_assert_cmpint (menu_at, >=, 0);
  /* (in whole seconds: the menu ends 200 ms in, at the digit) */
  g_assert_cmpint (support_at, >=, menu_at);
  g_assert_cmpint (first_sounded (call, INVALID_HZ), ==, -1);
  g_assert_cmpint (first_sounded (call, TIMEOUT_HZ), ==, -1);
  g_assert_cmpint (first_sounded (call, SORRY_HZ), ==, -1);
  /* before the menu the visitor heard the greeting: the IVR sends nothing
   * else (no ringing tone), so the first audio is the speech */
  first_audio = json_object_get_int_member (call, "first_audio_us");
  g_assert_cmpint (first_audio, >, 0);
  g_assert_cmpint ((first_audio - json_object_get_int_member (call, "started_us")) / G_USEC_PER_SEC,
                   <, menu_at);
  /* and then Support's agent: their tone */
  g_assert_true (good);
  g_assert_cmpstr (json_object_get_string_member (only_call (agent_report), "call_id"), ==,
                   json_object_get_string_member (call, "call_id"));

  stored = ended_call (json_object_get_string_member (call, "call_id"));
  kinds = kinds_of (stored);
  g_test_message ("IVR events: %s", kinds);
  g_assert_cmpstr (json_object_get_string_member (stored, "queue_id"), ==, support);
  /* greeting, menu, the second option's prompt, in that order */
  g_assert_nonnull (strstr (kinds,
                            "ivr.started ivr.node ivr.prompt ivr.node ivr.prompt ivr.barge_in "
                            "ivr.digits ivr.node ivr.prompt ivr.node ivr.ended"));
  g_assert_nonnull (event_where (stored, "ivr.prompt", "text", "Welcome to the shop."));
  digits = event_where (stored, "ivr.digits", "node", "menu");
  g_assert_nonnull (digits);
  g_assert_cmpstr (json_object_get_string_member (digits, "digits"), ==, "2");
  ended = event_where (stored, "ivr.ended", "outcome", "queue");
  g_assert_nonnull (ended);
  g_assert_cmpstr (json_object_get_string_member (ended, "queue_id"), ==, support);
  g_assert_null (strstr (kinds, "ivr.invalid"));
  g_assert_null (strstr (kinds, "ivr.timeout"));
  /* the digit came the way it was sent */
  digits = event_where (stored, "dtmf", "digits", "2");
  g_assert_nonnull (digits);
  g_assert_cmpstr (json_object_get_string_member (digits, "source"), ==, inband ? "inband" : "rtp");
}

static void
test_press_two (void)
{
  press_two (FALSE);
}

/* The same with the 2 pressed as tones in the visitor's audio: the
 * daemon's detector listens while the menu waits. */
static void
test_press_two_inband (void)
{
  press_two (TRUE);
}

/* A digit the menu does not offer: the invalid prompt, the menu again,
 * and once the retry is used up, the fallback, which hangs up. */
static void
test_invalid_digit (void)
{
  CdTestPeer *visitor =
      peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--press-on",
                  "500:9", "--listen-for", "700,900,1100,1300", "--timeout", "60", NULL);
  g_autoptr (JsonObject) report = cd_test_peer_finish (visitor, 90000, NULL);
  g_autoptr (JsonObject) stored = NULL;
  g_autofree char *kinds = NULL;
  JsonObject *call = only_call (report);

  show_daemon_lines (json_object_get_string_member (call, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "ivr-hangup");
  /* the menu twice, each cut 200 ms in by the 9 (too short to count as
   * separate runs second by second: the timeline below orders them) */
  g_assert_cmpuint (windows_of (call, MENU_HZ), >=, 2 * SOUNDED);
  g_assert_cmpuint (runs_of (call, INVALID_HZ), ==, 1);
  /* (a cut menu may not count as sounded in any one second) */
  g_assert_cmpint (first_heard (call, MENU_HZ), >=, 0);
  g_assert_cmpint (first_sounded (call, INVALID_HZ), >=, first_heard (call, MENU_HZ));
  g_assert_cmpint (first_sounded (call, SORRY_HZ), >, first_sounded (call, INVALID_HZ));
  g_assert_cmpint (first_sounded (call, SUPPORT_HZ), ==, -1);
  g_assert_cmpint (first_sounded (call, TIMEOUT_HZ), ==, -1);

  stored = ended_call (json_object_get_string_member (call, "call_id"));
  kinds = kinds_of (stored);
  g_test_message ("IVR events: %s", kinds);
  g_assert_nonnull (strstr (kinds, "ivr.prompt ivr.barge_in ivr.invalid ivr.prompt ivr.prompt "
                                   "ivr.barge_in ivr.invalid ivr.fallback ivr.node"));
  g_assert_nonnull (event_where (stored, "ivr.invalid", "digits", "9"));
  g_assert_nonnull (event_where (stored, "ivr.node", "node", "sorry"));
  g_assert_nonnull (event_where (stored, "ivr.ended", "outcome", "hangup"));
  g_assert_null (json_object_get_string_member_with_default (stored, "queue_id", NULL));
}

/* No digit at all: the timeout prompt, the menu again, then the fallback. */
static void
test_timeout (void)
{
  CdTestPeer *visitor =
      peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--listen-for",
                  "500,700,900,1100,1300", "--timeout", "60", NULL);
  g_autoptr (JsonObject) report = cd_test_peer_finish (visitor, 90000, NULL);
  g_autoptr (JsonObject) stored = NULL;
  g_autofree char *kinds = NULL;
  JsonObject *call = only_call (report);

  show_daemon_lines (json_object_get_string_member (call, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "ivr-hangup");
  g_assert_cmpuint (runs_of (call, MENU_HZ), ==, 2);
  g_assert_cmpuint (runs_of (call, TIMEOUT_HZ), ==, 1);
  g_assert_cmpint (first_sounded (call, TIMEOUT_HZ), >, first_sounded (call, MENU_HZ));
  g_assert_cmpint (first_sounded (call, SORRY_HZ), >, first_sounded (call, TIMEOUT_HZ));
  g_assert_cmpint (first_sounded (call, INVALID_HZ), ==, -1);
  g_assert_cmpint (first_sounded (call, SUPPORT_HZ), ==, -1);

  stored = ended_call (json_object_get_string_member (call, "call_id"));
  kinds = kinds_of (stored);
  g_test_message ("IVR events: %s", kinds);
  g_assert_nonnull (strstr (kinds, "ivr.timeout ivr.prompt"));
  g_assert_nonnull (strstr (kinds, "ivr.timeout ivr.fallback ivr.node"));
  g_assert_null (strstr (kinds, "ivr.digits"));
}

static guint
api_bytes (const char *path, GBytes **reply)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/%s", daemon_proc->base_url, company, path);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", admin_token);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr (GError) error = NULL;

  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  *reply = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  return soup_message_get_status (msg);
}

/* Decodes Ogg/Opus @ogg to 48 kHz mono: its seconds, and its tone. */
static double
decode_ogg (GBytes *ogg, double *hz)
{
  g_autofree char *in = g_build_filename (state, "voicemail.ogg", NULL);
  g_autofree char *out = g_build_filename (state, "voicemail.wav", NULL);
  g_autofree char *description = g_strdup_printf (
      "filesrc location=%s ! oggdemux ! opusdec ! audioconvert ! audioresample ! "
      "audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink location=%s",
      in, out);
  g_autoptr (GError) error = NULL;
  g_autoptr (GstElement) pipeline = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GstMessage) m = NULL;
  g_autoptr (CdToneDetector) detector = cd_tone_detector_new (48000, 100, 100, 2000, 10);
  g_autofree gint16 *samples = NULL;
  guint rate = 0;
  gsize n = 0;

  g_assert_true (
      g_file_set_contents (in, g_bytes_get_data (ogg, NULL), g_bytes_get_size (ogg), NULL));
  pipeline = gst_parse_launch (description, &error);
  g_assert_no_error (error);
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (m);
  g_assert_cmpint (GST_MESSAGE_TYPE (m), ==, GST_MESSAGE_EOS);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  samples = cd_audio_read_wav (out, &rate, &n, &error);
  g_assert_no_error (error);
  cd_tone_detector_feed (detector, samples, n);
  *hz = cd_tone_detector_get_dominant_frequency (detector, 0.01);
  return (double) n / rate;
}

/* A voicemail: the beep (1 kHz), then the visitor talks (its 440 Hz) for
 * 3 s from the beep's start and falls silent; after 2 s of silence the
 * recording ends, the flow thanks and hangs up. The stored voicemail
 * decodes to what was said and the silence: 3 s less the 0.3 s beep, plus
 * 2 s, within 0.5 s. */
static void
test_voicemail (void)
{
  CdTestPeer *visitor = peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN,
                                    "--entry", "voicemail", "--silent-after", "1000:3",
                                    "--listen-for", "1300", "--timeout", "60", NULL);
  g_autoptr (JsonObject) report = cd_test_peer_finish (visitor, 90000, NULL);
  g_autoptr (JsonObject) stored = NULL;
  g_autoptr (GBytes) page_body = NULL;
  g_autoptr (JsonObject) page = NULL;
  g_autoptr (GBytes) audio = NULL;
  g_autofree char *kinds = NULL;
  g_autofree char *audio_path = NULL;
  JsonObject *call = only_call (report), *voicemail = NULL, *recorded;
  JsonArray *items;
  double hz = 0, seconds;

  show_daemon_lines (json_object_get_string_member (call, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "ivr-hangup");
  /* the thanks after the recording */
  g_assert_cmpint (first_sounded (call, SORRY_HZ), >, first_sounded (call, 1000));
  stored = ended_call (json_object_get_string_member (call, "call_id"));
  kinds = kinds_of (stored);
  g_test_message ("IVR events: %s", kinds);
  recorded = event_where (stored, "voicemail.recorded", "ended_by", "silence");
  g_assert_nonnull (recorded);

  /* listed for the company, with the call it came from */
  g_assert_cmpuint (api_bytes ("voicemails", &page_body), ==, 200);
  page = cd_json_parse_object (g_bytes_get_data (page_body, NULL), g_bytes_get_size (page_body),
                               NULL, NULL);
  items = json_object_get_array_member (page, "items");
  for (guint i = 0; i < json_array_get_length (items); i++)
    if (g_str_equal (
            json_object_get_string_member (json_array_get_object_element (items, i), "call_id"),
            json_object_get_string_member (call, "call_id")))
      voicemail = json_array_get_object_element (items, i);
  g_assert_nonnull (voicemail);
  g_assert_cmpstr (json_object_get_string_member (voicemail, "id"), ==,
                   json_object_get_string_member (recorded, "voicemail_id"));
  g_assert_cmpstr (json_object_get_string_member (voicemail, "ended_by"), ==, "silence");

  audio_path =
      g_strdup_printf ("voicemails/%s/audio", json_object_get_string_member (voicemail, "id"));
  g_assert_cmpuint (api_bytes (audio_path, &audio), ==, 200);
  seconds = decode_ogg (audio, &hz);
  g_test_message ("the voicemail: %" G_GINT64_FORMAT " ms stored, decodes to %.3f s of %.0f Hz",
                  json_object_get_int_member (voicemail, "duration_ms"), seconds, hz);
  /* the file holds the whole recording: from when it started to when it
   * was kept, by the daemon's timeline */
  {
    double span =
        event_seconds (stored, "voicemail.recorded") - event_seconds (stored, "voicemail.started");

    g_test_message ("recorded for %.3f s by the timeline", span);
    g_assert_cmpfloat (ABS (seconds - span), <, 0.5);
  }
  /* and that is what was said and the silence that ended it: 3 s less the
   * beep, and 2 s (with the network's delays on the way, under load) */
  g_assert_cmpfloat (ABS (seconds - (3.0 - 0.3 + 2.0)), <, 1.0);
  g_assert_cmpfloat (ABS (seconds - json_object_get_int_member (voicemail, "duration_ms") / 1000.0),
                     <, 0.1);
  g_assert_cmpfloat (ABS (hz - 440), <=, 10);
  /* stored sealed with the company's key: nothing of the Ogg shows, and
   * the size said is the stored file's */
  {
    g_autofree char *path = g_strdup_printf ("%s/blobs/voicemails/%s/%s.sealed", state, company,
                                             json_object_get_string_member (voicemail, "id"));
    g_autofree char *data = NULL;
    g_autofree char *whose = NULL;
    gsize length = 0;
    guint32 version = 0;

    g_assert_true (g_file_get_contents (path, &data, &length, NULL));
    g_assert_cmpint (json_object_get_int_member (voicemail, "size_bytes"), ==, (gint64) length);
    g_assert_cmpuint (length, >, g_bytes_get_size (audio));
    g_assert_null (g_strstr_len (data, length, "OggS"));
    g_assert_null (g_strstr_len (data, length, "OpusHead"));
    g_assert_true (cd_seal_peek_header ((const guint8 *) data, length, &whose, &version, NULL));
    g_assert_cmpstr (whose, ==, company);
    g_assert_cmpuint (version, >=, 1);
  }

  /* an admin deletes it: gone from the list, its audio too */
  {
    g_autofree char *path =
        g_strdup_printf ("voicemails/%s", json_object_get_string_member (voicemail, "id"));
    g_autoptr (GBytes) gone = NULL;
    g_autoptr (GBytes) gone_audio = NULL;

    g_assert_cmpuint (api_json ("DELETE", path, NULL, NULL), ==, 204);
    g_assert_cmpuint (api_bytes (path, &gone), ==, 404);
    g_assert_cmpuint (api_bytes (audio_path, &gone_audio), ==, 404);
    g_assert_cmpuint (api_json ("DELETE", path, NULL, NULL), ==, 404);
  }
}

/* A call for a queue that is closed, whose fallback is voicemail: no IVR,
 * the beep, the visitor talks 2 s from the beep's start, and after 5 s of
 * silence the voicemail is kept and the call ends. */
static void
test_queue_voicemail (void)
{
  CdTestPeer *visitor =
      peer_start ("calldocker-visitor", "--company", company, "--origin", ORIGIN, "--queue", night,
                  "--silent-after", "1000:2", "--timeout", "60", NULL);
  g_autoptr (JsonObject) report = cd_test_peer_finish (visitor, 90000, NULL);
  g_autoptr (JsonObject) stored = NULL;
  JsonObject *call = only_call (report), *recorded;

  show_daemon_lines (json_object_get_string_member (call, "call_id"));
  g_assert_cmpstr (json_object_get_string_member (call, "end_reason"), ==, "voicemail");
  stored = ended_call (json_object_get_string_member (call, "call_id"));
  g_assert_nonnull (event_where (stored, "queue.voicemail", "reason", "queue-closed"));
  recorded = event_where (stored, "voicemail.recorded", "ended_by", "silence");
  g_assert_nonnull (recorded);
  g_test_message ("the voicemail: %" G_GINT64_FORMAT " ms",
                  json_object_get_int_member (recorded, "duration_ms"));
  /* 2 s less the beep, and the 5 s of silence */
  g_assert_cmpint (ABS (json_object_get_int_member (recorded, "duration_ms") - 6700), <, 500);
  /* the call never was in the IVR */
  {
    g_autofree char *kinds = kinds_of (stored);
    g_assert_null (strstr (kinds, "ivr.started"));
  }
}

/* Four calls heard the same greeting: it was synthesized once. */
static void
test_speech_cached (void)
{
  g_assert_cmpfloat (metric ("calldocker_tts_requests_total{result=\"rendered\"}"), ==, 1);
  g_assert_cmpfloat (metric ("calldocker_tts_requests_total{result=\"cached\"}"), >=, 3);
  g_assert_cmpfloat (metric ("calldocker_tts_requests_total{result=\"failed\"}"), ==, 0);
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1", NULL };
  g_autofree char *menu = NULL, *support_prompt = NULL, *invalid = NULL, *timeout = NULL,
                  *sorry = NULL, *flow = NULL, *flow_json = NULL, *agent1 = NULL, *agent2 = NULL;
  int status;

  g_test_init (&argc, &argv, NULL);
  gst_init (NULL, NULL);
  state = cd_test_make_tmp_dir ("cd-ivr-XXXXXX");
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "ivr", ORIGIN, 2, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@ivr.test", PASSWORD);
  password_file = g_build_filename (state, "password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
  {
    g_autofree char *t1 = cd_test_login (daemon_proc->base_url, "agent1@ivr.test", PASSWORD);
    g_autofree char *t2 = cd_test_login (daemon_proc->base_url, "agent2@ivr.test", PASSWORD);
    agent1 = cd_test_user_id (t1);
    agent2 = cd_test_user_id (t2);
  }
  /* agent 1 answers Support, agent 2 Sales (and is never signed in) */
  g_assert_cmpuint (api_json ("POST", "queues", "{\"name\":\"Sales\"}", &sales), ==, 201);
  g_assert_cmpuint (api_json ("POST", "queues", "{\"name\":\"Support\"}", &support), ==, 201);
  /* never open: calls for it leave a voicemail */
  g_assert_cmpuint (api_json ("POST", "queues",
                              "{\"name\":\"Night\",\"business_hours\":{\"time_zone\":\"UTC\","
                              "\"weekly\":{}},\"when_closed\":{\"action\":\"voicemail\"}}",
                              &night),
                    ==, 201);
  {
    g_autofree char *m1 = g_strdup_printf ("{\"members\":{\"%s\":1}}", agent1);
    g_autofree char *m2 = g_strdup_printf ("{\"members\":{\"%s\":1}}", agent2);
    g_autofree char *p1 = g_strdup_printf ("queues/%s/members", support);
    g_autofree char *p2 = g_strdup_printf ("queues/%s/members", sales);
    g_assert_cmpuint (api_json ("PUT", p1, m1, NULL), ==, 204);
    g_assert_cmpuint (api_json ("PUT", p2, m2, NULL), ==, 204);
  }
  menu = upload_tone ("menu", MENU_HZ, 1.5);
  support_prompt = upload_tone ("support", SUPPORT_HZ, 1.0);
  invalid = upload_tone ("invalid", INVALID_HZ, 1.0);
  timeout = upload_tone ("timeout", TIMEOUT_HZ, 1.0);
  sorry = upload_tone ("sorry", SORRY_HZ, 1.0);
  flow_json = g_strdup_printf (
      "{\"name\":\"Main\",\"flow\":{\"start\":\"greet\",\"nodes\":["
      "{\"id\":\"greet\",\"type\":\"say\",\"text\":\"Welcome to the shop.\",\"next\":\"menu\"},"
      "{\"id\":\"menu\",\"type\":\"menu\",\"prompt\":{\"prompt_id\":\"%s\"},"
      "\"options\":{\"1\":\"sales\",\"2\":\"support-info\"},\"timeout_s\":3,\"max_retries\":1,"
      "\"invalid_prompt\":{\"prompt_id\":\"%s\"},\"timeout_prompt\":{\"prompt_id\":\"%s\"},"
      "\"fallback\":\"sorry\"},"
      "{\"id\":\"support-info\",\"type\":\"play\",\"prompt_id\":\"%s\",\"next\":\"support\"},"
      "{\"id\":\"sales\",\"type\":\"queue\",\"queue_id\":\"%s\"},"
      "{\"id\":\"support\",\"type\":\"queue\",\"queue_id\":\"%s\"},"
      "{\"id\":\"sorry\",\"type\":\"play\",\"prompt_id\":\"%s\",\"next\":\"bye\"},"
      "{\"id\":\"bye\",\"type\":\"hangup\"}]}}",
      menu, invalid, timeout, support_prompt, sales, support, sorry);
  g_assert_cmpuint (api_json ("POST", "ivr-flows", flow_json, &flow), ==, 201);
  {
    g_autofree char *publish = g_strdup_printf ("ivr-flows/%s/publish", flow);
    g_autofree char *entry = g_strdup_printf ("{\"entry_points\":{\"default\":\"%s\"}}", flow);
    g_assert_cmpuint (api_json ("POST", publish, NULL, NULL), ==, 200);
    g_assert_cmpuint (api_json ("PUT", "ivr-entry-points", entry, NULL), ==, 204);
  }
  /* a second flow: a voicemail, for widgets on the "voicemail" entry point */
  {
    g_autofree char *json = g_strdup_printf (
        "{\"name\":\"Voicemail\",\"flow\":{\"start\":\"vm\",\"nodes\":["
        "{\"id\":\"vm\",\"type\":\"voicemail\",\"max_s\":30,\"silence_s\":2,\"next\":\"thanks\"},"
        "{\"id\":\"thanks\",\"type\":\"play\",\"prompt_id\":\"%s\",\"next\":\"bye\"},"
        "{\"id\":\"bye\",\"type\":\"hangup\"}]}}",
        sorry);
    g_autofree char *vm_flow = NULL;
    g_autofree char *publish = NULL;
    g_autofree char *entry = NULL;

    g_assert_cmpuint (api_json ("POST", "ivr-flows", json, &vm_flow), ==, 201);
    publish = g_strdup_printf ("ivr-flows/%s/publish", vm_flow);
    entry = g_strdup_printf ("{\"entry_points\":{\"default\":\"%s\",\"voicemail\":\"%s\"}}", flow,
                             vm_flow);
    g_assert_cmpuint (api_json ("POST", publish, NULL, NULL), ==, 200);
    g_assert_cmpuint (api_json ("PUT", "ivr-entry-points", entry, NULL), ==, 204);
  }
  g_test_add_func ("/call-ivr/press-two", test_press_two);
  g_test_add_func ("/call-ivr/press-two-inband", test_press_two_inband);
  g_test_add_func ("/call-ivr/invalid-digit", test_invalid_digit);
  g_test_add_func ("/call-ivr/timeout", test_timeout);
  g_test_add_func ("/call-ivr/speech-cached", test_speech_cached);
  g_test_add_func ("/call-ivr/voicemail", test_voicemail);
  g_test_add_func ("/call-ivr/queue-voicemail", test_queue_voicemail);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  if (daemon_proc->exit_status != 0) {
    g_auto (GStrv) lines = g_strsplit (daemon_proc->err->str, "\n", -1);
    guint n = g_strv_length (lines);

    for (guint k = n > 80 ? n - 80 : 0; k < n; k++)
      g_printerr ("%s\n", lines[k]);
  }
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company);
  g_free (admin_token);
  g_free (password_file);
  g_free (sales);
  g_free (support);
  g_free (night);
  return status;
}
