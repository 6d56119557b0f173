/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Prompt import: the upload's kind from its content (GStreamer's type
 * finders), then appsrc ! decodebin ! audioconvert ! audioresample !
 * S16LE 48 kHz mono ! opusenc ! oggmux ! filesink into a temporary file,
 * renamed into place once the whole file decoded. The pipeline runs and
 * is waited for in a worker thread; the caller's main loop only sees the
 * result. */

#define G_LOG_DOMAIN "calldocker-ivr"

#include "cd-prompt-import.h"

#include <glib/gstdio.h>
#include <gst/app/gstappsrc.h>
#include <gst/base/gsttypefindhelper.h>
#include <gst/gst.h>
#include <string.h>

G_DEFINE_QUARK (calldocker - prompt - error - quark, cd_prompt_error)

#define RATE 48000
/* a declared length longer than what decoded by more than this: cut short */
#define TRUNCATED_SLACK_MS 250
/* a file that takes longer than this to decode is refused as damaged */
#define DECODE_TIMEOUT_S 60

static const char kinds[] = "WAV, Ogg (Opus or Vorbis), MP3 or FLAC";

const char *
cd_prompt_sniff (GBytes *data, GError **error)
{
  gsize size = data ? g_bytes_get_size (data) : 0;
  GstTypeFindProbability probability = GST_TYPE_FIND_NONE;
  g_autoptr (GstCaps) caps = NULL;
  const GstStructure *s;
  const char *name;

  if (size == 0) {
    g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_EMPTY,
                 "the file is empty: send the audio file as the request body");
    return NULL;
  }
  {
    const guint8 *bytes = g_bytes_get_data (data, NULL);
    gsize skip = 0;

    /* an ID3v2 tag (MP3s often begin with one): what follows it tells */
    if (size > 10 && memcmp (bytes, "ID3", 3) == 0 &&
        !((bytes[6] | bytes[7] | bytes[8] | bytes[9]) & 0x80))
      skip = 10 +
             ((gsize) bytes[6] << 21 | (gsize) bytes[7] << 14 | (gsize) bytes[8] << 7 | bytes[9]) +
             (bytes[5] & 0x10 ? 10 : 0);
    if (skip >= size) {
      g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_DAMAGED,
                   "the file holds a tag but no audio after it");
      return NULL;
    }
    caps = gst_type_find_helper_for_data (NULL, bytes + skip, size - skip, &probability);
  }
  if (caps == NULL || gst_caps_is_empty (caps) || gst_caps_is_any (caps)) {
    g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_TYPE,
                 "the file is not audio of a kind taken (%s)", kinds);
    return NULL;
  }
  s = gst_caps_get_structure (caps, 0);
  name = gst_structure_get_name (s);
  if (g_str_equal (name, "audio/x-wav"))
    return "audio/wav";
  if (g_str_equal (name, "audio/x-flac"))
    return "audio/flac";
  if (g_str_equal (name, "application/ogg") || g_str_equal (name, "audio/ogg"))
    return "audio/ogg";
  if (g_str_equal (name, "audio/mpeg") && probability >= GST_TYPE_FIND_LIKELY) {
    int version = 0, layer = 0;

    if (gst_structure_get_int (s, "mpegversion", &version) && version == 1 &&
        gst_structure_get_int (s, "layer", &layer) && layer == 3)
      return "audio/mpeg";
  }
  g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_TYPE,
               "the file is %s, not audio of a kind taken (%s)", name, kinds);
  return NULL;
}

/* ---- the worker ---- */

typedef struct {
  GBytes *data;       /* an upload, or */
  char *text, *voice; /* what espeak says */
  char *dest_path;
  char *tmp_path;
  guint max_ms;
  const char *source_type;
  gint64 frames; /* decoded, counted by the probe (atomic) */
  GstElement *convert;
} Job;

static void
job_free (gpointer data)
{
  Job *job = data;

  g_clear_pointer (&job->data, g_bytes_unref);
  g_free (job->text);
  g_free (job->voice);
  g_free (job->dest_path);
  g_free (job->tmp_path);
  g_free (job);
}

static GstPadProbeReturn
count_frames (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Job *job = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);

  /* S16LE mono: two bytes a frame */
  g_atomic_pointer_add (&job->frames, (gssize) (gst_buffer_get_size (buffer) / 2));
  return GST_PAD_PROBE_OK;
}

static void
on_decoded_pad (GstElement *decodebin, GstPad *pad, gpointer user_data)
{
  Job *job = user_data;
  g_autoptr (GstCaps) caps = gst_pad_get_current_caps (pad);
  g_autoptr (GstPad) sink = gst_element_get_static_pad (job->convert, "sink");

  /* the first audio stream only */
  if (caps &&
      !g_str_has_prefix (gst_structure_get_name (gst_caps_get_structure (caps, 0)), "audio/"))
    return;
  if (!gst_pad_is_linked (sink))
    gst_pad_link (pad, sink);
}

static GstElement *
make (GstElement *pipeline, const char *factory, GError **error)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (e == NULL) {
    g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_FAILED,
                 "the GStreamer element %s is missing (install the GStreamer plugins)", factory);
    return NULL;
  }
  gst_bin_add (GST_BIN (pipeline), e);
  return e;
}

static gint64
frames_to_ms (gint64 frames)
{
  return frames * 1000 / RATE;
}

/* Runs @job's pipeline to its end; the decoded length, or -1 with @error. */
static gint64
decode (Job *job, GCancellable *cancellable, GError **error)
{
  g_autoptr (GstElement) pipeline = gst_pipeline_new ("prompt-import");
  g_autoptr (GstBus) bus = gst_element_get_bus (pipeline);
  g_autoptr (GstCaps) raw =
      gst_caps_new_simple ("audio/x-raw", "format", G_TYPE_STRING, "S16LE", "rate", G_TYPE_INT,
                           RATE, "channels", G_TYPE_INT, 1, NULL);
  g_autoptr (GstPad) probe_pad = NULL;
  GstElement *src, *decodebin, *resample, *filter, *enc, *mux, *sink;
  gint64 deadline = g_get_monotonic_time () + DECODE_TIMEOUT_S * G_USEC_PER_SEC;
  gint64 declared = -1, decoded_ms = -1;

  if (!(src = make (pipeline, job->data ? "appsrc" : "espeak", error)) ||
      !(decodebin = job->data ? make (pipeline, "decodebin", error) : src) ||
      !(job->convert = make (pipeline, "audioconvert", error)) ||
      !(resample = make (pipeline, "audioresample", error)) ||
      !(filter = make (pipeline, "capsfilter", error)) ||
      !(enc = make (pipeline, "opusenc", error)) || !(mux = make (pipeline, "oggmux", error)) ||
      !(sink = make (pipeline, "filesink", error)))
    return -1;
  g_object_set (filter, "caps", raw, NULL);
  g_object_set (enc, "bitrate", 32000, NULL);
  g_object_set (sink, "location", job->tmp_path, NULL);
  if ((job->data && !gst_element_link (src, decodebin)) ||
      (!job->data && !gst_element_link (src, job->convert)) ||
      !gst_element_link_many (job->convert, resample, filter, enc, mux, sink, NULL)) {
    g_set_error_literal (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_FAILED,
                         "the decoding pipeline could not be linked");
    return -1;
  }
  probe_pad = gst_element_get_static_pad (filter, "src");
  gst_pad_add_probe (probe_pad, GST_PAD_PROBE_TYPE_BUFFER, count_frames, job, NULL);
  if (job->data) {
    /* (no size: a parser would take it for the length the file declares) */
    g_object_set (src, "format", GST_FORMAT_BYTES, NULL);
    g_signal_connect (decodebin, "pad-added", G_CALLBACK (on_decoded_pad), job);
    gst_app_src_push_buffer (GST_APP_SRC (src), gst_buffer_new_wrapped_bytes (job->data));
    gst_app_src_end_of_stream (GST_APP_SRC (src));
  } else {
    g_object_set (src, "text", job->text, "voice", job->voice, NULL);
  }

  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error_literal (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_DAMAGED,
                         "the audio does not decode");
    gst_element_set_state (pipeline, GST_STATE_NULL);
    return -1;
  }
  for (;;) {
    g_autoptr (GstMessage) m = gst_bus_timed_pop_filtered (
        bus, 100 * GST_MSECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR | GST_MESSAGE_DURATION_CHANGED);
    gint64 so_far = frames_to_ms (g_atomic_pointer_get (&job->frames));

    if (so_far > job->max_ms) {
      g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_TOO_LONG,
                   "the audio is longer than %.1f s, the longest a prompt may be",
                   job->max_ms / 1000.0);
      break;
    }
    if (g_cancellable_set_error_if_cancelled (cancellable, error))
      break;
    if (g_get_monotonic_time () > deadline) {
      g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_DAMAGED,
                   "the audio did not decode within %d s", DECODE_TIMEOUT_S);
      break;
    }
    if (m == NULL)
      continue;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_DURATION_CHANGED || declared < 0) {
      gint64 d = -1;
      if (gst_element_query_duration (pipeline, GST_FORMAT_TIME, &d) && d > 0)
        declared = d / GST_MSECOND;
    }
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR) {
      g_autoptr (GError) gst_error = NULL;
      gboolean writing = GST_MESSAGE_SRC (m) == GST_OBJECT (sink);

      gst_message_parse_error (m, &gst_error, NULL);
      g_set_error (
          error, CD_PROMPT_ERROR, writing ? CD_PROMPT_ERROR_FAILED : CD_PROMPT_ERROR_DAMAGED,
          writing ? "the decoded prompt could not be written: %s" : "the audio does not decode: %s",
          gst_error->message);
      break;
    }
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS) {
      decoded_ms = frames_to_ms (g_atomic_pointer_get (&job->frames));
      break;
    }
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  if (decoded_ms < 0)
    return -1;
  if (decoded_ms == 0) {
    g_set_error_literal (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_DAMAGED,
                         "the file holds no audio");
    return -1;
  }
  if (decoded_ms > job->max_ms) {
    g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_TOO_LONG,
                 "the audio is longer than %.1f s, the longest a prompt may be",
                 job->max_ms / 1000.0);
    return -1;
  }
  if (declared > decoded_ms + TRUNCATED_SLACK_MS) {
    g_set_error (error, CD_PROMPT_ERROR, CD_PROMPT_ERROR_DAMAGED,
                 "the file is cut short: it says it holds %.1f s of audio, but only %.1f s are "
                 "there",
                 declared / 1000.0, decoded_ms / 1000.0);
    return -1;
  }
  return decoded_ms;
}

static void
import_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Job *job = task_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_path_get_dirname (job->dest_path);
  GStatBuf st;
  gint64 ms;
  CdPromptInfo *info;

  /* an upload's kind, from its content (the type finders read up to a
   * few hundred kilobytes: here, not on the caller's main loop) */
  if (job->data && (job->source_type = cd_prompt_sniff (job->data, &error)) == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (g_mkdir_with_parents (dir, 0700) != 0) {
    int saved = errno;
    g_task_return_new_error (task, CD_PROMPT_ERROR, CD_PROMPT_ERROR_FAILED,
                             "cannot make the folder %s: %s", dir, g_strerror (saved));
    return;
  }
  if (job->text && g_file_test (job->dest_path, G_FILE_TEST_EXISTS)) {
    info = g_new0 (CdPromptInfo, 1);
    info->source_type = job->source_type;
    info->cached = TRUE;
    g_task_return_pointer (task, info, g_free);
    return;
  }
  ms = decode (job, cancellable, &error);
  if (ms < 0 || g_stat (job->tmp_path, &st) != 0 || g_rename (job->tmp_path, job->dest_path) != 0) {
    int saved = errno;

    g_unlink (job->tmp_path);
    if (error)
      g_task_return_error (task, g_steal_pointer (&error));
    else
      g_task_return_new_error (task, CD_PROMPT_ERROR, CD_PROMPT_ERROR_FAILED,
                               "cannot store the decoded prompt at %s: %s", job->dest_path,
                               g_strerror (saved));
    return;
  }
  info = g_new0 (CdPromptInfo, 1);
  info->source_type = job->source_type;
  info->duration_ms = (guint) ms;
  info->size_bytes = (guint64) st.st_size;
  g_task_return_pointer (task, info, g_free);
}

void
cd_prompt_import_async (GBytes *data, const char *dest_path, guint max_ms,
                        GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_autofree char *name = g_uuid_string_random ();
  g_autofree char *dir = g_path_get_dirname (dest_path);
  Job *job;

  g_task_set_source_tag (task, cd_prompt_import_async);
  job = g_new0 (Job, 1);
  job->data = g_bytes_ref (data);
  job->dest_path = g_strdup (dest_path);
  job->tmp_path = g_strdup_printf ("%s/.import-%s.tmp", dir, name);
  job->max_ms = max_ms;
  g_task_set_task_data (task, job, job_free);
  g_task_run_in_thread (task, import_thread);
}

gboolean
cd_prompt_import_finish (GAsyncResult *result, CdPromptInfo *info, GError **error)
{
  g_autofree CdPromptInfo *got = g_task_propagate_pointer (G_TASK (result), error);

  if (got == NULL)
    return FALSE;
  *info = *got;
  return TRUE;
}

void
cd_prompt_speak_async (const char *text, const char *voice, const char *dest_path, guint max_ms,
                       GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_autofree char *name = g_uuid_string_random ();
  g_autofree char *dir = g_path_get_dirname (dest_path);
  Job *job = g_new0 (Job, 1);

  g_task_set_source_tag (task, cd_prompt_speak_async);
  job->text = g_strdup (text);
  job->voice = g_strdup (voice);
  job->dest_path = g_strdup (dest_path);
  job->tmp_path = g_strdup_printf ("%s/.speak-%s.tmp", dir, name);
  job->max_ms = max_ms;
  job->source_type = "text/plain";
  g_task_set_task_data (task, job, job_free);
  g_task_run_in_thread (task, import_thread);
}
