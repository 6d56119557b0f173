/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Media helpers for tests (see cd-test-media.h). */

#include "cd-test-media.h"

#include "cd-audio.h"
#include "store/cd-seal.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

gint16 *
cd_test_decode_ogg (GBytes *ogg, guint channels, gsize *frames)
{
  g_autofree char *description =
      g_strdup_printf ("appsrc name=in ! oggdemux ! opusdec ! audioconvert ! audioresample ! "
                       "audio/x-raw,format=S16LE,rate=48000,channels=%u,layout=interleaved ! "
                       "appsink name=out sync=false",
                       channels);
  g_autoptr (GError) error = NULL;
  g_autoptr (GstElement) pipeline = gst_parse_launch (description, &error);
  g_autoptr (GstElement) in = NULL;
  g_autoptr (GstElement) out = NULL;
  g_autoptr (GByteArray) pcm = g_byte_array_new ();

  g_assert_no_error (error);
  in = gst_bin_get_by_name (GST_BIN (pipeline), "in");
  out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  gst_app_src_push_buffer (GST_APP_SRC (in), gst_buffer_new_wrapped_bytes (ogg));
  gst_app_src_end_of_stream (GST_APP_SRC (in));
  for (;;) {
    g_autoptr (GstSample) sample =
        gst_app_sink_try_pull_sample (GST_APP_SINK (out), 30 * GST_SECOND);
    GstBuffer *buffer;
    GstMapInfo map;

    if (sample == NULL)
      break;
    buffer = gst_sample_get_buffer (sample);
    gst_buffer_map (buffer, &map, GST_MAP_READ);
    g_byte_array_append (pcm, map.data, map.size);
    gst_buffer_unmap (buffer, &map);
  }
  g_assert_true (gst_app_sink_is_eos (GST_APP_SINK (out)));
  {
    g_autoptr (GstBus) bus = gst_element_get_bus (pipeline);
    g_autoptr (GstMessage) m = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);

    if (m) {
      g_autoptr (GError) failed = NULL;

      gst_message_parse_error (m, &failed, NULL);
      g_error ("the recording does not decode: %s", failed->message);
    }
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  *frames = pcm->len / (2 * channels);
  return (gint16 *) g_byte_array_free (g_steal_pointer (&pcm), FALSE);
}

GBytes *
cd_test_unseal (GBytes *sealed, const guint8 *key, const char *company, guint32 key_version,
                GError **error)
{
  g_autoptr (CdUnsealer) unsealer = cd_unsealer_new (key, company, key_version);
  g_autoptr (GInputStream) source = g_memory_input_stream_new_from_bytes (sealed);
  g_autoptr (GInputStream) opening = g_converter_input_stream_new (source, G_CONVERTER (unsealer));
  g_autoptr (GOutputStream) plain = g_memory_output_stream_new_resizable ();

  g_output_stream_splice (plain, opening, G_OUTPUT_STREAM_SPLICE_NONE, NULL, error);
  g_output_stream_close (plain, NULL, NULL);
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (plain));
}

char *
cd_test_seconds_of (const gint16 *pcm, gsize frames, guint channels, guint channel)
{
  GString *s = g_string_new (NULL);
  g_autofree gint16 *mono = g_new (gint16, 48000);

  for (gsize at = 0; at + 48000 <= frames; at += 48000) {
    g_autoptr (CdToneDetector) d = cd_tone_detector_new (48000, 100, 100, 2000, 10);
    double hz;

    for (gsize i = 0; i < 48000; i++)
      mono[i] = pcm[(at + i) * channels + channel];
    cd_tone_detector_feed (d, mono, 48000);
    hz = cd_tone_detector_get_dominant_frequency (d, 0.01);
    g_string_append_printf (s, "%s%.0f", s->len ? " " : "", hz);
  }
  return g_string_free (s, FALSE);
}
