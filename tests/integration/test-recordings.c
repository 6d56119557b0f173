/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Call recordings through the real daemon, with the C peers over WebRTC:
 * the visitor sends 440 Hz, the agent 880 Hz; an admin records 10 s of the
 * call with 2 s paused in the middle. The stored file is sealed (no Ogg in
 * the clear), opens with the company's key, decodes to 10 s with 440 Hz on
 * the left and 880 Hz on the right and 2 s of silence on both; the API
 * serves byte ranges of it, refuses a tampered file, and shows another
 * company's admin nothing. */

#include "cd-audio.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-media.h"
#include "cd-test-s3.h"
#include "cd-test-seed.h"
#include "store/cd-keyring.h"
#include "store/cd-seal.h"

#include <gst/gst.h>
#include <libsoup/soup.h>
#include <math.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sodium.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
static double metric (const char *series);
#define ORIGIN "https://rec.test"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company, *other_company, *admin_token, *other_token, *password_file;
static char *recording_id;
/* the blob store: a small tmpfs of its own when the test may mount one,
 * so a full disk and a read-only folder can be made */
static char *blobs;
static gboolean blobs_mounted;
static CdTestS3 *s3_server;
static GStrv s3_env;
static char *s3_recording_id;
static const char *daemon_env[3];

static guint
request (const char *method, const char *token, const char *path, const char *json,
         const char *range, GBytes **body, GHashTable **headers)
{
  g_autoptr (SoupSession) session = soup_session_new_with_options ("timeout", 30, NULL);
  /* a path under the API, or a whole URL (a signed link) */
  g_autofree char *url = g_str_has_prefix (path, "http")
                             ? g_strdup (path)
                             : g_strdup_printf ("%sapi/v1/%s", daemon_proc->base_url, path);
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", token);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) reply = NULL;
  SoupMessageHeadersIter iter;
  const char *name, *value;

  if (token)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  if (range)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Range", range);
  if (json) {
    g_autoptr (GBytes) b = g_bytes_new (json, strlen (json));
    soup_message_set_request_body_from_bytes (msg, "application/json", b);
  }
  reply = soup_session_send_and_read (session, msg, NULL, &error);
  if (error) {
    /* the daemon's last words, on stderr where the test runner shows them */
    cd_test_iterate (200);
    g_printerr ("daemon:\n%s%s\n", daemon_proc->out->str, daemon_proc->err->str);
  }
  g_assert_no_error (error);
  if (headers) {
    *headers = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    soup_message_headers_iter_init (&iter, soup_message_get_response_headers (msg));
    while (soup_message_headers_iter_next (&iter, &name, &value))
      g_hash_table_insert (*headers, g_ascii_strdown (name, -1), g_strdup (value));
  }
  if (soup_message_get_status (msg) >= 300)
    g_test_message ("%s %s: %u %.*s", method, path, soup_message_get_status (msg),
                    (int) g_bytes_get_size (reply), (const char *) g_bytes_get_data (reply, NULL));
  if (body)
    *body = g_steal_pointer (&reply);
  return soup_message_get_status (msg);
}

static JsonObject *
get_json (const char *token, const char *path, guint expect)
{
  g_autoptr (GBytes) body = NULL;
  guint status = request ("GET", token, path, NULL, NULL, &body, NULL);

  g_assert_cmpuint (status, ==, expect);
  return cd_json_parse_object (g_bytes_get_data (body, NULL), g_bytes_get_size (body), NULL, NULL);
}

static guint
control (const char *call_id, const char *action)
{
  g_autofree char *path = g_strdup_printf ("companies/%s/calls/%s/recording", company, call_id);
  g_autofree char *json = g_strdup_printf ("{\"action\":\"%s\"}", action);

  return request ("POST", admin_token, path, json, NULL, NULL, NULL);
}

/* The call in progress, once it is connected: one not seen before (a call
 * of a daemon killed stays "connected" in the list). */
static char *
connected_call (guint timeout_ms)
{
  static GHashTable *seen;
  gint64 until = g_get_monotonic_time () + timeout_ms * 1000;
  g_autofree char *path = g_strdup_printf ("companies/%s/calls", company);

  while (g_get_monotonic_time () < until) {
    g_autoptr (JsonObject) page = get_json (admin_token, path, 200);
    JsonArray *items = json_object_get_array_member (page, "items");

    for (guint i = 0; i < json_array_get_length (items); i++) {
      JsonObject *c = json_array_get_object_element (items, i);

      const char *id = json_object_get_string_member (c, "id");

      if (seen == NULL)
        seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
      if (g_strcmp0 (json_object_get_string_member (c, "state"), "connected") == 0 &&
          g_hash_table_add (seen, g_strdup (id)))
        return g_strdup (id);
    }
    cd_test_sleep (100);
  }
  g_assert_not_reached ();
}

/* The call's one recording, once it is in @state. */
static JsonObject *
recording_in (const char *call_id, const char *want, guint timeout_ms)
{
  gint64 until = g_get_monotonic_time () + timeout_ms * 1000;
  g_autofree char *path = g_strdup_printf ("companies/%s/recordings?call_id=%s", company, call_id);

  while (g_get_monotonic_time () < until) {
    g_autoptr (JsonObject) page = get_json (admin_token, path, 200);
    JsonArray *items = json_object_get_array_member (page, "items");

    if (json_array_get_length (items) == 1) {
      JsonObject *r = json_array_get_object_element (items, 0);

      if (g_strcmp0 (json_object_get_string_member (r, "state"), want) == 0)
        return json_object_ref (r);
    }
    cd_test_sleep (50);
  }
  g_assert_not_reached ();
}

/* Whether the second-by-second frequencies in @seconds (cd_test_seconds_of)
 * start (@from_end FALSE) or end with @n seconds within 15 Hz of @hz. */
static gboolean
seconds_near (const char *seconds, gboolean from_end, guint n, double hz)
{
  g_auto (GStrv) values = g_strsplit (seconds, " ", -1);
  guint len = g_strv_length (values);

  if (len < n)
    return FALSE;
  for (guint i = 0; i < n; i++) {
    const char *v = values[from_end ? len - 1 - i : i];

    if (fabs (g_ascii_strtod (v, NULL) - hz) > 15)
      return FALSE;
  }
  return TRUE;
}

/* How many of the seconds in @seconds are within 15 Hz of @hz. */
static guint
seconds_near_count (const char *seconds, double hz)
{
  g_auto (GStrv) values = g_strsplit (seconds, " ", -1);
  guint n = 0;

  for (guint i = 0; values[i]; i++)
    n += fabs (g_ascii_strtod (values[i], NULL) - hz) <= 15;
  return n;
}

static void
sleep_until (gint64 t)
{
  gint64 left = t - g_get_monotonic_time ();

  if (left > 0)
    cd_test_sleep ((guint) (left / 1000));
}

/* How far the recording's length may be from the 10 s between its start
 * and stop as the test sees them: 0.3 s; under the sanitizers, where the
 * recording's elements take a few hundred milliseconds more to start
 * (seen: 311 ms short), 0.6 s. */
static glong
slack_ms (void)
{
  return g_getenv ("ASAN_OPTIONS") ? 600 : 300;
}

/* Whether each 100 ms window of @channel (of stereo @pcm) is below -60 dBFS. */
static GArray *
silent_windows_of (const gint16 *pcm, gsize frames, guint channel)
{
  GArray *silent = g_array_new (FALSE, FALSE, sizeof (gboolean));

  for (gsize at = 0; at + 4800 <= frames; at += 4800) {
    double sum = 0;
    gboolean quiet;

    for (gsize i = 0; i < 4800; i++) {
      double v = pcm[(at + i) * 2 + channel] / 32768.0;
      sum += v * v;
    }
    quiet = sqrt (sum / 4800) < 0.001;
    g_array_append_val (silent, quiet);
  }
  return silent;
}

/* How many 100 ms windows of @channel are silent. */
static guint
silent_windows (const gint16 *pcm, gsize frames, guint channel)
{
  g_autoptr (GArray) silent = silent_windows_of (pcm, frames, channel);
  guint n = 0;

  for (guint i = 0; i < silent->len; i++)
    n += g_array_index (silent, gboolean, i);
  return n;
}

/* The longest run of silent 100 ms windows of @channel, and where it starts. */
static guint
silent_run (const gint16 *pcm, gsize frames, guint channel, guint *start)
{
  g_autoptr (GArray) silent = silent_windows_of (pcm, frames, channel);
  guint best = 0, run = 0;

  for (guint i = 0; i < silent->len; i++) {
    run = g_array_index (silent, gboolean, i) ? run + 1 : 0;
    if (run > best) {
      best = run;
      *start = i + 1 - run;
    }
  }
  return best;
}

static void
test_stereo_with_pause (void)
{
  CdTestPeer *agent = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email", "agent1@rec.test", "--password-file", password_file,
                             "--tone", "880", "--calls", "1", "--timeout", "90", NULL });
  CdTestPeer *visitor = NULL;
  g_autofree char *call_id = NULL;
  g_autoptr (JsonObject) recording = NULL;
  g_autoptr (JsonObject) done = NULL;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) agent_report = NULL;
  g_autoptr (GBytes) audio = NULL;
  g_autoptr (GHashTable) headers = NULL;
  g_autofree gint16 *pcm = NULL;
  g_autofree char *left = NULL, *right = NULL, *audio_path = NULL;
  gsize frames = 0;
  gint64 t0;
  double seconds;
  guint quiet_left, quiet_right;
  gboolean good = FALSE;

  cd_test_sleep (1000); /* the agent signs in and is available */
  visitor = cd_test_peer_start_argv ("calldocker-visitor", daemon_proc->base_url, NULL,
                                     (const char *const[]){ "--company", company, "--origin",
                                                            ORIGIN, "--tone", "440", "--hold", "18",
                                                            "--timeout", "90", NULL });
  call_id = connected_call (30000);
  cd_test_sleep (1500); /* both parties' audio flows */
  g_assert_cmpuint (control (call_id, "start"), ==, 202);
  /* twice is refused */
  g_assert_cmpuint (control (call_id, "start"), ==, 409);
  recording = recording_in (call_id, "recording", 10000);
  t0 = g_get_monotonic_time ();
  recording_id = g_strdup (json_object_get_string_member (recording, "id"));
  sleep_until (t0 + 4 * G_USEC_PER_SEC);
  g_assert_cmpuint (control (call_id, "pause"), ==, 202);
  g_assert_cmpuint (control (call_id, "pause"), ==, 409);
  sleep_until (t0 + 6 * G_USEC_PER_SEC);
  g_assert_cmpuint (control (call_id, "resume"), ==, 202);
  sleep_until (t0 + 10 * G_USEC_PER_SEC);
  g_assert_cmpuint (control (call_id, "stop"), ==, 202);
  done = recording_in (call_id, "complete", 15000);
  g_test_message ("recorded %" G_GINT64_FORMAT " ms, %" G_GINT64_FORMAT " bytes stored",
                  json_object_get_int_member (done, "duration_ms"),
                  json_object_get_int_member (done, "size_bytes"));
  g_assert_cmpint (labs (json_object_get_int_member (done, "duration_ms") - 10000), <=,
                   slack_ms ());
  g_assert_cmpuint (strlen (json_object_get_string_member (done, "checksum")), ==, 64);

  /* the call goes on after the recording: it ends when the visitor hangs up */
  visitor_report = cd_test_peer_finish (visitor, 60000, &good);
  g_assert_true (good);
  agent_report = cd_test_peer_finish (agent, 60000, NULL);

  audio_path = g_strdup_printf ("companies/%s/recordings/%s/audio", company, recording_id);
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &audio, &headers), ==,
                    200);
  g_assert_cmpstr (g_hash_table_lookup (headers, "content-type"), ==, "audio/ogg");
  pcm = cd_test_decode_ogg (audio, 2, &frames);
  seconds = frames / 48000.0;
  left = cd_test_seconds_of (pcm, frames, 2, 0);
  right = cd_test_seconds_of (pcm, frames, 2, 1);
  quiet_left = silent_windows (pcm, frames, 0);
  quiet_right = silent_windows (pcm, frames, 1);
  g_test_message ("decodes to %.3f s; left: %s; right: %s; silent 100 ms windows: %u left, %u "
                  "right",
                  seconds, left, right, quiet_left, quiet_right);
  g_assert_cmpfloat (fabs (seconds - 10.0), <=, slack_ms () / 1000.0);
  /* each party on its channel: before and after the pause */
  g_assert_true (seconds_near (left, FALSE, 3, 440));
  g_assert_true (seconds_near (right, FALSE, 3, 880));
  g_assert_true (seconds_near (left, TRUE, 2, 440));
  g_assert_true (seconds_near (right, TRUE, 2, 880));
  g_assert_cmpuint (seconds_near_count (left, 880), ==, 0);
  g_assert_cmpuint (seconds_near_count (right, 440), ==, 0);
  /* the pause: 2 s of silence on both, where it was */
  g_assert_cmpuint (quiet_left, >=, 17);
  g_assert_cmpuint (quiet_left, <=, 23);
  g_assert_cmpuint (quiet_right, >=, 17);
  g_assert_cmpuint (quiet_right, <=, 23);
  {
    guint left_at = 0, right_at = 0;
    guint left_run = silent_run (pcm, frames, 0, &left_at);
    guint right_run = silent_run (pcm, frames, 1, &right_at);

    /* one stretch of silence on both, about 2 s long, 4 s in (the pause
     * began 4 s after the recording as the test saw it start) */
    g_test_message ("the longest silences: %.1f s from %.1f s left, %.1f s from %.1f s right",
                    left_run / 10.0, left_at / 10.0, right_run / 10.0, right_at / 10.0);
    g_assert_cmpuint (left_run, >=, 17);
    g_assert_cmpuint (right_run, >=, 17);
    g_assert_cmpuint (left_at, >=, 35);
    g_assert_cmpuint (left_at, <=, 45);
    g_assert_cmpuint (ABS ((int) left_at - (int) right_at), <=, 1);
  }

  /* a byte range of it, as a player seeks */
  {
    g_autoptr (GBytes) part = NULL;
    g_autoptr (GHashTable) part_headers = NULL;
    g_autofree char *expect =
        g_strdup_printf ("bytes 1000-1999/%" G_GSIZE_FORMAT, g_bytes_get_size (audio));

    g_assert_cmpuint (
        request ("GET", admin_token, audio_path, NULL, "bytes=1000-1999", &part, &part_headers), ==,
        206);
    g_assert_cmpstr (g_hash_table_lookup (part_headers, "content-range"), ==, expect);
    g_assert_cmpuint (g_bytes_get_size (part), ==, 1000);
    g_assert_cmpmem (g_bytes_get_data (part, NULL), 1000,
                     (const guint8 *) g_bytes_get_data (audio, NULL) + 1000, 1000);
  }
  {
    g_autoptr (GBytes) none = NULL;
    g_autofree char *beyond =
        g_strdup_printf ("bytes=%" G_GSIZE_FORMAT "-", g_bytes_get_size (audio) + 10);

    g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, beyond, &none, NULL), ==, 416);
  }
}

/* What is stored is sealed: no Ogg page in the clear, and it opens only
 * with the company's key (read here from the master key file and the
 * database, as a second daemon would). */
static void
test_stored_sealed (void)
{
  g_autofree char *file = g_build_filename (blobs, "recordings", company, NULL);
  g_autofree char *path = g_strdup_printf ("%s/%s.sealed", file, recording_id);
  g_autofree char *data = NULL;
  gsize length = 0;
  g_autofree char *whose = NULL;
  guint32 version = 0;

  g_assert_nonnull (recording_id);
  g_assert_true (g_file_get_contents (path, &data, &length, NULL));
  g_assert_null (g_strstr_len (data, length, "OggS"));
  g_assert_null (g_strstr_len (data, length, "OpusHead"));
  g_assert_true (cd_seal_peek_header ((const guint8 *) data, length, &whose, &version, NULL));
  g_assert_cmpstr (whose, ==, company);
  g_assert_cmpuint (version, ==, 1);
}

static void
test_tampered_refused (void)
{
  g_autofree char *path =
      g_strdup_printf ("%s/recordings/%s/%s.sealed", blobs, company, recording_id);
  g_autofree char *audio_path =
      g_strdup_printf ("companies/%s/recordings/%s/audio", company, recording_id);
  g_autofree char *data = NULL;
  g_autofree char *saved = NULL;
  gsize length = 0;
  g_autoptr (GBytes) body = NULL;

  g_assert_true (g_file_get_contents (path, &data, &length, NULL));
  saved = g_memdup2 (data, length);
  data[length / 2] ^= 0x40;
  g_assert_true (g_file_set_contents (path, data, length, NULL));
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &body, NULL), ==, 409);
  g_assert_nonnull (
      g_strstr_len (g_bytes_get_data (body, NULL), g_bytes_get_size (body), "fails its check"));
  g_assert_null (g_strstr_len (g_bytes_get_data (body, NULL), g_bytes_get_size (body), "OggS"));
  g_assert_true (g_file_set_contents (path, saved, length, NULL));
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, NULL, NULL), ==, 200);
}

/* A link for a player that sends no token: it plays the recording for a
 * few minutes, and nothing else; changed, expired or bare, it is refused
 * and says why. */
static void
test_signed_link (void)
{
  g_autofree char *link_path =
      g_strdup_printf ("companies/%s/recordings/%s/link", company, recording_id);
  g_autofree char *audio_path =
      g_strdup_printf ("companies/%s/recordings/%s/audio", company, recording_id);
  g_autoptr (JsonObject) link = NULL;
  g_autoptr (GBytes) with_token = NULL, with_link = NULL, refused = NULL;
  g_autoptr (GDateTime) expires_at = NULL;
  g_autofree char *changed = NULL, *bare = NULL, *expired = NULL, *other = NULL;
  const char *url;
  gint64 left;

  g_assert_nonnull (recording_id);
  {
    g_autoptr (GBytes) body = NULL;

    g_assert_cmpuint (request ("POST", admin_token, link_path, NULL, NULL, &body, NULL), ==, 201);
    link =
        cd_json_parse_object (g_bytes_get_data (body, NULL), g_bytes_get_size (body), NULL, NULL);
  }
  url = json_object_get_string_member (link, "url");
  g_test_message ("link: %s until %s", url, json_object_get_string_member (link, "expires_at"));
  g_assert_true (g_str_has_prefix (url, daemon_proc->base_url));
  expires_at =
      g_date_time_new_from_iso8601 (json_object_get_string_member (link, "expires_at"), NULL);
  left = g_date_time_to_unix (expires_at) - g_get_real_time () / G_USEC_PER_SEC;
  g_assert_cmpint (left, >, 240);
  g_assert_cmpint (left, <=, 300);
  /* no token: the same audio */
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &with_token, NULL), ==,
                    200);
  g_assert_cmpuint (request ("GET", NULL, url, NULL, NULL, &with_link, NULL), ==, 200);
  g_assert_true (g_bytes_equal (with_token, with_link));
  /* a signature changed, or for another recording, or none */
  changed = g_strdup (url);
  changed[strlen (changed) - 1] = changed[strlen (changed) - 1] == '0' ? '1' : '0';
  g_assert_cmpuint (request ("GET", NULL, changed, NULL, NULL, &refused, NULL), ==, 403);
  g_assert_nonnull (g_strstr_len (g_bytes_get_data (refused, NULL), g_bytes_get_size (refused),
                                  "signature does not match"));
  other = g_strdup_printf ("%sapi/v1/companies/%s/recordings/%s/audio%s", daemon_proc->base_url,
                           company, "00000000-0000-4000-8000-000000000001", strchr (url, '?'));
  g_assert_cmpuint (request ("GET", NULL, other, NULL, NULL, NULL, NULL), ==, 403);
  bare = g_strndup (url, (gsize) (strstr (url, "&signature") - url));
  g_assert_cmpuint (request ("GET", NULL, bare, NULL, NULL, NULL, NULL), ==, 403);
  /* expired (what it is signed with does not matter then) */
  expired = g_strdup_printf (
      "%sapi/v1/%s?expires=%" G_GINT64_FORMAT "&signature=%s", daemon_proc->base_url, audio_path,
      g_get_real_time () / G_USEC_PER_SEC - 10, strstr (url, "signature=") + 10);
  g_clear_pointer (&refused, g_bytes_unref);
  g_assert_cmpuint (request ("GET", NULL, expired, NULL, NULL, &refused, NULL), ==, 403);
  g_assert_nonnull (
      g_strstr_len (g_bytes_get_data (refused, NULL), g_bytes_get_size (refused), "expired"));
  /* only an admin of the company gets one; none for what is not there */
  {
    g_autofree char *missing = g_strdup_printf ("companies/%s/recordings/%s/link", company,
                                                "00000000-0000-4000-8000-000000000000");

    g_assert_cmpuint (request ("POST", other_token, link_path, NULL, NULL, NULL, NULL), ==, 404);
    g_assert_cmpuint (request ("POST", NULL, link_path, NULL, NULL, NULL, NULL), ==, 401);
    g_assert_cmpuint (request ("POST", admin_token, missing, NULL, NULL, NULL, NULL), ==, 404);
  }
}

/* A recorded call transferred (@mode: blind, or warm: consulted first) to
 * another agent: the recording goes on, and its right channel follows the
 * call from the first agent (880 Hz) to the second (660 Hz). */
static void
transfer_followed (const char *mode)
{
  g_autofree char *agent2_token =
      cd_test_login (daemon_proc->base_url, "agent2@rec.test", PASSWORD);
  g_autofree char *agent2_id = cd_test_user_id (agent2_token);
  g_autofree char *to = g_strdup_printf ("agent:%s", agent2_id);
  CdTestPeer *second = NULL;
  CdTestPeer *first = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email",          "agent1@rec.test",
                             "--password-file",  password_file,
                             "--tone",           "880",
                             "--calls",          "1",
                             "--transfer-to",    to,
                             "--transfer-mode",  mode,
                             "--transfer-after", g_str_equal (mode, "warm") ? "3" : "5",
                             "--complete-after", "3",
                             "--timeout",        "60",
                             "--quiet",          NULL });
  CdTestPeer *visitor = NULL;
  g_autofree char *call_id = NULL;
  g_autofree char *audio_path = NULL;
  g_autoptr (JsonObject) done = NULL;
  g_autoptr (GBytes) audio = NULL;
  g_autofree gint16 *pcm = NULL;
  g_autofree char *left = NULL, *right = NULL;
  gsize frames = 0;
  gint64 t0;

  cd_test_sleep (1000);
  /* only the first is there when the call comes */
  visitor = cd_test_peer_start_argv ("calldocker-visitor", daemon_proc->base_url, NULL,
                                     (const char *const[]){ "--company", company, "--origin",
                                                            ORIGIN, "--tone", "440", "--hold", "25",
                                                            "--timeout", "90", "--quiet", NULL });
  call_id = connected_call (30000);
  /* the second comes once the first has the call */
  second = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email", "agent2@rec.test", "--password-file", password_file,
                             "--tone", "660", "--calls", "1", "--timeout", "60", "--quiet", NULL });
  g_assert_cmpuint (control (call_id, "start"), ==, 202);
  recording_in (call_id, "recording", 10000);
  /* the first agent hands the call over 5 s after answering (warm: 3 s,
   * and 3 s of consulting); 6 s after the second agent took it (the call
   * names them as they accept, before their media is up) */
  {
    g_autofree char *path = g_strdup_printf ("companies/%s/calls/%s", company, call_id);
    gint64 until = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;

    for (;;) {
      g_autoptr (JsonObject) c = get_json (admin_token, path, 200);

      if (g_strcmp0 (json_object_get_string_member_with_default (c, "agent_id", NULL), agent2_id) ==
          0)
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, until);
      cd_test_sleep (100);
    }
    t0 = g_get_monotonic_time ();
    sleep_until (t0 + 6 * G_USEC_PER_SEC);
  }
  g_assert_cmpuint (control (call_id, "stop"), ==, 202);
  done = recording_in (call_id, "complete", 15000);
  cd_test_peer_wait (visitor, 60000);
  cd_test_peer_wait (first, 60000);
  cd_test_peer_wait (second, 60000);
  cd_test_peer_free (visitor);
  cd_test_peer_free (first);
  cd_test_peer_free (second);
  audio_path = g_strdup_printf ("companies/%s/recordings/%s/audio", company,
                                json_object_get_string_member (done, "id"));
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &audio, NULL), ==, 200);
  pcm = cd_test_decode_ogg (audio, 2, &frames);
  left = cd_test_seconds_of (pcm, frames, 2, 0);
  right = cd_test_seconds_of (pcm, frames, 2, 1);
  g_test_message ("decodes to %.3f s; left: %s; right: %s", frames / 48000.0, left, right);
  g_assert_cmpfloat (frames / 48000.0, >, 9.0);
  g_assert_true (seconds_near (right, FALSE, 2, 880));
  g_assert_true (seconds_near (right, TRUE, 2, 660));
  g_assert_cmpuint (seconds_near_count (right, 440), ==, 0);
  g_assert_cmpuint (seconds_near_count (left, 880), ==, 0);
  g_assert_cmpuint (seconds_near_count (left, 660), ==, 0);
}

static void
test_blind_transfer_followed (void)
{
  transfer_followed ("blind");
}

static void
test_warm_transfer_followed (void)
{
  transfer_followed ("warm");
}

/* Another company's admin: the recording is not there for them. */
static void
test_other_company (void)
{
  g_autofree char *own = g_strdup_printf ("companies/%s/recordings/%s", company, recording_id);
  g_autofree char *audio = g_strdup_printf ("%s/audio", own);
  g_autofree char *theirs =
      g_strdup_printf ("companies/%s/recordings/%s/audio", other_company, recording_id);
  g_autofree char *list = g_strdup_printf ("companies/%s/recordings", other_company);
  g_autoptr (JsonObject) page = NULL;

  g_assert_cmpuint (request ("GET", other_token, own, NULL, NULL, NULL, NULL), ==, 404);
  g_assert_cmpuint (request ("GET", other_token, audio, NULL, NULL, NULL, NULL), ==, 404);
  g_assert_cmpuint (request ("GET", other_token, theirs, NULL, NULL, NULL, NULL), ==, 404);
  page = get_json (other_token, list, 200);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (page, "items")), ==, 0);
}

static void
test_bad_requests (void)
{
  g_autofree char *no_call = g_uuid_string_random ();
  g_autofree char *path = g_strdup_printf ("companies/%s/calls/%s/recording", company, no_call);
  g_autofree char *bad_filter = g_strdup_printf ("companies/%s/recordings?state=lost", company);
  g_autofree char *bad_call = g_strdup_printf ("companies/%s/recordings?call_id=nope", company);

  g_assert_cmpuint (request ("POST", admin_token, path, "{\"action\":\"start\"}", NULL, NULL, NULL),
                    ==, 404);
  g_assert_cmpuint (request ("POST", admin_token, path, "{}", NULL, NULL, NULL), ==, 422);
  g_assert_cmpuint (request ("POST", admin_token, path, "{\"action\":7}", NULL, NULL, NULL), ==,
                    422);
  g_assert_cmpuint (request ("GET", admin_token, bad_filter, NULL, NULL, NULL, NULL), ==, 422);
  g_assert_cmpuint (request ("GET", admin_token, bad_call, NULL, NULL, NULL, NULL), ==, 422);
}

/* The daemon is killed (SIGKILL) 5 s into a recording and started again:
 * the recording is found, kept up to its last whole page and marked
 * 'partial'; it decodes to within 3 s of the kill. */
static void
test_killed_daemon_partial (void)
{
  CdTestPeer *agent = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email", "agent1@rec.test", "--password-file", password_file,
                             "--tone", "880", "--calls", "1", "--timeout", "60", "--quiet", NULL });
  CdTestPeer *visitor;
  g_autofree char *call_id = NULL;
  g_autoptr (JsonObject) recording = NULL;
  g_autoptr (JsonObject) recovered = NULL;
  g_autoptr (GBytes) audio = NULL;
  g_autofree char *audio_path = NULL;
  g_autofree gint16 *pcm = NULL;
  g_autofree char *left = NULL;
  gsize frames = 0;
  gint64 t0;
  double recorded_s, decoded_s;

  cd_test_sleep (1000);
  visitor = cd_test_peer_start_argv ("calldocker-visitor", daemon_proc->base_url, NULL,
                                     (const char *const[]){ "--company", company, "--origin",
                                                            ORIGIN, "--tone", "440", "--hold", "30",
                                                            "--timeout", "60", "--quiet", NULL });
  call_id = connected_call (30000);
  cd_test_sleep (1500);
  g_assert_cmpuint (control (call_id, "start"), ==, 202);
  recording = recording_in (call_id, "recording", 10000);
  t0 = g_get_monotonic_time ();
  sleep_until (t0 + 5 * G_USEC_PER_SEC);
  g_subprocess_send_signal (daemon_proc->process, SIGKILL);
  recorded_s = (g_get_monotonic_time () - t0) / (double) G_USEC_PER_SEC;
  cd_test_daemon_wait_exit (daemon_proc, 10000);
  cd_test_daemon_free (daemon_proc);
  /* the peers lose the call with the daemon */
  cd_test_peer_wait (visitor, 60000);
  cd_test_peer_wait (agent, 60000);
  cd_test_peer_free (visitor);
  cd_test_peer_free (agent);

  daemon_proc = cd_test_daemon_spawn (state, NULL, daemon_env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  recovered = recording_in (call_id, "partial", 30000);
  g_test_message ("killed %.2f s into the recording; recovered: %" G_GINT64_FORMAT " ms, %s",
                  recorded_s, json_object_get_int_member (recovered, "duration_ms"),
                  json_object_get_string_member (recovered, "reason"));
  audio_path = g_strdup_printf ("companies/%s/recordings/%s/audio", company,
                                json_object_get_string_member (recovered, "id"));
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &audio, NULL), ==, 200);
  pcm = cd_test_decode_ogg (audio, 2, &frames);
  decoded_s = frames / 48000.0;
  left = cd_test_seconds_of (pcm, frames, 2, 0);
  g_test_message ("decodes to %.3f s; left: %s", decoded_s, left);
  g_assert_cmpfloat (decoded_s, >, 0.5);
  g_assert_cmpfloat (fabs (decoded_s - recorded_s), <=, 3.0);
  g_assert_cmpfloat (
      fabs (decoded_s - json_object_get_int_member (recovered, "duration_ms") / 1000.0), <=, 0.1);
  g_assert_true (seconds_near (left, FALSE, 2, 440));
}

/* A recording with the S3 backend while the endpoint is down: the call
 * and its recording go on (complete, served from the spool), the failed
 * uploads are counted and retried; once the endpoint is back the sealed
 * file is in the bucket, the spool is empty, the row says when it was
 * stored, and the audio is served from the bucket. */
static void
test_s3_down_then_back (void)
{
  g_autofree char *s3_dir = g_build_filename (state, "s3", NULL);
  g_autofree char *spool = g_build_filename (state, "spool", NULL);
  CdTestS3 *server = s3_server = cd_test_s3_start (s3_dir, 0);
  GPtrArray *env = g_ptr_array_new ();
  CdTestPeer *agent, *visitor;
  g_autofree char *call_id = NULL;
  g_autofree char *key = NULL, *spooled = NULL, *audio_path = NULL, *recording_path = NULL;
  g_autoptr (JsonObject) done = NULL;
  g_autoptr (JsonObject) stored = NULL;
  g_autoptr (GBytes) from_spool = NULL, from_bucket = NULL, object = NULL;
  g_autofree gint16 *pcm = NULL;
  g_autofree char *left = NULL;
  gsize frames = 0;

  g_ptr_array_add (env, g_strdup ("CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1"));
  g_ptr_array_add (env, g_strdup_printf ("CALLDOCKER_BLOBS_DIR=%s", spool));
  g_ptr_array_add (env, g_strdup ("CALLDOCKER_BLOBS_BACKEND=s3"));
  g_ptr_array_add (env, g_strdup_printf ("CALLDOCKER_BLOBS_S3_ENDPOINT=%s", server->endpoint));
  g_ptr_array_add (env, g_strdup_printf ("CALLDOCKER_BLOBS_S3_BUCKET=%s", server->bucket));
  g_ptr_array_add (env, g_strdup_printf ("CALLDOCKER_BLOBS_S3_ACCESS_KEY=%s", server->access_key));
  g_ptr_array_add (env, g_strdup_printf ("CALLDOCKER_BLOBS_S3_SECRET_KEY=%s", server->secret_key));
  g_ptr_array_add (env, g_strdup ("CALLDOCKER_BLOBS_S3_RETRY_MAX_S=2"));
  /* for test_retention, after */
  g_ptr_array_add (env, g_strdup ("CALLDOCKER_BLOBS_RETENTION_INTERVAL_S=1"));
  g_ptr_array_add (env, NULL);
  s3_env = (GStrv) g_ptr_array_free (env, FALSE);
  cd_test_s3_stop (server);
  cd_test_daemon_free (daemon_proc);
  daemon_proc = cd_test_daemon_spawn (state, NULL, (const char *const *) s3_env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);

  agent = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email", "agent1@rec.test", "--password-file", password_file,
                             "--tone", "880", "--calls", "1", "--timeout", "60", "--quiet", NULL });
  cd_test_sleep (1000);
  visitor = cd_test_peer_start_argv ("calldocker-visitor", daemon_proc->base_url, NULL,
                                     (const char *const[]){ "--company", company, "--origin",
                                                            ORIGIN, "--tone", "440", "--hold", "8",
                                                            "--timeout", "60", "--quiet", NULL });
  call_id = connected_call (30000);
  cd_test_sleep (1500);
  g_assert_cmpuint (control (call_id, "start"), ==, 202);
  recording_in (call_id, "recording", 10000);
  cd_test_sleep (3000);
  g_assert_cmpuint (control (call_id, "stop"), ==, 202);
  done = recording_in (call_id, "complete", 15000);
  cd_test_peer_wait (visitor, 60000);
  cd_test_peer_wait (agent, 60000);
  cd_test_peer_free (visitor);
  cd_test_peer_free (agent);

  /* S3 is down: the upload fails, is counted and retried; the file waits
   * sealed in the spool, and is served from there */
  key = g_strdup_printf ("recordings/%s/%s.sealed", company,
                         json_object_get_string_member (done, "id"));
  spooled = g_build_filename (spool, key, NULL);
  WAIT_UNTIL (metric ("calldocker_blob_uploads_total{result=\"failed\"}") >= 2, 20000);
  g_assert_cmpfloat (metric ("calldocker_blob_uploads_pending"), ==, 1);
  g_assert_true (g_file_test (spooled, G_FILE_TEST_IS_REGULAR));
  g_assert_true (json_object_get_null_member (done, "stored_at"));
  audio_path = g_strdup_printf ("companies/%s/recordings/%s/audio", company,
                                json_object_get_string_member (done, "id"));
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &from_spool, NULL), ==,
                    200);
  g_assert_nonnull (strstr (daemon_proc->err->str, "Could not connect"));

  /* back: uploaded, out of the spool, the row says when */
  cd_test_s3_restart (server);
  WAIT_UNTIL (!g_file_test (spooled, G_FILE_TEST_EXISTS), 30000);
  recording_path = g_strdup_printf ("companies/%s/recordings/%s", company,
                                    json_object_get_string_member (done, "id"));
  for (gint64 until = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;;) {
    stored = get_json (admin_token, recording_path, 200);
    if (!json_object_get_null_member (stored, "stored_at"))
      break;
    g_clear_pointer (&stored, json_object_unref);
    g_assert_cmpint (g_get_monotonic_time (), <, until);
    cd_test_sleep (100);
  }
  g_test_message ("stored at %s", json_object_get_string_member (stored, "stored_at"));
  g_assert_cmpfloat (metric ("calldocker_blob_uploads_total{result=\"ok\"}"), >=, 1);
  g_assert_cmpfloat (metric ("calldocker_blob_uploads_pending"), ==, 0);
  {
    /* the bucket holds it sealed: nothing of the Ogg shows */
    g_autofree char *whose = NULL;
    gsize n = 0;
    const guint8 *data;

    object = cd_test_s3_object (server, key);
    g_assert_nonnull (object);
    data = g_bytes_get_data (object, &n);
    g_assert_cmpint (json_object_get_int_member (done, "size_bytes"), ==, (gint64) n);
    g_assert_null (g_strstr_len ((const char *) data, (gssize) n, "OggS"));
    g_assert_true (cd_seal_peek_header (data, n, &whose, NULL, NULL));
    g_assert_cmpstr (whose, ==, company);
  }
  /* served from the bucket now: the same audio */
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &from_bucket, NULL), ==,
                    200);
  g_assert_true (g_bytes_equal (from_spool, from_bucket));
  pcm = cd_test_decode_ogg (from_bucket, 2, &frames);
  left = cd_test_seconds_of (pcm, frames, 2, 0);
  g_test_message ("decodes to %.3f s; left: %s", frames / 48000.0, left);
  g_assert_true (seconds_near (left, FALSE, 2, 440));
  s3_recording_id = g_strdup (json_object_get_string_member (done, "id"));
}

static guint
patch_company (const char *json)
{
  g_autofree char *path = g_strdup_printf ("companies/%s", company);

  return request ("PATCH", admin_token, path, json, NULL, NULL, NULL);
}

/* Retention: what is past the company's days goes, from the bucket, the
 * spool and the database, each written once to the audit log; what is
 * not stays; bad settings are refused. (The daemon of the S3 test, which
 * runs the job every second.) */
static void
test_retention (void)
{
  g_autofree char *vm_id = g_uuid_string_random ();
  g_autofree char *vm_key = g_strdup_printf ("voicemails/%s/%s.sealed", company, vm_id);
  g_autofree char *vm_file = g_build_filename (state, "spool", vm_key, NULL);
  g_autofree char *vm_dir = g_path_get_dirname (vm_file);
  g_autofree char *rec_key = g_strdup_printf ("recordings/%s/%s.sealed", company, s3_recording_id);
  g_autofree char *old_path =
      g_strdup_printf ("companies/%s/recordings/%s", company, s3_recording_id);
  g_autofree char *recent_path =
      g_strdup_printf ("companies/%s/recordings/%s", company, recording_id);
  g_autofree char *vm_path = g_strdup_printf ("companies/%s/voicemails/%s", company, vm_id);
  g_autoptr (PGresult) audited = NULL;
  const char *bad[] = { "{\"recording_retention_days\":-1}", "{\"recording_retention_days\":3651}",
                        "{\"recording_retention_days\":\"30\"}", "{\"record_calls\":\"yes\"}" };

  g_assert_nonnull (s3_recording_id);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_cmpuint (patch_company (bad[i]), ==, 422);
  /* one recording and one voicemail past 30 days */
  {
    const char *params[] = { s3_recording_id };
    g_autoptr (PGresult) res =
        cd_test_state_sql (state,
                           "UPDATE recordings SET started_at = now() - interval '31 days',"
                           " ended_at = now() - interval '31 days' WHERE id = $1",
                           params, 1);

    g_assert_cmpstr (PQcmdTuples (res), ==, "1");
  }
  {
    const char *params[] = { vm_id, company, vm_key };
    g_autoptr (PGresult) res = cd_test_state_sql (
        state,
        "INSERT INTO voicemails (id, company_id, call_id, visitor_id, storage_key, duration_ms,"
        " size_bytes, ended_by, key_version, created_at) VALUES ($1, $2, gen_random_uuid(),"
        " 'v-old', $3, 1000, 4, 'silence', 1, now() - interval '40 days')",
        params, 3);

    g_assert_cmpstr (PQcmdTuples (res), ==, "1");
  }
  g_assert_cmpint (g_mkdir_with_parents (vm_dir, 0700), ==, 0);
  g_assert_true (g_file_set_contents (vm_file, "seal", 4, NULL));
  /* kept for ever until the company says otherwise */
  cd_test_sleep (2500);
  g_assert_cmpuint (request ("GET", admin_token, old_path, NULL, NULL, NULL, NULL), ==, 200);
  g_assert_cmpuint (request ("GET", admin_token, vm_path, NULL, NULL, NULL, NULL), ==, 200);

  g_assert_cmpuint (patch_company ("{\"recording_retention_days\":30}"), ==, 200);
  {
    gint64 until = g_get_monotonic_time () + 20 * G_USEC_PER_SEC;

    while (request ("GET", admin_token, old_path, NULL, NULL, NULL, NULL) != 404 ||
           request ("GET", admin_token, vm_path, NULL, NULL, NULL, NULL) != 404) {
      g_assert_cmpint (g_get_monotonic_time (), <, until);
      cd_test_sleep (200);
    }
  }
  /* gone from storage too */
  g_assert_false (g_file_test (vm_file, G_FILE_TEST_EXISTS));
  {
    g_autoptr (GBytes) object = cd_test_s3_object (s3_server, rec_key);

    g_assert_null (object);
  }
  /* the recent recording stays */
  g_assert_cmpuint (request ("GET", admin_token, recent_path, NULL, NULL, NULL, NULL), ==, 200);
  /* each deletion audited once, with what it was */
  cd_test_sleep (2500);
  {
    const char *params[] = { company };

    audited =
        cd_test_state_sql (state,
                           "SELECT action, target, details->>'retention_days' FROM audit_log"
                           " WHERE company_id = $1 AND action LIKE '%.expired' ORDER BY action",
                           params, 1);
  }
  g_assert_cmpint (PQntuples (audited), ==, 2);
  g_assert_cmpstr (PQgetvalue (audited, 0, 0), ==, "recording.expired");
  g_assert_cmpstr (PQgetvalue (audited, 0, 1), ==, s3_recording_id);
  g_assert_cmpstr (PQgetvalue (audited, 0, 2), ==, "30");
  g_assert_cmpstr (PQgetvalue (audited, 1, 0), ==, "voicemail.expired");
  g_assert_cmpstr (PQgetvalue (audited, 1, 1), ==, vm_id);
  g_assert_cmpfloat (metric ("calldocker_retention_deleted_total{kind=\"recording\"}"), ==, 1);
  g_assert_cmpfloat (metric ("calldocker_retention_deleted_total{kind=\"voicemail\"}"), ==, 1);
  g_assert_nonnull (
      strstr (daemon_proc->err->str, "retention: deleted 1 recordings and 1 voicemails"));
}

/* A call (into @queue, or none) that is recorded from when the agent
 * answers to its end, without anyone asking. */
static void
expect_recorded_without_asking (const char *queue)
{
  CdTestPeer *agent, *visitor;
  g_autofree char *call_id = NULL;
  g_autofree char *audio_path = NULL;
  g_autoptr (JsonObject) done = NULL;
  g_autoptr (GBytes) audio = NULL;
  g_autofree gint16 *pcm = NULL;
  g_autofree char *left = NULL, *right = NULL;
  gsize frames = 0;

  agent = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email", "agent1@rec.test", "--password-file", password_file,
                             "--tone", "880", "--calls", "1", "--timeout", "60", "--quiet", NULL });
  cd_test_sleep (1000);
  visitor = cd_test_peer_start_argv (
      "calldocker-visitor", daemon_proc->base_url, NULL,
      (const char *const[]){ "--company", company, "--origin", ORIGIN, "--tone", "440", "--hold",
                             "5", "--timeout", "60", "--quiet", queue ? "--queue" : NULL, queue,
                             NULL });
  call_id = connected_call (30000);
  /* recorded already: asking again is refused */
  recording_in (call_id, "recording", 10000);
  g_assert_cmpuint (control (call_id, "start"), ==, 409);
  cd_test_peer_wait (visitor, 60000);
  cd_test_peer_wait (agent, 60000);
  cd_test_peer_free (visitor);
  cd_test_peer_free (agent);
  done = recording_in (call_id, "complete", 15000);
  g_test_message ("recorded %" G_GINT64_FORMAT " ms of a call held 5 s",
                  json_object_get_int_member (done, "duration_ms"));
  g_assert_cmpint (json_object_get_int_member (done, "duration_ms"), >=, 3000);
  g_assert_cmpint (json_object_get_int_member (done, "duration_ms"), <=, 6500);
  audio_path = g_strdup_printf ("companies/%s/recordings/%s/audio", company,
                                json_object_get_string_member (done, "id"));
  g_assert_cmpuint (request ("GET", admin_token, audio_path, NULL, NULL, &audio, NULL), ==, 200);
  pcm = cd_test_decode_ogg (audio, 2, &frames);
  left = cd_test_seconds_of (pcm, frames, 2, 0);
  right = cd_test_seconds_of (pcm, frames, 2, 1);
  g_test_message ("left: %s; right: %s", left, right);
  g_assert_cmpuint (seconds_near_count (left, 440), >=, 2);
  g_assert_cmpuint (seconds_near_count (right, 880), >=, 2);
}

/* A company that records every call. */
static void
test_company_records_every_call (void)
{
  g_assert_cmpuint (patch_company ("{\"record_calls\":true}"), ==, 200);
  expect_recorded_without_asking (NULL);
  g_assert_cmpuint (patch_company ("{\"record_calls\":false}"), ==, 200);
}

/* A queue that records its calls (the company does not). */
static void
test_queue_records_its_calls (void)
{
  g_autofree char *queues = g_strdup_printf ("companies/%s/queues", company);
  g_autofree char *agent_token = cd_test_login (daemon_proc->base_url, "agent1@rec.test", PASSWORD);
  g_autofree char *agent_id = cd_test_user_id (agent_token);
  g_autofree char *members_path = NULL, *members = NULL, *queue_path = NULL;
  g_autoptr (JsonObject) queue = NULL;

  g_assert_cmpuint (request ("POST", admin_token, queues, "{\"name\":\"Bad\",\"record\":\"yes\"}",
                             NULL, NULL, NULL),
                    ==, 422);
  {
    g_autoptr (GBytes) body = NULL;

    g_assert_cmpuint (request ("POST", admin_token, queues,
                               "{\"name\":\"Recorded\",\"record\":true}", NULL, &body, NULL),
                      ==, 201);
    queue =
        cd_json_parse_object (g_bytes_get_data (body, NULL), g_bytes_get_size (body), NULL, NULL);
  }
  g_assert_true (json_object_get_boolean_member (queue, "record"));
  queue_path = g_strdup_printf ("%s/%s", queues, json_object_get_string_member (queue, "id"));
  members_path = g_strdup_printf ("%s/members", queue_path);
  members = g_strdup_printf ("{\"members\":{\"%s\":1}}", agent_id);
  g_assert_cmpuint (request ("PUT", admin_token, members_path, members, NULL, NULL, NULL), ==, 204);
  expect_recorded_without_asking (json_object_get_string_member (queue, "id"));
  g_assert_cmpuint (request ("DELETE", admin_token, queue_path, NULL, NULL, NULL, NULL), ==, 204);
}

static gboolean
run (const char *const *argv)
{
  g_autoptr (GError) error = NULL;
  int wait_status = 0;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, NULL, &wait_status, &error))
    return FALSE;
  return g_spawn_check_wait_status (wait_status, NULL);
}

/* The metric's value now. */
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

/* A call recorded while its storage fails: the call goes on to its end,
 * the recording's row says 'failed' and why (@reason in it), and the
 * failure is counted. */
static void
record_failing (const char *reason, double seconds)
{
  CdTestPeer *agent = cd_test_peer_start_argv (
      "calldocker-agent", daemon_proc->base_url, NULL,
      (const char *const[]){ "--email", "agent1@rec.test", "--password-file", password_file,
                             "--tone", "880", "--calls", "1", "--timeout", "60", "--quiet", NULL });
  CdTestPeer *visitor;
  g_autofree char *call_id = NULL;
  g_autofree char *hold = g_strdup_printf ("%.0f", seconds + 6);
  g_autoptr (JsonObject) failed = NULL;
  g_autoptr (JsonObject) visitor_report = NULL;
  g_autoptr (JsonObject) agent_report = NULL;
  double before = metric ("calldocker_recordings_failed_total{kind=\"write\"}");
  gboolean good = FALSE;

  cd_test_sleep (1000);
  visitor = cd_test_peer_start_argv (
      "calldocker-visitor", daemon_proc->base_url, NULL,
      (const char *const[]){ "--company", company, "--origin", ORIGIN, "--tone", "440", "--hold",
                             hold, "--expect-hz", "880", "--timeout", "60", "--quiet", NULL });
  call_id = connected_call (30000);
  cd_test_sleep (1000);
  g_assert_cmpuint (control (call_id, "start"), ==, 202);
  failed = recording_in (call_id, "failed", (guint) (seconds * 1000) + 10000);
  g_test_message ("failed: %s", json_object_get_string_member (failed, "reason"));
  g_assert_nonnull (strstr (json_object_get_string_member (failed, "reason"), reason));
  g_assert_cmpfloat (metric ("calldocker_recordings_failed_total{kind=\"write\"}"), ==, before + 1);
  /* the call went on: both heard each other to the end */
  visitor_report = cd_test_peer_finish (visitor, 60000, &good);
  agent_report = cd_test_peer_finish (agent, 60000, NULL);
  g_assert_true (good);
  {
    JsonArray *calls = json_object_get_array_member (visitor_report, "calls");
    JsonObject *c = json_array_get_object_element (calls, 0);

    g_assert_cmpstr (json_object_get_string_member (c, "end_reason"), ==, "visitor-hangup");
  }
}

static void
test_folder_unwritable (void)
{
  const char *ro[] = { "mount", "-o", "remount,ro", blobs, NULL };
  const char *rw[] = { "mount", "-o", "remount,rw", blobs, NULL };

  if (!blobs_mounted) {
    g_test_skip ("the blob store could not be given a file system of its own (mount needs root)");
    return;
  }
  g_assert_true (run (ro));
  record_failing ("Read-only file system", 3);
  g_assert_true (run (rw));
}

/* The disk fills up a few seconds into the recording. */
static void
test_disk_full (void)
{
  g_autofree char *filler = g_build_filename (blobs, "filler", NULL);
  g_autoptr (GError) error = NULL;
  struct statvfs fs;
  gsize fill;
  g_autofree char *bytes = NULL;

  if (!blobs_mounted) {
    g_test_skip ("the blob store could not be given a file system of its own (mount needs root)");
    return;
  }
  g_assert_cmpint (statvfs (blobs, &fs), ==, 0);
  /* room for about 3 s of the recording (64 kb/s) */
  fill = (gsize) fs.f_bavail * fs.f_frsize - 24 * 1024;
  bytes = g_malloc0 (fill);
  g_assert_true (g_file_set_contents (filler, bytes, (gssize) fill, &error));
  g_assert_no_error (error);
  record_failing ("No space left on device", 8);
  g_assert_cmpint (g_unlink (filler), ==, 0);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  gst_init (NULL, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  state = cd_test_make_tmp_dir ("cd-rec-XXXXXX");
  blobs = g_build_filename (state, "blobs-fs", NULL);
  g_assert_cmpint (g_mkdir (blobs, 0700), ==, 0);
  {
    const char *mount[] = {
      "mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", blobs, NULL
    };
    blobs_mounted = run (mount);
  }
  daemon_env[0] = "CALLDOCKER_MEDIA_LOCAL_ADDRESSES=127.0.0.1";
  daemon_env[1] = g_strdup_printf ("CALLDOCKER_BLOBS_DIR=%s", blobs);
  daemon_proc = cd_test_daemon_spawn (state, NULL, daemon_env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "rec", ORIGIN, 2, PASSWORD);
  other_company = cd_test_seed_company (state, "other", "https://other.test", 1, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@rec.test", PASSWORD);
  other_token = cd_test_login (daemon_proc->base_url, "admin@other.test", PASSWORD);
  password_file = g_build_filename (state, "password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD, -1, NULL));
  g_test_add_func ("/recordings/stereo-with-pause", test_stereo_with_pause);
  g_test_add_func ("/recordings/stored-sealed", test_stored_sealed);
  g_test_add_func ("/recordings/tampered-refused", test_tampered_refused);
  g_test_add_func ("/recordings/signed-link", test_signed_link);
  g_test_add_func ("/recordings/blind-transfer-followed", test_blind_transfer_followed);
  g_test_add_func ("/recordings/warm-transfer-followed", test_warm_transfer_followed);
  g_test_add_func ("/recordings/other-company", test_other_company);
  g_test_add_func ("/recordings/bad-requests", test_bad_requests);
  g_test_add_func ("/recordings/folder-unwritable", test_folder_unwritable);
  g_test_add_func ("/recordings/disk-full", test_disk_full);
  g_test_add_func ("/recordings/company-records-every-call", test_company_records_every_call);
  g_test_add_func ("/recordings/queue-records-its-calls", test_queue_records_its_calls);
  /* last: they stop the daemon and start another */
  g_test_add_func ("/recordings/killed-daemon-partial", test_killed_daemon_partial);
  g_test_add_func ("/recordings/s3-down-then-back", test_s3_down_then_back);
  g_test_add_func ("/recordings/retention", test_retention);
  status = g_test_run ();
  cd_test_daemon_free (daemon_proc);
  cd_test_s3_free (s3_server);
  g_strfreev (s3_env);
  g_free (s3_recording_id);
  if (blobs_mounted) {
    const char *umount[] = { "umount", blobs, NULL };
    g_assert_true (run (umount));
  }
  cd_test_remove_tree (state);
  g_free (blobs);
  g_free ((char *) daemon_env[1]);
  g_free (state);
  return status;
}
