/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdCallPipeline: each party's webrtcbin answers its offer; what one leg
 * receives is depayloaded and payloaded again for the other (no decoding). */

#define G_LOG_DOMAIN "calldocker-media"
#define GST_USE_UNSTABLE_API

#include "cd-call-pipeline.h"

#include <glib/gstdio.h>

#include "../../common/cd-quality.h"
#include "../../common/cd-srtp-gate.h"
#include "../../common/cd-tee.h"

#include <gst/audio/audio.h>
#include <gst/gst.h>
#include <gst/rtp/rtp.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

G_DEFINE_QUARK (cd_media_error, cd_media_error)

enum {
  SIGNAL_ANSWER,
  SIGNAL_LOCAL_CANDIDATE,
  SIGNAL_LEG_CONNECTED,
  SIGNAL_DTMF,
  SIGNAL_PROMPT_DONE,
  SIGNAL_INBAND_DTMF,
  SIGNAL_RECORDING_LEVEL,
  SIGNAL_RECORDING_FAILED,
  SIGNAL_FAILED,
  SIGNAL_LEG_FAILED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];
static gint live_pipelines; /* atomic: pipelines not yet torn down */

/* Written by streaming threads, read by the main thread: atomics only. */
typedef struct {
  gpointer last_audio_us; /* a monotonic time; pointer-sized for the atomics */
  gint packets;
  gint dtmf_pt;         /* set before the probe is installed */
  guint dtmf_rate;      /* its clock rate */
  guint32 last_dtmf_ts; /* the probe's thread only */
  gboolean dtmf_seen;   /* the probe's thread only */
  GstElement *webrtc;   /* unowned: the pipeline outlives its probes */
  int tag;              /* LEG_TAG () */
} LegShared;

typedef enum {
  NEGOTIATION_IDLE,
  NEGOTIATION_REMOTE, /* setting the remote offer */
  NEGOTIATION_ANSWER, /* creating the answer */
  NEGOTIATION_LOCAL,  /* setting it */
} Negotiation;

/* A way audio reaches a leg's selector: another leg's Opus as it came (a
 * bridge), several legs decoded and mixed (a mix), a tone, or a leg's
 * decoder. Its elements and request pads go together. */
typedef struct {
  CdLegRole to;
  guint from; /* CD_LEG_BIT()s heard through it */
  gboolean mix;
  GstPad *selector_pad; /* on @to's selector; nullable */
  GPtrArray *elements;  /* GstElement*, references */
  GPtrArray *tee_pads;  /* request pads on the tees that feed it */
} Branch;

typedef struct {
  CdLegRole role;
  guint gen;          /* parties the slot has had: names and tags the elements */
  char *name;         /* the elements' prefix: the slot's name, then "agent.2"... */
  GstElement *webrtc; /* all elements: owned by the pipeline; NULL: no party */
  GstElement *depay, *tee, *pay;
  GstElement *source; /* input-selector before pay: what the leg hears */
  GstPad *mute_pad;   /* a selector pad nothing feeds: silence */
  guint hears;        /* CD_LEG_BIT()s of the legs it should hear */
  Branch *tone;       /* the visitor's ringing or hold tone, while selected */
  Branch *prompt;     /* a prompt the IVR plays to the visitor */
  guint prompt_id;
  Branch *inband; /* the visitor's decoded audio to a DTMF detector */
  GstElement *cadence;
  guint cadence_period; /* seconds: the tone sounds one in that many */
  Branch *decoder;      /* its audio decoded for mixes, once needed */
  GstElement *pcm;      /* the decoder's tee */
  LegShared *shared;    /* atomic rc box */
  int opus_pt, dtmf_pt;
  guint dtmf_rate;
  Negotiation negotiation;
  gboolean has_sink; /* the send pad has been requested */
  gboolean ice_connected, dtls_connected, audio_seen, connected_told;
  gboolean failed_told;
  gboolean stats_pending; /* a get-stats of this leg counts in stats_expected */
  gint64 created_us;
  gint64 connected_us; /* when the leg was told connected */
  char *answer_sdp;
  /* last stats sample, for the bitrate and the quality summary */
  JsonObject *stats;
  gint64 stats_at_us;
  guint64 bytes_in, bytes_out;
} Leg;

/* All of it belongs to the main context. */
struct _CdCallPipeline {
  GObject parent_instance;

  char *call_id;
  CdMediaSettings settings;
  GstElement *pipeline;
  guint bus_watch_id;
  guint watchdog_id;
  Leg legs[CD_LEG_COUNT];
  GPtrArray *branches; /* Branch*: bridges and mixes into the legs */
  guint mixes;         /* mixes made, for their names */
  guint tones;         /* tones made, likewise */
  GPtrArray *removals; /* GThread*: removals under way, joined by the teardown */
  gboolean joined;     /* the visitor heard someone: the tone is for holding now */
  gboolean ivr;        /* the IVR has the visitor: prompts or silence, no tone */
  Branch *recording;   /* the visitor recorded (voicemail) */
  struct _RecordingShared *recording_shared;
  Branch *call_recording;                /* the call recorded (both parties, sealed) */
  GstElement *call_recording_sink;       /* its cdsealsink (the branch holds it) */
  guint call_recordings;                 /* recordings made, for their names */
  GstPad *call_recording_agent_pad;      /* the interleave's input for the agent's channel */
  GstElement *call_recording_agent_feed; /* the queue feeding it now, or NULL */
  CdLegRole call_recording_agent_role;   /* whose leg that queue takes */
  guint call_recording_agent_gen;        /* and which party of that slot */
  guint call_recording_follows;          /* agents followed, for the queues' names */
  struct _RecordingShared *call_recording_shared;
  guint prompts; /* prompts played, for their ids and names */
  gboolean failed;
  gboolean stopped;
  GList *stats_waiters; /* GTask* */
  guint ticks;
  guint stats_expected;
};

G_DEFINE_FINAL_TYPE (CdCallPipeline, cd_call_pipeline, G_TYPE_OBJECT)

static const char *leg_names[CD_LEG_COUNT] = { "visitor", "agent", "agent-2", "supervisor" };

const char *
cd_leg_role_to_string (CdLegRole role)
{
  g_return_val_if_fail (role < CD_LEG_COUNT, "unknown");
  return leg_names[role];
}

/* ---- checks of outside input ---- */

static int
find_rtpmap (const GstSDPMedia *media, const char *encoding, guint clock_rate)
{
  for (guint i = 0; i < gst_sdp_media_attributes_len (media); i++) {
    const GstSDPAttribute *attr = gst_sdp_media_get_attribute (media, i);
    int pt;
    char name[32];
    guint rate;

    if (g_strcmp0 (attr->key, "rtpmap") != 0 || attr->value == NULL)
      continue;
    if (sscanf (attr->value, "%d %31[^/]/%u", &pt, name, &rate) == 3 &&
        g_ascii_strcasecmp (name, encoding) == 0 && rate == clock_rate && pt >= 0 && pt <= 127)
      return pt;
  }
  return -1;
}

static gboolean
sdp_has_attribute (const GstSDPMessage *sdp, const GstSDPMedia *media, const char *key)
{
  return gst_sdp_media_get_attribute_val (media, key) != NULL ||
         gst_sdp_message_get_attribute_val (sdp, key) != NULL;
}

static GstSDPMessage *
parse_offer (const char *text, gsize max_bytes, GError **error)
{
  g_autoptr (GstSDPMessage) sdp = NULL;
  const GstSDPMedia *media;

  if (strlen (text) > max_bytes) {
    g_set_error (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                 "the SDP is larger than %" G_GSIZE_FORMAT " bytes", max_bytes);
    return NULL;
  }
  if (!g_str_has_prefix (text, "v=0") || gst_sdp_message_new_from_text (text, &sdp) != GST_SDP_OK ||
      sdp == NULL) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the SDP does not parse (it must start with v=0)");
    return NULL;
  }
  if (gst_sdp_message_medias_len (sdp) != 1) {
    g_set_error (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                 "the offer must have exactly one media section (audio), it has %u",
                 gst_sdp_message_medias_len (sdp));
    return NULL;
  }
  media = gst_sdp_message_get_media (sdp, 0);
  if (g_strcmp0 (gst_sdp_media_get_media (media), "audio") != 0) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the offer has no audio section");
    return NULL;
  }
  if (gst_sdp_media_get_port (media) == 0) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the offer's audio section is rejected (port 0)");
    return NULL;
  }
  if (find_rtpmap (media, "opus", 48000) < 0) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the offer's audio does not include opus/48000");
    return NULL;
  }
  if (!sdp_has_attribute (sdp, media, "ice-ufrag") || !sdp_has_attribute (sdp, media, "ice-pwd")) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the offer has no ICE credentials (ice-ufrag, ice-pwd)");
    return NULL;
  }
  if (!sdp_has_attribute (sdp, media, "fingerprint")) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the offer has no DTLS fingerprint");
    return NULL;
  }
  if (g_strcmp0 (gst_sdp_media_get_proto (media), "UDP/TLS/RTP/SAVPF") != 0) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "the offer's audio must use UDP/TLS/RTP/SAVPF");
    return NULL;
  }
  return g_steal_pointer (&sdp);
}

/**
 * cd_sdp_check_offer:
 *
 * What an offer must be for a leg: one audio section with opus/48000, ICE
 * credentials and a DTLS fingerprint, at most @max_bytes long.
 */
gboolean
cd_sdp_check_offer (const char *sdp, gsize max_bytes, GError **error)
{
  g_autoptr (GstSDPMessage) parsed = parse_offer (sdp, max_bytes, error);

  return parsed != NULL;
}

/**
 * cd_ice_candidate_check:
 *
 * A trickled candidate line (RFC 8839): "candidate:" foundation component
 * transport priority address port "typ" type, printable and short.
 */
gboolean
cd_ice_candidate_check (const char *candidate, GError **error)
{
  g_auto (GStrv) parts = NULL;
  guint n;
  char *end;
  guint64 value;

  if (g_str_has_prefix (candidate, "a="))
    candidate += 2;
  if (!g_str_has_prefix (candidate, "candidate:") || strlen (candidate) > 1024)
    goto bad;
  for (const char *p = candidate; *p; p++)
    if (!g_ascii_isprint (*p))
      goto bad;
  parts = g_strsplit (candidate + strlen ("candidate:"), " ", 0);
  n = g_strv_length (parts);
  if (n < 8 || parts[0][0] == '\0' || strlen (parts[0]) > 32)
    goto bad;
  value = g_ascii_strtoull (parts[1], &end, 10);
  if (*end || value < 1 || value > 256)
    goto bad;
  if (g_ascii_strcasecmp (parts[2], "udp") != 0 && g_ascii_strcasecmp (parts[2], "tcp") != 0)
    goto bad;
  value = g_ascii_strtoull (parts[3], &end, 10);
  if (*end || parts[3][0] == '\0' || value > G_MAXUINT32)
    goto bad;
  if (parts[4][0] == '\0' || strlen (parts[4]) > 255)
    goto bad;
  value = g_ascii_strtoull (parts[5], &end, 10);
  if (*end || parts[5][0] == '\0' || value > 65535)
    goto bad;
  if (!g_str_equal (parts[6], "typ") ||
      !(g_str_equal (parts[7], "host") || g_str_equal (parts[7], "srflx") ||
        g_str_equal (parts[7], "prflx") || g_str_equal (parts[7], "relay")))
    goto bad;
  return TRUE;

bad:
  g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_CANDIDATE,
                       "not an ICE candidate line (candidate:FOUNDATION COMPONENT "
                       "udp|tcp PRIORITY ADDRESS PORT typ host|srflx|prflx|relay ...)");
  return FALSE;
}

/* ---- streaming threads: copy, then post to the bus ---- */

static void
post (GstElement *pipeline, GstStructure *s)
{
  gst_element_post_message (pipeline, gst_message_new_application (GST_OBJECT (pipeline), s));
}

static GstElement *
pipeline_of (GstElement *element)
{
  return g_object_get_data (G_OBJECT (element), "cd-pipeline");
}

static void
on_webrtc_ice_candidate (GstElement *webrtc, guint mline, char *candidate, gpointer user_data)
{
  post (pipeline_of (webrtc),
        gst_structure_new ("cd-candidate", "leg", G_TYPE_INT, GPOINTER_TO_INT (user_data), "mline",
                           G_TYPE_UINT, mline, "candidate", G_TYPE_STRING, candidate, NULL));
}

static void
on_webrtc_state_notify (GstElement *webrtc, GParamSpec *pspec, gpointer user_data)
{
  int value = 0;

  g_object_get (webrtc, pspec->name, &value, NULL);
  post (pipeline_of (webrtc),
        gst_structure_new ("cd-state", "leg", G_TYPE_INT, GPOINTER_TO_INT (user_data), "property",
                           G_TYPE_STRING, pspec->name, "value", G_TYPE_INT, value, NULL));
}

static GstPadProbeReturn
on_audio_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  LegShared *shared = user_data;

  g_atomic_int_inc (&shared->packets);
  g_atomic_pointer_set (&shared->last_audio_us, GSIZE_TO_POINTER (g_get_monotonic_time ()));
  return GST_PAD_PROBE_OK;
}

static gint64
shared_last_audio (LegShared *shared)
{
  return (gint64) GPOINTER_TO_SIZE (g_atomic_pointer_get (&shared->last_audio_us));
}

static void
on_webrtc_pad_added (GstElement *webrtc, GstPad *pad, gpointer user_data)
{
  GstElement *depay = g_object_get_data (G_OBJECT (webrtc), "cd-depay");
  g_autoptr (GstPad) sink = NULL;

  if (GST_PAD_DIRECTION (pad) != GST_PAD_SRC || depay == NULL)
    return;
  sink = gst_element_get_static_pad (depay, "sink");
  if (gst_pad_is_linked (sink)) {
    /* a second stream on the leg: nothing to carry it to */
    GstElement *bin = pipeline_of (webrtc);
    GstElement *sinkel = gst_element_factory_make ("fakesink", NULL);
    g_object_set (sinkel, "async", FALSE, "sync", FALSE, NULL);
    gst_bin_add (GST_BIN (bin), sinkel);
    gst_element_sync_state_with_parent (sinkel);
    g_autoptr (GstPad) fsink = gst_element_get_static_pad (sinkel, "sink");
    gst_pad_link (pad, fsink);
    return;
  }
  if (gst_pad_link (pad, sink) != GST_PAD_LINK_OK) {
    post (pipeline_of (webrtc), gst_structure_new ("cd-error", "detail", G_TYPE_STRING,
                                                   "cannot link a received stream", NULL));
    return;
  }
  post (pipeline_of (webrtc),
        gst_structure_new ("cd-receiving", "leg", G_TYPE_INT, GPOINTER_TO_INT (user_data), NULL));
}

/* RFC 4733: event, E|R|volume, duration; the end packet is sent three times. */
static GstPadProbeReturn
on_rtp_packet (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  LegShared *shared = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  GstRTPBuffer rtp = GST_RTP_BUFFER_INIT;
  static const char digits[] = "0123456789*#ABCD";
  GstPadProbeReturn ret = GST_PAD_PROBE_OK;
  int pt = g_atomic_int_get (&shared->dtmf_pt);

  if (pt < 0 || buffer == NULL || !gst_rtp_buffer_map (buffer, GST_MAP_READ, &rtp))
    return GST_PAD_PROBE_OK;
  if (gst_rtp_buffer_get_payload_type (&rtp) == pt) {
    guint8 *payload = gst_rtp_buffer_get_payload (&rtp);
    guint32 ts = gst_rtp_buffer_get_timestamp (&rtp);

    ret = GST_PAD_PROBE_OK;
    if (gst_rtp_buffer_get_payload_len (&rtp) >= 4 && (payload[1] & 0x80) && payload[0] < 16 &&
        !(shared->dtmf_seen && shared->last_dtmf_ts == ts)) {
      char digit[2] = { digits[payload[0]], '\0' };
      guint duration = (payload[2] << 8) | payload[3];
      shared->dtmf_seen = TRUE;
      shared->last_dtmf_ts = ts;
      post (pipeline_of (shared->webrtc),
            gst_structure_new ("cd-dtmf", "leg", G_TYPE_INT, shared->tag, "digit", G_TYPE_STRING,
                               digit, "duration_ms", G_TYPE_UINT,
                               duration * 1000 / MAX (shared->dtmf_rate, 1), NULL));
    }
  }
  gst_rtp_buffer_unmap (&rtp);
  return ret;
}

static void
on_promise_replied (GstPromise *promise, gpointer user_data)
{
  GstElement *webrtc = user_data;
  const GstStructure *reply = gst_promise_get_reply (promise);
  const char *step = g_object_get_data (G_OBJECT (webrtc), "cd-step");
  GstStructure *s =
      gst_structure_new ("cd-step", "leg", G_TYPE_INT,
                         GPOINTER_TO_INT (g_object_get_data (G_OBJECT (webrtc), "cd-leg")), "step",
                         G_TYPE_STRING, step, NULL);

  if (reply != NULL) {
    GstWebRTCSessionDescription *answer = NULL;
    GError *error = NULL;

    if (gst_structure_has_field (reply, "error")) {
      gst_structure_get (reply, "error", G_TYPE_ERROR, &error, NULL);
      gst_structure_set (s, "error", G_TYPE_STRING, error ? error->message : "failed", NULL);
      g_clear_error (&error);
    }
    if (gst_structure_has_field_typed (reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION)) {
      gst_structure_get (reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
      gst_structure_set (s, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, answer, NULL);
      gst_webrtc_session_description_free (answer);
    }
  } else if (g_strcmp0 (step, "answer") == 0) {
    gst_structure_set (s, "error", G_TYPE_STRING, "no answer", NULL);
  }
  post (pipeline_of (webrtc), s);
  gst_object_unref (webrtc);
}

/* Three decimals are plenty, and json-glib prints tiny doubles in a form
 * that is not JSON ("1e-08.0"): rounded, they print as numbers. */
static double
round3 (double v)
{
  return round (v * 1000) / 1000;
}

static void
stats_add (JsonBuilder *b, const char *name, const GstStructure *s, const char *field, double scale)
{
  const GValue *v = gst_structure_get_value (s, field);
  double d;

  if (v == NULL)
    return;
  if (G_VALUE_HOLDS_DOUBLE (v))
    d = g_value_get_double (v);
  else if (G_VALUE_HOLDS_UINT64 (v))
    d = (double) g_value_get_uint64 (v);
  else if (G_VALUE_HOLDS_INT64 (v))
    d = (double) g_value_get_int64 (v);
  else if (G_VALUE_HOLDS_UINT (v))
    d = g_value_get_uint (v);
  else if (G_VALUE_HOLDS_INT (v))
    d = g_value_get_int (v);
  else
    return;
  json_builder_set_member_name (b, name);
  json_builder_add_double_value (b, round3 (d * scale));
}

typedef struct {
  JsonBuilder *b;
} StatsWalk;

static gboolean
on_stats_field (GQuark field, const GValue *value, gpointer user_data)
{
  StatsWalk *w = user_data;
  const GstStructure *s;
  GstWebRTCStatsType type;

  if (!GST_VALUE_HOLDS_STRUCTURE (value))
    return TRUE;
  s = gst_value_get_structure (value);
  if (!gst_structure_get (s, "type", GST_TYPE_WEBRTC_STATS_TYPE, &type, NULL))
    return TRUE;
  switch (type) {
  case GST_WEBRTC_STATS_INBOUND_RTP:
    json_builder_set_member_name (w->b, "inbound");
    json_builder_begin_object (w->b);
    stats_add (w->b, "packets_received", s, "packets-received", 1);
    stats_add (w->b, "packets_lost", s, "packets-lost", 1);
    stats_add (w->b, "bytes_received", s, "bytes-received", 1);
    stats_add (w->b, "jitter_ms", s, "jitter", 1000);
    json_builder_end_object (w->b);
    break;
  case GST_WEBRTC_STATS_OUTBOUND_RTP:
    json_builder_set_member_name (w->b, "outbound");
    json_builder_begin_object (w->b);
    stats_add (w->b, "packets_sent", s, "packets-sent", 1);
    stats_add (w->b, "bytes_sent", s, "bytes-sent", 1);
    json_builder_end_object (w->b);
    break;
  case GST_WEBRTC_STATS_REMOTE_INBOUND_RTP:
    json_builder_set_member_name (w->b, "remote_inbound");
    json_builder_begin_object (w->b);
    stats_add (w->b, "packets_lost", s, "packets-lost", 1);
    stats_add (w->b, "jitter_ms", s, "jitter", 1000);
    stats_add (w->b, "round_trip_time_ms", s, "round-trip-time", 1000);
    stats_add (w->b, "fraction_lost", s, "fraction-lost", 1);
    json_builder_end_object (w->b);
    break;
  default:
    break;
  }
  return TRUE;
}

static void
on_stats_replied (GstPromise *promise, gpointer user_data)
{
  GstElement *webrtc = user_data;
  const GstStructure *reply = gst_promise_get_reply (promise);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *text = NULL;
  StatsWalk walk = { b };

  json_builder_begin_object (b);
  if (reply)
    gst_structure_foreach (reply, on_stats_field, &walk);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  text = json_to_string (node, FALSE);
  post (pipeline_of (webrtc),
        gst_structure_new ("cd-stats", "leg", G_TYPE_INT,
                           GPOINTER_TO_INT (g_object_get_data (G_OBJECT (webrtc), "cd-leg")),
                           "json", G_TYPE_STRING, text, NULL));
  gst_object_unref (webrtc);
}

/* ---- the main context ---- */

static void
fail (CdCallPipeline *self, const char *reason, const char *detail)
{
  if (self->failed || self->stopped)
    return;
  self->failed = TRUE;
  g_message ("call %s: media failed (%s): %s", self->call_id, reason, detail);
  if (self->pipeline && g_getenv ("GST_DEBUG_DUMP_DOT_DIR"))
    GST_DEBUG_BIN_TO_DOT_FILE (GST_BIN (self->pipeline), GST_DEBUG_GRAPH_SHOW_ALL, self->call_id);
  g_signal_emit (self, signals[SIGNAL_FAILED], 0, reason, detail);
}

/* One party's media failed: told once per party, the switchboard says
 * whether the call ends or only that party leaves. */
static void
leg_fail (CdCallPipeline *self, Leg *leg, const char *reason, const char *detail)
{
  if (self->failed || self->stopped || leg->failed_told)
    return;
  leg->failed_told = TRUE;
  g_message ("call %s: the %s's media failed (%s): %s", self->call_id, leg->name, reason, detail);
  g_signal_emit (self, signals[SIGNAL_LEG_FAILED], 0, leg->role, reason, detail);
}

static void
promise_step (CdCallPipeline *self, Leg *leg, const char *step, GstPromise **promise)
{
  g_object_set_data (G_OBJECT (leg->webrtc), "cd-step", (gpointer) step);
  *promise =
      gst_promise_new_with_change_func (on_promise_replied, gst_object_ref (leg->webrtc), NULL);
}

static GstElement *
make (const char *factory, const char *name)
{
  GstElement *e = gst_element_factory_make (factory, name);

  if (e == NULL)
    g_error ("the GStreamer element %s is missing (install gstreamer1.0-plugins-good/bad)",
             factory);
  return e;
}

/* A leg's tag, given to its webrtcbin's callbacks and put on every message
 * they post: the slot and its generation, so that what a removed party's
 * elements still post is not taken for the slot's next party. */
#define LEG_TAG(leg)  GINT_TO_POINTER ((int) ((leg)->role | ((leg)->gen << 4)))
#define TAG_ROLE(tag) ((tag) &0xf)
#define TAG_GEN(tag)  ((guint) (tag) >> 4)

static void
branch_free (Branch *b)
{
  g_clear_object (&b->selector_pad);
  g_ptr_array_unref (b->elements);
  g_ptr_array_unref (b->tee_pads);
  g_free (b);
}

static Branch *
branch_new (CdLegRole to, guint from, gboolean mix)
{
  Branch *b = g_new0 (Branch, 1);

  b->to = to;
  b->from = from;
  b->mix = mix;
  b->elements = g_ptr_array_new_with_free_func (gst_object_unref);
  b->tee_pads = g_ptr_array_new_with_free_func (gst_object_unref);
  return b;
}

static GstElement *
add_element (CdCallPipeline *self, Branch *b, const char *factory, const char *name)
{
  GstElement *e = make (factory, name);

  gst_bin_add (GST_BIN (self->pipeline), e);
  if (b)
    g_ptr_array_add (b->elements, gst_object_ref (e));
  return e;
}

/* A queue that holds at most 200 ms and, full, drops what arrives (leaky
 * upstream), so one party's stalled network never blocks another's.
 * Dropping the oldest instead (leaky downstream) races the queue's own
 * thread: a sticky event leaked from the head is stored on the source pad
 * while the thread is still pushing the one before it, and GStreamer 1.22
 * warns "Sticky event misordering" (caps before stream-start). Queues
 * that carry audio from one leg to another are marked: the teardown
 * removes them first, since a bin with a loop cannot order its states. */
static GstElement *
add_crossing_queue (CdCallPipeline *self, Branch *b, const char *name)
{
  GstElement *queue = add_element (self, b, "queue", name);

  g_object_set (queue, "max-size-time", (guint64) 200 * GST_MSECOND, "max-size-bytes", 0,
                "max-size-buffers", 0, "leaky", 1, NULL);
  g_object_set_data (G_OBJECT (queue), "cd-crossing", GINT_TO_POINTER (1));
  return queue;
}

/* Links a new request pad of @tee to @sink, keeping the pad in @b. */
static gboolean
link_from_tee (Branch *b, GstElement *tee, GstElement *sink)
{
  GstPad *src = cd_tee_request_pad (tee);
  g_autoptr (GstPad) sinkpad = gst_element_get_static_pad (sink, "sink");

  g_ptr_array_add (b->tee_pads, src);
  return gst_pad_link (src, sinkpad) == GST_PAD_LINK_OK;
}

/* Links @src to a new input of @leg's selector, kept in @b. */
static gboolean
link_to_selector (Branch *b, GstElement *src, Leg *leg)
{
  g_autoptr (GstPad) srcpad = gst_element_get_static_pad (src, "src");

  b->selector_pad = gst_element_request_pad_simple (leg->source, "sink_%u");
  return gst_pad_link (srcpad, b->selector_pad) == GST_PAD_LINK_OK;
}

static void
sync_elements (Branch *b)
{
  /* downstream first: nothing flows into an element not yet playing */
  for (guint i = b->elements->len; i > 0; i--)
    gst_element_sync_state_with_parent (g_ptr_array_index (b->elements, i - 1));
}

/* @from's Opus as it came, payloaded again for @to: no decoding. */
static Branch *
bridge_new (CdCallPipeline *self, Leg *from, Leg *to)
{
  Branch *b = branch_new (to->role, 1u << from->role, FALSE);
  g_autofree char *name = g_strdup_printf ("%s-to-%s", from->name, to->name);
  GstElement *queue = add_crossing_queue (self, b, name);

  if (!link_to_selector (b, queue, to))
    g_error ("call %s: cannot bridge %s to %s", self->call_id, from->name, to->name);
  sync_elements (b);
  /* selected before anything flows: a selector forwards the events of its
   * active pad as they come, so a switch between a stream-start and the
   * caps that follow it sends the caps alone (GStreamer warns of sticky
   * event misordering, seen in the sanitizer run) */
  g_object_set (to->source, "active-pad", b->selector_pad, NULL);
  /* last: a tee pushing into an element not yet playing gets flushing,
   * which would stop the leg's stream for every branch */
  if (!link_from_tee (b, from->tee, queue))
    g_error ("call %s: cannot bridge %s to %s", self->call_id, from->name, to->name);
  return b;
}

/* The leg's audio decoded once, for every mix that hears it. The elements
 * belong to the leg and go with it. */
static void
ensure_decoded (CdCallPipeline *self, Leg *leg)
{
  g_autofree char *qname = g_strdup_printf ("%s-decode", leg->name);
  g_autofree char *pname = g_strdup_printf ("%s-pcm", leg->name);
  g_autoptr (GstCaps) caps = NULL;
  GstElement *queue, *dec, *convert, *resample, *filter;
  Branch *b;

  if (leg->pcm)
    return;
  b = branch_new (leg->role, 0, FALSE);
  queue = add_element (self, b, "queue", qname);
  g_object_set (queue, "max-size-time", (guint64) 200 * GST_MSECOND, "max-size-bytes", 0,
                "max-size-buffers", 0, "leaky", 1, NULL);
  dec = add_element (self, b, "opusdec", NULL);
  g_object_set (dec, "plc", TRUE, NULL);
  convert = add_element (self, b, "audioconvert", NULL);
  resample = add_element (self, b, "audioresample", NULL);
  filter = add_element (self, b, "capsfilter", NULL);
  caps = gst_caps_from_string ("audio/x-raw,format=S16LE,rate=48000,channels=1");
  g_object_set (filter, "caps", caps, NULL);
  leg->pcm = add_element (self, b, "tee", pname);
  g_object_set (leg->pcm, "allow-not-linked", TRUE, NULL);
  if (!gst_element_link_many (queue, dec, convert, resample, filter, leg->pcm, NULL))
    g_error ("call %s: cannot decode the %s's audio", self->call_id, leg->name);
  sync_elements (b);
  if (!link_from_tee (b, leg->tee, queue))
    g_error ("call %s: cannot decode the %s's audio", self->call_id, leg->name);
  /* the leg's own: removed with it, tee and all */
  leg->decoder = b;
}

static GstElement *
make_encoder (CdCallPipeline *self, Branch *b)
{
  GstElement *enc = add_element (self, b, "opusenc", NULL);

  g_object_set (enc, "bitrate", (int) self->settings.opus_bitrate, "complexity",
                (int) self->settings.opus_complexity, "inband-fec", self->settings.opus_fec, "dtx",
                self->settings.opus_dtx, NULL);
  gst_util_set_object_arg (G_OBJECT (enc), "frame-size", "20");
  return enc;
}

/* What the talkers in @from say, decoded, mixed and encoded for @to alone
 * (mix-minus: a leg never hears itself). */
static Branch *
mix_new (CdCallPipeline *self, Leg *to, guint from)
{
  Branch *b = branch_new (to->role, from, TRUE);
  g_autofree char *mname = g_strdup_printf ("%s-mix-%u", to->name, ++self->mixes);
  g_autoptr (GstCaps) caps =
      gst_caps_from_string ("audio/x-raw,format=S16LE,rate=48000,channels=1");
  GstElement *mixer, *filter, *enc;

  mixer = add_element (self, b, "audiomixer", mname);
  /* live: it mixes what has come after its latency, and starts at the
   * first buffer's time, not at zero (which it would then catch up on) */
  g_object_set (mixer, "latency", (guint64) 40 * GST_MSECOND, NULL);
  gst_util_set_object_arg (G_OBJECT (mixer), "start-time-selection", "first");
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (mixer), "ignore-inactive-pads"))
    g_object_set (mixer, "ignore-inactive-pads", TRUE, NULL);
  filter = add_element (self, b, "capsfilter", NULL);
  g_object_set (filter, "caps", caps, NULL);
  enc = make_encoder (self, b);
  if (!gst_element_link_many (mixer, filter, enc, NULL) || !link_to_selector (b, enc, to))
    g_error ("call %s: cannot build the %s's mix", self->call_id, to->name);
  for (int t = 0; t < CD_LEG_COUNT; t++) {
    Leg *talker = &self->legs[t];
    g_autofree char *qname = NULL;
    GstElement *queue;
    g_autoptr (GstPad) qsrc = NULL;
    g_autoptr (GstPad) msink = NULL;

    if (!(from & (1u << t)))
      continue;
    ensure_decoded (self, talker);
    qname = g_strdup_printf ("%s-to-%s", talker->name, mname);
    queue = add_crossing_queue (self, b, qname);
    g_object_set_data (G_OBJECT (queue), "cd-talker", talker->pcm);
    qsrc = gst_element_get_static_pad (queue, "src");
    msink = gst_element_request_pad_simple (mixer, "sink_%u");
    if (gst_pad_link (qsrc, msink) != GST_PAD_LINK_OK)
      g_error ("call %s: cannot mix the %s's audio", self->call_id, talker->name);
  }
  sync_elements (b);
  /* selected before anything flows (see bridge_new) */
  g_object_set (to->source, "active-pad", b->selector_pad, NULL);
  /* the talkers' tees last, once everything they feed is playing */
  for (guint i = 0; i < b->elements->len; i++) {
    GstElement *e = g_ptr_array_index (b->elements, i);
    GstElement *tee = g_object_get_data (G_OBJECT (e), "cd-talker");

    if (tee && !link_from_tee (b, tee, e))
      g_error ("call %s: cannot mix into the %s's audio", self->call_id, to->name);
  }
  return b;
}

/* The ringing tone (425 Hz, one second in four) before an agent first
 * answers, the hold tone (350 Hz, one second in two) after: made here and
 * encoded with the configured Opus settings, chosen by the visitor's
 * selector while the visitor hears nobody. */
static void
add_tone (CdCallPipeline *self, Leg *leg)
{
  Branch *b = branch_new (leg->role, 0, FALSE);
  /* numbered: the previous tone may still be stopping */
  g_autofree char *name =
      g_strdup_printf ("%s-%s-%u", leg->name, self->joined ? "hold" : "ringback", ++self->tones);
  g_autoptr (GstCaps) caps = gst_caps_from_string ("audio/x-raw,rate=48000,channels=1");
  GstElement *src, *cadence, *convert, *resample, *filter, *enc;

  src = add_element (self, b, "audiotestsrc", name);
  g_object_set (src, "is-live", TRUE, "freq", self->joined ? 350.0 : 425.0, "volume", 0.25,
                "samplesperbuffer", 960, NULL);
  cadence = add_element (self, b, "volume", NULL);
  convert = add_element (self, b, "audioconvert", NULL);
  resample = add_element (self, b, "audioresample", NULL);
  filter = add_element (self, b, "capsfilter", NULL);
  g_object_set (filter, "caps", caps, NULL);
  enc = make_encoder (self, b);
  if (!gst_element_link_many (src, cadence, convert, resample, filter, enc, NULL) ||
      !link_to_selector (b, enc, leg))
    g_error ("call %s: cannot link the tone", self->call_id);
  leg->tone = b;
  leg->cadence = cadence;
  leg->cadence_period = self->joined ? 2 : 4;
  g_object_set (leg->source, "active-pad", b->selector_pad, NULL);
  sync_elements (b);
}

typedef struct {
  GstElement *pipeline;
  GstElement *webrtc; /* nullable: a leg's, stopped first */
  GPtrArray *tee_pads;
  GPtrArray *selector_pads;
  GPtrArray *elements;
} Removal;

/* Shared by the probe and the thread waiting for it: the probe may run
 * after the wait gave up. */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean done;
} Idle;

static void
idle_clear (gpointer data)
{
  Idle *idle = data;

  g_mutex_clear (&idle->lock);
  g_cond_clear (&idle->cond);
}

static void
idle_release (gpointer data)
{
  g_atomic_rc_box_release_full (data, idle_clear);
}

static GstPadProbeReturn
on_tee_pad_idle (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Idle *idle = user_data;
  g_autoptr (GstPad) peer = gst_pad_get_peer (pad);

  if (peer)
    gst_pad_unlink (pad, peer);
  g_mutex_lock (&idle->lock);
  idle->done = TRUE;
  g_cond_signal (&idle->cond);
  g_mutex_unlock (&idle->lock);
  return GST_PAD_PROBE_REMOVE;
}

/* Unlinks a tee's request pad between two buffers, then releases it: the
 * tee goes on feeding its other branches. */
static void
detach_tee_pad (GstPad *pad)
{
  g_autoptr (GstElement) tee = gst_pad_get_parent_element (pad);
  Idle *idle = g_atomic_rc_box_new0 (Idle);
  gint64 until = g_get_monotonic_time () + G_USEC_PER_SEC;
  gboolean done;
  gulong id;

  g_mutex_init (&idle->lock);
  g_cond_init (&idle->cond);
  id = gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_IDLE, on_tee_pad_idle,
                          g_atomic_rc_box_acquire (idle), idle_release);
  g_mutex_lock (&idle->lock);
  while (!idle->done)
    if (!g_cond_wait_until (&idle->cond, &idle->lock, until))
      break;
  done = idle->done;
  g_mutex_unlock (&idle->lock);
  if (!done) {
    /* the tee's thread is stuck downstream; the release below unlinks */
    g_message ("a branch was removed without waiting for its tee");
    if (id)
      gst_pad_remove_probe (pad, id);
  }
  idle_release (idle);
  if (tee)
    gst_element_release_request_pad (tee, pad);
}

static gpointer
removal_thread (gpointer data)
{
  Removal *r = data;

  for (guint i = 0; i < r->tee_pads->len; i++)
    detach_tee_pad (g_ptr_array_index (r->tee_pads, i));
  if (r->webrtc) {
    cd_srtp_gate_close (GST_BIN (r->webrtc));
    gst_element_set_locked_state (r->webrtc, TRUE);
    gst_element_set_state (r->webrtc, GST_STATE_NULL);
  }
  for (guint i = 0; i < r->elements->len; i++) {
    GstElement *e = g_ptr_array_index (r->elements, i);
    gst_element_set_locked_state (e, TRUE);
    gst_element_set_state (e, GST_STATE_NULL);
  }
  for (guint i = 0; i < r->selector_pads->len; i++) {
    GstPad *pad = g_ptr_array_index (r->selector_pads, i);
    g_autoptr (GstElement) selector = gst_pad_get_parent_element (pad);
    if (selector)
      gst_element_release_request_pad (selector, pad);
  }
  if (r->webrtc)
    gst_bin_remove (GST_BIN (r->pipeline), r->webrtc);
  for (guint i = 0; i < r->elements->len; i++)
    gst_bin_remove (GST_BIN (r->pipeline), g_ptr_array_index (r->elements, i));
  g_clear_object (&r->webrtc);
  g_ptr_array_unref (r->tee_pads);
  g_ptr_array_unref (r->selector_pads);
  g_ptr_array_unref (r->elements);
  gst_object_unref (r->pipeline);
  g_free (r);
  g_atomic_int_dec_and_test (&live_pipelines);
  return NULL;
}

static Removal *
removal_new (CdCallPipeline *self)
{
  Removal *r = g_new0 (Removal, 1);

  r->pipeline = gst_object_ref (self->pipeline);
  r->tee_pads = g_ptr_array_new_with_free_func (gst_object_unref);
  r->selector_pads = g_ptr_array_new_with_free_func (gst_object_unref);
  r->elements = g_ptr_array_new_with_free_func (gst_object_unref);
  return r;
}

/* @b goes into @r: its elements are stopped and removed; @detach_tees is
 * false when the tees feeding it go too. */
static void
removal_take_branch (Removal *r, Branch *b, gboolean detach_tees, gboolean release_selector)
{
  if (detach_tees)
    g_ptr_array_extend (r->tee_pads, b->tee_pads, (GCopyFunc) (void (*) (void)) gst_object_ref,
                        NULL);
  if (release_selector && b->selector_pad)
    g_ptr_array_add (r->selector_pads, gst_object_ref (b->selector_pad));
  g_ptr_array_extend (r->elements, b->elements, (GCopyFunc) (void (*) (void)) gst_object_ref, NULL);
  branch_free (b);
}

/* Stopping elements joins their threads: never on the main loop. */
static void
removal_start (CdCallPipeline *self, Removal *r)
{
  if (r->webrtc == NULL && r->elements->len == 0 && r->tee_pads->len == 0) {
    g_ptr_array_unref (r->tee_pads);
    g_ptr_array_unref (r->selector_pads);
    g_ptr_array_unref (r->elements);
    gst_object_unref (r->pipeline);
    g_free (r);
    return;
  }
  g_atomic_int_inc (&live_pipelines);
  /* the teardown joins it first: both remove elements from the bin */
  g_ptr_array_add (self->removals, g_thread_new ("call-removal", removal_thread, r));
}

static void
drop_tone (CdCallPipeline *self, Leg *leg)
{
  Removal *r;

  if (leg->tone == NULL)
    return;
  r = removal_new (self);
  removal_take_branch (r, g_steal_pointer (&leg->tone), FALSE, TRUE);
  leg->cadence = NULL;
  removal_start (self, r);
}

static void apply_hearing (CdCallPipeline *self, Leg *leg);
static void drop_prompt (CdCallPipeline *self, Leg *leg);

/* ---- prompts: an Ogg/Opus file played to the visitor, paced by the
 * clock, re-encoded like the tones; its end is not the leg's ---- */

static GstPadProbeReturn
on_prompt_event (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT (info);

  if (GST_EVENT_TYPE (event) != GST_EVENT_EOS)
    return GST_PAD_PROBE_OK;
  /* an EOS through the selector would end what the visitor hears for good */
  {
    g_autoptr (GstElement) element = gst_pad_get_parent_element (pad);
    if (element)
      gst_element_post_message (
          element, gst_message_new_application (
                       GST_OBJECT (element), gst_structure_new ("cd-prompt-done", "id", G_TYPE_UINT,
                                                                GPOINTER_TO_UINT (user_data), "ok",
                                                                G_TYPE_BOOLEAN, TRUE, NULL)));
  }
  return GST_PAD_PROBE_DROP;
}

/* The first decoded buffer: from now on the file plays on the pipeline's
 * clock (its timestamps start at 0, and the elements took a moment to
 * start): the offset goes on the pad before the clock sync, which paces. */
static GstPadProbeReturn
on_prompt_first_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstPad *paced = user_data;
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER (info);
  g_autoptr (GstElement) element = gst_pad_get_parent_element (pad);
  g_autoptr (GstClock) clock = element ? gst_element_get_clock (element) : NULL;

  if (clock && GST_BUFFER_PTS_IS_VALID (buffer)) {
    GstClockTime now = gst_clock_get_time (clock) - gst_element_get_base_time (element);

    gst_pad_set_offset (paced, (gint64) now - (gint64) GST_BUFFER_PTS (buffer));
  }
  return GST_PAD_PROBE_REMOVE;
}

static void
on_prompt_demuxed (GstElement *demux, GstPad *pad, gpointer user_data)
{
  GstElement *dec = user_data;
  g_autoptr (GstPad) sink = gst_element_get_static_pad (dec, "sink");

  if (!gst_pad_is_linked (sink))
    gst_pad_link (pad, sink);
}

static void
drop_prompt (CdCallPipeline *self, Leg *leg)
{
  Removal *r;

  if (leg->prompt == NULL)
    return;
  r = removal_new (self);
  removal_take_branch (r, g_steal_pointer (&leg->prompt), FALSE, TRUE);
  leg->prompt_id = 0;
  removal_start (self, r);
}

static void
add_prompt (CdCallPipeline *self, Leg *leg, const char *path, guint id)
{
  Branch *b = branch_new (leg->role, 0, FALSE);
  g_autoptr (GstCaps) caps =
      gst_caps_from_string ("audio/x-raw,format=S16LE,rate=48000,channels=1");
  g_autofree char *prefix = g_strdup_printf ("prompt-%u", id);
  g_autofree char *src_name = g_strconcat (prefix, "-file", NULL);
  g_autofree char *demux_name = g_strconcat (prefix, "-demux", NULL);
  g_autofree char *dec_name = g_strconcat (prefix, "-decode", NULL);
  g_autofree char *sync_name = g_strconcat (prefix, "-clock", NULL);
  g_autoptr (GstPad) dec_src = NULL;
  g_autoptr (GstPad) enc_src = NULL;
  GstElement *src, *demux, *dec, *convert, *resample, *filter, *sync, *enc;

  if (path == NULL) {
    /* a beep: 1 kHz for 300 ms */
    src = add_element (self, b, "audiotestsrc", src_name);
    g_object_set (src, "freq", 1000.0, "volume", 0.4, "samplesperbuffer", 960, "num-buffers", 15,
                  NULL);
    demux = NULL;
    dec = add_element (self, b, "identity", dec_name);
    if (!gst_element_link (src, dec))
      g_error ("call %s: cannot link a beep", self->call_id);
  } else {
    src = add_element (self, b, "filesrc", src_name);
    g_object_set (src, "location", path, NULL);
    demux = add_element (self, b, "oggdemux", demux_name);
    dec = add_element (self, b, "opusdec", dec_name);
  }
  convert = add_element (self, b, "audioconvert", NULL);
  resample = add_element (self, b, "audioresample", NULL);
  filter = add_element (self, b, "capsfilter", NULL);
  g_object_set (filter, "caps", caps, NULL);
  sync = add_element (self, b, "clocksync", sync_name);
  enc = make_encoder (self, b);
  if ((demux && !gst_element_link (src, demux)) ||
      !gst_element_link_many (dec, convert, resample, filter, sync, enc, NULL) ||
      !link_to_selector (b, enc, leg))
    g_error ("call %s: cannot link a prompt", self->call_id);
  if (demux)
    g_signal_connect (demux, "pad-added", G_CALLBACK (on_prompt_demuxed), dec);
  /* the file starts at 0: it plays from its first buffer on, in step with
   * the pipeline's clock (an offset on a source pad is applied to what it
   * pushes next, segment included) */
  dec_src = gst_element_get_static_pad (dec, "src");
  gst_pad_add_probe (dec_src, GST_PAD_PROBE_TYPE_BUFFER, on_prompt_first_buffer,
                     gst_element_get_static_pad (filter, "src"), gst_object_unref);
  enc_src = gst_element_get_static_pad (enc, "src");
  gst_pad_add_probe (enc_src, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_prompt_event,
                     GUINT_TO_POINTER (id), NULL);
  leg->prompt = b;
  leg->prompt_id = id;
  /* selected before anything flows (see bridge_new) */
  g_object_set (leg->source, "active-pad", b->selector_pad, NULL);
  drop_tone (self, leg);
  sync_elements (b);
}

/* ---- recording the visitor (voicemail): the decoded audio, its level
 * told every 100 ms, encoded into Ogg/Opus; finished off the main loop ---- */

typedef struct _RecordingShared {
  gint64 frames;  /* counted at the encoder (atomic) */
  guint channels; /* of what is counted, set before any probe runs */
  gint paused;    /* atomic: while set, what is recorded is silence */
  GMutex lock;
  GCond cond;
  gboolean eos; /* the end reached the file */
} RecordingShared;

static void
recording_shared_clear (gpointer data)
{
  RecordingShared *r = data;

  g_mutex_clear (&r->lock);
  g_cond_clear (&r->cond);
}

static void
recording_shared_release (gpointer data)
{
  g_atomic_rc_box_release_full (data, recording_shared_clear);
}

static GstPadProbeReturn
on_recorded_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RecordingShared *r = user_data;

  /* S16LE: two bytes a sample */
  g_atomic_pointer_add (&r->frames,
                        (gssize) (gst_buffer_get_size (GST_PAD_PROBE_INFO_BUFFER (info)) /
                                  (2 * MAX (r->channels, 1))));
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_recording_end (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RecordingShared *r = user_data;

  if (GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info)) == GST_EVENT_EOS) {
    g_mutex_lock (&r->lock);
    r->eos = TRUE;
    g_cond_signal (&r->cond);
    g_mutex_unlock (&r->lock);
  }
  return GST_PAD_PROBE_OK;
}

/**
 * cd_call_pipeline_start_recording:
 * @path: the Ogg/Opus file to write, sealed (cdsealsink)
 * @key: the company's key (32 bytes), @company and @key_version for the
 *   file's header
 *
 * Records what the visitor says, until cd_call_pipeline_stop_recording_async();
 * "recording-level" tells its loudness every 100 ms.
 *
 * Returns: FALSE when the visitor's media is not there or a recording runs
 */
gboolean
cd_call_pipeline_start_recording (CdCallPipeline *self, const char *path, GBytes *key,
                                  const char *company, guint32 key_version)
{
  Leg *leg = &self->legs[CD_LEG_VISITOR];
  Branch *b;
  g_autoptr (GstCaps) caps = NULL;
  g_autoptr (GstPad) counted = NULL;
  g_autoptr (GstPad) written = NULL;
  GstElement *queue, *level, *filter, *enc, *mux, *sink;

  if (self->pipeline == NULL || self->stopped || self->recording || leg->webrtc == NULL ||
      leg->tee == NULL)
    return FALSE;
  ensure_decoded (self, leg);
  b = branch_new (leg->role, 0, FALSE);
  self->recording_shared = g_atomic_rc_box_new0 (RecordingShared);
  self->recording_shared->channels = 1;
  g_mutex_init (&self->recording_shared->lock);
  g_cond_init (&self->recording_shared->cond);
  queue = add_element (self, b, "queue", "visitor-record");
  /* leaky: a disk that stalls for more than 2 s loses recorded audio, but
   * never holds up the visitor's decoded audio, which the mixes share */
  g_object_set (queue, "max-size-time", (guint64) 2 * GST_SECOND, "max-size-bytes", 0,
                "max-size-buffers", 0, "leaky", 1, NULL);
  level = add_element (self, b, "level", "visitor-record-level");
  g_object_set (level, "interval", (guint64) 100 * GST_MSECOND, "post-messages", TRUE, NULL);
  filter = add_element (self, b, "capsfilter", NULL);
  caps = gst_caps_from_string ("audio/x-raw,format=S16LE,rate=48000,channels=1");
  g_object_set (filter, "caps", caps, NULL);
  enc = add_element (self, b, "opusenc", NULL);
  g_object_set (enc, "bitrate", 32000, NULL);
  mux = add_element (self, b, "oggmux", NULL);
  sink = add_element (self, b, "cdsealsink", "visitor-record-file");
  g_object_set (sink, "location", path, "key", key, "company", company, "key-version", key_version,
                NULL);
  if (!gst_element_link_many (queue, level, filter, enc, mux, sink, NULL))
    g_error ("call %s: cannot record the visitor", self->call_id);
  counted = gst_element_get_static_pad (filter, "src");
  gst_pad_add_probe (counted, GST_PAD_PROBE_TYPE_BUFFER, on_recorded_buffer,
                     g_atomic_rc_box_acquire (self->recording_shared), recording_shared_release);
  written = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (written, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_recording_end,
                     g_atomic_rc_box_acquire (self->recording_shared), recording_shared_release);
  sync_elements (b);
  if (!link_from_tee (b, leg->pcm, queue))
    g_error ("call %s: cannot record the visitor", self->call_id);
  self->recording = b;
  return TRUE;
}

typedef struct {
  Removal *removal;
  RecordingShared *shared;
  GPtrArray *queue_sinks; /* GstPad*: where the recorded audio enters */
  char *path;
  GstElement *sink; /* a cdsealsink, or NULL */
} RecordingStop;

typedef struct {
  guint ms;
  guint64 bytes;
  guint64 plain_bytes;
} RecordingResult;

/* Detaches the recording, lets its end reach the file, then stops and
 * removes its elements: the file is whole once the task returns. */
static void
recording_stop_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  RecordingStop *stop = task_data;
  RecordingShared *r = stop->shared;
  Removal *removal = g_steal_pointer (&stop->removal);
  gint64 until = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  gboolean whole;

  for (guint i = 0; i < removal->tee_pads->len; i++)
    detach_tee_pad (g_ptr_array_index (removal->tee_pads, i));
  g_ptr_array_set_size (removal->tee_pads, 0);
  for (guint i = 0; i < stop->queue_sinks->len; i++)
    gst_pad_send_event (g_ptr_array_index (stop->queue_sinks, i), gst_event_new_eos ());
  g_mutex_lock (&r->lock);
  while (!r->eos)
    if (!g_cond_wait_until (&r->cond, &r->lock, until))
      break;
  whole = r->eos;
  g_mutex_unlock (&r->lock);
  /* stopping the file sink closes the file */
  g_atomic_int_inc (&live_pipelines);
  removal_thread (removal);
  if (!whole) {
    g_task_return_new_error (task, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED,
                             "the recording's end did not reach its file in time");
  } else {
    RecordingResult *result = g_new0 (RecordingResult, 1);
    g_autofree char *failure = NULL;
    GStatBuf st;

    result->ms = (guint) (g_atomic_pointer_get (&r->frames) / 48);
    result->bytes = g_stat (stop->path, &st) == 0 ? (guint64) st.st_size : 0;
    if (stop->sink)
      g_object_get (stop->sink, "plain-bytes", &result->plain_bytes, "last-error", &failure, NULL);
    if (failure) {
      /* its end could not be written: the file is not whole */
      g_free (result);
      g_task_return_new_error (task, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED, "%s", failure);
      return;
    }
    g_task_return_pointer (task, result, g_free);
  }
}

static gpointer
recording_stop_main (gpointer data)
{
  g_autoptr (GTask) task = data;

  recording_stop_thread (task, NULL, g_task_get_task_data (task), NULL);
  return NULL;
}

static void
recording_stop_free (gpointer data)
{
  RecordingStop *stop = data;

  recording_shared_release (stop->shared);
  g_ptr_array_unref (stop->queue_sinks);
  g_clear_object (&stop->sink);
  g_free (stop->path);
  g_free (stop);
}

/**
 * cd_call_pipeline_stop_recording_async:
 *
 * Ends the recording: the task returns the milliseconds recorded once the
 * file is complete (also when the call's media stops meanwhile).
 */
void
cd_call_pipeline_stop_recording_async (CdCallPipeline *self, GAsyncReadyCallback callback,
                                       gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  RecordingStop *stop;
  GstElement *queue;

  if (self->recording == NULL || self->pipeline == NULL) {
    g_task_return_new_error (task, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED, "nothing is recorded");
    return;
  }
  stop = g_new0 (RecordingStop, 1);
  queue = g_ptr_array_index (self->recording->elements, 0);
  stop->queue_sinks = g_ptr_array_new_with_free_func (gst_object_unref);
  g_ptr_array_add (stop->queue_sinks, gst_element_get_static_pad (queue, "sink"));
  stop->sink = gst_object_ref (
      g_ptr_array_index (self->recording->elements, self->recording->elements->len - 1));
  g_object_get (stop->sink, "location", &stop->path, NULL);
  stop->shared = g_steal_pointer (&self->recording_shared);
  stop->removal = removal_new (self);
  removal_take_branch (stop->removal, g_steal_pointer (&self->recording), TRUE, FALSE);
  g_task_set_task_data (task, stop, recording_stop_free);
  /* its own thread, which the teardown joins first, like a removal's */
  g_ptr_array_add (self->removals, g_thread_new ("call-recording-stop", recording_stop_main,
                                                 g_steal_pointer (&task)));
}

gboolean
cd_call_pipeline_stop_recording_finish (CdCallPipeline *self, GAsyncResult *result, guint *ms,
                                        guint64 *bytes, GError **error)
{
  g_autofree RecordingResult *got = g_task_propagate_pointer (G_TASK (result), error);

  if (got == NULL)
    return FALSE;
  *ms = got->ms;
  *bytes = got->bytes;
  return TRUE;
}

/* ---- recording the call: the visitor's decoded audio on the left, the
 * agent's on the right, interleaved live, encoded into Ogg/Opus and sealed
 * as it is written (cdsealsink); paused, both channels carry silence ---- */

static GstPadProbeReturn
on_call_recording_paused (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  RecordingShared *r = user_data;
  GstBuffer *buffer;

  if (!g_atomic_int_get (&r->paused))
    return GST_PAD_PROBE_OK;
  /* the same length of silence, so the recording's timeline stays true */
  buffer = gst_buffer_make_writable (GST_PAD_PROBE_INFO_BUFFER (info));
  gst_buffer_memset (buffer, 0, 0, gst_buffer_get_size (buffer));
  GST_PAD_PROBE_INFO_DATA (info) = buffer;
  return GST_PAD_PROBE_OK;
}

/**
 * cd_call_pipeline_start_call_recording:
 * @path: the file to write (sealed)
 * @key: the company's key (32 bytes), @company and @key_version for the
 *   file's header
 *
 * Records the call in stereo until cd_call_pipeline_stop_call_recording_async():
 * the visitor left, the agent right (silence for a party not there). A
 * file that cannot be written is told by "recording-failed"; the call goes
 * on.
 */
gboolean
cd_call_pipeline_start_call_recording (CdCallPipeline *self, const char *path, GBytes *key,
                                       const char *company, guint32 key_version, GError **error)
{
  static const CdLegRole parties[] = { CD_LEG_VISITOR, CD_LEG_AGENT };
  g_autoptr (GstCaps) caps = NULL;
  g_autoptr (GstPad) interleaved = NULL;
  g_autoptr (GstPad) counted = NULL;
  g_autoptr (GstPad) written = NULL;
  GstElement *interleave, *filter, *enc, *mux, *sink;
  GstElement *feeds[G_N_ELEMENTS (parties)] = { NULL };
  g_autofree char *iname = NULL;
  g_autofree char *fname = NULL;
  Branch *b;

  if (self->pipeline == NULL || self->stopped) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED,
                         "the call's media has ended");
    return FALSE;
  }
  if (self->call_recording) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED,
                         "the call is recorded already");
    return FALSE;
  }
  b = branch_new (CD_LEG_VISITOR, 0, FALSE);
  self->call_recording_shared = g_atomic_rc_box_new0 (RecordingShared);
  self->call_recording_shared->channels = 2;
  g_mutex_init (&self->call_recording_shared->lock);
  g_cond_init (&self->call_recording_shared->cond);
  /* live (the legs are): a party that says nothing or is not there is
   * silence once the latency has passed, so the file keeps the call's time
   * (not force-live, which never ends: it makes silence after the EOS) */
  /* names of their own: a stopped recording's elements may still be in
   * the bin, on their way out, when the next one starts */
  self->call_recordings++;
  iname = g_strdup_printf ("call-record-%u-interleave", self->call_recordings);
  fname = g_strdup_printf ("call-record-%u-file", self->call_recordings);
  interleave = add_element (self, b, "audiointerleave", iname);
  g_object_set (interleave, "latency", (guint64) 100 * GST_MSECOND, NULL);
  {
    /* left and right, said: from the inputs (mono, their caps arriving in
     * any order) audiointerleave would sort the channels by position, and
     * swap them when the agent's audio comes first */
    G_GNUC_BEGIN_IGNORE_DEPRECATIONS
    GValueArray *positions = g_value_array_new (2);
    GValue v = G_VALUE_INIT;

    g_value_init (&v, GST_TYPE_AUDIO_CHANNEL_POSITION);
    g_value_set_enum (&v, GST_AUDIO_CHANNEL_POSITION_FRONT_LEFT);
    g_value_array_append (positions, &v);
    g_value_set_enum (&v, GST_AUDIO_CHANNEL_POSITION_FRONT_RIGHT);
    g_value_array_append (positions, &v);
    g_value_unset (&v);
    g_object_set (interleave, "channel-positions", positions, NULL);
    g_value_array_free (positions);
    G_GNUC_END_IGNORE_DEPRECATIONS
  }
  gst_util_set_object_arg (G_OBJECT (interleave), "start-time-selection", "first");
  filter = add_element (self, b, "capsfilter", NULL);
  caps = gst_caps_from_string ("audio/x-raw,format=S16LE,rate=48000,channels=2");
  g_object_set (filter, "caps", caps, NULL);
  enc = add_element (self, b, "opusenc", NULL);
  g_object_set (enc, "bitrate", 64000, NULL);
  mux = add_element (self, b, "oggmux", NULL);
  /* a page at least every half second, for the sink to seal */
  g_object_set (mux, "max-delay", (guint64) 500 * GST_MSECOND, "max-page-delay",
                (guint64) 500 * GST_MSECOND, NULL);
  sink = add_element (self, b, "cdsealsink", fname);
  self->call_recording_sink = sink;
  g_object_set (sink, "location", path, "key", key, "company", company, "key-version", key_version,
                NULL);
  if (!gst_element_link_many (interleave, filter, enc, mux, sink, NULL))
    g_error ("call %s: cannot record the call", self->call_id);
  for (gsize i = 0; i < G_N_ELEMENTS (parties); i++) {
    Leg *leg = &self->legs[parties[i]];
    g_autofree char *qname =
        g_strdup_printf ("call-record-%u-%s", self->call_recordings, leg_names[parties[i]]);
    g_autoptr (GstPad) qsrc = NULL;
    g_autoptr (GstPad) isink = NULL;

    /* requested in order: the visitor's pad is channel 0, the agent's 1 */
    isink = gst_element_request_pad_simple (interleave, "sink_%u");
    if (parties[i] == CD_LEG_AGENT) {
      g_set_object (&self->call_recording_agent_pad, isink);
      self->call_recording_agent_role = CD_LEG_AGENT;
      self->call_recording_agent_feed = NULL;
    }
    if (leg->webrtc == NULL || leg->tee == NULL)
      continue;
    ensure_decoded (self, leg);
    feeds[i] = add_crossing_queue (self, b, qname);
    if (parties[i] == CD_LEG_AGENT) {
      self->call_recording_agent_feed = feeds[i];
      self->call_recording_agent_gen = leg->gen;
    }
    qsrc = gst_element_get_static_pad (feeds[i], "src");
    if (gst_pad_link (qsrc, isink) != GST_PAD_LINK_OK)
      g_error ("call %s: cannot record the %s", self->call_id, leg->name);
  }
  /* paused after the interleave, so both channels fall silent at the same
   * point of the recording (each party's queue holds a different amount) */
  interleaved = gst_element_get_static_pad (interleave, "src");
  gst_pad_add_probe (interleaved, GST_PAD_PROBE_TYPE_BUFFER, on_call_recording_paused,
                     g_atomic_rc_box_acquire (self->call_recording_shared),
                     recording_shared_release);
  counted = gst_element_get_static_pad (filter, "src");
  gst_pad_add_probe (counted, GST_PAD_PROBE_TYPE_BUFFER, on_recorded_buffer,
                     g_atomic_rc_box_acquire (self->call_recording_shared),
                     recording_shared_release);
  written = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (written, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, on_recording_end,
                     g_atomic_rc_box_acquire (self->call_recording_shared),
                     recording_shared_release);
  sync_elements (b);
  for (gsize i = 0; i < G_N_ELEMENTS (parties); i++)
    if (feeds[i] && !link_from_tee (b, self->legs[parties[i]].pcm, feeds[i]))
      g_error ("call %s: cannot record the call", self->call_id);
  self->call_recording = b;
  return TRUE;
}

/* An agent's queue that no longer feeds the recording: what still comes
 * out of it (until its leg goes) is dropped, so it is never "not linked". */
static GstPadProbeReturn
on_left_feed (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  return GST_PAD_PROBE_DROP;
}

typedef struct {
  GstPad *input; /* the interleave's agent input */
  GstPad *next;  /* the new queue's source */
} Follow;

static void
follow_free (gpointer data)
{
  Follow *f = data;

  gst_object_unref (f->input);
  gst_object_unref (f->next);
  g_free (f);
}

/* The old queue is between buffers: from now on the new one feeds the
 * agent's channel (in the old queue's streaming thread, or at once). */
static GstPadProbeReturn
on_old_feed_idle (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Follow *f = user_data;

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_DATA_DOWNSTREAM, on_left_feed, NULL, NULL);
  gst_pad_unlink (pad, f->input);
  if (gst_pad_link (f->next, f->input) != GST_PAD_LINK_OK)
    g_message ("the recording cannot follow the call to its new agent");
  return GST_PAD_PROBE_REMOVE;
}

/**
 * cd_call_pipeline_record_agent_leg:
 *
 * The call's recording follows the agent into @role's leg (a transfer):
 * the right channel takes that leg's audio from now on, in the same
 * input of the interleave, so the file keeps its two channels and its
 * time. Nothing when the call is not recorded or already follows @role.
 */
void
cd_call_pipeline_record_agent_leg (CdCallPipeline *self, CdLegRole role)
{
  Leg *leg;
  GstElement *feed;
  g_autofree char *qname = NULL;
  g_autoptr (GstPad) next = NULL;

  g_return_if_fail (role == CD_LEG_AGENT || role == CD_LEG_AGENT_2);
  leg = &self->legs[role];
  if (self->call_recording == NULL || self->call_recording_agent_pad == NULL ||
      leg->webrtc == NULL || leg->tee == NULL || self->stopped ||
      (role == self->call_recording_agent_role && self->call_recording_agent_feed &&
       leg->gen == self->call_recording_agent_gen))
    return;
  ensure_decoded (self, leg);
  qname = g_strdup_printf ("call-record-%u-%s-%u", self->call_recordings, leg->name,
                           ++self->call_recording_follows);
  feed = add_crossing_queue (self, self->call_recording, qname);
  gst_element_sync_state_with_parent (feed);
  next = gst_element_get_static_pad (feed, "src");
  if (self->call_recording_agent_feed) {
    g_autoptr (GstPad) old = gst_element_get_static_pad (self->call_recording_agent_feed, "src");
    Follow *f = g_new0 (Follow, 1);

    f->input = gst_object_ref (self->call_recording_agent_pad);
    f->next = gst_object_ref (next);
    gst_pad_add_probe (old, GST_PAD_PROBE_TYPE_IDLE, on_old_feed_idle, f, follow_free);
  } else if (gst_pad_link (next, self->call_recording_agent_pad) != GST_PAD_LINK_OK) {
    g_message ("call %s: the recording cannot take the new agent's audio", self->call_id);
  }
  self->call_recording_agent_feed = feed;
  self->call_recording_agent_role = role;
  self->call_recording_agent_gen = leg->gen;
  if (!link_from_tee (self->call_recording, leg->pcm, feed))
    g_message ("call %s: the recording cannot take the new agent's audio", self->call_id);
}

/* Pauses (silence of the same length) or resumes the call's recording. */
void
cd_call_pipeline_pause_call_recording (CdCallPipeline *self, gboolean paused)
{
  if (self->call_recording_shared)
    g_atomic_int_set (&self->call_recording_shared->paused, paused);
}

gboolean
cd_call_pipeline_is_call_recorded (CdCallPipeline *self)
{
  return self->call_recording != NULL;
}

/**
 * cd_call_pipeline_stop_call_recording_async:
 *
 * Ends the call's recording: the task returns once its file is whole.
 */
void
cd_call_pipeline_stop_call_recording_async (CdCallPipeline *self, GAsyncReadyCallback callback,
                                            gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);
  RecordingStop *stop;

  if (self->call_recording == NULL || self->pipeline == NULL) {
    g_task_return_new_error (task, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED,
                             "the call is not recorded");
    return;
  }
  stop = g_new0 (RecordingStop, 1);
  stop->queue_sinks = g_ptr_array_new_with_free_func (gst_object_unref);
  for (guint i = 0; i < self->call_recording->elements->len; i++) {
    GstElement *e = g_ptr_array_index (self->call_recording->elements, i);

    if (g_object_get_data (G_OBJECT (e), "cd-crossing"))
      g_ptr_array_add (stop->queue_sinks, gst_element_get_static_pad (e, "sink"));
    if (e == self->call_recording_sink)
      stop->sink = gst_object_ref (e);
  }
  {
    /* a party's pad nobody fed: the end goes in where its audio would */
    GstElement *interleave = g_ptr_array_index (self->call_recording->elements, 0);
    g_autoptr (GstIterator) it = gst_element_iterate_sink_pads (interleave);
    GValue item = G_VALUE_INIT;

    while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
      GstPad *pad = g_value_get_object (&item);

      if (!gst_pad_is_linked (pad))
        g_ptr_array_add (stop->queue_sinks, gst_object_ref (pad));
      g_value_reset (&item);
    }
    g_value_unset (&item);
  }
  g_object_get (stop->sink, "location", &stop->path, NULL);
  self->call_recording_sink = NULL;
  g_clear_object (&self->call_recording_agent_pad);
  self->call_recording_agent_feed = NULL;
  stop->shared = g_steal_pointer (&self->call_recording_shared);
  stop->removal = removal_new (self);
  removal_take_branch (stop->removal, g_steal_pointer (&self->call_recording), TRUE, FALSE);
  g_task_set_task_data (task, stop, recording_stop_free);
  g_ptr_array_add (self->removals, g_thread_new ("call-recording-stop", recording_stop_main,
                                                 g_steal_pointer (&task)));
}

gboolean
cd_call_pipeline_stop_call_recording_finish (CdCallPipeline *self, GAsyncResult *result, guint *ms,
                                             guint64 *bytes, guint64 *plain_bytes, GError **error)
{
  g_autofree RecordingResult *got = g_task_propagate_pointer (G_TASK (result), error);

  if (got == NULL)
    return FALSE;
  *ms = got->ms;
  *bytes = got->bytes;
  if (plain_bytes)
    *plain_bytes = got->plain_bytes;
  return TRUE;
}

/* ---- in-band DTMF: spandsp's detector on the visitor's decoded audio,
 * only while the IVR waits for digits ---- */

/**
 * cd_call_pipeline_set_inband_dtmf:
 * @on: whether to listen for DTMF tones in what the visitor says
 *
 * Digits heard are told by "inband-dtmf".
 */
void
cd_call_pipeline_set_inband_dtmf (CdCallPipeline *self, gboolean on)
{
  Leg *leg = &self->legs[CD_LEG_VISITOR];

  if (self->pipeline == NULL || self->stopped)
    return;
  if (!on) {
    Removal *r;

    if (leg->inband == NULL)
      return;
    r = removal_new (self);
    removal_take_branch (r, g_steal_pointer (&leg->inband), TRUE, FALSE);
    removal_start (self, r);
    return;
  }
  if (leg->inband || leg->webrtc == NULL || leg->tee == NULL)
    return;
  ensure_decoded (self, leg);
  {
    Branch *b = branch_new (leg->role, 0, FALSE);
    g_autoptr (GstCaps) caps =
        gst_caps_from_string ("audio/x-raw,format=S16LE,rate=8000,channels=1");
    g_autofree char *qname = g_strdup_printf ("%s-inband", leg->name);
    g_autofree char *dname = g_strdup_printf ("%s-dtmf-detect", leg->name);
    GstElement *queue, *resample, *filter, *detect, *sink;

    queue = add_crossing_queue (self, b, qname);
    resample = add_element (self, b, "audioresample", NULL);
    filter = add_element (self, b, "capsfilter", NULL);
    g_object_set (filter, "caps", caps, NULL);
    detect = add_element (self, b, "dtmfdetect", dname);
    sink = add_element (self, b, "fakesink", NULL);
    g_object_set (sink, "sync", FALSE, "async", FALSE, NULL);
    if (!gst_element_link_many (queue, resample, filter, detect, sink, NULL))
      g_error ("call %s: cannot listen for in-band DTMF", self->call_id);
    sync_elements (b);
    if (!link_from_tee (b, leg->pcm, queue))
      g_error ("call %s: cannot listen for in-band DTMF", self->call_id);
    leg->inband = b;
  }
}

/**
 * cd_call_pipeline_set_ivr:
 * @on: whether the IVR has the visitor
 *
 * While on, the visitor hears the prompts played, and silence between
 * them, instead of the ringing tone.
 */
void
cd_call_pipeline_set_ivr (CdCallPipeline *self, gboolean on)
{
  Leg *leg = &self->legs[CD_LEG_VISITOR];

  self->ivr = on;
  if (!on)
    drop_prompt (self, leg);
  apply_hearing (self, leg);
}

/**
 * cd_call_pipeline_play_prompt:
 * @path: an Ogg/Opus file
 *
 * Plays @path to the visitor (ending any prompt playing): "prompt-done"
 * tells its end, unless it is stopped first.
 *
 * Returns: the prompt's id, or 0 when the visitor's media is not there yet
 */
guint
cd_call_pipeline_play_prompt (CdCallPipeline *self, const char *path)
{
  Leg *leg = &self->legs[CD_LEG_VISITOR];
  guint id;

  if (self->pipeline == NULL || self->stopped || !leg->has_sink || leg->source == NULL)
    return 0;
  drop_prompt (self, leg);
  id = ++self->prompts;
  add_prompt (self, leg, path, id);
  return id;
}

/* A beep to the visitor, like a prompt: the id "prompt-done" will tell. */
guint
cd_call_pipeline_play_beep (CdCallPipeline *self)
{
  return cd_call_pipeline_play_prompt (self, NULL);
}

/* Ends the prompt playing, if any, without "prompt-done". */
void
cd_call_pipeline_stop_prompt (CdCallPipeline *self)
{
  Leg *leg = &self->legs[CD_LEG_VISITOR];

  if (leg->prompt == NULL)
    return;
  drop_prompt (self, leg);
  apply_hearing (self, leg);
}

static void
prompt_done (CdCallPipeline *self, guint id, gboolean ok, const char *detail)
{
  Leg *leg = &self->legs[CD_LEG_VISITOR];

  if (id == 0 || id != leg->prompt_id)
    return; /* stopped meanwhile */
  drop_prompt (self, leg);
  apply_hearing (self, leg);
  g_signal_emit (self, signals[SIGNAL_PROMPT_DONE], 0, id, ok, detail);
}

static Branch *
find_branch (CdCallPipeline *self, CdLegRole to, guint from)
{
  for (guint i = 0; i < self->branches->len; i++) {
    Branch *b = g_ptr_array_index (self->branches, i);
    if (b->to == to && b->from == from)
      return b;
  }
  return NULL;
}

static gboolean
leg_present (Leg *leg)
{
  return leg->webrtc != NULL;
}

/* Selects what @leg hears now: its talkers that are present, directly
 * (one), mixed (several), or nobody: the tone for the visitor, silence
 * for the others. A new branch selects itself before its audio flows. Audio goes into a payloader
 * only once it is linked (else not-linked stops the source). */
static void
apply_hearing (CdCallPipeline *self, Leg *leg)
{
  guint talkers = 0, n = 0;
  Branch *b = NULL;

  if (self->pipeline == NULL || !leg->has_sink || leg->source == NULL)
    return;
  for (int t = 0; t < CD_LEG_COUNT; t++)
    if ((leg->hears & (1u << t)) && t != (int) leg->role && leg_present (&self->legs[t])) {
      talkers |= 1u << t;
      n++;
    }
  if (n == 0) {
    if (leg->prompt) {
      g_object_set (leg->source, "active-pad", leg->prompt->selector_pad, NULL);
      return;
    }
    if (leg->role == CD_LEG_VISITOR && self->ivr) {
      drop_tone (self, leg);
      g_object_set (leg->source, "active-pad", leg->mute_pad, NULL);
      return;
    }
    if (leg->role == CD_LEG_VISITOR && self->settings.ringback) {
      if (leg->tone == NULL)
        add_tone (self, leg);
      return;
    }
    g_object_set (leg->source, "active-pad", leg->mute_pad, NULL);
    return;
  }
  b = find_branch (self, leg->role, talkers);
  if (b == NULL) {
    for (int t = 0; n == 1 && t < CD_LEG_COUNT; t++)
      if (talkers == 1u << t)
        b = bridge_new (self, &self->legs[t], leg);
    if (b == NULL)
      b = mix_new (self, leg, talkers);
    g_ptr_array_add (self->branches, b);
  }
  g_object_set (leg->source, "active-pad", b->selector_pad, NULL);
  drop_tone (self, leg);
  drop_prompt (self, leg);
  if (leg->role == CD_LEG_VISITOR)
    self->joined = TRUE;
}

static void
configure_ice (CdCallPipeline *self, GstElement *webrtc)
{
  g_autoptr (GObject) ice = NULL;
  g_autoptr (GObject) agent = NULL;

  g_object_get (webrtc, "ice-agent", &ice, NULL);
  if (ice == NULL)
    return;
  for (char **a = self->settings.local_addresses; a && *a; a++) {
    gboolean added = FALSE;
    g_signal_emit_by_name (ice, "add-local-ip-address", *a, &added);
    if (!added)
      g_message ("ICE cannot use the local address %s", *a);
  }
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "ice-tcp"))
    g_object_set (ice, "ice-tcp", FALSE, NULL);
  if (self->settings.min_rtp_port)
    g_object_set (ice, "min-rtp-port", self->settings.min_rtp_port, "max-rtp-port",
                  self->settings.max_rtp_port, NULL);
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (ice), "agent"))
    g_object_get (ice, "agent", &agent, NULL);
  if (agent && g_object_class_find_property (G_OBJECT_GET_CLASS (agent), "upnp"))
    g_object_set (agent, "upnp", FALSE, NULL);
}

static void
create_leg (CdCallPipeline *self, Leg *leg)
{
  g_autofree char *dname = NULL;
  g_autofree char *tname = NULL;
  g_autofree char *sname = NULL;
  g_autofree char *pname = NULL;
  gpointer tag;
  g_autoptr (GstPad) depay_sink = NULL;

  leg->gen++;
  tag = LEG_TAG (leg);
  g_free (leg->name);
  leg->name = leg->gen == 1 ? g_strdup (leg_names[leg->role])
                            : g_strdup_printf ("%s.%u", leg_names[leg->role], leg->gen);
  dname = g_strdup_printf ("%s-depay", leg->name);
  tname = g_strdup_printf ("%s-received", leg->name);
  sname = g_strdup_printf ("%s-source", leg->name);
  pname = g_strdup_printf ("%s-pay", leg->name);
  leg->webrtc = make ("webrtcbin", leg->name);
  g_object_set (leg->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, "latency",
                self->settings.jitter_latency_ms, NULL);
  /* the leg's own gate: it may leave before the call ends */
  cd_srtp_gate_install (GST_BIN (leg->webrtc));
  configure_ice (self, leg->webrtc);
  leg->depay = make ("rtpopusdepay", dname);
  leg->tee = make ("tee", tname);
  g_object_set (leg->tee, "allow-not-linked", TRUE, NULL);
  leg->source = make ("input-selector", sname);
  g_object_set (leg->source, "sync-streams", FALSE, NULL);
  leg->pay = make ("rtpopuspay", pname);
  g_object_set (leg->pay, "pt", leg->opus_pt, NULL);
  g_clear_pointer (&leg->shared, g_atomic_rc_box_release);
  leg->shared = g_atomic_rc_box_new0 (LegShared);
  leg->shared->dtmf_pt = leg->dtmf_pt;
  leg->shared->dtmf_rate = leg->dtmf_rate;
  leg->shared->webrtc = leg->webrtc;
  leg->shared->tag = GPOINTER_TO_INT (tag);
  leg->created_us = g_get_monotonic_time ();

  g_object_set_data (G_OBJECT (leg->webrtc), "cd-pipeline", self->pipeline);
  g_object_set_data (G_OBJECT (leg->webrtc), "cd-leg", tag);
  g_object_set_data (G_OBJECT (leg->webrtc), "cd-depay", leg->depay);
  g_signal_connect (leg->webrtc, "on-ice-candidate", G_CALLBACK (on_webrtc_ice_candidate), tag);
  g_signal_connect (leg->webrtc, "notify::ice-connection-state",
                    G_CALLBACK (on_webrtc_state_notify), tag);
  g_signal_connect (leg->webrtc, "notify::connection-state", G_CALLBACK (on_webrtc_state_notify),
                    tag);
  g_signal_connect (leg->webrtc, "pad-added", G_CALLBACK (on_webrtc_pad_added), tag);

  depay_sink = gst_element_get_static_pad (leg->depay, "sink");
  gst_pad_add_probe (depay_sink, GST_PAD_PROBE_TYPE_BUFFER, on_audio_buffer,
                     g_atomic_rc_box_acquire (leg->shared),
                     (GDestroyNotify) g_atomic_rc_box_release);

  gst_bin_add_many (GST_BIN (self->pipeline), leg->webrtc, leg->depay, leg->tee, leg->source,
                    leg->pay, NULL);
  if (!gst_element_link (leg->depay, leg->tee) || !gst_element_link (leg->source, leg->pay))
    g_error ("cannot link a leg's depayloader or payloader");
  /* a selector pad nothing feeds: selected, the leg hears silence */
  leg->mute_pad = gst_element_request_pad_simple (leg->source, "sink_%u");
  g_object_set (leg->source, "active-pad", leg->mute_pad, NULL);
  gst_element_sync_state_with_parent (leg->pay);
  gst_element_sync_state_with_parent (leg->source);
  gst_element_sync_state_with_parent (leg->tee);
  gst_element_sync_state_with_parent (leg->depay);
  gst_element_sync_state_with_parent (leg->webrtc);
}

/* After the remote offer: the send pad, with the offer's payload types. */
static void
attach_sender (CdCallPipeline *self, Leg *leg)
{
  g_autoptr (GstPad) sink = NULL;
  g_autoptr (GstPad) src = NULL;
  g_autoptr (GstWebRTCRTPTransceiver) transceiver = NULL;
  g_autoptr (GstCaps) caps = NULL;

  if (leg->has_sink)
    return;
  leg->has_sink = TRUE;
  sink = gst_element_request_pad_simple (leg->webrtc, "sink_%u");
  g_object_get (sink, "transceiver", &transceiver, NULL);
  caps = gst_caps_new_simple ("application/x-rtp", "media", G_TYPE_STRING, "audio", "encoding-name",
                              G_TYPE_STRING, "OPUS", "clock-rate", G_TYPE_INT, 48000, "payload",
                              G_TYPE_INT, leg->opus_pt, NULL);
  g_object_set (transceiver, "codec-preferences", caps, "direction",
                GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDRECV, NULL);
  src = gst_element_get_static_pad (leg->pay, "src");
  if (gst_pad_link (src, sink) != GST_PAD_LINK_OK) {
    fail (self, "pipeline-error", "cannot link the sender");
    return;
  }
  /* this leg can hear now, and be heard by those waiting for it */
  for (int i = 0; i < CD_LEG_COUNT; i++)
    apply_hearing (self, &self->legs[i]);
}

static void
install_dtmf_probe (Leg *leg)
{
  g_autoptr (GstIterator) it = NULL;
  GValue item = G_VALUE_INIT;
  GstElement *rtpbin = NULL;

  if (leg->dtmf_pt < 0)
    return;
  it = gst_bin_iterate_elements (GST_BIN (leg->webrtc));
  while (gst_iterator_next (it, &item) == GST_ITERATOR_OK) {
    GstElement *e = g_value_get_object (&item);
    GstElementFactory *f = gst_element_get_factory (e);
    if (f && g_str_equal (GST_OBJECT_NAME (f), "rtpbin"))
      rtpbin = gst_object_ref (e);
    g_value_reset (&item);
  }
  g_value_unset (&item);
  if (rtpbin) {
    g_autoptr (GstPad) pad = gst_element_get_static_pad (rtpbin, "recv_rtp_sink_0");
    if (pad)
      gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_rtp_packet,
                         g_atomic_rc_box_acquire (leg->shared),
                         (GDestroyNotify) g_atomic_rc_box_release);
    else
      g_message ("no RTP input to watch for DTMF");
    gst_object_unref (rtpbin);
  }
}

/* webrtcbin answers only the codecs it sends; telephone-event is added. */
static void
add_telephone_event (GstSDPMessage *sdp, int pt, guint rate)
{
  GstSDPMedia *media;
  g_autofree char *fmt = NULL;
  g_autofree char *map = NULL;

  if (pt < 0 || gst_sdp_message_medias_len (sdp) < 1)
    return;
  media = (GstSDPMedia *) gst_sdp_message_get_media (sdp, 0);
  fmt = g_strdup_printf ("%d", pt);
  map = g_strdup_printf ("%d telephone-event/%u", pt, rate);
  gst_sdp_media_add_format (media, fmt);
  gst_sdp_media_add_attribute (media, "rtpmap", map);
}

static void
handle_step (CdCallPipeline *self, Leg *leg, const GstStructure *s)
{
  const char *step = gst_structure_get_string (s, "step");
  const char *error = gst_structure_get_string (s, "error");
  GstPromise *promise = NULL;

  if (error) {
    g_autofree char *detail = g_strdup_printf ("%s leg, %s: %s", leg_names[leg->role], step, error);
    leg->negotiation = NEGOTIATION_IDLE;
    fail (self, "pipeline-error", detail);
    return;
  }
  if (g_strcmp0 (step, "remote") == 0 && leg->negotiation == NEGOTIATION_REMOTE) {
    attach_sender (self, leg);
    if (self->failed)
      return;
    leg->negotiation = NEGOTIATION_ANSWER;
    promise_step (self, leg, "answer", &promise);
    g_signal_emit_by_name (leg->webrtc, "create-answer", NULL, promise);
  } else if (g_strcmp0 (step, "answer") == 0 && leg->negotiation == NEGOTIATION_ANSWER) {
    GstWebRTCSessionDescription *answer = NULL;

    gst_structure_get (s, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
    if (answer == NULL) {
      fail (self, "pipeline-error", "no answer was created");
      return;
    }
    add_telephone_event (answer->sdp, leg->dtmf_pt, leg->dtmf_rate);
    g_free (leg->answer_sdp);
    leg->answer_sdp = gst_sdp_message_as_text (answer->sdp);
    leg->negotiation = NEGOTIATION_LOCAL;
    promise_step (self, leg, "local", &promise);
    g_signal_emit_by_name (leg->webrtc, "set-local-description", answer, promise);
    gst_webrtc_session_description_free (answer);
  } else if (g_strcmp0 (step, "local") == 0 && leg->negotiation == NEGOTIATION_LOCAL) {
    leg->negotiation = NEGOTIATION_IDLE;
    install_dtmf_probe (leg);
    g_signal_emit (self, signals[SIGNAL_ANSWER], 0, leg->role, leg->answer_sdp);
  }
  if (promise)
    gst_promise_unref (promise);
}

static void
maybe_connected (CdCallPipeline *self, Leg *leg)
{
  if (leg->connected_told || !leg->ice_connected || !leg->dtls_connected || !leg->audio_seen)
    return;
  leg->connected_told = TRUE;
  leg->connected_us = g_get_monotonic_time ();
  g_signal_emit (self, signals[SIGNAL_LEG_CONNECTED], 0, leg->role);
}

static void
handle_state (CdCallPipeline *self, Leg *leg, const GstStructure *s)
{
  const char *property = gst_structure_get_string (s, "property");
  int value = 0;

  gst_structure_get_int (s, "value", &value);
  if (g_strcmp0 (property, "ice-connection-state") == 0) {
    g_debug ("call %s: %s ICE state %d", self->call_id, leg_names[leg->role], value);
    if (value == GST_WEBRTC_ICE_CONNECTION_STATE_CONNECTED ||
        value == GST_WEBRTC_ICE_CONNECTION_STATE_COMPLETED)
      leg->ice_connected = TRUE;
    else if (value == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED) {
      g_autofree char *detail = g_strdup_printf ("the %s's ICE failed", leg_names[leg->role]);
      leg_fail (self, leg, "ice-failed", detail);
    }
  } else if (g_strcmp0 (property, "connection-state") == 0) {
    if (value == GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED)
      leg->dtls_connected = TRUE;
    else if (value == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED) {
      g_autofree char *detail =
          g_strdup_printf ("the %s's connection failed (%s)", leg_names[leg->role],
                           leg->ice_connected ? "DTLS" : "ICE");
      leg_fail (self, leg, leg->ice_connected ? "dtls-failed" : "ice-failed", detail);
    }
  }
  maybe_connected (self, leg);
}

static void
complete_stats (CdCallPipeline *self)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;
  GList *waiters;

  json_builder_begin_object (b);
  for (int i = 0; i < CD_LEG_COUNT; i++) {
    if (self->legs[i].stats == NULL)
      continue;
    json_builder_set_member_name (b, leg_names[i]);
    json_builder_add_value (b, json_node_init_object (json_node_alloc (), self->legs[i].stats));
  }
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  waiters = g_steal_pointer (&self->stats_waiters);
  for (GList *l = waiters; l; l = l->next) {
    GTask *task = l->data;
    g_task_return_pointer (task, json_node_copy (root), (GDestroyNotify) json_node_unref);
    g_object_unref (task);
  }
  g_list_free (waiters);
}

static void
handle_stats (CdCallPipeline *self, Leg *leg, const GstStructure *s)
{
  const char *text = gst_structure_get_string (s, "json");
  g_autoptr (JsonNode) node = json_from_string (text, NULL);
  gint64 now = g_get_monotonic_time ();
  JsonObject *o;
  guint64 bytes_in = 0, bytes_out = 0;
  double seconds = (now - leg->stats_at_us) / (double) G_USEC_PER_SEC;

  if (node == NULL || !JSON_NODE_HOLDS_OBJECT (node))
    return;
  o = json_node_get_object (node);
  if (json_object_has_member (o, "inbound"))
    bytes_in = json_object_get_double_member_with_default (
        json_object_get_object_member (o, "inbound"), "bytes_received", 0);
  if (json_object_has_member (o, "outbound"))
    bytes_out = json_object_get_double_member_with_default (
        json_object_get_object_member (o, "outbound"), "bytes_sent", 0);
  if (leg->stats_at_us > 0 && seconds > 0.2) {
    json_object_set_double_member (
        o, "bitrate_in_bps",
        bytes_in >= leg->bytes_in ? round3 ((bytes_in - leg->bytes_in) * 8 / seconds) : 0);
    json_object_set_double_member (
        o, "bitrate_out_bps",
        bytes_out >= leg->bytes_out ? round3 ((bytes_out - leg->bytes_out) * 8 / seconds) : 0);
  }
  json_object_set_int_member (o, "audio_packets", g_atomic_int_get (&leg->shared->packets));
  leg->bytes_in = bytes_in;
  leg->bytes_out = bytes_out;
  leg->stats_at_us = now;
  g_clear_pointer (&leg->stats, json_object_unref);
  leg->stats = json_object_ref (o);
  if (leg->stats_pending) {
    leg->stats_pending = FALSE;
    if (self->stats_expected > 0 && --self->stats_expected == 0)
      complete_stats (self);
  }
}

static gboolean
on_bus_message (GstBus *bus, GstMessage *message, gpointer user_data)
{
  /* The bus watch holds no reference, and a "failed" handler may drop the
   * last one (the switchboard ends the call and frees it): handle_state()
   * went on to maybe_connected() on freed memory after an ICE failure. */
  G_GNUC_UNUSED g_autoptr (CdCallPipeline) hold = g_object_ref (user_data);
  CdCallPipeline *self = user_data;
  const GstStructure *s;
  int role = -1;
  Leg *leg = NULL;

  switch (GST_MESSAGE_TYPE (message)) {
  case GST_MESSAGE_ERROR: {
    g_autoptr (GError) error = NULL;
    g_autofree char *debug = NULL;
    g_autofree char *detail = NULL;

    gst_message_parse_error (message, &error, &debug);
    g_message ("call %s: pipeline error from %s: %s (%s)", self->call_id,
               GST_OBJECT_NAME (GST_MESSAGE_SRC (message)), error->message, debug ? debug : "");
    if (g_str_has_prefix (GST_OBJECT_NAME (GST_MESSAGE_SRC (message)), "prompt-")) {
      /* a prompt that cannot be played is the IVR's trouble, not the call's */
      prompt_done (
          self,
          (guint) g_ascii_strtoull (GST_OBJECT_NAME (GST_MESSAGE_SRC (message)) + 7, NULL, 10),
          FALSE, error->message);
      return G_SOURCE_CONTINUE;
    }
    detail =
        g_strdup_printf ("%s: %s", GST_OBJECT_NAME (GST_MESSAGE_SRC (message)), error->message);
    fail (self, "pipeline-error", detail);
    return G_SOURCE_CONTINUE;
  }
  case GST_MESSAGE_APPLICATION:
    break;
  case GST_MESSAGE_ELEMENT: {
    const GstStructure *e = gst_message_get_structure (message);
    static const char digits[] = "0123456789*#ABCD";
    int number = -1;

    if (e && gst_structure_has_name (e, "level") && self->recording &&
        g_str_equal (GST_OBJECT_NAME (GST_MESSAGE_SRC (message)), "visitor-record-level")) {
      const GValue *rms = gst_structure_get_value (e, "rms");

      G_GNUC_BEGIN_IGNORE_DEPRECATIONS
      if (rms && G_VALUE_HOLDS (rms, g_value_array_get_type ())) {
        GValueArray *values = g_value_get_boxed (rms);
        if (values && values->n_values > 0 && G_VALUE_HOLDS_DOUBLE (&values->values[0]))
          g_signal_emit (self, signals[SIGNAL_RECORDING_LEVEL], 0,
                         g_value_get_double (&values->values[0]));
      }
      G_GNUC_END_IGNORE_DEPRECATIONS
      return G_SOURCE_CONTINUE;
    }
    /* the call's recording cannot be written: the call goes on */
    if (e && gst_structure_has_name (e, "cd-seal-failed") &&
        GST_MESSAGE_SRC (message) == GST_OBJECT (self->call_recording_sink)) {
      g_signal_emit (self, signals[SIGNAL_RECORDING_FAILED], 0,
                     gst_structure_get_string (e, "reason"));
      return G_SOURCE_CONTINUE;
    }
    /* spandsp's dtmfdetect, on the visitor's audio */
    if (e && gst_structure_has_name (e, "dtmf-event") && self->legs[CD_LEG_VISITOR].inband &&
        g_str_has_suffix (GST_OBJECT_NAME (GST_MESSAGE_SRC (message)), "-dtmf-detect") &&
        gst_structure_get_int (e, "number", &number) && number >= 0 && number < 16) {
      char digit[2] = { digits[number], 0 };
      g_signal_emit (self, signals[SIGNAL_INBAND_DTMF], 0, CD_LEG_VISITOR, digit);
    }
    return G_SOURCE_CONTINUE;
  }
  default:
    return G_SOURCE_CONTINUE;
  }
  s = gst_message_get_structure (message);
  if (self->stopped)
    return G_SOURCE_CONTINUE;
  if (gst_structure_get_int (s, "leg", &role) && role >= 0 && TAG_ROLE (role) < CD_LEG_COUNT) {
    leg = &self->legs[TAG_ROLE (role)];
    /* from a party that left the slot */
    if (leg->webrtc == NULL || TAG_GEN (role) != leg->gen)
      leg = NULL;
  }
  if (gst_structure_has_name (s, "cd-error")) {
    fail (self, "pipeline-error", gst_structure_get_string (s, "detail"));
  } else if (gst_structure_has_name (s, "cd-prompt-done")) {
    guint id = 0;
    gst_structure_get_uint (s, "id", &id);
    prompt_done (self, id, TRUE, NULL);
  } else if (leg == NULL) {
    return G_SOURCE_CONTINUE;
  } else if (gst_structure_has_name (s, "cd-candidate")) {
    guint mline = 0;
    gst_structure_get_uint (s, "mline", &mline);
    g_signal_emit (self, signals[SIGNAL_LOCAL_CANDIDATE], 0, leg->role, mline,
                   gst_structure_get_string (s, "candidate"));
  } else if (gst_structure_has_name (s, "cd-step")) {
    handle_step (self, leg, s);
  } else if (gst_structure_has_name (s, "cd-state")) {
    handle_state (self, leg, s);
  } else if (gst_structure_has_name (s, "cd-receiving")) {
    g_debug ("call %s: receiving from the %s", self->call_id, leg_names[leg->role]);
    leg->audio_seen = TRUE;
    maybe_connected (self, leg);
  } else if (gst_structure_has_name (s, "cd-dtmf")) {
    guint duration = 0;
    gst_structure_get_uint (s, "duration_ms", &duration);
    g_signal_emit (self, signals[SIGNAL_DTMF], 0, leg->role, gst_structure_get_string (s, "digit"),
                   duration);
  } else if (gst_structure_has_name (s, "cd-stats")) {
    handle_stats (self, leg, s);
  }
  return G_SOURCE_CONTINUE;
}

static void request_stats (CdCallPipeline *self);

/* Once a second: ICE that never connects, a party that stopped sending;
 * every few seconds the statistics, for the quality summary. */
static gboolean
on_watchdog (gpointer user_data)
{
  CdCallPipeline *self = user_data;
  gint64 now = g_get_monotonic_time ();

  gboolean any_connected = FALSE;

  self->ticks++;
  for (int i = 0; i < CD_LEG_COUNT; i++) {
    Leg *leg = &self->legs[i];
    if (leg->cadence)
      g_object_set (leg->cadence, "mute", (self->ticks % leg->cadence_period) != 0, NULL);
    any_connected |= leg->webrtc != NULL && leg->connected_told;
  }
  if (self->ticks % 2 == 0 && self->stats_expected == 0 && any_connected)
    request_stats (self);

  for (int i = 0; i < CD_LEG_COUNT; i++) {
    Leg *leg = &self->legs[i];
    gint64 last;

    if (leg->webrtc == NULL)
      continue;
    last = shared_last_audio (leg->shared);
    if (!leg->audio_seen && last > 0) {
      leg->audio_seen = TRUE;
      maybe_connected (self, leg);
    }
    if (!leg->ice_connected &&
        now - leg->created_us > (gint64) self->settings.ice_timeout_s * G_USEC_PER_SEC) {
      g_autofree char *detail = g_strdup_printf ("the %s's ICE did not connect within %u s",
                                                 leg_names[i], self->settings.ice_timeout_s);
      leg_fail (self, leg, "ice-failed", detail);
      break;
    }
    /* the stream's pad appears before its first packet reaches the probe:
     * a leg told connected may not have a last packet time yet */
    if (leg->connected_told && now - MAX (last, leg->connected_us) >
                                   (gint64) self->settings.media_timeout_s * G_USEC_PER_SEC) {
      g_autofree char *detail = g_strdup_printf ("no audio from the %s for %u s", leg_names[i],
                                                 self->settings.media_timeout_s);
      leg_fail (self, leg, "media-timeout", detail);
      break;
    }
  }
  return G_SOURCE_CONTINUE;
}

static gboolean
is_webrtcbin (GstElement *e)
{
  GstElementFactory *f = gst_element_get_factory (e);

  return f && g_str_equal (GST_OBJECT_NAME (f), "webrtcbin");
}

typedef struct {
  GstElement *pipeline;
  GPtrArray *removals; /* GThread* */
} Teardown;

static gpointer
teardown_thread (gpointer data)
{
  Teardown *t = data;
  GstElement *pipeline = t->pipeline;
  g_autoptr (GPtrArray) legs = g_ptr_array_new_with_free_func (gst_object_unref);
  g_autoptr (GPtrArray) crossing = g_ptr_array_new_with_free_func (gst_object_unref);
  GstIterator *it;
  GValue item = G_VALUE_INIT;
  GstIteratorResult res;

  /* parties that left first: their threads remove elements too */
  for (guint i = 0; i < t->removals->len; i++)
    g_thread_join (g_ptr_array_index (t->removals, i));
  g_ptr_array_unref (t->removals);
  g_free (t);
  it = gst_bin_iterate_elements (GST_BIN (pipeline));
  while ((res = gst_iterator_next (it, &item)) != GST_ITERATOR_DONE) {
    GstElement *e;

    if (res == GST_ITERATOR_RESYNC) {
      gst_iterator_resync (it);
      g_ptr_array_set_size (legs, 0);
      g_ptr_array_set_size (crossing, 0);
      continue;
    }
    if (res != GST_ITERATOR_OK)
      break;
    e = g_value_get_object (&item);
    if (is_webrtcbin (e))
      g_ptr_array_add (legs, gst_object_ref (e));
    else if (g_object_get_data (G_OBJECT (e), "cd-crossing"))
      g_ptr_array_add (crossing, gst_object_ref (e));
    g_value_reset (&item);
  }
  g_value_unset (&item);
  gst_iterator_free (it);
  cd_srtp_gate_close (GST_BIN (pipeline));
  /* A leg whose DTLS never finished blocks its sender inside webrtcbin
   * until the element leaves PLAYING: stop the legs first (their senders
   * then see flushing), so the queues' threads can be joined. */
  for (guint i = 0; i < legs->len; i++) {
    gst_element_set_locked_state (g_ptr_array_index (legs, i), TRUE);
    gst_element_set_state (g_ptr_array_index (legs, i), GST_STATE_NULL);
  }
  /* the legs feed each other: unlink them, or the bin sees a loop */
  for (guint i = 0; i < crossing->len; i++) {
    GstElement *queue = g_ptr_array_index (crossing, i);
    gst_element_set_locked_state (queue, TRUE);
    gst_element_set_state (queue, GST_STATE_NULL);
    gst_bin_remove (GST_BIN (pipeline), queue);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (pipeline);
  g_atomic_int_dec_and_test (&live_pipelines);
  return NULL;
}

/**
 * cd_call_pipeline_stop:
 *
 * Ends the media: no signal is emitted after this. Setting a pipeline to
 * NULL joins its threads, so it happens off the main context.
 */
void
cd_call_pipeline_stop (CdCallPipeline *self)
{
  GstElement *pipeline;

  if (self->stopped)
    return;
  self->stopped = TRUE;
  g_clear_handle_id (&self->watchdog_id, g_source_remove);
  g_clear_handle_id (&self->bus_watch_id, g_source_remove);
  self->stats_expected = 0;
  complete_stats (self);
  pipeline = g_steal_pointer (&self->pipeline);
  if (pipeline == NULL)
    return;
  for (int i = 0; i < CD_LEG_COUNT; i++)
    if (self->legs[i].webrtc)
      g_signal_handlers_disconnect_by_data (self->legs[i].webrtc, LEG_TAG (&self->legs[i]));
  {
    Teardown *t = g_new0 (Teardown, 1);

    t->pipeline = pipeline;
    t->removals = g_steal_pointer (&self->removals);
    self->removals = g_ptr_array_new ();
    g_thread_unref (g_thread_new ("call-teardown", teardown_thread, t));
  }
}

static void
cd_call_pipeline_dispose (GObject *object)
{
  CdCallPipeline *self = CD_CALL_PIPELINE (object);

  cd_call_pipeline_stop (self);
  G_OBJECT_CLASS (cd_call_pipeline_parent_class)->dispose (object);
}

static void
cd_call_pipeline_finalize (GObject *object)
{
  CdCallPipeline *self = CD_CALL_PIPELINE (object);

  for (int i = 0; i < CD_LEG_COUNT; i++) {
    g_clear_pointer (&self->legs[i].shared, g_atomic_rc_box_release);
    g_clear_pointer (&self->legs[i].answer_sdp, g_free);
    g_clear_pointer (&self->legs[i].stats, json_object_unref);
    g_clear_pointer (&self->legs[i].name, g_free);
    g_clear_pointer (&self->legs[i].tone, branch_free);
    g_clear_pointer (&self->legs[i].prompt, branch_free);
    g_clear_pointer (&self->legs[i].inband, branch_free);
    g_clear_pointer (&self->legs[i].decoder, branch_free);
    g_clear_object (&self->legs[i].mute_pad);
  }
  g_clear_pointer (&self->recording, branch_free);
  g_clear_pointer (&self->recording_shared, recording_shared_release);
  g_clear_pointer (&self->call_recording, branch_free);
  g_clear_pointer (&self->call_recording_shared, recording_shared_release);
  g_clear_object (&self->call_recording_agent_pad);
  g_ptr_array_unref (self->branches);
  /* (stop handed them to the teardown) */
  g_ptr_array_unref (self->removals);
  g_strfreev (self->settings.local_addresses);
  g_free (self->call_id);
  G_OBJECT_CLASS (cd_call_pipeline_parent_class)->finalize (object);
}

static void
cd_call_pipeline_class_init (CdCallPipelineClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = cd_call_pipeline_dispose;
  object_class->finalize = cd_call_pipeline_finalize;
  signals[SIGNAL_ANSWER] =
      g_signal_new ("answer", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_STRING);
  signals[SIGNAL_LOCAL_CANDIDATE] =
      g_signal_new ("local-candidate", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 3, G_TYPE_INT, G_TYPE_UINT, G_TYPE_STRING);
  signals[SIGNAL_LEG_CONNECTED] =
      g_signal_new ("leg-connected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 1, G_TYPE_INT);
  signals[SIGNAL_DTMF] =
      g_signal_new ("dtmf", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 3, G_TYPE_INT, G_TYPE_STRING, G_TYPE_UINT);
  /* (rms dBFS): the recorded visitor's loudness over the last 100 ms */
  signals[SIGNAL_RECORDING_LEVEL] =
      g_signal_new ("recording-level", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 1, G_TYPE_DOUBLE);
  /* (reason): the call's recording cannot be written (the call goes on) */
  signals[SIGNAL_RECORDING_FAILED] =
      g_signal_new ("recording-failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 1, G_TYPE_STRING);
  /* (leg, digit): a DTMF tone heard in the leg's audio */
  signals[SIGNAL_INBAND_DTMF] =
      g_signal_new ("inband-dtmf", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_STRING);
  /* (id, played to its end, why not: nullable) */
  signals[SIGNAL_PROMPT_DONE] =
      g_signal_new ("prompt-done", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 3, G_TYPE_UINT, G_TYPE_BOOLEAN, G_TYPE_STRING);
  signals[SIGNAL_FAILED] =
      g_signal_new ("failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  signals[SIGNAL_LEG_FAILED] =
      g_signal_new ("leg-failed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 3, G_TYPE_INT, G_TYPE_STRING, G_TYPE_STRING);
}

static void
cd_call_pipeline_init (CdCallPipeline *self)
{
  for (int i = 0; i < CD_LEG_COUNT; i++) {
    self->legs[i].role = i;
    self->legs[i].opus_pt = -1;
    self->legs[i].dtmf_pt = -1;
  }
  self->branches = g_ptr_array_new_with_free_func ((GDestroyNotify) branch_free);
  self->removals = g_ptr_array_new ();
}

CdCallPipeline *
cd_call_pipeline_new (const char *call_id, const CdMediaSettings *settings)
{
  CdCallPipeline *self = g_object_new (CD_TYPE_CALL_PIPELINE, NULL);
  g_autofree char *name = g_strdup_printf ("call-%s", call_id);
  g_autoptr (GstBus) bus = NULL;

  self->call_id = g_strdup (call_id);
  self->settings = *settings;
  self->settings.local_addresses = g_strdupv (settings->local_addresses);
  self->pipeline = gst_pipeline_new (name);
  cd_srtp_gate_install (GST_BIN (self->pipeline));
  bus = gst_element_get_bus (self->pipeline);
  self->bus_watch_id = gst_bus_add_watch (bus, on_bus_message, self);
  gst_element_set_state (self->pipeline, GST_STATE_PLAYING);
  self->watchdog_id = g_timeout_add_seconds (1, on_watchdog, self);
  g_atomic_int_inc (&live_pipelines);
  return self;
}

/**
 * cd_call_pipeline_handle_offer:
 *
 * A party's offer (the first, or a renegotiation such as an ICE restart):
 * checked here, answered by the "answer" signal.
 */
gboolean
cd_call_pipeline_handle_offer (CdCallPipeline *self, CdLegRole role, const char *sdp,
                               GError **error)
{
  Leg *leg = &self->legs[role];
  g_autoptr (GstSDPMessage) parsed = NULL;
  GstWebRTCSessionDescription *offer;
  const GstSDPMedia *media;
  GstPromise *promise = NULL;

  g_return_val_if_fail (role < CD_LEG_COUNT, FALSE);
  if (self->stopped || self->failed) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_FAILED, "the call's media ended");
    return FALSE;
  }
  if (leg->negotiation != NEGOTIATION_IDLE) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_BUSY,
                         "the previous offer is still being answered");
    return FALSE;
  }
  parsed = parse_offer (sdp, self->settings.max_sdp_bytes, error);
  if (parsed == NULL)
    return FALSE;
  media = gst_sdp_message_get_media (parsed, 0);
  if (leg->webrtc == NULL) {
    leg->opus_pt = find_rtpmap (media, "opus", 48000);
    leg->dtmf_pt = find_rtpmap (media, "telephone-event", 48000);
    leg->dtmf_rate = 48000;
    if (leg->dtmf_pt < 0) {
      /* some browsers offer events at 8 kHz only */
      leg->dtmf_pt = find_rtpmap (media, "telephone-event", 8000);
      leg->dtmf_rate = 8000;
    }
    create_leg (self, leg);
  } else if (find_rtpmap (media, "opus", 48000) != leg->opus_pt) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_SDP,
                         "a new offer may not change the opus payload type");
    return FALSE;
  } else {
    /* an ICE restart or a renegotiation: ICE gets time again */
    leg->created_us = g_get_monotonic_time ();
    leg->ice_connected = FALSE;
  }
  offer = gst_webrtc_session_description_new (GST_WEBRTC_SDP_TYPE_OFFER, g_steal_pointer (&parsed));
  leg->negotiation = NEGOTIATION_REMOTE;
  promise_step (self, leg, "remote", &promise);
  g_signal_emit_by_name (leg->webrtc, "set-remote-description", offer, promise);
  gst_promise_unref (promise);
  gst_webrtc_session_description_free (offer);
  return TRUE;
}

gboolean
cd_call_pipeline_add_candidate (CdCallPipeline *self, CdLegRole role, guint mline,
                                const char *candidate, GError **error)
{
  Leg *leg = &self->legs[role];

  g_return_val_if_fail (role < CD_LEG_COUNT, FALSE);
  if (!cd_ice_candidate_check (candidate, error))
    return FALSE;
  if (mline != 0) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_CANDIDATE,
                         "sdp_mline_index must be 0 (one audio section)");
    return FALSE;
  }
  if (leg->webrtc == NULL) {
    g_set_error_literal (error, CD_MEDIA_ERROR, CD_MEDIA_ERROR_INVALID_CANDIDATE,
                         "send the offer before its candidates");
    return FALSE;
  }
  if (self->stopped)
    return TRUE;
  g_signal_emit_by_name (leg->webrtc, "add-ice-candidate", mline, candidate);
  return TRUE;
}

/**
 * cd_call_pipeline_set_hearing:
 * @talkers: a mask of CD_LEG_BIT()s
 *
 * What @role hears from now on: nobody (the visitor then hears the ringing
 * tone, or the hold tone once it has heard an agent), one other leg as it
 * sent it, or several mixed for it alone. Legs not present yet are heard
 * once they are.
 */
void
cd_call_pipeline_set_hearing (CdCallPipeline *self, CdLegRole role, guint talkers)
{
  g_return_if_fail (role < CD_LEG_COUNT);
  self->legs[role].hears = talkers & ~CD_LEG_BIT (role);
  if (!self->stopped)
    apply_hearing (self, &self->legs[role]);
}

/**
 * cd_call_pipeline_remove_leg:
 *
 * The party on @role leaves while the call goes on: the others stop
 * hearing it at once, its elements are stopped and removed off the main
 * context, and the slot can take a new party (a new offer).
 */
void
cd_call_pipeline_remove_leg (CdCallPipeline *self, CdLegRole role)
{
  Leg *leg;
  Removal *r;

  g_return_if_fail (role < CD_LEG_COUNT);
  leg = &self->legs[role];
  leg->hears = 0;
  if (self->stopped || self->pipeline == NULL || leg->webrtc == NULL)
    return;
  g_signal_handlers_disconnect_by_data (leg->webrtc, LEG_TAG (leg));
  r = removal_new (self);
  r->webrtc = gst_object_ref (g_steal_pointer (&leg->webrtc));
  /* the others stop hearing it: their selectors leave its branches */
  for (int i = 0; i < CD_LEG_COUNT; i++)
    if (i != (int) role)
      apply_hearing (self, &self->legs[i]);
  for (guint i = self->branches->len; i > 0; i--) {
    Branch *b = g_ptr_array_index (self->branches, i - 1);

    if (b->to != role && !(b->from & CD_LEG_BIT (role)))
      continue;
    g_ptr_array_steal_index (self->branches, i - 1);
    /* a branch into this leg's selector goes with the selector */
    removal_take_branch (r, b, TRUE, b->to != role);
  }
  if (leg->tone)
    removal_take_branch (r, g_steal_pointer (&leg->tone), FALSE, FALSE);
  if (leg->prompt)
    removal_take_branch (r, g_steal_pointer (&leg->prompt), FALSE, FALSE);
  if (leg->inband)
    removal_take_branch (r, g_steal_pointer (&leg->inband), FALSE, FALSE);
  if (leg->decoder)
    removal_take_branch (r, g_steal_pointer (&leg->decoder), FALSE, FALSE);
  g_ptr_array_add (r->elements, gst_object_ref (leg->depay));
  g_ptr_array_add (r->elements, gst_object_ref (leg->tee));
  g_ptr_array_add (r->elements, gst_object_ref (leg->source));
  g_ptr_array_add (r->elements, gst_object_ref (leg->pay));
  leg->depay = leg->tee = leg->source = leg->pay = NULL;
  leg->pcm = leg->cadence = NULL;
  g_clear_object (&leg->mute_pad);
  leg->opus_pt = leg->dtmf_pt = -1;
  leg->negotiation = NEGOTIATION_IDLE;
  leg->has_sink = leg->ice_connected = leg->dtls_connected = FALSE;
  leg->audio_seen = leg->connected_told = leg->failed_told = FALSE;
  leg->connected_us = leg->stats_at_us = 0;
  leg->bytes_in = leg->bytes_out = 0;
  g_clear_pointer (&leg->answer_sdp, g_free);
  g_clear_pointer (&leg->stats, json_object_unref);
  /* its statistics, asked for, will not come: the others' are not kept waiting */
  if (leg->stats_pending) {
    leg->stats_pending = FALSE;
    if (self->stats_expected > 0 && --self->stats_expected == 0)
      complete_stats (self);
  }
  removal_start (self, r);
}

gboolean
cd_call_pipeline_has_leg (CdCallPipeline *self, CdLegRole role)
{
  return role < CD_LEG_COUNT && self->legs[role].webrtc != NULL;
}

char *
cd_call_pipeline_get_dot (CdCallPipeline *self)
{
  if (self->pipeline == NULL)
    return NULL;
  return gst_debug_bin_to_dot_data (GST_BIN (self->pipeline), GST_DEBUG_GRAPH_SHOW_ALL);
}

/**
 * cd_call_pipeline_get_stats_async:
 *
 * Each leg's webrtcbin statistics (packets, loss, jitter, round trip,
 * bitrate since the previous sample) as one JSON object by leg.
 */
void
cd_call_pipeline_get_stats_async (CdCallPipeline *self, GCancellable *cancellable,
                                  GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (self, cancellable, callback, user_data);
  gboolean asked = self->stats_expected > 0;

  g_task_set_source_tag (task, cd_call_pipeline_get_stats_async);
  self->stats_waiters = g_list_append (self->stats_waiters, task);
  if (!asked)
    request_stats (self);
}

static void
request_stats (CdCallPipeline *self)
{
  for (int i = 0; i < CD_LEG_COUNT && !self->stopped; i++) {
    Leg *leg = &self->legs[i];
    GstPromise *promise;

    if (leg->webrtc == NULL)
      continue;
    self->stats_expected++;
    leg->stats_pending = TRUE;
    promise =
        gst_promise_new_with_change_func (on_stats_replied, gst_object_ref (leg->webrtc), NULL);
    g_signal_emit_by_name (leg->webrtc, "get-stats", NULL, promise);
    gst_promise_unref (promise);
  }
  if (self->stats_expected == 0)
    complete_stats (self);
}

JsonNode *
cd_call_pipeline_get_stats_finish (CdCallPipeline *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * cd_call_pipeline_get_quality:
 *
 * The call's quality from the last statistics: what each party received
 * (loss, jitter) and an E-model MOS estimate of the worse direction.
 */
JsonObject *
cd_call_pipeline_get_quality (CdCallPipeline *self)
{
  JsonObject *quality = json_object_new ();
  double worst_mos = 0;
  gboolean any = FALSE;

  for (int i = 0; i < CD_LEG_COUNT; i++) {
    Leg *leg = &self->legs[i];
    JsonObject *in, *remote, *o;
    CdQualityInput q = { 0 };
    double received, lost, r, mos;

    if (leg->stats == NULL ||
        (!json_object_has_member (leg->stats, "inbound") && !leg->connected_told))
      continue;
    if (!json_object_has_member (leg->stats, "inbound")) {
      /* connected, yet nothing came: that direction was lost entirely */
      o = json_object_new ();
      json_object_set_double_member (o, "packets_received", 0);
      json_object_set_double_member (o, "loss_percent", 100);
      json_object_set_double_member (o, "mos", 1);
      json_object_set_object_member (quality, leg_names[i], o);
      worst_mos = 1;
      any = TRUE;
      continue;
    }
    in = json_object_get_object_member (leg->stats, "inbound");
    remote = json_object_has_member (leg->stats, "remote_inbound")
                 ? json_object_get_object_member (leg->stats, "remote_inbound")
                 : NULL;
    received = json_object_get_double_member_with_default (in, "packets_received", 0);
    lost = MAX (0, json_object_get_double_member_with_default (in, "packets_lost", 0));
    cd_quality_input_set_opus (&q, 32000, TRUE);
    q.loss_percent = received + lost > 0 ? 100.0 * lost / (received + lost) : 0;
    q.jitter_ms = json_object_get_double_member_with_default (in, "jitter_ms", 0);
    q.rtt_ms =
        remote ? json_object_get_double_member_with_default (remote, "round_trip_time_ms", 0) : 0;
    q.jitter_buffer_ms = self->settings.jitter_latency_ms;
    r = cd_quality_r_factor (&q);
    mos = cd_quality_mos (r);
    o = json_object_new ();
    json_object_set_double_member (o, "packets_received", round3 (received));
    json_object_set_double_member (o, "packets_lost", round3 (lost));
    json_object_set_double_member (o, "loss_percent", round3 (q.loss_percent));
    json_object_set_double_member (o, "jitter_ms", round3 (q.jitter_ms));
    json_object_set_double_member (o, "rtt_ms", round3 (q.rtt_ms));
    json_object_set_double_member (o, "mos", round3 (mos));
    json_object_set_object_member (quality, leg_names[i], o);
    worst_mos = any ? MIN (worst_mos, mos) : mos;
    any = TRUE;
  }
  if (any)
    json_object_set_double_member (quality, "mos", round3 (worst_mos));
  return quality;
}

guint
cd_call_pipeline_get_live_count (void)
{
  return g_atomic_int_get (&live_pipelines);
}
