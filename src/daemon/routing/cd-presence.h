/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Agent states and reservations in Redis, shared by every daemon: each
 * change is one Lua script, so two daemons routing at once never give one
 * agent two calls, and a reservation whose daemon died ends with its lease
 * (docs/routing.md). Main loop only. */
#pragma once

#include <gio/gio.h>

#include "store/cd-redis.h"

G_BEGIN_DECLS

typedef enum {
  CD_AGENT_OFFLINE,
  CD_AGENT_AVAILABLE,
  CD_AGENT_RESERVED, /* a call rings it */
  CD_AGENT_ON_CALL,
  CD_AGENT_WRAP_UP,
  CD_AGENT_AWAY,
} CdAgentState;

const char *cd_agent_state_to_string (CdAgentState state);
gboolean cd_agent_state_from_string (const char *text, CdAgentState *state);

typedef struct {
  CdAgentState state;
  char *reason;  /* away: why; available after a lapsed lease: "lease-expired" */
  char *call_id; /* reserved, on a call: which */
  char *daemon;  /* reserved, on a call: whose */
  guint missed;  /* offers missed in a row */
} CdAgentPresence;

void cd_agent_presence_free (CdAgentPresence *presence);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdAgentPresence, cd_agent_presence_free)

#define CD_TYPE_PRESENCE (cd_presence_get_type ())
G_DECLARE_FINAL_TYPE (CdPresence, cd_presence, CD, PRESENCE, GObject)

/* @daemon_id names this daemon in reservations; @lease_ms is how long a
 * reservation outlives its last renewal. */
CdPresence *cd_presence_new (CdRedis *redis, const char *daemon_id, guint lease_ms);

/* The agent's own choice: available, away (with @reason) or offline. A
 * reserved agent or one on a call keeps that state (refused: FALSE). */
void cd_presence_set_async (CdPresence *self, const char *company_id, const char *agent_id,
                            CdAgentState state, const char *reason, GAsyncReadyCallback callback,
                            gpointer user_data);
gboolean cd_presence_set_finish (CdPresence *self, GAsyncResult *result, GError **error);

/* Reserves an available agent for @call_id: TRUE, or FALSE when the agent
 * is not available (another daemon may have been first). */
void cd_presence_reserve_async (CdPresence *self, const char *company_id, const char *agent_id,
                                const char *call_id, GAsyncReadyCallback callback,
                                gpointer user_data);
gboolean cd_presence_reserve_finish (CdPresence *self, GAsyncResult *result, GError **error);

/* What the holder of @call_id's reservation does with it: renew the lease;
 * ON_CALL when the agent answers (which clears the missed count); or end it
 * with AVAILABLE, AWAY or WRAP_UP (which ends by itself after @wrap_up_ms,
 * also when no daemon is left to end it). @missed counts a missed offer;
 * after @max_missed in a row (0: never) the agent is set away with reason
 * "missed". FALSE when @call_id does not hold the agent: another call
 * does, or the lease lapsed and something else happened to the agent since.
 * A lapsed lease with nothing since (its holder stalled) is no reason to
 * lose the agent, the answer, the miss or the wrap-up: renew and answer
 * take the agent back (renew as reserved, or on the call once @answered),
 * release applies. */
void cd_presence_renew_async (CdPresence *self, const char *company_id, const char *agent_id,
                              const char *call_id, gboolean answered, GAsyncReadyCallback callback,
                              gpointer user_data);
void cd_presence_answer_async (CdPresence *self, const char *company_id, const char *agent_id,
                               const char *call_id, GAsyncReadyCallback callback,
                               gpointer user_data);
void cd_presence_release_async (CdPresence *self, const char *company_id, const char *agent_id,
                                const char *call_id, CdAgentState next, guint wrap_up_ms,
                                gboolean missed, guint max_missed, GAsyncReadyCallback callback,
                                gpointer user_data);
gboolean cd_presence_change_finish (CdPresence *self, GAsyncResult *result, GError **error);

/* The agent's state now; a reservation or call whose lease lapsed (its
 * daemon is gone) reads, and is stored, as available. */
/* The agent has a session on this daemon: said when the first opens and
 * again with every renewal, so a daemon's word lasts one lease. When the
 * last closes, sign out: once no daemon's word is left, the agent is
 * offline (TRUE), unless a call holds them. Finish with
 * cd_presence_change_finish. */
void cd_presence_sign_in_async (CdPresence *self, const char *company_id, const char *agent_id,
                                GAsyncReadyCallback callback, gpointer user_data);
void cd_presence_sign_out_async (CdPresence *self, const char *company_id, const char *agent_id,
                                 GAsyncReadyCallback callback, gpointer user_data);

void cd_presence_get_async (CdPresence *self, const char *company_id, const char *agent_id,
                            GAsyncReadyCallback callback, gpointer user_data);
CdAgentPresence *cd_presence_get_finish (CdPresence *self, GAsyncResult *result, GError **error);

G_END_DECLS
