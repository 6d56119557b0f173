/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A tee's pad requested while its stream starts, thousands of times over,
 * against GStreamer's real tee: the pad cd_tee_request_pad() makes always
 * carries the stream's stream-start, caps and segment by the time the stream
 * is done, and no buffer reaches it before them (GStreamer would warn).
 * The same run with gst_element_request_pad_simple() alone is measured as
 * well, to show the run does reach the race it guards against. */

#include "cd-tee.h"

#include "cd-test-harness.h"

#include <string.h>

#define ROUNDS 3000

typedef struct {
  GstPad *sink; /* the tee's */
} Stream;

static gint early_data; /* GStreamer's "Got data flow before ..." warnings */
static gint other_warnings;

/* Counted, not fatal: the run without the lock is expected to warn. */
static void
on_log (const char *domain, GLogLevelFlags level, const char *message, gpointer user_data)
{
  if ((level & G_LOG_LEVEL_WARNING) && g_strcmp0 (domain, "GStreamer") == 0 &&
      strstr (message, "Got data flow before")) {
    g_atomic_int_inc (&early_data);
    return;
  }
  if (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL))
    g_atomic_int_inc (&other_warnings);
  g_log_default_handler (domain, level, message, user_data);
}

/* What a call leg's receiver does: a stream's events, then its buffers. */
static gpointer
push_stream (gpointer data)
{
  Stream *s = data;
  GstSegment segment;

  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_pad_send_event (s->sink, gst_event_new_stream_start ("leg"));
  gst_pad_send_event (s->sink, gst_event_new_caps (gst_caps_new_empty_simple ("audio/x-opus")));
  gst_pad_send_event (s->sink, gst_event_new_segment (&segment));
  for (int i = 0; i < 3; i++)
    gst_pad_chain (s->sink, gst_buffer_new_allocate (NULL, 40, NULL));
  return NULL;
}

/* ROUNDS streams, each with one pad requested as it starts; how many of
 * those pads ended without all three sticky events. */
static guint
run (gboolean ours)
{
  guint incomplete = 0;

  for (guint round = 0; round < ROUNDS; round++) {
    g_autoptr (GstElement) pipeline = gst_pipeline_new (NULL);
    GstElement *tee = gst_element_factory_make ("tee", NULL);
    GstElement *fake = gst_element_factory_make ("fakesink", NULL);
    g_autoptr (GstPad) src = NULL;
    g_autoptr (GstPad) fake_sink = gst_element_get_static_pad (fake, "sink");
    Stream s;
    GThread *pusher;

    g_object_set (tee, "allow-not-linked", TRUE, NULL);
    g_object_set (fake, "sync", FALSE, "async", FALSE, NULL);
    gst_bin_add_many (GST_BIN (pipeline), tee, fake, NULL);
    s.sink = gst_element_get_static_pad (tee, "sink");
    g_assert_cmpint (gst_element_set_state (pipeline, GST_STATE_PLAYING), !=,
                     GST_STATE_CHANGE_FAILURE);
    pusher = g_thread_new ("stream", push_stream, &s);
    /* a request at a different moment of the stream's start each round */
    for (volatile guint spin = 0; spin < (round % 300) * 20; spin++)
      ;
    src = ours ? cd_tee_request_pad (tee) : gst_element_request_pad_simple (tee, "src_%u");
    g_assert_nonnull (src);
    g_assert_cmpint (gst_pad_link (src, fake_sink), ==, GST_PAD_LINK_OK);
    g_thread_join (pusher);
    for (GstEventType t = GST_EVENT_STREAM_START; t <= GST_EVENT_SEGMENT; t++) {
      g_autoptr (GstEvent) e = NULL;

      if (t != GST_EVENT_STREAM_START && t != GST_EVENT_CAPS && t != GST_EVENT_SEGMENT)
        continue;
      e = gst_pad_get_sticky_event (src, t, 0);
      if (e == NULL) {
        incomplete++;
        break;
      }
    }
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_element_release_request_pad (tee, src);
    gst_object_unref (s.sink);
  }
  return incomplete;
}

static void
test_tee_pad_requested_as_stream_starts (void)
{
  guint plain_incomplete, plain_early, ours_incomplete;

  /* warnings are counted and checked below, not fatal */
  g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_ERROR);
  g_log_set_default_handler (on_log, NULL);

  g_atomic_int_set (&early_data, 0);
  plain_incomplete = run (FALSE);
  plain_early = (guint) g_atomic_int_get (&early_data);
  g_test_message ("gst_element_request_pad_simple alone: %u of %u pads without their stream's "
                  "events, %u warnings of data before them",
                  plain_incomplete, ROUNDS, plain_early);

  g_atomic_int_set (&early_data, 0);
  ours_incomplete = run (TRUE);
  g_test_message ("cd_tee_request_pad: %u of %u pads without their stream's events, %d warnings",
                  ours_incomplete, ROUNDS, g_atomic_int_get (&early_data));
  g_assert_cmpuint (ours_incomplete, ==, 0);
  g_assert_cmpint (g_atomic_int_get (&early_data), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&other_warnings), ==, 0);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tee/pad-requested-as-stream-starts", test_tee_pad_requested_as_stream_starts);
  return g_test_run ();
}
