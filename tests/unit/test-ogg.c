/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Ogg page scanning against files GStreamer's oggmux writes: a whole file
 * is all whole pages and lasts what was encoded; a file cut anywhere is
 * good up to its last whole page, which still decodes to what the scan
 * says; a damaged page ends the good part; anything else is no Ogg. */

#include "cd-ogg.h"
#include "cd-test-harness.h"
#include "cd-test-media.h"

#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <string.h>

/* @seconds of a tone; its timestamps starting at @start_s, as a live
 * stream's do (the granule positions then do not start at 0) */
static GBytes *
encode_from (double seconds, double start_s)
{
  g_autofree char *description = g_strdup_printf (
      "audiotestsrc freq=440 num-buffers=%d samplesperbuffer=960 timestamp-offset=%" G_GINT64_FORMAT
      " ! audio/x-raw,rate=48000,channels=2 ! opusenc ! oggmux max-delay=200000000 "
      "max-page-delay=200000000 ! appsink name=out sync=false",
      (int) (seconds * 50), (gint64) (start_s * GST_SECOND));
  g_autoptr (GError) error = NULL;
  g_autoptr (GstElement) pipeline = gst_parse_launch (description, &error);
  g_autoptr (GstElement) out = NULL;
  g_autoptr (GByteArray) file = g_byte_array_new ();

  g_assert_no_error (error);
  out = gst_bin_get_by_name (GST_BIN (pipeline), "out");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  for (;;) {
    g_autoptr (GstSample) sample =
        gst_app_sink_try_pull_sample (GST_APP_SINK (out), 10 * GST_SECOND);
    GstMapInfo map;

    if (sample == NULL)
      break;
    gst_buffer_map (gst_sample_get_buffer (sample), &map, GST_MAP_READ);
    g_byte_array_append (file, map.data, map.size);
    gst_buffer_unmap (gst_sample_get_buffer (sample), &map);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return g_byte_array_free_to_bytes (g_steal_pointer (&file));
}

static GBytes *
encode (double seconds)
{
  return encode_from (seconds, 0);
}

static void
test_whole_file (void)
{
  g_autoptr (GBytes) ogg = encode (3.0);
  CdOggScan scan;

  g_assert_true (cd_ogg_scan (g_bytes_get_data (ogg, NULL), g_bytes_get_size (ogg), &scan));
  g_assert_cmpuint (scan.whole_bytes, ==, g_bytes_get_size (ogg));
  g_assert_true (scan.ends_stream);
  g_assert_cmpuint (scan.pre_skip, >, 0);
  g_test_message ("%u pages, %u ms, pre-skip %u", scan.pages, cd_ogg_opus_ms (&scan),
                  scan.pre_skip);
  g_assert_cmpint (ABS ((int) cd_ogg_opus_ms (&scan) - 3000), <=, 20);
}

/* A stream whose audio starts 3 s into its timeline still lasts what it
 * holds. */
static void
test_late_start (void)
{
  g_autoptr (GBytes) ogg = encode_from (2.0, 3.0);
  g_autofree gint16 *pcm = NULL;
  gsize frames = 0;
  CdOggScan scan;

  g_assert_true (cd_ogg_scan (g_bytes_get_data (ogg, NULL), g_bytes_get_size (ogg), &scan));
  pcm = cd_test_decode_ogg (ogg, 2, &frames);
  g_test_message ("starts at granule %" G_GINT64_FORMAT ", ends at %" G_GINT64_FORMAT ": %u ms; "
                  "decodes to %" G_GSIZE_FORMAT " ms",
                  scan.start_granule, scan.last_granule, cd_ogg_opus_ms (&scan), frames / 48);
  g_assert_cmpint (scan.start_granule, >, 0);
  g_assert_cmpint (ABS ((int) cd_ogg_opus_ms (&scan) - 2000), <=, 20);
  g_assert_cmpint (ABS ((gint64) (frames / 48) - (gint64) cd_ogg_opus_ms (&scan)), <=, 30);
}

static void
test_cut_anywhere (void)
{
  g_autoptr (GBytes) ogg = encode (3.0);
  gsize size = g_bytes_get_size (ogg);
  const guint8 *data = g_bytes_get_data (ogg, NULL);
  guint last_ms = 0;

  for (gsize cut = size / 5; cut < size; cut += size / 5 + 77) {
    CdOggScan scan;
    g_autoptr (GBytes) good = NULL;
    g_autofree gint16 *pcm = NULL;
    gsize frames = 0;
    guint ms;

    g_assert_true (cd_ogg_scan (data, cut, &scan));
    g_assert_cmpuint (scan.whole_bytes, <=, cut);
    g_assert_false (scan.ends_stream);
    ms = cd_ogg_opus_ms (&scan);
    g_assert_cmpuint (ms, >=, last_ms);
    last_ms = ms;
    /* what the scan keeps decodes to what it says */
    good = g_bytes_new (data, scan.whole_bytes);
    pcm = cd_test_decode_ogg (good, 2, &frames);
    g_test_message ("cut at %" G_GSIZE_FORMAT ": %" G_GSIZE_FORMAT
                    " bytes whole, %u ms, decodes to "
                    "%" G_GSIZE_FORMAT " ms",
                    cut, scan.whole_bytes, ms, frames / 48);
    g_assert_cmpint (ABS ((gint64) (frames / 48) - (gint64) ms), <=, 30);
  }
  g_assert_cmpuint (last_ms, >, 1500);
}

static void
test_damaged_page (void)
{
  g_autoptr (GBytes) ogg = encode (3.0);
  gsize size = g_bytes_get_size (ogg);
  g_autofree guint8 *copy = g_memdup2 (g_bytes_get_data (ogg, NULL), size);
  CdOggScan whole, damaged;

  g_assert_true (cd_ogg_scan (copy, size, &whole));
  copy[size / 2] ^= 0x10;
  g_assert_true (cd_ogg_scan (copy, size, &damaged));
  g_assert_cmpuint (damaged.whole_bytes, <=, size / 2);
  g_assert_cmpuint (damaged.pages, <, whole.pages);
}

static void
test_not_ogg (void)
{
  CdOggScan scan;
  /* the last: a page header of Ogg version 1, which is no Ogg */
  static const char version_1[27] = "OggS\1";
  const char *not_ogg[] = { "", "OggS", "RIFF....WAVEfmt ", version_1 };

  for (gsize i = 0; i < G_N_ELEMENTS (not_ogg); i++) {
    gsize n = i == 3 ? 27 : strlen (not_ogg[i]);

    g_assert_false (cd_ogg_scan ((const guint8 *) not_ogg[i], n, &scan));
    g_assert_cmpuint (scan.whole_bytes, ==, 0);
    g_assert_cmpuint (cd_ogg_opus_ms (&scan), ==, 0);
  }
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ogg/whole-file", test_whole_file);
  g_test_add_func ("/ogg/late-start", test_late_start);
  g_test_add_func ("/ogg/cut-anywhere", test_cut_anywhere);
  g_test_add_func ("/ogg/damaged-page", test_damaged_page);
  g_test_add_func ("/ogg/not-ogg", test_not_ogg);
  return g_test_run ();
}
