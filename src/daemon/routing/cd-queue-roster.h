/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A queue as the router uses it: its checked definition and its members
 * with what the strategy and the rule read of them (level, skills,
 * languages), and the decision for one call with its explanation. */
#pragma once

#include <json-glib/json-glib.h>

#include "routing/cd-queue-spec.h"
#include "routing/cd-strategy.h"

G_BEGIN_DECLS

typedef struct {
  char *id;
  CdRuleAgent attributes; /* skills and languages owned by the roster */
} CdRosterMember;

typedef struct {
  char *queue_id;
  CdQueueSpec *spec;
  CdQueuePolicy policy;    /* points into spec */
  CdRosterMember *members; /* ordered by id: round-robin's order */
  guint n_members;
} CdQueueRoster;

/* From {"id", "definition": {...}, "members": [{"id", "level", "skills":
 * {"name": level}, "languages": ["de"]}]} as the store answers it. */
CdQueueRoster *cd_queue_roster_new (JsonObject *object, GError **error);
/* The same from the JSON text cd_queue_roster_sql answers. */
CdQueueRoster *cd_queue_roster_parse (const char *text, gsize length, GError **error);

/* The statement that reads a roster's JSON (one row: the text, and
 * whether the company's country queues chose it) for company $1: queue $2,
 * or with $2 NULL the queue of country $3 (NULL: unknown) if the company
 * maps it, else its first queue. Members are the company's active users.
 * Run it in the company's scope. */
extern const char cd_queue_roster_sql[];
void cd_queue_roster_free (CdQueueRoster *roster);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdQueueRoster, cd_queue_roster_free)

/* What the router knows of a member right now. */
typedef struct {
  gboolean online;      /* signed in to take calls */
  gboolean free;        /* available, and neither ringing, on a call nor in wrap-up */
  gboolean declined;    /* already offered this call */
  gint64 idle_since_us; /* monotonic time it last became free */
  guint calls_taken;
} CdMemberNow;

/* FALSE: nothing known of @agent_id (read as offline). */
typedef gboolean (*CdMemberLookup) (const char *agent_id, CdMemberNow *now, gpointer user_data);

/* Decides who of @roster's members gets @call now, without reserving
 * anyone. @chosen receives the chosen members' ids (borrowed from @roster),
 * best first. Returns the explanation: the strategy, and for every member
 * its outcome (chosen, eligible, offline, busy, declined, skill, language,
 * rule) with the facts the strategy compared (docs/routing.md). */
JsonObject *cd_queue_roster_decide (const CdQueueRoster *roster, CdMemberLookup lookup,
                                    gpointer user_data, const CdRuleCall *call, guint *cursor,
                                    guint32 random_value, gint64 now_us, GPtrArray *chosen);

G_END_DECLS
