/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The prompt API against the real daemon and PostgreSQL: WAV, FLAC, Ogg
 * Opus and MP3 uploads (made here with GStreamer, each a distinct tone)
 * are decoded once into Ogg/Opus, and what the API plays back decodes to
 * the same tone and length; empty, truncated, wrong, too long and too
 * large files are refused with what is wrong and leave nothing behind; a
 * prompt a live flow plays cannot be deleted. */

#include "cd-audio.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "cd-test-seed.h"

#include <glib/gstdio.h>
#include <gst/gst.h>
#include <libsoup/soup.h>
#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
/* the daemon here takes prompts of up to 3 s and 200 000 bytes */
#define MAX_S     3
#define MAX_BYTES 200000

static char *state;
static char *files; /* where the test makes its audio */
static CdTestDaemon *daemon_proc;
static char *company;
static char *admin_token, *agent_token;

static guint
api_bytes (const char *token, const char *method, const char *path, const char *content_type,
           GBytes *body, GBytes **reply)
{
  g_autofree char *url =
      g_strdup_printf ("%sapi/v1/companies/%s/%s", daemon_proc->base_url, company, path);
  g_autofree char *auth = g_strdup_printf ("Bearer %s", token);
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new (method, url);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) got = NULL;

  soup_message_headers_replace (soup_message_get_request_headers (msg), "Authorization", auth);
  if (body)
    soup_message_set_request_body_from_bytes (msg, content_type, body);
  got = soup_session_send_and_read (session, msg, NULL, &error);
  g_assert_no_error (error);
  if (reply)
    *reply = g_steal_pointer (&got);
  return soup_message_get_status (msg);
}

static guint
api (const char *token, const char *method, const char *path, const char *content_type,
     GBytes *body, JsonObject **reply)
{
  g_autoptr (GBytes) got = NULL;
  guint status = api_bytes (token, method, path, content_type, body, &got);

  if (reply) {
    gsize n = 0;
    const char *data = g_bytes_get_data (got, &n);
    *reply = n ? cd_json_parse_object (data, n, NULL, NULL) : NULL;
  }
  return status;
}

static guint
count_prompts (void)
{
  g_autoptr (JsonObject) page = NULL;

  g_assert_cmpuint (api (admin_token, "GET", "prompts", NULL, NULL, &page), ==, 200);
  return json_array_get_length (json_object_get_array_member (page, "items"));
}

/* The files in the company's prompt folder: the stored prompts, and
 * anything left behind. */
static guint
count_files (void)
{
  g_autofree char *dir = g_build_filename (state, "blobs", "prompts", company, NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  while (d && g_dir_read_name (d))
    n++;
  return n;
}

static void
run_pipeline (const char *description)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GstElement) pipeline = gst_parse_launch (description, &error);
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GstMessage) m = NULL;

  g_assert_no_error (error);
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (m);
  if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) gst_error = NULL;
    gst_message_parse_error (m, &gst_error, NULL);
    g_error ("%s: %s", description, gst_error->message);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
}

/* A @seconds tone of @hz at @rate as @kind (wav, flac, opus, mp3); its path. */
static char *
make_audio (const char *kind, double hz, double seconds, guint rate)
{
  g_autofree char *wav = g_strdup_printf ("%s/%s-%.0f-%.1f-%u.wav", files, kind, hz, seconds, rate);
  g_autoptr (GError) error = NULL;
  const char *encode = g_str_equal (kind, "flac")   ? "flacenc"
                       : g_str_equal (kind, "opus") ? "opusenc ! oggmux"
                       : g_str_equal (kind, "mp3")  ? "lamemp3enc ! id3v2mux"
                                                    : NULL;
  char *path;

  g_assert_true (cd_audio_write_tone_wav (wav, rate, 1, hz, 0.5, seconds, &error));
  if (encode == NULL)
    return g_steal_pointer (&wav);
  path = g_strdup_printf ("%s/%s-%.0f-%.1f.%s", files, kind, hz, seconds, kind);
  {
    g_autofree char *description = g_strdup_printf (
        "filesrc location=%s ! wavparse ! audioconvert ! audioresample ! %s ! filesink "
        "location=%s",
        wav, encode, path);
    run_pipeline (description);
  }
  return path;
}

static GBytes *
read_file (const char *path)
{
  char *data = NULL;
  gsize n = 0;

  g_assert_true (g_file_get_contents (path, &data, &n, NULL));
  return g_bytes_new_take (data, n);
}

/* Decodes @ogg (Ogg/Opus) to 48 kHz mono: the seconds of audio, and the
 * tone heard in them. */
static double
decode_ogg (GBytes *ogg, double *hz)
{
  g_autofree char *in = g_build_filename (files, "stored.ogg", NULL);
  g_autofree char *out = g_build_filename (files, "stored.wav", NULL);
  g_autofree char *description = g_strdup_printf (
      "filesrc location=%s ! oggdemux ! opusdec ! audioconvert ! audioresample ! "
      "audio/x-raw,format=S16LE,rate=48000,channels=1 ! wavenc ! filesink location=%s",
      in, out);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdToneDetector) detector = cd_tone_detector_new (48000, 100, 100, 2000, 10);
  g_autofree gint16 *samples = NULL;
  guint rate = 0;
  gsize n = 0;

  g_assert_true (
      g_file_set_contents (in, g_bytes_get_data (ogg, NULL), g_bytes_get_size (ogg), NULL));
  run_pipeline (description);
  samples = cd_audio_read_wav (out, &rate, &n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rate, ==, 48000);
  cd_tone_detector_feed (detector, samples, n);
  *hz = cd_tone_detector_get_dominant_frequency (detector, 0.01);
  return (double) n / rate;
}

static char *
upload_path (const char *name)
{
  g_autofree char *escaped = g_uri_escape_string (name, NULL, TRUE);

  return g_strdup_printf ("prompts?name=%s", escaped);
}

/* Each kind is taken, stored as Ogg/Opus, and plays back as it was. */
static void
test_kinds (void)
{
  static const struct {
    const char *kind, *type;
    double hz;
  } kinds[] = {
    { "wav", "audio/wav", 440 },
    { "flac", "audio/flac", 550 },
    { "opus", "audio/ogg", 660 },
    { "mp3", "audio/mpeg", 770 },
  };
  guint before = count_prompts ();

  for (gsize i = 0; i < G_N_ELEMENTS (kinds); i++) {
    g_autofree char *file = make_audio (kinds[i].kind, kinds[i].hz, 2.0, 16000);
    g_autoptr (GBytes) body = read_file (file);
    g_autofree char *path = upload_path (kinds[i].kind);
    g_autoptr (JsonObject) prompt = NULL;
    g_autoptr (JsonObject) again = NULL;
    g_autoptr (GBytes) audio = NULL;
    g_autofree char *prompt_path = NULL;
    g_autofree char *audio_path = NULL;
    double hz = 0, seconds;

    g_test_message ("%s: %zu bytes", kinds[i].kind, g_bytes_get_size (body));
    g_assert_cmpuint (api (admin_token, "POST", path, "application/octet-stream", body, &prompt),
                      ==, 201);
    g_assert_cmpstr (json_object_get_string_member (prompt, "name"), ==, kinds[i].kind);
    g_assert_cmpstr (json_object_get_string_member (prompt, "source_type"), ==, kinds[i].type);
    g_assert_cmpint (json_object_get_int_member (prompt, "source_bytes"), ==,
                     (gint64) g_bytes_get_size (body));
    /* two seconds, give or take an encoder's padding */
    g_assert_cmpint (json_object_get_int_member (prompt, "duration_ms"), >=, 1950);
    g_assert_cmpint (json_object_get_int_member (prompt, "duration_ms"), <=, 2100);
    prompt_path = g_strdup_printf ("prompts/%s", json_object_get_string_member (prompt, "id"));
    g_assert_cmpuint (api (admin_token, "GET", prompt_path, NULL, NULL, &again), ==, 200);
    g_assert_cmpint (json_object_get_int_member (again, "size_bytes"), ==,
                     json_object_get_int_member (prompt, "size_bytes"));

    /* what plays back is Ogg/Opus with the same tone and length */
    audio_path = g_strdup_printf ("%s/audio", prompt_path);
    g_assert_cmpuint (api_bytes (admin_token, "GET", audio_path, NULL, NULL, &audio), ==, 200);
    g_assert_cmpint (json_object_get_int_member (prompt, "size_bytes"), ==,
                     (gint64) g_bytes_get_size (audio));
    g_assert_cmpmem (g_bytes_get_data (audio, NULL), 4, "OggS", 4);
    seconds = decode_ogg (audio, &hz);
    g_test_message ("%s: decodes to %.3f s of %.0f Hz", kinds[i].kind, seconds, hz);
    g_assert_cmpfloat (ABS (seconds - 2.0), <, 0.1);
    g_assert_cmpfloat (ABS (hz - kinds[i].hz), <=, 10);
  }
  g_assert_cmpuint (count_prompts (), ==, before + G_N_ELEMENTS (kinds));
  g_assert_cmpuint (count_files (), ==, before + G_N_ELEMENTS (kinds));
  /* names are unique */
  {
    g_autofree char *file = make_audio ("wav", 440, 2.0, 16000);
    g_autoptr (GBytes) body = read_file (file);
    g_autofree char *path = upload_path ("wav");
    g_autoptr (JsonObject) problem = NULL;

    g_assert_cmpuint (api (admin_token, "POST", path, "audio/wav", body, &problem), ==, 409);
    g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                     "a prompt with this name exists");
    /* the decoded file is not kept (its removal runs off the main loop) */
    for (int tries = 0; tries < 100 && count_files () > before + G_N_ELEMENTS (kinds); tries++)
      cd_test_sleep (20);
    g_assert_cmpuint (count_files (), ==, before + G_N_ELEMENTS (kinds));
  }
}

static void
assert_refused (GBytes *body, guint status, const char *detail)
{
  g_autofree char *path = upload_path ("refused");
  g_autoptr (JsonObject) problem = NULL;
  guint prompts = count_prompts (), stored = count_files ();

  g_assert_cmpuint (api (admin_token, "POST", path, "application/octet-stream", body, &problem), ==,
                    status);
  g_assert_nonnull (problem);
  g_test_message ("%u: %s", status, json_object_get_string_member (problem, "detail"));
  if (detail)
    g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==, detail);
  g_assert_cmpuint (count_prompts (), ==, prompts);
  g_assert_cmpuint (count_files (), ==, stored);
}

static void
test_refusals (void)
{
  g_autoptr (GBytes) empty = g_bytes_new_static ("", 0);
  g_autoptr (GBytes) text = g_bytes_new_static ("Hello, this is not audio at all.\n", 33);
  /* a PNG image's signature and first chunk */
  g_autoptr (GBytes) png = g_bytes_new_static ("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10"
                                               "\x08\x02\0\0\0\x90\x91\x68\x36",
                                               33);
  g_autofree char *wav = make_audio ("wav", 440, 2.0, 16000);
  g_autofree char *flac = make_audio ("flac", 550, 2.0, 16000);
  g_autofree char *long_wav = make_audio ("wav", 440, MAX_S + 1.0, 8000);
  g_autofree char *large_wav = make_audio ("wav", 440, 2.5, 48000);
  g_autoptr (GBytes) whole_wav = read_file (wav);
  g_autoptr (GBytes) whole_flac = read_file (flac);
  g_autoptr (GBytes) half_wav =
      g_bytes_new_from_bytes (whole_wav, 0, g_bytes_get_size (whole_wav) / 2);
  g_autoptr (GBytes) half_flac =
      g_bytes_new_from_bytes (whole_flac, 0, g_bytes_get_size (whole_flac) / 2);
  g_autoptr (GBytes) long_body = read_file (long_wav);
  g_autoptr (GBytes) large_body = read_file (large_wav);
  g_autofree char *too_large = g_strdup_printf ("the body has %zu bytes; the limit is %d",
                                                g_bytes_get_size (large_body), MAX_BYTES);
  g_autofree char *too_long =
      g_strdup_printf ("the audio is longer than %d.0 s, the longest a prompt may be", MAX_S);

  g_assert_cmpuint (g_bytes_get_size (large_body), >, MAX_BYTES);
  g_assert_cmpuint (g_bytes_get_size (long_body), <, MAX_BYTES);
  assert_refused (empty, 422, "the file is empty: send the audio file as the request body");
  assert_refused (text, 415,
                  "the file is not audio of a kind taken (WAV, Ogg (Opus or Vorbis), MP3 or FLAC)");
  assert_refused (png, 415,
                  "the file is image/png, not audio of a kind taken (WAV, Ogg (Opus or Vorbis), "
                  "MP3 or FLAC)");
  /* a WAV and a FLAC file cut in half say how long they should be */
  assert_refused (half_wav, 422,
                  "the file is cut short: it says it holds 2.0 s of audio, but only 1.0 s are "
                  "there");
  assert_refused (half_flac, 422, NULL);
  assert_refused (long_body, 422, too_long);
  assert_refused (large_body, 413, too_large);

  /* a name is required; agents upload nothing */
  {
    g_autoptr (JsonObject) problem = NULL;
    g_assert_cmpuint (api (admin_token, "POST", "prompts", "audio/wav", whole_wav, &problem), ==,
                      422);
    g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                     "name: required, as a query parameter (POST …/prompts?name=greeting with the "
                     "audio file as the body)");
    g_assert_cmpuint (api (agent_token, "POST", "prompts?name=mine", "audio/wav", whole_wav, NULL),
                      ==, 403);
  }
}

/* A prompt a live flow plays stays until the flow no longer does. */
static void
test_delete (void)
{
  g_autofree char *wav = make_audio ("wav", 880, 1.0, 16000);
  g_autoptr (GBytes) body = read_file (wav);
  g_autofree char *path = upload_path ("beep");
  g_autoptr (JsonObject) prompt = NULL;
  g_autoptr (JsonObject) flow = NULL;
  g_autoptr (JsonObject) problem = NULL;
  g_autoptr (JsonObject) got = NULL;
  g_autofree char *prompt_path = NULL;
  g_autofree char *flow_path = NULL;
  g_autofree char *publish_path = NULL;
  guint files_before;

  g_assert_cmpuint (api (admin_token, "POST", path, "audio/wav", body, &prompt), ==, 201);
  prompt_path = g_strdup_printf ("prompts/%s", json_object_get_string_member (prompt, "id"));
  {
    g_autofree char *json = g_strdup_printf (
        "{\"name\":\"Beeper\",\"flow\":{\"start\":\"p\",\"nodes\":[{\"id\":\"p\",\"type\":"
        "\"play\",\"prompt_id\":\"%s\",\"next\":\"bye\"},{\"id\":\"bye\",\"type\":\"hangup\"}]}}",
        json_object_get_string_member (prompt, "id"));
    g_autoptr (GBytes) flow_body = g_bytes_new (json, strlen (json));

    g_assert_cmpuint (api (admin_token, "POST", "ivr-flows", "application/json", flow_body, &flow),
                      ==, 201);
  }
  flow_path = g_strdup_printf ("ivr-flows/%s", json_object_get_string_member (flow, "id"));
  publish_path = g_strdup_printf ("%s/publish", flow_path);
  g_assert_cmpuint (api (admin_token, "POST", publish_path, NULL, NULL, NULL), ==, 200);
  g_assert_cmpuint (api (admin_token, "GET", prompt_path, NULL, NULL, &got), ==, 200);
  g_assert_cmpstr (json_array_get_string_element (json_object_get_array_member (got, "used_by"), 0),
                   ==, "Beeper");

  g_assert_cmpuint (api (admin_token, "DELETE", prompt_path, NULL, NULL, &problem), ==, 409);
  g_assert_cmpstr (json_object_get_string_member (problem, "detail"), ==,
                   "live IVR flows play this prompt: Beeper (publish them without it first)");
  g_assert_cmpuint (api (admin_token, "DELETE", flow_path, NULL, NULL, NULL), ==, 204);
  files_before = count_files ();
  g_assert_cmpuint (api (admin_token, "DELETE", prompt_path, NULL, NULL, NULL), ==, 204);
  g_assert_cmpuint (api (admin_token, "GET", prompt_path, NULL, NULL, NULL), ==, 404);
  {
    g_autofree char *audio_path = g_strdup_printf ("%s/audio", prompt_path);
    g_assert_cmpuint (api (admin_token, "GET", audio_path, NULL, NULL, NULL), ==, 404);
  }
  g_assert_cmpuint (api (admin_token, "DELETE", prompt_path, NULL, NULL, NULL), ==, 404);
  /* and its file goes */
  for (int tries = 0; tries < 100 && count_files () == files_before; tries++)
    cd_test_sleep (20);
  g_assert_cmpuint (count_files (), ==, files_before - 1);
}

int
main (int argc, char **argv)
{
  const char *env[] = { "CALLDOCKER_IVR_MAX_PROMPT_S=3", "CALLDOCKER_IVR_MAX_PROMPT_BYTES=200000",
                        NULL };
  int status;

  g_test_init (&argc, &argv, NULL);
  gst_init (NULL, NULL);
  state = cd_test_make_tmp_dir ("cd-api-prompts-XXXXXX");
  files = g_build_filename (state, "audio", NULL);
  g_assert_cmpint (g_mkdir (files, 0700), ==, 0);
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  company = cd_test_seed_company (state, "shop", "https://shop.test", 1, PASSWORD);
  admin_token = cd_test_login (daemon_proc->base_url, "admin@shop.test", PASSWORD);
  agent_token = cd_test_login (daemon_proc->base_url, "agent1@shop.test", PASSWORD);
  g_test_add_func ("/api-prompts/kinds", test_kinds);
  g_test_add_func ("/api-prompts/refusals", test_refusals);
  g_test_add_func ("/api-prompts/delete", test_delete);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (files);
  g_free (company);
  g_free (admin_token);
  g_free (agent_token);
  return status;
}
