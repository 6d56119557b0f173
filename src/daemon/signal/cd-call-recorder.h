/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Call recordings on this daemon: started, paused, resumed and stopped on a
 * call's pipeline, written sealed under the blob store, each with its row in
 * the recordings table and its events on the call's timeline. */
#pragma once

#include "../events/cd-metrics.h"
#include "../http/cd-api.h"
#include "../media/cd-call-pipeline.h"

G_BEGIN_DECLS

#define CD_TYPE_CALL_RECORDER (cd_call_recorder_get_type ())
G_DECLARE_FINAL_TYPE (CdCallRecorder, cd_call_recorder, CD, CALL_RECORDER, GObject)

/* @metrics: nullable */
CdCallRecorder *cd_call_recorder_new (CdApi *api, const char *daemon_id, CdMetrics *metrics);

/* Starts recording the call: what fails later (no key, a folder that
 * cannot be made, a file that cannot be written) goes on the timeline and
 * in the recording's row, and the call goes on. FALSE (CD_HTTP_ERROR) when
 * the call is recorded already. */
gboolean cd_call_recorder_start (CdCallRecorder *self, CdCallPipeline *pipeline,
                                 const char *company_id, const char *call_id, const char *agent_id,
                                 GError **error);
gboolean cd_call_recorder_pause (CdCallRecorder *self, const char *call_id, gboolean paused,
                                 GError **error);
/* Stops it; the file is finished off the main loop (before the pipeline
 * stops, when called first). */
gboolean cd_call_recorder_stop (CdCallRecorder *self, const char *call_id, GError **error);
gboolean cd_call_recorder_is_recording (CdCallRecorder *self, const char *call_id);
/* Finds the recordings a daemon of this host that died left in state
 * 'recording', keeps each file up to its last whole Ogg page (sealed again,
 * whole) and marks it 'partial' (or 'failed' when nothing can be kept). */
void cd_call_recorder_recover (CdCallRecorder *self);

G_END_DECLS
