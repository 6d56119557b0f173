/* SPDX-License-Identifier: GPL-3.0-or-later */
/* cdsealsink against real GStreamer: 2 s of 440 Hz through opusenc and
 * oggmux come out of the sealed file as 2 s of 440 Hz; a writer killed
 * mid-stream leaves a file that opens up to its last chunk and decodes to
 * within a second of the kill; a file that cannot be made, or a full disk,
 * is told in a message while the stream goes on to its end. */

#include "cd-test-harness.h"
#include "cd-test-media.h"
#include "cdseal/gstcdsealsink.h"
#include "store/cd-seal.h"

#include <gst/gst.h>
#include <math.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>

#define COMPANY "b0c2f7e5-a594-4b7e-9d53-2f1d0a9c1e11"

static guint8 key[CD_SEAL_KEY_BYTES];
static char *dir;

/* Writes @seconds of 440 Hz (live when @live) sealed to @path; the element
 * messages seen, as "done" or "failed: REASON". */
static char *
write_tone (const char *path, double seconds, gboolean live, gboolean die_midway)
{
  g_autofree char *description = g_strdup_printf (
      "audiotestsrc freq=440 volume=0.5 is-live=%s num-buffers=%d samplesperbuffer=960 ! "
      "audio/x-raw,rate=48000,channels=1 ! opusenc ! oggmux max-delay=200000000 "
      "max-page-delay=200000000 ! cdsealsink name=sink flush-interval=200000000",
      live ? "true" : "false", (int) (seconds * 50));
  g_autoptr (GError) error = NULL;
  g_autoptr (GstElement) pipeline = gst_parse_launch (description, &error);
  g_autoptr (GstElement) sink = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GBytes) k = g_bytes_new (key, sizeof key);
  GString *seen = g_string_new (NULL);
  gint64 started = g_get_monotonic_time ();

  g_assert_no_error (error);
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "location", path, "key", k, "company", COMPANY, "key-version", 2, NULL);
  bus = gst_element_get_bus (pipeline);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  for (;;) {
    g_autoptr (GstMessage) m = gst_bus_timed_pop (bus, 100 * GST_MSECOND);

    if (die_midway && g_get_monotonic_time () - started > seconds * G_USEC_PER_SEC / 2) {
      /* what a crash does: no end, no stop, no close */
      raise (SIGKILL);
    }
    if (m == NULL)
      continue;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS)
      break;
    g_assert_cmpint (GST_MESSAGE_TYPE (m), !=, GST_MESSAGE_ERROR);
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ELEMENT) {
      const GstStructure *s = gst_message_get_structure (m);

      if (gst_structure_has_name (s, "cd-seal-done"))
        g_string_append (seen, "done");
      if (gst_structure_has_name (s, "cd-seal-failed"))
        g_string_append_printf (seen, "failed: %s", gst_structure_get_string (s, "reason"));
    }
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  return g_string_free (seen, FALSE);
}

static GBytes *
read_file (const char *path)
{
  g_autofree char *data = NULL;
  gsize n = 0;

  g_assert_true (g_file_get_contents (path, &data, &n, NULL));
  return g_bytes_new_take (g_steal_pointer (&data), n);
}

static void
test_whole (void)
{
  g_autofree char *path = g_build_filename (dir, "whole.sealed", NULL);
  g_autofree char *seen = write_tone (path, 2.0, FALSE, FALSE);
  g_autoptr (GBytes) sealed = NULL;
  g_autoptr (GBytes) ogg = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree gint16 *pcm = NULL;
  g_autofree char *seconds = NULL;
  gsize frames = 0;

  g_assert_cmpstr (seen, ==, "done");
  sealed = read_file (path);
  /* no Ogg page in the clear */
  g_assert_null (g_strstr_len (g_bytes_get_data (sealed, NULL), g_bytes_get_size (sealed), "OggS"));
  ogg = cd_test_unseal (sealed, key, COMPANY, 2, &error);
  g_assert_no_error (error);
  pcm = cd_test_decode_ogg (ogg, 1, &frames);
  seconds = cd_test_seconds_of (pcm, frames, 1, 0);
  g_test_message ("%.3f s decoded: %s", frames / 48000.0, seconds);
  g_assert_cmpfloat (fabs (frames / 48000.0 - 2.0), <, 0.05);
  g_assert_cmpstr (seconds, ==, "440 440");
}

/* The writer dies 1.5 s into 3 s of live audio. */
static void
test_killed_midway (void)
{
  g_autofree char *path = g_build_filename (dir, "killed.sealed", NULL);

  if (g_test_subprocess ()) {
    write_tone (path, 3.0, TRUE, TRUE);
    return;
  }
  g_test_trap_subprocess (NULL, 20 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  {
    g_autoptr (GBytes) sealed = read_file (path);
    g_autoptr (GBytes) ogg = NULL;
    g_autoptr (GError) error = NULL;
    g_autofree gint16 *pcm = NULL;
    gsize frames = 0;

    ogg = cd_test_unseal (sealed, key, COMPANY, 2, &error);
    g_assert_error (error, CD_SEAL_ERROR, CD_SEAL_ERROR_TRUNCATED);
    g_test_message ("killed at 1.5 s: %s", error->message);
    pcm = cd_test_decode_ogg (ogg, 1, &frames);
    g_test_message ("decodes to %.3f s", frames / 48000.0);
    g_assert_cmpfloat (frames / 48000.0, >, 0.5);
    g_assert_cmpfloat (frames / 48000.0, <=, 1.6);
  }
}

static void
test_cannot_create (void)
{
  g_autofree char *path = g_build_filename (dir, "no-such-folder", "x.sealed", NULL);
  g_autofree char *seen = write_tone (path, 0.5, FALSE, FALSE);

  g_test_message ("%s", seen);
  g_assert_true (g_str_has_prefix (seen, "failed: cannot create "));
  g_assert_nonnull (strstr (seen, "No such file or directory"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
}

/* /dev/full: every write fails as on a full disk. */
static void
test_disk_full (void)
{
  g_autofree char *seen = NULL;

  if (!g_file_test ("/dev/full", G_FILE_TEST_EXISTS)) {
    g_test_skip ("no /dev/full here");
    return;
  }
  seen = write_tone ("/dev/full", 0.5, FALSE, FALSE);
  g_test_message ("%s", seen);
  g_assert_cmpstr (seen, ==, "failed: cannot write /dev/full: No space left on device");
}

int
main (int argc, char **argv)
{
  int status;

  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  cd_plugins_register ();
  for (gsize i = 0; i < sizeof key; i++)
    key[i] = (guint8) (255 - i);
  dir = g_strdup (g_getenv ("CD_SEAL_SINK_DIR"));
  if (dir == NULL) {
    dir = cd_test_make_tmp_dir ("seal-sink-XXXXXX");
    g_setenv ("CD_SEAL_SINK_DIR", dir, TRUE); /* for the subprocess */
  }
  g_test_add_func ("/seal-sink/whole", test_whole);
  g_test_add_func ("/seal-sink/killed-midway", test_killed_midway);
  g_test_add_func ("/seal-sink/cannot-create", test_cannot_create);
  g_test_add_func ("/seal-sink/disk-full", test_disk_full);
  status = g_test_run ();
  if (!g_test_subprocess ())
    cd_test_remove_tree (dir);
  g_free (dir);
  return status;
}
