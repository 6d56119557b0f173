/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdCallPipeline: one GstPipeline per call, one webrtcbin leg per party;
 * Opus is forwarded between legs without decoding (docs/pipelines.md). */
#pragma once

#include <gio/gio.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CD_MEDIA_ERROR (cd_media_error_quark ())

typedef enum {
  CD_MEDIA_ERROR_INVALID_SDP,
  CD_MEDIA_ERROR_INVALID_CANDIDATE,
  CD_MEDIA_ERROR_BUSY, /* an offer on this leg is being answered */
  CD_MEDIA_ERROR_FAILED,
} CdMediaError;

GQuark cd_media_error_quark (void);

/* A call's slots for parties: the visitor; two agents (the second is
 * for a warm transfer's target, who may then stay as the call's agent);
 * a supervisor listening in. */
typedef enum {
  CD_LEG_VISITOR,
  CD_LEG_AGENT,
  CD_LEG_AGENT_2,
  CD_LEG_SUPERVISOR,
  CD_LEG_COUNT,
} CdLegRole;

#define CD_LEG_BIT(role) (1u << (role))

const char *cd_leg_role_to_string (CdLegRole role);

typedef struct {
  GStrv local_addresses; /* nullable: every interface */
  guint jitter_latency_ms;
  guint min_rtp_port, max_rtp_port;
  guint ice_timeout_s;
  guint media_timeout_s;
  guint max_sdp_bytes;
  gboolean ringback; /* a ringing tone to the visitor until an agent is connected */
  /* where the daemon encodes (the ringback tone, later prompts) */
  guint opus_bitrate;
  guint opus_complexity;
  gboolean opus_fec;
  gboolean opus_dtx;
} CdMediaSettings;

#define CD_TYPE_CALL_PIPELINE (cd_call_pipeline_get_type ())
G_DECLARE_FINAL_TYPE (CdCallPipeline, cd_call_pipeline, CD, CALL_PIPELINE, GObject)

/* Signals, all emitted on the main context:
 *   "answer" (CdLegRole leg, const char *sdp)
 *   "local-candidate" (CdLegRole leg, guint mline, const char *candidate)
 *   "leg-connected" (CdLegRole leg): ICE and DTLS up, audio arriving
 *   "dtmf" (CdLegRole leg, const char *digit, guint duration_ms): RFC 4733
 *   "recording-failed" (const char *reason): the call's recording cannot be
 *     written (a folder that cannot be written, a full disk); the call goes on
 *   "failed" (const char *reason, const char *detail): the call cannot go on
 *     (reason pipeline-error)
 *   "leg-failed" (CdLegRole leg, const char *reason, const char *detail): that
 *     party's media failed (ice-failed, dtls-failed, media-timeout); told once
 *     per party, the caller ends the call or removes the leg */
CdCallPipeline *cd_call_pipeline_new (const char *call_id, const CdMediaSettings *settings);
gboolean cd_call_pipeline_handle_offer (CdCallPipeline *self, CdLegRole leg, const char *sdp,
                                        GError **error);
gboolean cd_call_pipeline_add_candidate (CdCallPipeline *self, CdLegRole leg, guint mline,
                                         const char *candidate, GError **error);
gboolean cd_call_pipeline_has_leg (CdCallPipeline *self, CdLegRole leg);
void cd_call_pipeline_set_hearing (CdCallPipeline *self, CdLegRole role, guint talkers);
void cd_call_pipeline_remove_leg (CdCallPipeline *self, CdLegRole role);
void cd_call_pipeline_set_ivr (CdCallPipeline *self, gboolean on);
guint cd_call_pipeline_play_prompt (CdCallPipeline *self, const char *path);
void cd_call_pipeline_stop_prompt (CdCallPipeline *self);
void cd_call_pipeline_set_inband_dtmf (CdCallPipeline *self, gboolean on);
guint cd_call_pipeline_play_beep (CdCallPipeline *self);
gboolean cd_call_pipeline_start_recording (CdCallPipeline *self, const char *path, GBytes *key,
                                           const char *company, guint32 key_version);
void cd_call_pipeline_stop_recording_async (CdCallPipeline *self, GAsyncReadyCallback callback,
                                            gpointer user_data);
gboolean cd_call_pipeline_stop_recording_finish (CdCallPipeline *self, GAsyncResult *result,
                                                 guint *ms, guint64 *bytes, GError **error);
gboolean cd_call_pipeline_start_call_recording (CdCallPipeline *self, const char *path, GBytes *key,
                                                const char *company, guint32 key_version,
                                                GError **error);
void cd_call_pipeline_pause_call_recording (CdCallPipeline *self, gboolean paused);
gboolean cd_call_pipeline_is_call_recorded (CdCallPipeline *self);
void cd_call_pipeline_record_agent_leg (CdCallPipeline *self, CdLegRole role);
void cd_call_pipeline_stop_call_recording_async (CdCallPipeline *self, GAsyncReadyCallback callback,
                                                 gpointer user_data);
gboolean cd_call_pipeline_stop_call_recording_finish (CdCallPipeline *self, GAsyncResult *result,
                                                      guint *ms, guint64 *bytes,
                                                      guint64 *plain_bytes, GError **error);
char *cd_call_pipeline_get_dot (CdCallPipeline *self);
void cd_call_pipeline_get_stats_async (CdCallPipeline *self, GCancellable *cancellable,
                                       GAsyncReadyCallback callback, gpointer user_data);
JsonNode *cd_call_pipeline_get_stats_finish (CdCallPipeline *self, GAsyncResult *result,
                                             GError **error);
JsonObject *cd_call_pipeline_get_quality (CdCallPipeline *self);
void cd_call_pipeline_stop (CdCallPipeline *self);
guint cd_call_pipeline_get_live_count (void);

gboolean cd_sdp_check_offer (const char *sdp, gsize max_bytes, GError **error);
gboolean cd_ice_candidate_check (const char *candidate, GError **error);

G_END_DECLS
