/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdPeer: signs in (widget session or agent login), speaks the signaling
 * protocol, offers one webrtcbin leg per call and listens with a tone detector. */

#define G_LOG_DOMAIN "calldocker-peer"
#define GST_USE_UNSTABLE_API

#include "cd-peer.h"

#include "cd-audio.h"
#include "cd-process.h"
#include "cd-srtp-gate.h"

#include <gst/app/app.h>
#include <gst/gst.h>
#include <gst/rtp/rtp.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <glib-unix.h>
#include <libsoup/soup.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#define OPUS_PT  111
#define EVENT_PT 101

/* What the RTP probe thread and the main thread share. */
typedef struct {
  GMutex lock;
  GString *pending; /* digits to send */
  int digit;        /* -1: none being sent */
  guint32 start_ts;
  guint packets;
  guint gap;
  guint sent;
  /* --press-inband: digits played as tones in the audio sent */
  GString *inband;
  int inband_digit;      /* -1: none */
  gint64 silent_from_us; /* --silent-after: nothing but silence sent from then on (0: never) */
  guint inband_pos;      /* samples into the digit and its gap */
  double phase_low, phase_high;
} DtmfSender;

/* An in-band digit: 160 ms of its two tones, then 120 ms of silence. */
#define INBAND_TONE_SAMPLES (48000 * 160 / 1000)
#define INBAND_GAP_SAMPLES  (48000 * 120 / 1000)

/* Writes the digits pending into the audio about to be encoded. */
static GstPadProbeReturn
on_outgoing_audio (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  DtmfSender *d = user_data;
  GstBuffer *buffer;
  GstMapInfo map;
  gint16 *samples;
  gsize n;

  g_mutex_lock (&d->lock);
  if (d->silent_from_us && g_get_monotonic_time () >= d->silent_from_us) {
    buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
    GST_PAD_PROBE_INFO_DATA (info) = buffer;
    if (gst_buffer_map (buffer, &map, GST_MAP_WRITE)) {
      memset (map.data, 0, map.size);
      gst_buffer_unmap (buffer, &map);
    }
    g_mutex_unlock (&d->lock);
    return GST_PAD_PROBE_OK;
  }
  if (d->inband_digit < 0 && d->inband->len > 0) {
    d->inband_digit = d->inband->str[0];
    g_string_erase (d->inband, 0, 1);
    d->inband_pos = 0;
    d->phase_low = d->phase_high = 0;
  }
  if (d->inband_digit < 0) {
    g_mutex_unlock (&d->lock);
    return GST_PAD_PROBE_OK;
  }
  buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  GST_PAD_PROBE_INFO_DATA (info) = buffer;
  if (!gst_buffer_map (buffer, &map, GST_MAP_WRITE)) {
    g_mutex_unlock (&d->lock);
    return GST_PAD_PROBE_OK;
  }
  samples = (gint16 *) map.data;
  n = map.size / 2;
  for (gsize i = 0; i < n; i++, d->inband_pos++) {
    double low = 0, high = 0;

    if (d->inband_pos < INBAND_TONE_SAMPLES &&
        cd_audio_dtmf_frequencies ((char) d->inband_digit, &low, &high)) {
      gint16 a, b;
      cd_audio_sine (&a, 1, 48000, low, 0.3, &d->phase_low);
      cd_audio_sine (&b, 1, 48000, high, 0.3, &d->phase_high);
      samples[i] = (gint16) (a + b);
    } else {
      samples[i] = 0;
    }
    if (d->inband_pos + 1 >= INBAND_TONE_SAMPLES + INBAND_GAP_SAMPLES) {
      d->sent++;
      d->inband_digit = d->inband->len > 0 ? d->inband->str[0] : -1;
      if (d->inband->len > 0)
        g_string_erase (d->inband, 0, 1);
      d->inband_pos = 0;
      d->phase_low = d->phase_high = 0;
      if (d->inband_digit < 0) {
        /* the rest of the buffer is the tone sent as usual */
        break;
      }
    }
  }
  gst_buffer_unmap (buffer, &map);
  g_mutex_unlock (&d->lock);
  return GST_PAD_PROBE_OK;
}

/* What the appsink thread and the main thread share. */
/* Frequencies listened for (--listen-for), and how long a report keeps
 * their windows, second by second from the call's start. */
#define MAX_TONES    8
#define TONE_SECONDS 240
#define TONE_WINDOW  2400 /* 50 ms at 48 kHz */

typedef struct {
  GMutex lock;
  CdToneDetector *detector;
  gint64 first_audio_us;
  guint64 samples;
  /* --listen-for */
  guint n_tones;
  double tone_hz[MAX_TONES];
  guint16 tone_counts[MAX_TONES][TONE_SECONDS];
  gint64 base_us; /* the call's start */
  gint16 window[TONE_WINDOW];
  gsize window_fill;
  /* --press-on: digits sent each time a tone begins (after a gap) */
  char *press[MAX_TONES];
  guint run[MAX_TONES], gap[MAX_TONES];
  DtmfSender *dtmf; /* borrowed: freed with the listener, after the pipeline */
  gboolean press_inband;
  guint silent_tone; /* --silent-after: the tone's index, or MAX_TONES */
  double silent_after_s;
} Listener;

typedef struct {
  char *call_id;
  char *end_reason;
  gint64 started_us; /* call.start sent, or call.offer received */
  gint64 connected_us;
  gint64 first_audio_us;
  double dominant_hz;
  guint windows, matching;
  guint dtmf_sent;
  gboolean resumed;
  guint n_tones;
  double tone_hz[MAX_TONES];
  guint16 tone_counts[MAX_TONES][TONE_SECONDS];
  GArray *modes; /* Mode: a supervisor's, as set */
} CallRecord;

typedef struct {
  char *mode;
  gint64 at_us;
} Mode;

struct _CdPeer {
  GObject parent_instance;

  CdPeerOptions options;
  GTask *task;
  SoupSession *http;
  SoupWebsocketConnection *ws;
  char *token;
  char *ws_url;
  char *ws_error;          /* the WebSocket's last error, for the failure message */
  char *stun_server;       /* stun://host:port, from the widget session */
  GPtrArray *turn_servers; /* turn(s)://user:password@host:port?transport=... */
  GstElement *pipeline;
  GstElement *webrtc;
  guint bus_watch_id;
  Listener *listener; /* one per call; freed after the pipeline stops */
  DtmfSender *dtmf;
  CallRecord *call;  /* the current call */
  GPtrArray *calls;  /* CallRecord* done */
  GPtrArray *errors; /* "code: detail" of each error the server sent */
  guint answered, rejected;
  guint timeout_id, hangup_id, dtmf_id, drop_id, resume_id;
  guint transfer_id; /* the transfer, or its completion or cancellation, is due */
  guint mode_id;     /* a supervisor's next mode is due */
  guint next_mode;   /* its index in --monitor-modes */
  gboolean finished;
  gint64 run_started_us;
  char *failure;
};

G_DEFINE_FINAL_TYPE (CdPeer, cd_peer, G_TYPE_OBJECT)

static void finish (CdPeer *self, const char *failure);

static void
call_record_free (gpointer data)
{
  CallRecord *c = data;

  g_free (c->call_id);
  g_free (c->end_reason);
  if (c->modes) {
    for (guint i = 0; i < c->modes->len; i++)
      g_free (g_array_index (c->modes, Mode, i).mode);
    g_array_unref (c->modes);
  }
  g_free (c);
}

static void say (CdPeer *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
say (CdPeer *self, const char *format, ...)
{
  va_list args;
  g_autofree char *text = NULL;

  if (self->options.quiet)
    return;
  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);
  g_printerr ("%s: %s\n", self->options.role == CD_PEER_VISITOR ? "visitor" : "agent", text);
}

/* ---- signaling ---- */

static void
send_message (CdPeer *self, JsonBuilder *b)
{
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *text = NULL;

  json_builder_end_object (b);
  node = json_builder_get_root (b);
  text = json_to_string (node, FALSE);
  if (self->ws && soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
    soup_websocket_connection_send_text (self->ws, text);
}

static JsonBuilder *
message_new (const char *type, const char *call_id)
{
  JsonBuilder *b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, type);
  if (call_id) {
    json_builder_set_member_name (b, "call_id");
    json_builder_add_string_value (b, call_id);
  }
  return b;
}

static void
send_simple (CdPeer *self, const char *type, const char *call_id, const char *key,
             const char *value)
{
  g_autoptr (JsonBuilder) b = message_new (type, call_id);

  if (key) {
    json_builder_set_member_name (b, key);
    json_builder_add_string_value (b, value);
  }
  send_message (self, b);
}

/* ---- RFC 4733 from the payloader's packets ---- */

static GstPadProbeReturn
on_outgoing_rtp (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  DtmfSender *d = user_data;
  GstBuffer *in = GST_PAD_PROBE_INFO_BUFFER (info);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  GstBuffer *out;
  guint8 *payload;
  guint16 seq;
  guint32 ts, ssrc;
  gboolean end, first;
  static const char codes[] = "0123456789*#ABCD";

  g_mutex_lock (&d->lock);
  if (d->digit < 0 && d->gap > 0) {
    d->gap--;
    g_mutex_unlock (&d->lock);
    return GST_PAD_PROBE_OK;
  }
  if (d->digit < 0 && d->pending->len > 0) {
    const char *code = strchr (codes, d->pending->str[0]);
    g_string_erase (d->pending, 0, 1);
    d->digit = code ? (int) (code - codes) : -1;
    d->packets = 0;
  }
  if (d->digit < 0 || !gst_rtp_buffer_map (in, GST_MAP_READ, &rtp)) {
    g_mutex_unlock (&d->lock);
    return GST_PAD_PROBE_OK;
  }
  seq = gst_rtp_buffer_get_seq (&rtp);
  ts = gst_rtp_buffer_get_timestamp (&rtp);
  ssrc = gst_rtp_buffer_get_ssrc (&rtp);
  gst_rtp_buffer_unmap (&rtp);
  first = d->packets == 0;
  if (first)
    d->start_ts = ts;
  /* 5 packets of 20 ms, then the end packet three times */
  end = d->packets >= 5;
  out = gst_rtp_buffer_new_allocate (4, 0, 0);
  gst_buffer_copy_into (out, in, GST_BUFFER_COPY_METADATA, 0, -1);
  gst_rtp_buffer_map (out, GST_MAP_WRITE, &rtp);
  gst_rtp_buffer_set_payload_type (&rtp, EVENT_PT);
  gst_rtp_buffer_set_seq (&rtp, seq);
  gst_rtp_buffer_set_timestamp (&rtp, d->start_ts);
  gst_rtp_buffer_set_ssrc (&rtp, ssrc);
  gst_rtp_buffer_set_marker (&rtp, first);
  payload = gst_rtp_buffer_get_payload (&rtp);
  payload[0] = d->digit;
  payload[1] = (end ? 0x80 : 0) | 10;
  payload[2] = ((MIN (d->packets, 5) + 1) * 960) >> 8;
  payload[3] = ((MIN (d->packets, 5) + 1) * 960) & 0xff;
  gst_rtp_buffer_unmap (&rtp);
  if (++d->packets >= 8) {
    d->digit = -1;
    d->gap = 3;
    d->sent++;
  }
  g_mutex_unlock (&d->lock);
  gst_buffer_unref (in);
  GST_PAD_PROBE_INFO_DATA (info) = out;
  return GST_PAD_PROBE_OK;
}

static void
dtmf_sender_free (DtmfSender *d)
{
  g_mutex_clear (&d->lock);
  g_string_free (d->pending, TRUE);
  g_string_free (d->inband, TRUE);
  g_free (d);
}

static void
listener_free (Listener *l)
{
  for (guint t = 0; t < MAX_TONES; t++)
    g_free (l->press[t]);
  g_mutex_clear (&l->lock);
  g_clear_pointer (&l->detector, cd_tone_detector_free);
  g_free (l);
}

/* ---- media: streaming threads post to the bus ---- */

static void
post (GstElement *element, GstStructure *s)
{
  GstElement *pipeline = g_object_get_data (G_OBJECT (element), "cd-pipeline");

  gst_element_post_message (pipeline, gst_message_new_application (GST_OBJECT (pipeline), s));
}

static void
on_negotiation_needed (GstElement *webrtc, gpointer user_data)
{
  post (webrtc, gst_structure_new_empty ("peer-negotiate"));
}

static void
on_local_candidate (GstElement *webrtc, guint mline, char *candidate, gpointer user_data)
{
  post (webrtc, gst_structure_new ("peer-candidate", "mline", G_TYPE_UINT, mline, "candidate",
                                   G_TYPE_STRING, candidate, NULL));
}

static void
on_offer_created (GstPromise *promise, gpointer user_data)
{
  GstElement *webrtc = user_data;
  const GstStructure *reply = gst_promise_get_reply (promise);
  GstWebRTCSessionDescription *offer = NULL;

  if (reply)
    gst_structure_get (reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
  if (offer) {
    post (webrtc, gst_structure_new ("peer-offer", "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION,
                                     offer, NULL));
    gst_webrtc_session_description_free (offer);
  } else {
    post (webrtc, gst_structure_new ("peer-error", "detail", G_TYPE_STRING,
                                     "webrtcbin made no offer", NULL));
  }
  gst_object_unref (webrtc);
}

/* --press-on: a tone heard for 200 ms after half a second without it has
 * begun; its digits go out as RFC 4733 events. */
static void
press_on (Listener *l, guint t, gboolean heard)
{
  if (t == l->silent_tone && heard && l->dtmf) {
    g_mutex_lock (&l->dtmf->lock);
    if (l->dtmf->silent_from_us == 0)
      l->dtmf->silent_from_us =
          g_get_monotonic_time () + (gint64) (l->silent_after_s * G_USEC_PER_SEC);
    g_mutex_unlock (&l->dtmf->lock);
  }
  if (l->press[t] == NULL || l->dtmf == NULL)
    return;
  if (!heard) {
    l->run[t] = 0;
    l->gap[t]++;
    return;
  }
  if (++l->run[t] == 4 && l->gap[t] >= 10) {
    g_mutex_lock (&l->dtmf->lock);
    g_string_append (l->press_inband ? l->dtmf->inband : l->dtmf->pending, l->press[t]);
    g_mutex_unlock (&l->dtmf->lock);
  }
  if (l->run[t] >= 4)
    l->gap[t] = 0;
}

/* Each full 50 ms window: which of the listened-for frequencies it holds
 * (a mix holds several). A tone counts when it carries at least a tenth
 * of the window's power: Goertzel gives A^2 for a sine of amplitude A,
 * whose mean square is A^2 / 2. */
static void
count_tones (Listener *l, const gint16 *samples, gsize n)
{
  while (n > 0) {
    gsize take = MIN (n, TONE_WINDOW - l->window_fill);
    double energy = 0;
    gint64 second;

    memcpy (l->window + l->window_fill, samples, take * sizeof (gint16));
    l->window_fill += take;
    samples += take;
    n -= take;
    if (l->window_fill < TONE_WINDOW)
      break;
    l->window_fill = 0;
    for (gsize i = 0; i < TONE_WINDOW; i++)
      energy += (l->window[i] / 32768.0) * (l->window[i] / 32768.0);
    energy /= TONE_WINDOW;
    second = (g_get_real_time () - l->base_us) / G_USEC_PER_SEC;
    if (energy < 1e-6 || second < 0 || second >= TONE_SECONDS)
      continue;
    for (guint t = 0; t < l->n_tones; t++) {
      gboolean heard =
          cd_audio_goertzel (l->window, TONE_WINDOW, 48000, l->tone_hz[t]) / (2 * energy) > 0.1;

      if (heard && l->tone_counts[t][second] < G_MAXUINT16)
        l->tone_counts[t][second]++;
      press_on (l, t, heard);
    }
  }
}

static GstFlowReturn
on_new_sample (GstAppSink *sink, gpointer user_data)
{
  Listener *l = user_data;
  g_autoptr (GstSample) sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buffer = sample ? gst_sample_get_buffer (sample) : NULL;
  GstMapInfo map;

  if (buffer == NULL || !gst_buffer_map (buffer, &map, GST_MAP_READ))
    return GST_FLOW_OK;
  g_mutex_lock (&l->lock);
  if (l->first_audio_us == 0)
    l->first_audio_us = g_get_real_time ();
  cd_tone_detector_feed (l->detector, (const gint16 *) map.data, map.size / 2);
  l->samples += map.size / 2;
  if (l->n_tones > 0)
    count_tones (l, (const gint16 *) map.data, map.size / 2);
  g_mutex_unlock (&l->lock);
  gst_buffer_unmap (buffer, &map);
  return GST_FLOW_OK;
}

static void
on_incoming_pad (GstElement *webrtc, GstPad *pad, gpointer user_data)
{
  Listener *l = user_data;
  GstElement *pipeline = g_object_get_data (G_OBJECT (webrtc), "cd-pipeline");
  g_autoptr (GError) error = NULL;
  GstElement *bin;
  g_autoptr (GstPad) sink = NULL;
  GstAppSinkCallbacks callbacks = { .new_sample = on_new_sample };
  GstElement *appsink;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC)
    return;
  bin = gst_parse_bin_from_description (
      "queue ! rtpopusdepay ! opusdec plc=true ! audioconvert ! audioresample ! "
      "audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink name=heard sync=false",
      TRUE, &error);
  if (bin == NULL) {
    post (webrtc, gst_structure_new ("peer-error", "detail", G_TYPE_STRING, error->message, NULL));
    return;
  }
  appsink = gst_bin_get_by_name (GST_BIN (bin), "heard");
  /* added to a playing pipeline: an async sink would make the pipeline
   * lose its state until it prerolls, and the live source stop sending */
  g_object_set (appsink, "async", FALSE, NULL);
  gst_app_sink_set_callbacks (GST_APP_SINK (appsink), &callbacks, l, NULL);
  gst_object_unref (appsink);
  gst_bin_add (GST_BIN (pipeline), bin);
  gst_element_sync_state_with_parent (bin);
  sink = gst_element_get_static_pad (bin, "sink");
  if (gst_pad_link (pad, sink) != GST_PAD_LINK_OK)
    post (webrtc, gst_structure_new ("peer-error", "detail", G_TYPE_STRING,
                                     "cannot link the received audio", NULL));
  else
    post (webrtc, gst_structure_new_empty ("peer-receiving"));
}

static void
stop_media (CdPeer *self)
{
  g_clear_handle_id (&self->bus_watch_id, g_source_remove);
  if (self->pipeline) {
    cd_srtp_gate_close (GST_BIN (self->pipeline));
    gst_element_set_state (self->pipeline, GST_STATE_NULL);
    gst_clear_object (&self->pipeline);
  }
  self->webrtc = NULL;
  if (self->listener && self->call) {
    g_mutex_lock (&self->listener->lock);
    self->call->first_audio_us = self->listener->first_audio_us;
    self->call->windows = cd_tone_detector_get_windows (self->listener->detector);
    self->call->n_tones = self->listener->n_tones;
    memcpy (self->call->tone_hz, self->listener->tone_hz, sizeof self->call->tone_hz);
    memcpy (self->call->tone_counts, self->listener->tone_counts, sizeof self->call->tone_counts);
    self->call->dominant_hz =
        cd_tone_detector_get_dominant_frequency (self->listener->detector, 0.01);
    if (self->options.expect_hz > 0)
      self->call->matching = cd_tone_detector_count_matching (self->listener->detector,
                                                              self->options.expect_hz, 5, 0.01);
    g_mutex_unlock (&self->listener->lock);
    say (self,
         "media: heard %.1f Hz in %u windows (%u of the expected tone), first audio %.1f s "
         "after the call began",
         self->call->dominant_hz, self->call->windows, self->call->matching,
         self->call->first_audio_us ? (self->call->first_audio_us - self->call->started_us) / 1e6
                                    : -1.0);
  }
  if (self->dtmf && self->call) {
    g_mutex_lock (&self->dtmf->lock);
    self->call->dtmf_sent = self->dtmf->sent;
    g_mutex_unlock (&self->dtmf->lock);
  }
  g_clear_pointer (&self->listener, listener_free);
  g_clear_pointer (&self->dtmf, dtmf_sender_free);
}

static gboolean
on_bus (GstBus *bus, GstMessage *message, gpointer user_data)
{
  CdPeer *self = user_data;
  const GstStructure *s = gst_message_get_structure (message);

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR) {
    g_autoptr (GError) error = NULL;
    gst_message_parse_error (message, &error, NULL);
    say (self, "media error: %s", error->message);
    return G_SOURCE_CONTINUE;
  }
  if (GST_MESSAGE_TYPE (message) != GST_MESSAGE_APPLICATION || self->webrtc == NULL ||
      self->call == NULL)
    return G_SOURCE_CONTINUE;
  if (gst_structure_has_name (s, "peer-negotiate")) {
    GstPromise *promise =
        gst_promise_new_with_change_func (on_offer_created, gst_object_ref (self->webrtc), NULL);
    g_signal_emit_by_name (self->webrtc, "create-offer", NULL, promise);
    gst_promise_unref (promise);
  } else if (gst_structure_has_name (s, "peer-offer")) {
    GstWebRTCSessionDescription *offer = NULL;
    g_autofree char *text = NULL;
    g_autoptr (JsonBuilder) b = message_new ("sdp.offer", self->call->call_id);

    gst_structure_get (s, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &offer, NULL);
    g_signal_emit_by_name (self->webrtc, "set-local-description", offer, NULL);
    if (self->options.role == CD_PEER_VISITOR && gst_sdp_message_medias_len (offer->sdp) > 0) {
      /* webrtcbin offers only what its sink is linked to; the events are
       * written into the payloader's stream (on_outgoing_rtp), so say so */
      GstSDPMedia *media = (GstSDPMedia *) gst_sdp_message_get_media (offer->sdp, 0);
      gst_sdp_media_add_format (media, G_STRINGIFY (EVENT_PT));
      gst_sdp_media_add_attribute (media, "rtpmap",
                                   G_STRINGIFY (EVENT_PT) " telephone-event/48000");
    }
    text = gst_sdp_message_as_text (offer->sdp);
    gst_webrtc_session_description_free (offer);
    json_builder_set_member_name (b, "sdp");
    json_builder_add_string_value (b, text);
    send_message (self, b);
  } else if (gst_structure_has_name (s, "peer-candidate")) {
    g_autoptr (JsonBuilder) b = NULL;
    guint mline = 0;

    if (self->options.no_candidates)
      return G_SOURCE_CONTINUE;
    gst_structure_get_uint (s, "mline", &mline);
    b = message_new ("ice.candidate", self->call->call_id);
    json_builder_set_member_name (b, "candidate");
    json_builder_add_string_value (b, gst_structure_get_string (s, "candidate"));
    json_builder_set_member_name (b, "sdp_mline_index");
    json_builder_add_int_value (b, mline);
    send_message (self, b);
  } else if (gst_structure_has_name (s, "peer-error")) {
    say (self, "media: %s", gst_structure_get_string (s, "detail"));
  } else if (gst_structure_has_name (s, "peer-receiving")) {
    say (self, "media: receiving audio, %.1f s after the call began",
         (g_get_real_time () - self->call->started_us) / 1e6);
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
start_media (CdPeer *self, GError **error)
{
  g_autofree char *source = NULL;
  g_autoptr (GstBus) bus = NULL;
  g_autoptr (GObject) ice = NULL;
  g_autoptr (GstElement) pay = NULL;
  g_autoptr (GstPad) pay_src = NULL;
  g_autoptr (GstPad) sink = NULL;
  g_autoptr (GstWebRTCRTPTransceiver) transceiver = NULL;
  g_autoptr (GstCaps) caps = NULL;
  g_autofree char *description = NULL;

  if (self->options.wav)
    source = g_strdup_printf ("filesrc location=\"%s\" ! wavparse ! audioconvert ! "
                              "audioresample",
                              self->options.wav);
  else
    source = g_strdup_printf ("audiotestsrc is-live=true wave=sine freq=%g volume=0.5",
                              self->options.tone_hz);
  /* in-band digits are written into the raw audio (S16LE, mono) */
  description = g_strdup_printf (
      "webrtcbin name=leg bundle-policy=max-bundle latency=50 "
      "%s ! audioconvert ! audioresample ! %s queue ! "
      "opusenc bitrate=32000 inband-fec=true ! rtpopuspay name=pay "
      "pt=%d",
      source,
      self->options.press_inband || self->options.silent_after
          ? "capsfilter name=raw caps=audio/x-raw,format=S16LE,rate=48000,channels=1 !"
          : "",
      OPUS_PT);
  self->pipeline = gst_parse_launch (description, error);
  if (self->pipeline == NULL)
    return FALSE;
  cd_srtp_gate_install (GST_BIN (self->pipeline));
  self->webrtc = gst_bin_get_by_name (GST_BIN (self->pipeline), "leg");
  gst_object_unref (self->webrtc); /* the pipeline holds it */
  g_object_set_data (G_OBJECT (self->webrtc), "cd-pipeline", self->pipeline);
  g_object_get (self->webrtc, "ice-agent", &ice, NULL);
  for (char **a = self->options.local_addresses; a && *a; a++) {
    gboolean ok = FALSE;
    g_signal_emit_by_name (ice, "add-local-ip-address", *a, &ok);
  }
  g_object_set (ice, "ice-tcp", FALSE, NULL);
  if (self->options.relay_only)
    g_object_set (self->webrtc, "ice-transport-policy", GST_WEBRTC_ICE_TRANSPORT_POLICY_RELAY,
                  NULL);
  if (self->stun_server)
    g_object_set (self->webrtc, "stun-server", self->stun_server, NULL);
  for (guint i = 0; i < self->turn_servers->len; i++) {
    gboolean added = FALSE;
    g_signal_emit_by_name (self->webrtc, "add-turn-server",
                           g_ptr_array_index (self->turn_servers, i), &added);
    if (!added)
      say (self, "webrtcbin refused a TURN server from the widget session");
  }
  {
    g_autoptr (GObject) agent = NULL;
    /* UPnP port mapping is of no use to a test peer, and gupnp warns */
    if (g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "agent"))
      g_object_get (ice, "agent", &agent, NULL);
    if (agent && g_object_class_find_property (G_OBJECT_GET_CLASS (agent), "upnp"))
      g_object_set (agent, "upnp", FALSE, NULL);
  }

  self->listener = g_new0 (Listener, 1);
  g_mutex_init (&self->listener->lock);
  self->listener->detector = cd_tone_detector_new (48000, 50, 100, 4000, 10);
  self->listener->base_us = self->call ? self->call->started_us : g_get_real_time ();
  if (self->options.listen_for) {
    g_auto (GStrv) hz = g_strsplit (self->options.listen_for, ",", -1);

    for (guint i = 0; hz[i] && self->listener->n_tones < MAX_TONES; i++)
      if (g_ascii_strtod (hz[i], NULL) > 0)
        self->listener->tone_hz[self->listener->n_tones++] = g_ascii_strtod (hz[i], NULL);
  }
  self->dtmf = g_new0 (DtmfSender, 1);
  g_mutex_init (&self->dtmf->lock);
  self->dtmf->pending = g_string_new (NULL);
  self->dtmf->digit = -1;
  self->dtmf->inband = g_string_new (NULL);
  self->dtmf->inband_digit = -1;
  self->listener->silent_tone = MAX_TONES;
  if (self->options.silent_after && self->options.role == CD_PEER_VISITOR) {
    g_auto (GStrv) parts = g_strsplit (self->options.silent_after, ":", 2);

    if (g_strv_length (parts) == 2 && g_ascii_strtod (parts[0], NULL) > 0 &&
        self->listener->n_tones < MAX_TONES) {
      self->listener->silent_tone = self->listener->n_tones;
      self->listener->tone_hz[self->listener->n_tones++] = g_ascii_strtod (parts[0], NULL);
      self->listener->silent_after_s = g_ascii_strtod (parts[1], NULL);
      self->listener->dtmf = self->dtmf;
    }
  }
  if (self->options.press_inband || self->options.silent_after) {
    g_autoptr (GstElement) raw = gst_bin_get_by_name (GST_BIN (self->pipeline), "raw");
    g_autoptr (GstPad) raw_src = raw ? gst_element_get_static_pad (raw, "src") : NULL;

    if (raw_src)
      gst_pad_add_probe (raw_src, GST_PAD_PROBE_TYPE_BUFFER, on_outgoing_audio, self->dtmf, NULL);
  }
  if (self->options.press_on && self->options.role == CD_PEER_VISITOR) {
    g_auto (GStrv) rules = g_strsplit (self->options.press_on, ",", -1);

    for (guint i = 0; rules[i] && self->listener->n_tones < MAX_TONES; i++) {
      g_auto (GStrv) parts = g_strsplit (rules[i], ":", 2);
      guint t = self->listener->n_tones;

      if (g_strv_length (parts) != 2 || g_ascii_strtod (parts[0], NULL) <= 0)
        continue;
      self->listener->tone_hz[t] = g_ascii_strtod (parts[0], NULL);
      self->listener->press[t] = g_strdup (parts[1]);
      self->listener->gap[t] = 10;
      self->listener->n_tones++;
    }
    self->listener->dtmf = self->dtmf;
    self->listener->press_inband = self->options.press_inband;
  }

  /* our own send pad, offering opus and (visitors) telephone-event */
  sink = gst_element_request_pad_simple (self->webrtc, "sink_%u");
  g_object_get (sink, "transceiver", &transceiver, NULL);
  caps = gst_caps_from_string (
      self->options.role == CD_PEER_VISITOR
          ? "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111;"
            "application/"
            "x-rtp,media=audio,encoding-name=TELEPHONE-EVENT,clock-rate=48000,payload=101"
          : "application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=111");
  g_object_set (transceiver, "codec-preferences", caps, "direction",
                GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, NULL);
  pay = gst_bin_get_by_name (GST_BIN (self->pipeline), "pay");
  pay_src = gst_element_get_static_pad (pay, "src");
  gst_pad_add_probe (pay_src, GST_PAD_PROBE_TYPE_BUFFER, on_outgoing_rtp, self->dtmf, NULL);
  if (gst_pad_link (pay_src, sink) != GST_PAD_LINK_OK) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot link the sender");
    return FALSE;
  }
  g_signal_connect (self->webrtc, "on-negotiation-needed", G_CALLBACK (on_negotiation_needed),
                    NULL);
  g_signal_connect (self->webrtc, "on-ice-candidate", G_CALLBACK (on_local_candidate), NULL);
  g_signal_connect (self->webrtc, "pad-added", G_CALLBACK (on_incoming_pad), self->listener);
  bus = gst_element_get_bus (self->pipeline);
  self->bus_watch_id = gst_bus_add_watch (bus, on_bus, self);
  if (gst_element_set_state (self->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_FAILED, "the media does not start");
    return FALSE;
  }
  return TRUE;
}

/* ---- the call's life ---- */

static gboolean
on_hangup_time (gpointer user_data)
{
  CdPeer *self = user_data;

  self->hangup_id = 0;
  if (self->call)
    send_simple (self, "hangup", self->call->call_id, NULL, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
on_dtmf_time (gpointer user_data)
{
  CdPeer *self = user_data;

  self->dtmf_id = 0;
  if (self->call == NULL)
    return G_SOURCE_REMOVE;
  if (self->options.dtmf && self->dtmf) {
    g_mutex_lock (&self->dtmf->lock);
    g_string_append (self->dtmf->pending, self->options.dtmf);
    g_mutex_unlock (&self->dtmf->lock);
  }
  if (self->options.dtmf_signaling)
    send_simple (self, "dtmf", self->call->call_id, "digits", self->options.dtmf_signaling);
  return G_SOURCE_REMOVE;
}

static void connect_signaling (CdPeer *self);

static gboolean
on_resume_time (gpointer user_data)
{
  CdPeer *self = user_data;

  self->resume_id = 0;
  say (self, "signaling: coming back");
  connect_signaling (self);
  return G_SOURCE_REMOVE;
}

static gboolean
on_drop_time (gpointer user_data)
{
  CdPeer *self = user_data;

  self->drop_id = 0;
  say (self, "signaling: dropping the WebSocket");
  if (self->ws) {
    g_signal_handlers_disconnect_by_data (self->ws, self);
    soup_websocket_connection_close (self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, "drop");
    g_clear_object (&self->ws);
  }
  if (self->options.resume_after_s > 0)
    self->resume_id = g_timeout_add (self->options.resume_after_s * 1000, on_resume_time, self);
  return G_SOURCE_REMOVE;
}

static void
send_call_start (CdPeer *self)
{
  g_autoptr (JsonBuilder) b = message_new ("call.start", NULL);

  if (self->options.page) {
    json_builder_set_member_name (b, "page");
    json_builder_add_string_value (b, self->options.page);
  }
  if (self->options.entry) {
    json_builder_set_member_name (b, "entry");
    json_builder_add_string_value (b, self->options.entry);
  }
  if (self->options.queue_id) {
    json_builder_set_member_name (b, "queue_id");
    json_builder_add_string_value (b, self->options.queue_id);
  }
  send_message (self, b);
}

/* ---- transfers and supervision ---- */

static gboolean
on_transfer_time (gpointer user_data)
{
  CdPeer *self = user_data;
  const char *to = self->options.transfer_to;
  g_autoptr (JsonBuilder) b = NULL;

  self->transfer_id = 0;
  if (self->call == NULL)
    return G_SOURCE_REMOVE;
  b = message_new ("call.transfer", self->call->call_id);
  json_builder_set_member_name (b, "mode");
  json_builder_add_string_value (b, self->options.transfer_mode ? self->options.transfer_mode
                                                                : "blind");
  json_builder_set_member_name (b, g_str_has_prefix (to, "queue:") ? "queue_id" : "agent_id");
  json_builder_add_string_value (b, strchr (to, ':') ? strchr (to, ':') + 1 : to);
  say (self, "call %s: transferring it to %s", self->call->call_id, to);
  send_message (self, b);
  return G_SOURCE_REMOVE;
}

static gboolean
on_transfer_end_time (gpointer user_data)
{
  CdPeer *self = user_data;
  const char *type =
      self->options.complete_after_s > 0 ? "call.transfer.complete" : "call.transfer.cancel";

  self->transfer_id = 0;
  if (self->call == NULL)
    return G_SOURCE_REMOVE;
  say (self, "call %s: %s", self->call->call_id, type);
  send_simple (self, type, self->call->call_id, NULL, NULL);
  return G_SOURCE_REMOVE;
}

/* The item of --monitor-modes at @index ("MODE[:SECONDS]"), or NULL. */
static char **
monitor_mode_at (CdPeer *self, guint index)
{
  g_auto (GStrv) modes =
      g_strsplit (self->options.monitor_modes ? self->options.monitor_modes : "listen", ",", -1);

  if (index >= g_strv_length (modes))
    return NULL;
  return g_strsplit (modes[index], ":", 2);
}

static void send_monitor (CdPeer *self);

static gboolean
on_mode_time (gpointer user_data)
{
  CdPeer *self = user_data;
  g_auto (GStrv) next = monitor_mode_at (self, self->next_mode);

  self->mode_id = 0;
  if (next)
    send_monitor (self);
  else if (self->call)
    send_simple (self, "hangup", self->call->call_id, NULL, NULL); /* the supervisor leaves */
  return G_SOURCE_REMOVE;
}

/* The next mode: asked for now, and the one after it once this one's
 * time is over (counted from the media's connection for the first). */
static void
send_monitor (CdPeer *self)
{
  g_auto (GStrv) item = monitor_mode_at (self, self->next_mode);

  if (item == NULL)
    return;
  self->next_mode++;
  say (self, "call %s: supervising (%s)", self->options.monitor, item[0]);
  {
    g_autoptr (JsonBuilder) b = message_new ("call.monitor", self->options.monitor);
    json_builder_set_member_name (b, "mode");
    json_builder_add_string_value (b, item[0]);
    send_message (self, b);
  }
}

static void
schedule_next_mode (CdPeer *self)
{
  g_auto (GStrv) item = self->next_mode > 0 ? monitor_mode_at (self, self->next_mode - 1) : NULL;

  g_clear_handle_id (&self->mode_id, g_source_remove);
  if (item && item[1])
    self->mode_id = g_timeout_add (g_ascii_strtod (item[1], NULL) * 1000, on_mode_time, self);
}

static void
call_ended (CdPeer *self, const char *reason)
{
  g_clear_handle_id (&self->hangup_id, g_source_remove);
  g_clear_handle_id (&self->dtmf_id, g_source_remove);
  g_clear_handle_id (&self->drop_id, g_source_remove);
  g_clear_handle_id (&self->transfer_id, g_source_remove);
  g_clear_handle_id (&self->mode_id, g_source_remove);
  if (self->call == NULL)
    return;
  self->call->end_reason = g_strdup (reason);
  say (self, "call %s ended: %s", self->call->call_id, reason);
  stop_media (self);
  g_ptr_array_add (self->calls, g_steal_pointer (&self->call));
  if (self->options.role == CD_PEER_VISITOR) {
    if (self->calls->len < MAX (self->options.repeat, 1))
      send_call_start (self);
    else if (!self->options.keep_listening)
      finish (self, NULL);
  } else if (self->options.monitor ||
             (self->options.calls > 0 && self->answered >= self->options.calls)) {
    finish (self, NULL);
  }
}

static void
on_connected (CdPeer *self)
{
  if (self->call->connected_us)
    return;
  self->call->connected_us = g_get_real_time ();
  say (self, "call %s connected", self->call->call_id);
  if (self->options.hold_s > 0)
    self->hangup_id = g_timeout_add (self->options.hold_s * 1000, on_hangup_time, self);
  if (self->options.dtmf || self->options.dtmf_signaling)
    self->dtmf_id = g_timeout_add (500, on_dtmf_time, self);
  if (self->options.drop_after_s > 0)
    self->drop_id = g_timeout_add (self->options.drop_after_s * 1000, on_drop_time, self);
  if (self->options.transfer_to)
    self->transfer_id =
        g_timeout_add (self->options.transfer_after_s * 1000, on_transfer_time, self);
  if (self->options.monitor)
    schedule_next_mode (self);
}

static void
new_call (CdPeer *self, const char *call_id)
{
  g_autoptr (GError) error = NULL;

  self->call = g_new0 (CallRecord, 1);
  self->call->call_id = g_strdup (call_id);
  self->call->started_us = g_get_real_time ();
  if (!start_media (self, &error)) {
    finish (self, error->message);
    return;
  }
}

static void
handle_message (CdPeer *self, JsonObject *m)
{
  const char *type = json_object_get_string_member_with_default (m, "type", "");
  const char *call_id = json_object_get_string_member_with_default (m, "call_id", NULL);
  gboolean ours = self->call && call_id && g_str_equal (call_id, self->call->call_id);

  if (g_str_equal (type, "auth.ok")) {
    if (self->call && self->call->connected_us) {
      /* back after a drop: take the call up again */
      send_simple (self, "call.resume", self->call->call_id, NULL, NULL);
    } else if (self->options.role == CD_PEER_VISITOR) {
      send_call_start (self);
    } else if (self->options.monitor) {
      send_monitor (self); /* a supervisor takes no calls */
    } else {
      send_simple (self, "presence.set", NULL, "status", "available");
    }
  } else if (g_str_equal (type, "call.created")) {
    new_call (self, call_id);
  } else if (g_str_equal (type, "call.monitoring")) {
    Mode mode = { g_strdup (json_object_get_string_member_with_default (m, "mode", "")),
                  g_get_real_time () };

    if (self->call == NULL)
      new_call (self, call_id);
    else if (self->call->connected_us)
      schedule_next_mode (self);
    if (self->call) {
      if (self->call->modes == NULL)
        self->call->modes = g_array_new (FALSE, FALSE, sizeof (Mode));
      g_array_append_val (self->call->modes, mode);
    } else {
      g_free (mode.mode);
    }
  } else if (g_str_equal (type, "call.transfer.state") && ours) {
    const char *state = json_object_get_string_member_with_default (m, "state", "");

    say (self, "call %s: the transfer is %s%s%s", call_id, state,
         json_object_has_member (m, "reason") ? ": " : "",
         json_object_get_string_member_with_default (m, "reason", ""));
    if (g_str_equal (state, "connected") &&
        (self->options.complete_after_s > 0 || self->options.cancel_after_s > 0))
      self->transfer_id =
          g_timeout_add ((self->options.complete_after_s > 0 ? self->options.complete_after_s
                                                             : self->options.cancel_after_s) *
                             1000,
                         on_transfer_end_time, self);
  } else if (g_str_equal (type, "call.resumed") && ours) {
    self->call->resumed = TRUE;
    say (self, "call %s resumed", call_id);
  } else if (g_str_equal (type, "call.offer") && self->call == NULL) {
    if (self->rejected < self->options.reject) {
      self->rejected++;
      send_simple (self, "call.reject", call_id, NULL, NULL);
    } else {
      send_simple (self, "call.accept", call_id, NULL, NULL);
    }
  } else if (g_str_equal (type, "call.state")) {
    const char *state = json_object_get_string_member_with_default (m, "state", "");
    if (g_str_equal (state, "connecting") && self->options.role == CD_PEER_AGENT &&
        self->call == NULL) {
      self->answered++;
      new_call (self, call_id);
    } else if (g_str_equal (state, "connected") && ours) {
      on_connected (self);
    } else if (g_str_equal (state, "ended") && ours) {
      call_ended (self, json_object_get_string_member_with_default (m, "reason", "unknown"));
    }
  } else if (g_str_equal (type, "sdp.answer") && ours && self->webrtc) {
    GstSDPMessage *sdp = NULL;
    GstWebRTCSessionDescription *answer;

    if (gst_sdp_message_new_from_text (json_object_get_string_member (m, "sdp"), &sdp) !=
        GST_SDP_OK) {
      finish (self, "the server's answer does not parse");
      return;
    }
    answer = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_ANSWER, sdp);
    g_signal_emit_by_name (self->webrtc, "set-remote-description", answer, NULL);
    gst_webrtc_session_description_free (answer);
  } else if (g_str_equal (type, "ice.candidate") && ours && self->webrtc &&
             !self->options.no_candidates) {
    g_signal_emit_by_name (
        self->webrtc, "add-ice-candidate",
        (guint) json_object_get_int_member_with_default (m, "sdp_mline_index", 0),
        json_object_get_string_member (m, "candidate"));
  } else if (g_str_equal (type, "error")) {
    say (self, "error from the server: %s (%s)",
         json_object_get_string_member_with_default (m, "code", "?"),
         json_object_get_string_member_with_default (m, "detail", ""));
    g_ptr_array_add (
        self->errors,
        g_strdup_printf ("%s: %s", json_object_get_string_member_with_default (m, "code", "?"),
                         json_object_get_string_member_with_default (m, "detail", "")));
  }
}

static void
on_ws_message (SoupWebsocketConnection *ws, gint type, GBytes *data, gpointer user_data)
{
  CdPeer *self = user_data;
  g_autoptr (JsonParser) parser = json_parser_new ();
  gsize size;
  const char *text = g_bytes_get_data (data, &size);
  JsonNode *root;

  if (!json_parser_load_from_data (parser, text, size, NULL))
    return;
  root = json_parser_get_root (parser);
  if (root && JSON_NODE_HOLDS_OBJECT (root))
    handle_message (self, json_node_get_object (root));
}

static void
on_ws_closed (SoupWebsocketConnection *ws, gpointer user_data)
{
  CdPeer *self = user_data;

  g_autofree char *why = NULL;

  if (self->finished)
    return;
  why = g_strdup_printf ("the signaling connection closed (code %u%s%s%s%s)",
                         soup_websocket_connection_get_close_code (ws),
                         soup_websocket_connection_get_close_data (ws) ? ", " : "",
                         soup_websocket_connection_get_close_data (ws)
                             ? soup_websocket_connection_get_close_data (ws)
                             : "",
                         self->ws_error ? ": " : "", self->ws_error ? self->ws_error : "");
  finish (self, why);
}

static void
on_ws_error (SoupWebsocketConnection *ws, GError *error, gpointer user_data)
{
  CdPeer *self = user_data;

  g_free (self->ws_error);
  self->ws_error = g_strdup (error->message);
}

static void
on_ws_connected (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdPeer) self = user_data;
  g_autoptr (GError) error = NULL;
  SoupWebsocketConnection *ws =
      soup_session_websocket_connect_finish (SOUP_SESSION (source), result, &error);

  if (self->finished) {
    g_clear_object (&ws);
    return;
  }
  if (ws == NULL) {
    g_autofree char *why =
        g_strdup_printf ("cannot open the signaling WebSocket: %s", error->message);
    finish (self, why);
    return;
  }
  self->ws = ws;
  soup_websocket_connection_set_keepalive_interval (ws, 10);
  g_signal_connect (ws, "message", G_CALLBACK (on_ws_message), self);
  g_signal_connect (ws, "error", G_CALLBACK (on_ws_error), self);
  g_signal_connect (ws, "closed", G_CALLBACK (on_ws_closed), self);
  send_simple (self, "auth", NULL, "token", self->token);
}

static void
connect_signaling (CdPeer *self)
{
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", self->ws_url);

  if (msg == NULL) {
    finish (self, "the server URL is not valid");
    return;
  }
  if (self->options.origin)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Origin",
                                  self->options.origin);
  soup_session_websocket_connect_async (self->http, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        on_ws_connected, g_object_ref (self));
}

/* The widget session's ice_servers ({urls, username, credential}, as
 * RTCPeerConnection takes them) in webrtcbin's URI form. */
static void
take_ice_servers (CdPeer *self, JsonObject *session)
{
  JsonArray *servers = json_object_has_member (session, "ice_servers")
                           ? json_object_get_array_member (session, "ice_servers")
                           : NULL;

  for (guint i = 0; servers && i < json_array_get_length (servers); i++) {
    JsonObject *server = json_array_get_object_element (servers, i);
    JsonArray *urls = server && json_object_has_member (server, "urls")
                          ? json_object_get_array_member (server, "urls")
                          : NULL;
    const char *user =
        server ? json_object_get_string_member_with_default (server, "username", NULL) : NULL;
    const char *secret =
        server ? json_object_get_string_member_with_default (server, "credential", NULL) : NULL;

    for (guint j = 0; urls && j < json_array_get_length (urls); j++) {
      const char *url = json_array_get_string_element (urls, j);

      if (url == NULL)
        continue;
      if (g_str_has_prefix (url, "stun:") && self->stun_server == NULL) {
        self->stun_server = g_strconcat ("stun://", url + strlen ("stun:"), NULL);
      } else if ((g_str_has_prefix (url, "turn:") || g_str_has_prefix (url, "turns:")) && user &&
                 secret) {
        gboolean tls = g_str_has_prefix (url, "turns:");
        g_autofree char *u = g_uri_escape_string (user, NULL, FALSE);
        g_autofree char *p = g_uri_escape_string (secret, NULL, FALSE);
        g_ptr_array_add (self->turn_servers,
                         g_strdup_printf ("%s://%s:%s@%s", tls ? "turns" : "turn", u, p,
                                          url + strlen (tls ? "turns:" : "turn:")));
      }
    }
  }
}

static void
on_signed_in (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CdPeer) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) body =
      soup_session_send_and_read_finish (SOUP_SESSION (source), result, &error);
  SoupMessage *msg = soup_session_get_async_result_message (SOUP_SESSION (source), result);
  g_autoptr (JsonParser) parser = json_parser_new ();
  const char *field = self->options.role == CD_PEER_VISITOR ? "visitor_token" : "access_token";
  JsonNode *root;

  if (self->finished)
    return;
  if (body == NULL) {
    g_autofree char *why = g_strdup_printf ("cannot reach the server: %s", error->message);
    finish (self, why);
    return;
  }
  if (soup_message_get_status (msg) != SOUP_STATUS_OK &&
      soup_message_get_status (msg) != SOUP_STATUS_CREATED) {
    g_autofree char *why = g_strdup_printf (
        "signing in failed: HTTP %u %.*s", soup_message_get_status (msg),
        (int) MIN (g_bytes_get_size (body), 300), (const char *) g_bytes_get_data (body, NULL));
    finish (self, why);
    return;
  }
  if (!json_parser_load_from_data (parser, g_bytes_get_data (body, NULL), g_bytes_get_size (body),
                                   NULL) ||
      (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root) ||
      !json_object_has_member (json_node_get_object (root), field)) {
    finish (self, "the sign-in answer has no token");
    return;
  }
  self->token = g_strdup (json_object_get_string_member (json_node_get_object (root), field));
  if (self->options.role == CD_PEER_VISITOR)
    take_ice_servers (self, json_node_get_object (root));
  connect_signaling (self);
}

static void
sign_in (CdPeer *self)
{
  g_autofree char *url = NULL;
  g_autoptr (SoupMessage) msg = NULL;
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *text = NULL;
  g_autoptr (GBytes) body = NULL;

  json_builder_begin_object (b);
  if (self->options.role == CD_PEER_VISITOR) {
    url = g_strconcat (self->options.server, "api/v1/widget/session", NULL);
    json_builder_set_member_name (b, "company_id");
    json_builder_add_string_value (b, self->options.company);
  } else {
    url = g_strconcat (self->options.server, "api/v1/auth/login", NULL);
    json_builder_set_member_name (b, "email");
    json_builder_add_string_value (b, self->options.email);
    json_builder_set_member_name (b, "password");
    json_builder_add_string_value (b, self->options.password);
  }
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  text = json_to_string (node, FALSE);
  msg = soup_message_new ("POST", url);
  if (msg == NULL) {
    finish (self, "the server URL is not valid");
    return;
  }
  if (self->options.origin)
    soup_message_headers_replace (soup_message_get_request_headers (msg), "Origin",
                                  self->options.origin);
  body = g_bytes_new (text, strlen (text));
  soup_message_set_request_body_from_bytes (msg, "application/json", body);
  soup_session_send_and_read_async (self->http, msg, G_PRIORITY_DEFAULT, NULL, on_signed_in,
                                    g_object_ref (self));
}

static JsonNode *
build_report (CdPeer *self)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "role");
  json_builder_add_string_value (b, self->options.role == CD_PEER_VISITOR ? "visitor" : "agent");
  json_builder_set_member_name (b, "ok");
  json_builder_add_boolean_value (b, self->failure == NULL);
  if (self->failure) {
    json_builder_set_member_name (b, "failure");
    json_builder_add_string_value (b, self->failure);
  }
  json_builder_set_member_name (b, "errors");
  json_builder_begin_array (b);
  for (guint i = 0; i < self->errors->len; i++)
    json_builder_add_string_value (b, g_ptr_array_index (self->errors, i));
  json_builder_end_array (b);
  json_builder_set_member_name (b, "calls");
  json_builder_begin_array (b);
  for (guint i = 0; i < self->calls->len; i++) {
    CallRecord *c = g_ptr_array_index (self->calls, i);

    json_builder_begin_object (b);
    json_builder_set_member_name (b, "call_id");
    json_builder_add_string_value (b, c->call_id);
    json_builder_set_member_name (b, "end_reason");
    json_builder_add_string_value (b, c->end_reason);
    json_builder_set_member_name (b, "started_us");
    json_builder_add_int_value (b, c->started_us);
    json_builder_set_member_name (b, "connected_us");
    json_builder_add_int_value (b, c->connected_us);
    json_builder_set_member_name (b, "first_audio_us");
    json_builder_add_int_value (b, c->first_audio_us);
    json_builder_set_member_name (b, "heard_hz");
    json_builder_add_double_value (b, c->dominant_hz);
    json_builder_set_member_name (b, "windows");
    json_builder_add_int_value (b, c->windows);
    json_builder_set_member_name (b, "matching_windows");
    json_builder_add_int_value (b, c->matching);
    json_builder_set_member_name (b, "dtmf_sent");
    json_builder_add_int_value (b, c->dtmf_sent);
    json_builder_set_member_name (b, "resumed");
    json_builder_add_boolean_value (b, c->resumed);
    if (c->n_tones > 0) {
      /* each listened-for frequency: its windows in each second of the call */
      json_builder_set_member_name (b, "tones");
      json_builder_begin_array (b);
      for (guint t = 0; t < c->n_tones; t++) {
        guint last = 0, total = 0;

        for (guint k = 0; k < TONE_SECONDS; k++)
          if (c->tone_counts[t][k]) {
            last = k + 1;
            total += c->tone_counts[t][k];
          }
        json_builder_begin_object (b);
        json_builder_set_member_name (b, "hz");
        json_builder_add_double_value (b, c->tone_hz[t]);
        json_builder_set_member_name (b, "windows");
        json_builder_add_int_value (b, total);
        json_builder_set_member_name (b, "per_second");
        json_builder_begin_array (b);
        for (guint k = 0; k < last; k++)
          json_builder_add_int_value (b, c->tone_counts[t][k]);
        json_builder_end_array (b);
        json_builder_end_object (b);
      }
      json_builder_end_array (b);
    }
    if (c->modes) {
      json_builder_set_member_name (b, "modes");
      json_builder_begin_array (b);
      for (guint k = 0; k < c->modes->len; k++) {
        Mode *m = &g_array_index (c->modes, Mode, k);
        json_builder_begin_object (b);
        json_builder_set_member_name (b, "mode");
        json_builder_add_string_value (b, m->mode);
        json_builder_set_member_name (b, "at_us");
        json_builder_add_int_value (b, m->at_us);
        json_builder_end_object (b);
      }
      json_builder_end_array (b);
    }
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_end_object (b);
  return json_builder_get_root (b);
}

static void
finish (CdPeer *self, const char *failure)
{
  GTask *task;

  if (self->finished)
    return;
  self->finished = TRUE;
  if (failure) {
    self->failure = g_strdup (failure);
    say (self, "%s", failure);
  }
  g_clear_handle_id (&self->timeout_id, g_source_remove);
  g_clear_handle_id (&self->hangup_id, g_source_remove);
  g_clear_handle_id (&self->dtmf_id, g_source_remove);
  g_clear_handle_id (&self->drop_id, g_source_remove);
  g_clear_handle_id (&self->resume_id, g_source_remove);
  g_clear_handle_id (&self->transfer_id, g_source_remove);
  g_clear_handle_id (&self->mode_id, g_source_remove);
  if (self->call)
    call_ended (self, failure ? "peer-gave-up" : "peer-stopped");
  stop_media (self);
  if (self->ws) {
    g_signal_handlers_disconnect_by_data (self->ws, self);
    if (soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_OPEN)
      soup_websocket_connection_close (self->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, "done");
    g_clear_object (&self->ws);
  }
  task = g_steal_pointer (&self->task);
  if (task) {
    g_task_return_pointer (task, build_report (self), (GDestroyNotify) json_node_unref);
    g_object_unref (task);
  }
}

static gboolean
on_timeout (gpointer user_data)
{
  CdPeer *self = user_data;

  self->timeout_id = 0;
  if (self->options.keep_listening ||
      (self->options.role == CD_PEER_AGENT && self->options.calls == 0))
    finish (self, NULL);
  else
    finish (self, "timed out");
  return G_SOURCE_REMOVE;
}

static void
cd_peer_finalize (GObject *object)
{
  CdPeer *self = CD_PEER (object);

  stop_media (self);
  g_clear_object (&self->http);
  g_clear_pointer (&self->calls, g_ptr_array_unref);
  g_clear_pointer (&self->errors, g_ptr_array_unref);
  g_clear_pointer (&self->call, call_record_free);
  g_free (self->token);
  g_free (self->ws_url);
  g_free (self->ws_error);
  g_free (self->stun_server);
  g_clear_pointer (&self->turn_servers, g_ptr_array_unref);
  g_free (self->failure);
  cd_peer_options_clear (&self->options);
  G_OBJECT_CLASS (cd_peer_parent_class)->finalize (object);
}

static void
cd_peer_class_init (CdPeerClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_peer_finalize;
}

static void
cd_peer_init (CdPeer *self)
{
  self->calls = g_ptr_array_new_with_free_func (call_record_free);
  self->errors = g_ptr_array_new_with_free_func (g_free);
  self->turn_servers = g_ptr_array_new_with_free_func (g_free);
  self->http = soup_session_new_with_options ("timeout", 30, NULL);
}

CdPeer *
cd_peer_new (const CdPeerOptions *options)
{
  CdPeer *self = g_object_new (CD_TYPE_PEER, NULL);
  g_autoptr (GUri) uri = NULL;

  self->options = *options;
  self->options.server = g_str_has_suffix (options->server, "/")
                             ? g_strdup (options->server)
                             : g_strconcat (options->server, "/", NULL);
  self->options.company = g_strdup (options->company);
  self->options.origin = g_strdup (options->origin);
  self->options.page = g_strdup (options->page);
  self->options.email = g_strdup (options->email);
  self->options.password = g_strdup (options->password);
  self->options.wav = g_strdup (options->wav);
  self->options.dtmf = g_strdup (options->dtmf);
  self->options.dtmf_signaling = g_strdup (options->dtmf_signaling);
  self->options.local_addresses = g_strdupv (options->local_addresses);
  self->options.listen_for = g_strdup (options->listen_for);
  self->options.press_on = g_strdup (options->press_on);
  self->options.press_inband = options->press_inband;
  self->options.entry = g_strdup (options->entry);
  self->options.queue_id = g_strdup (options->queue_id);
  self->options.silent_after = g_strdup (options->silent_after);
  self->options.transfer_to = g_strdup (options->transfer_to);
  self->options.transfer_mode = g_strdup (options->transfer_mode);
  self->options.monitor = g_strdup (options->monitor);
  self->options.monitor_modes = g_strdup (options->monitor_modes);
  uri = g_uri_parse (self->options.server, G_URI_FLAGS_NONE, NULL);
  if (uri) {
    if (self->options.origin == NULL && options->role == CD_PEER_VISITOR)
      self->options.origin =
          g_strdup_printf ("%s://%s%s%.0d", g_uri_get_scheme (uri), g_uri_get_host (uri),
                           g_uri_get_port (uri) > 0 ? ":" : "", MAX (g_uri_get_port (uri), 0));
    g_autofree char *base = g_strdup_printf (
        "%s://%s:%d/api/v1/ws", g_str_equal (g_uri_get_scheme (uri), "https") ? "wss" : "ws",
        g_uri_get_host (uri), g_uri_get_port (uri) > 0 ? g_uri_get_port (uri) : 80);
    self->ws_url = g_steal_pointer (&base);
  }
  return self;
}

void
cd_peer_options_clear (CdPeerOptions *o)
{
  g_clear_pointer (&o->server, g_free);
  g_clear_pointer (&o->company, g_free);
  g_clear_pointer (&o->origin, g_free);
  g_clear_pointer (&o->page, g_free);
  g_clear_pointer (&o->email, g_free);
  g_clear_pointer (&o->password, g_free);
  g_clear_pointer (&o->wav, g_free);
  g_clear_pointer (&o->dtmf, g_free);
  g_clear_pointer (&o->dtmf_signaling, g_free);
  g_clear_pointer (&o->local_addresses, g_strfreev);
  g_clear_pointer (&o->listen_for, g_free);
  g_clear_pointer (&o->press_on, g_free);
  g_clear_pointer (&o->entry, g_free);
  g_clear_pointer (&o->queue_id, g_free);
  g_clear_pointer (&o->silent_after, g_free);
  g_clear_pointer (&o->transfer_to, g_free);
  g_clear_pointer (&o->transfer_mode, g_free);
  g_clear_pointer (&o->monitor, g_free);
  g_clear_pointer (&o->monitor_modes, g_free);
}

void
cd_peer_run_async (CdPeer *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                   gpointer user_data)
{
  self->task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (self->task, cd_peer_run_async);
  self->run_started_us = g_get_real_time ();
  if (self->ws_url == NULL) {
    finish (self, "the server URL is not valid");
    return;
  }
  if (self->options.timeout_s > 0)
    self->timeout_id = g_timeout_add (self->options.timeout_s * 1000, on_timeout, self);
  sign_in (self);
}

JsonNode *
cd_peer_run_finish (CdPeer *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/* ---- the command-line tools ---- */

typedef struct {
  GMainLoop *loop;
  JsonNode *report;
  CdPeer *peer;
} MainState;

static void
on_run_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  MainState *m = user_data;

  m->report = cd_peer_run_finish (CD_PEER (source), result, NULL);
  g_main_loop_quit (m->loop);
}

static gboolean
on_stop_signal (gpointer user_data)
{
  MainState *m = user_data;

  finish (m->peer, NULL);
  return G_SOURCE_REMOVE;
}

static gboolean
report_is_good (const CdPeerOptions *o, JsonObject *report, GString *why)
{
  JsonArray *calls = json_object_get_array_member (report, "calls");
  guint n = json_array_get_length (calls);

  if (!json_object_get_boolean_member (report, "ok")) {
    g_string_append (why, json_object_get_string_member (report, "failure"));
    return FALSE;
  }
  if (o->role == CD_PEER_VISITOR && n < MAX (o->repeat, 1)) {
    g_string_append_printf (why, "made %u of %u calls", n, MAX (o->repeat, 1));
    return FALSE;
  }
  if (o->role == CD_PEER_AGENT && o->calls > 0 && n < o->calls) {
    g_string_append_printf (why, "answered %u of %u calls", n, o->calls);
    return FALSE;
  }
  for (guint i = 0; i < n && o->expect_hz > 0; i++) {
    JsonObject *c = json_array_get_object_element (calls, i);
    if (json_object_get_int_member (c, "matching_windows") < 10) {
      g_string_append_printf (why, "call %s: %g Hz was not heard (heard %.1f Hz)",
                              json_object_get_string_member (c, "call_id"), o->expect_hz,
                              json_object_get_double_member (c, "heard_hz"));
      return FALSE;
    }
  }
  return TRUE;
}

/**
 * cd_peer_main:
 *
 * calldocker-visitor and calldocker-agent: run one party, print the report
 * as JSON on stdout; exit 0 when it met what was asked (--expect-hz etc.).
 */
int
cd_peer_main (CdPeerRole role, int argc, char **argv)
{
  CdPeerOptions o = { .role = role,
                      .tone_hz = role == CD_PEER_VISITOR ? 440 : 880,
                      .timeout_s = 60 };
  g_autofree char *password_file = NULL;
  g_autofree char *local = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GString) why = g_string_new (NULL);
  g_autofree char *text = NULL;
  MainState m = { 0 };
  gboolean good;
  const GOptionEntry common[] = {
    { "server", 's', 0, G_OPTION_ARG_STRING, &o.server, "calldockerd's URL", "URL" },
    { "tone", 't', 0, G_OPTION_ARG_DOUBLE, &o.tone_hz, "send a sine of this frequency", "HZ" },
    { "wav", 'w', 0, G_OPTION_ARG_FILENAME, &o.wav, "send this WAV file instead", "FILE" },
    { "expect-hz", 'e', 0, G_OPTION_ARG_DOUBLE, &o.expect_hz,
      "fail unless this frequency is heard on every call", "HZ" },
    { "hold", 0, 0, G_OPTION_ARG_DOUBLE, &o.hold_s, "hang up this long after connecting",
      "SECONDS" },
    { "timeout", 0, 0, G_OPTION_ARG_DOUBLE, &o.timeout_s, "stop after this long (default 60)",
      "SECONDS" },
    { "local-address", 0, 0, G_OPTION_ARG_STRING, &local,
      "comma-separated IP addresses ICE may use", "ADDRESSES" },
    { "block-ice", 0, 0, G_OPTION_ARG_NONE, &o.no_candidates,
      "neither send nor take ICE candidates (tests ICE failure)", NULL },
    { "drop-after", 0, 0, G_OPTION_ARG_DOUBLE, &o.drop_after_s,
      "close the WebSocket this long after connecting", "SECONDS" },
    { "resume-after", 0, 0, G_OPTION_ARG_DOUBLE, &o.resume_after_s,
      "reconnect and resume the call this long after the drop", "SECONDS" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet, "no progress on stderr", NULL },
    { "listen-for", 0, 0, G_OPTION_ARG_STRING, &o.listen_for,
      "report, second by second, the 50 ms windows holding each of these frequencies",
      "HZ,HZ,..." },
    { "queue", 0, 0, G_OPTION_ARG_STRING, &o.queue_id,
      "visitor: the queue the call asks for (no IVR)", "QUEUE_ID" },
    { "entry", 0, 0, G_OPTION_ARG_STRING, &o.entry,
      "visitor: the widget entry point whose IVR flow the call starts in", "NAME" },
    { "silent-after", 0, 0, G_OPTION_ARG_STRING, &o.silent_after,
      "visitor: send silence from SECONDS after a tone of HZ begins (a voicemail's end)",
      "HZ:SECONDS" },
    { "press-inband", 0, 0, G_OPTION_ARG_NONE, &o.press_inband,
      "visitor: --press-on's digits as DTMF tones in the audio sent, not RFC 4733 events", NULL },
    { "press-on", 0, 0, G_OPTION_ARG_STRING, &o.press_on,
      "visitor: send DIGITS as RFC 4733 events each time a tone of HZ begins (also reported like "
      "--listen-for)",
      "HZ:DIGITS,..." },
    G_OPTION_ENTRY_NULL,
  };
  const GOptionEntry visitor[] = {
    { "company", 'c', 0, G_OPTION_ARG_STRING, &o.company, "the company to call", "ID" },
    { "origin", 0, 0, G_OPTION_ARG_STRING, &o.origin, "the web page's origin", "ORIGIN" },
    { "page", 0, 0, G_OPTION_ARG_STRING, &o.page, "the page reported with the call", "URL" },
    { "dtmf", 0, 0, G_OPTION_ARG_STRING, &o.dtmf, "send these digits as RFC 4733 events",
      "DIGITS" },
    { "dtmf-signaling", 0, 0, G_OPTION_ARG_STRING, &o.dtmf_signaling,
      "send these digits as a signaling message", "DIGITS" },
    { "repeat", 'r', 0, G_OPTION_ARG_INT, &o.repeat, "make this many calls, one after another",
      "N" },
    { "relay-only", 0, 0, G_OPTION_ARG_NONE, &o.relay_only,
      "use only the widget session's TURN servers (relayed candidates)", NULL },
    { "keep-listening", 0, 0, G_OPTION_ARG_NONE, &o.keep_listening,
      "stay until the timeout after the call ends", NULL },
    G_OPTION_ENTRY_NULL,
  };
  const GOptionEntry agent[] = {
    { "email", 'u', 0, G_OPTION_ARG_STRING, &o.email, "the agent's login", "EMAIL" },
    { "password-file", 'p', 0, G_OPTION_ARG_FILENAME, &password_file, "a file holding the password",
      "FILE" },
    { "calls", 'n', 0, G_OPTION_ARG_INT, &o.calls, "leave after answering this many calls", "N" },
    { "reject", 0, 0, G_OPTION_ARG_INT, &o.reject, "reject this many offers first", "N" },
    { "transfer-to", 0, 0, G_OPTION_ARG_STRING, &o.transfer_to,
      "transfer each call to agent:ID or queue:ID once connected", "TARGET" },
    { "transfer-mode", 0, 0, G_OPTION_ARG_STRING, &o.transfer_mode, "blind (the default) or warm",
      "MODE" },
    { "transfer-after", 0, 0, G_OPTION_ARG_DOUBLE, &o.transfer_after_s,
      "transfer this long after connecting", "SECONDS" },
    { "complete-after", 0, 0, G_OPTION_ARG_DOUBLE, &o.complete_after_s,
      "warm: complete the transfer this long after the target connected", "SECONDS" },
    { "cancel-after", 0, 0, G_OPTION_ARG_DOUBLE, &o.cancel_after_s,
      "warm: cancel the transfer this long after the target connected", "SECONDS" },
    { "monitor", 0, 0, G_OPTION_ARG_STRING, &o.monitor,
      "supervise this call (a company admin) instead of taking calls", "CALL_ID" },
    { "monitor-modes", 0, 0, G_OPTION_ARG_STRING, &o.monitor_modes,
      "listen, whisper or barge, each for SECONDS, then leave (default listen)",
      "MODE[:SECONDS],..." },
    G_OPTION_ENTRY_NULL,
  };

  cd_process_init ();
  setlocale (LC_ALL, "");
  context =
      g_option_context_new (role == CD_PEER_VISITOR ? "- call a company like a website visitor"
                                                    : "- answer calls as an agent");
  g_option_context_add_main_entries (context, common, NULL);
  g_option_context_add_main_entries (context, role == CD_PEER_VISITOR ? visitor : agent, NULL);
  g_option_context_add_group (context, gst_init_get_option_group ());
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    g_printerr ("%s\n", error->message);
    return 2;
  }
  if (o.server == NULL || (role == CD_PEER_VISITOR && o.company == NULL) ||
      (role == CD_PEER_AGENT && (o.email == NULL || password_file == NULL))) {
    g_printerr ("%s\n", role == CD_PEER_VISITOR ? "--server and --company are required"
                                                : "--server, --email and --password-file are "
                                                  "required");
    return 2;
  }
  if (password_file) {
    if (!g_file_get_contents (password_file, &o.password, NULL, &error)) {
      g_printerr ("%s\n", error->message);
      return 2;
    }
    g_strchomp (o.password);
  }
  if (local) {
    o.local_addresses = g_strsplit (local, ",", -1);
  }
  m.loop = g_main_loop_new (NULL, FALSE);
  m.peer = cd_peer_new (&o);
  cd_peer_options_clear (&o);
  g_unix_signal_add (SIGINT, on_stop_signal, &m);
  g_unix_signal_add (SIGTERM, on_stop_signal, &m);
  cd_peer_run_async (m.peer, NULL, on_run_done, &m);
  g_main_loop_run (m.loop);
  good = m.report && report_is_good (&m.peer->options, json_node_get_object (m.report), why);
  text = m.report ? json_to_string (m.report, TRUE) : g_strdup ("{}");
  printf ("%s\n", text);
  if (!good)
    g_printerr ("%s\n", why->str);
  g_clear_pointer (&m.report, json_node_unref);
  g_clear_object (&m.peer);
  g_main_loop_unref (m.loop);
  return good ? 0 : 1;
}
