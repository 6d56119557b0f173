/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdSwitchboard: the calls this daemon carries and the agents signed in to
 * it; a visitor's call waits for the longest-idle available agent. */
#pragma once

#include "../events/cd-metrics.h"
#include "../http/cd-api.h"
#include "../media/cd-call-pipeline.h"
#include "cd-signal-session.h"

G_BEGIN_DECLS

typedef struct {
  guint ring_timeout_s;
  guint max_wait_s;
  guint resume_grace_s;
  guint max_calls;
  CdMediaSettings media;
  CdMetrics *metrics;         /* nullable; borrowed */
  guint max_missed_offers;    /* in a row, then away (reason missed); 0: never */
  guint reservation_lease_ms; /* 0: the default, 15 s */
  guint reoffer_after_s;      /* a call an agent rejected or missed is offered them again
                                 after this; 0: the default, 30 s */
} CdSwitchboardSettings;

#define CD_TYPE_SWITCHBOARD (cd_switchboard_get_type ())
G_DECLARE_FINAL_TYPE (CdSwitchboard, cd_switchboard, CD, SWITCHBOARD, GObject)

CdSwitchboard *cd_switchboard_new (CdApi *api, const CdSwitchboardSettings *settings);
void cd_switchboard_session_authenticated (CdSwitchboard *self, Session *session);
void cd_switchboard_session_closed (CdSwitchboard *self, Session *session);
void cd_switchboard_set_presence (CdSwitchboard *self, Session *session, const char *status);
/* TRUE when the message type is a call message (handled, answered or refused) */
gboolean cd_switchboard_handle (CdSwitchboard *self, Session *session, const char *type,
                                JsonObject *message);
/* What this daemon knows of an agent of @company_id now: FALSE when the
 * agent is not signed in here. */
gboolean cd_switchboard_member_now (CdSwitchboard *self, const char *company_id,
                                    const char *agent_id, CdMemberNow *now);
CdCallPipeline *cd_switchboard_lookup_pipeline (CdSwitchboard *self, const char *company_id,
                                                const char *call_id);
gboolean cd_switchboard_control_recording (CdSwitchboard *self, const char *company_id,
                                           const char *call_id, const char *action,
                                           const char *only_agent, GError **error);
void cd_switchboard_recover_recordings (CdSwitchboard *self);
guint cd_switchboard_get_call_count (CdSwitchboard *self);
void cd_switchboard_end_all (CdSwitchboard *self, const char *reason);

G_END_DECLS
