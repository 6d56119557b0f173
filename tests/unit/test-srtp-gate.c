/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The SRTP gate, against GStreamer's real srtpdec: without it, an RTCP
 * packet that reaches srtpdec while the element is half shut down (its
 * source pads already inactive) raises a GStreamer-CRITICAL; with the gate
 * closed first, packets are dropped before srtpdec and nothing is raised.
 * While open, the gate lets packets through. */

#include "cd-srtp-gate.h"

#include "cd-test-harness.h"

#include <string.h>

#define SSRC 0x11223344u

typedef struct {
  GstElement *pipeline;
  GstElement *dec;
  GstPad *feed;  /* ours, linked to srtpdec's rtp_sink */
  GstPad *heard; /* ours, linked from srtpdec's rtp_src */
  gint received;
} Fixture;

static GstFlowReturn
on_heard (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  Fixture *f = g_object_get_data (G_OBJECT (pad), "fixture");

  g_atomic_int_inc (&f->received);
  gst_buffer_unref (buffer);
  return GST_FLOW_OK;
}

static GstBuffer *
make_key (void)
{
  guint8 key[30]; /* AES-128 counter mode: 16 bytes of key, 14 of salt */

  for (gsize i = 0; i < sizeof key; i++)
    key[i] = (guint8) (i * 37 + 11);
  return gst_buffer_new_memdup (key, sizeof key);
}

/* the stream as srtpdec learns it from its sink caps (webrtcbin passes
 * DTLS's keys the same way): GStreamer's default SRTP profile */
static GstCaps *
srtp_caps (void)
{
  g_autoptr (GstBuffer) key = make_key ();

  return gst_caps_new_simple (
      "application/x-srtp", "ssrc", G_TYPE_UINT, SSRC, "srtp-key", GST_TYPE_BUFFER, key,
      "srtp-cipher", G_TYPE_STRING, "aes-128-icm", "srtp-auth", G_TYPE_STRING, "hmac-sha1-80",
      "srtcp-cipher", G_TYPE_STRING, "aes-128-icm", "srtcp-auth", G_TYPE_STRING, "hmac-sha1-80",
      "payload", G_TYPE_INT, 111, "clock-rate", G_TYPE_INT, 48000, "encoding-name", G_TYPE_STRING,
      "OPUS", "media", G_TYPE_STRING, "audio", NULL);
}

static GstFlowReturn
on_protected (GstPad *pad, GstObject *parent, GstBuffer *buffer)
{
  GQueue *out = g_object_get_data (G_OBJECT (pad), "out");

  g_queue_push_tail (out, buffer);
  return GST_FLOW_OK;
}

/* protects @plain with GStreamer's srtpenc and the same key: real SRTP or
 * SRTCP packets, so srtpdec decodes them as it would a peer's */
static GstBuffer *
protect (GstBuffer *plain, gboolean rtcp)
{
  static GstElement *enc;
  static GstPad *feed[2];
  static GQueue out = G_QUEUE_INIT;
  int k = rtcp ? 1 : 0;
  GstBuffer *result;

  if (enc == NULL) {
    g_autoptr (GstBuffer) key = make_key ();

    enc = gst_element_factory_make ("srtpenc", NULL);
    g_assert_nonnull (enc);
    g_object_set (enc, "key", key, NULL);
    g_assert_cmpint (gst_element_set_state (enc, GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);
    for (int i = 0; i < 2; i++) {
      g_autoptr (GstPad) sink =
          gst_element_request_pad_simple (enc, i ? "rtcp_sink_0" : "rtp_sink_0");
      g_autoptr (GstPad) src = gst_element_get_static_pad (enc, i ? "rtcp_src_0" : "rtp_src_0");
      GstPad *collect = gst_pad_new (NULL, GST_PAD_SINK);
      g_autoptr (GstCaps) caps = NULL;
      GstSegment segment;

      g_assert_nonnull (sink);
      g_assert_nonnull (src);
      g_object_set_data (G_OBJECT (collect), "out", &out);
      gst_pad_set_chain_function (collect, on_protected);
      gst_pad_set_active (collect, TRUE);
      g_assert_cmpint (gst_pad_link (src, collect), ==, GST_PAD_LINK_OK);
      feed[i] = gst_pad_new (NULL, GST_PAD_SRC);
      gst_pad_set_active (feed[i], TRUE);
      g_assert_cmpint (gst_pad_link (feed[i], sink), ==, GST_PAD_LINK_OK);
      caps = i ? gst_caps_new_empty_simple ("application/x-rtcp")
               : gst_caps_new_simple ("application/x-rtp", "ssrc", G_TYPE_UINT, SSRC, "payload",
                                      G_TYPE_INT, 111, "clock-rate", G_TYPE_INT, 48000,
                                      "encoding-name", G_TYPE_STRING, "OPUS", "media",
                                      G_TYPE_STRING, "audio", NULL);
      gst_pad_push_event (feed[i], gst_event_new_stream_start (i ? "enc-rtcp" : "enc-rtp"));
      gst_pad_push_event (feed[i], gst_event_new_caps (caps));
      gst_segment_init (&segment, GST_FORMAT_TIME);
      gst_pad_push_event (feed[i], gst_event_new_segment (&segment));
    }
  }
  g_assert_cmpint (gst_pad_push (feed[k], plain), ==, GST_FLOW_OK);
  result = g_queue_pop_head (&out);
  g_assert_nonnull (result);
  g_assert_cmpuint (gst_buffer_get_size (result), >, 12);
  return result;
}

/* each test's srtpdec is new, the encoder is not: it must never protect
 * the same packet twice, so packets are made once and handed out again */
static GstBuffer *made_rtp[16];
static GstBuffer *made_rtcp;

static GstBuffer *
rtp_packet (guint16 seq)
{
  g_assert_cmpuint (seq, <, G_N_ELEMENTS (made_rtp));
  if (made_rtp[seq] == NULL) {
    guint8 p[12 + 4] = { 0x80, 111, seq >> 8, seq & 0xff, 0, 0, 0, 0 };

    p[8] = SSRC >> 24, p[9] = (SSRC >> 16) & 0xff, p[10] = (SSRC >> 8) & 0xff, p[11] = SSRC & 0xff;
    memset (p + 12, 0xab, 4);
    made_rtp[seq] = protect (gst_buffer_new_memdup (p, sizeof p), FALSE);
  }
  return gst_buffer_copy_deep (made_rtp[seq]);
}

/* a receiver report without report blocks */
static GstBuffer *
srtcp_packet (void)
{
  if (made_rtcp == NULL) {
    guint8 p[8] = { 0x80, 201, 0, 1 };

    p[4] = SSRC >> 24, p[5] = (SSRC >> 16) & 0xff, p[6] = (SSRC >> 8) & 0xff, p[7] = SSRC & 0xff;
    made_rtcp = protect (gst_buffer_new_memdup (p, sizeof p), TRUE);
  }
  return gst_buffer_copy_deep (made_rtcp);
}

static void
fixture_start (Fixture *f, gboolean gate_first)
{
  g_autoptr (GstPad) sink = NULL;
  g_autoptr (GstPad) src = NULL;
  g_autoptr (GstCaps) caps = srtp_caps ();
  GstSegment segment;

  f->pipeline = gst_pipeline_new (NULL);
  f->dec = gst_element_factory_make ("srtpdec", NULL);
  g_assert_nonnull (f->dec);
  /* both ways of meeting an srtpdec: added later, or already there */
  if (gate_first)
    cd_srtp_gate_install (GST_BIN (f->pipeline));
  gst_bin_add (GST_BIN (f->pipeline), f->dec);
  if (!gate_first)
    cd_srtp_gate_install (GST_BIN (f->pipeline));

  f->feed = gst_pad_new ("feed", GST_PAD_SRC);
  f->heard = gst_pad_new ("heard", GST_PAD_SINK);
  g_object_set_data (G_OBJECT (f->heard), "fixture", f);
  gst_pad_set_chain_function (f->heard, on_heard);
  sink = gst_element_get_static_pad (f->dec, "rtp_sink");
  src = gst_element_get_static_pad (f->dec, "rtp_src");
  g_assert_cmpint (gst_pad_link (f->feed, sink), ==, GST_PAD_LINK_OK);
  g_assert_cmpint (gst_pad_link (src, f->heard), ==, GST_PAD_LINK_OK);
  gst_pad_set_active (f->feed, TRUE);
  gst_pad_set_active (f->heard, TRUE);
  g_assert_cmpint (gst_element_set_state (f->pipeline, GST_STATE_PLAYING), ==,
                   GST_STATE_CHANGE_SUCCESS);

  g_assert_true (gst_pad_push_event (f->feed, gst_event_new_stream_start ("srtp-gate-test")));
  g_assert_true (gst_pad_push_event (f->feed, gst_event_new_caps (caps)));
  gst_segment_init (&segment, GST_FORMAT_TIME);
  g_assert_true (gst_pad_push_event (f->feed, gst_event_new_segment (&segment)));

  /* the first packet goes through and gives rtp_src its sticky events */
  g_assert_cmpint (gst_pad_push (f->feed, rtp_packet (1)), ==, GST_FLOW_OK);
  g_assert_cmpint (g_atomic_int_get (&f->received), ==, 1);
}

/* what a pipeline going to NULL does to srtpdec before its sink pads */
static void
deactivate_sources (Fixture *f)
{
  g_autoptr (GstPad) rtp_src = gst_element_get_static_pad (f->dec, "rtp_src");
  g_autoptr (GstPad) rtcp_src = gst_element_get_static_pad (f->dec, "rtcp_src");

  gst_pad_set_active (rtp_src, FALSE);
  gst_pad_set_active (rtcp_src, FALSE);
}

static void
fixture_stop (Fixture *f)
{
  gst_element_set_state (f->pipeline, GST_STATE_NULL);
  gst_pad_set_active (f->feed, FALSE);
  gst_pad_set_active (f->heard, FALSE);
  gst_object_unref (f->feed);
  gst_object_unref (f->heard);
  gst_object_unref (f->pipeline);
}

/* run in a subprocess: the critical is fatal in a test */
static void
test_ungated_critical (void)
{
  if (g_test_subprocess ()) {
    Fixture f = { 0 };

    fixture_start (&f, TRUE);
    deactivate_sources (&f);
    /* never closed: srtpdec decodes the RTCP packet and trips */
    gst_pad_push (f.feed, srtcp_packet ());
    fixture_stop (&f);
    return;
  }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*GStreamer-CRITICAL*numsinkpads*");
}

static void
check_gate_closed (gboolean gate_first)
{
  Fixture f = { 0 };

  fixture_start (&f, gate_first);
  cd_srtp_gate_close (GST_BIN (f.pipeline));
  deactivate_sources (&f);
  /* dropped before srtpdec: upstream sees OK, nothing is raised (a
   * critical would end this test) */
  g_assert_cmpint (gst_pad_push (f.feed, srtcp_packet ()), ==, GST_FLOW_OK);
  g_assert_cmpint (gst_pad_push (f.feed, rtp_packet (2)), ==, GST_FLOW_OK);
  g_assert_cmpint (g_atomic_int_get (&f.received), ==, 1);
  fixture_stop (&f);
}

static void
test_closed_drops_added_later (void)
{
  check_gate_closed (TRUE);
}

static void
test_closed_drops_already_there (void)
{
  check_gate_closed (FALSE);
}

static void
test_open_passes (void)
{
  Fixture f = { 0 };

  fixture_start (&f, TRUE);
  for (guint16 seq = 2; seq <= 10; seq++)
    g_assert_cmpint (gst_pad_push (f.feed, rtp_packet (seq)), ==, GST_FLOW_OK);
  g_assert_cmpint (g_atomic_int_get (&f.received), ==, 10);
  fixture_stop (&f);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  if (gst_element_factory_find ("srtpdec") == NULL ||
      gst_element_factory_find ("srtpenc") == NULL) {
    g_printerr ("srtpdec or srtpenc is missing: install gstreamer1.0-plugins-bad\n");
    return 1;
  }
  g_test_add_func ("/srtp-gate/open-passes", test_open_passes);
  g_test_add_func ("/srtp-gate/ungated-critical", test_ungated_critical);
  g_test_add_func ("/srtp-gate/closed-drops-added-later", test_closed_drops_added_later);
  g_test_add_func ("/srtp-gate/closed-drops-already-there", test_closed_drops_already_there);
  return g_test_run ();
}
