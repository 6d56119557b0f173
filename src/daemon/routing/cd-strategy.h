/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routing strategies: which waiting call goes first, and which of a queue's
 * agents it is offered to, with the reasons (docs/routing.md). Pure
 * functions over snapshots: the caller owns presence and reservations. */
#pragma once

#include <glib.h>

#include "routing/cd-rule.h"

G_BEGIN_DECLS

typedef enum {
  CD_STRATEGY_RING_ALL,
  CD_STRATEGY_ROUND_ROBIN,
  CD_STRATEGY_LONGEST_IDLE,
  CD_STRATEGY_FEWEST_CALLS,
  CD_STRATEGY_RANDOM,
  CD_STRATEGY_SKILLS,
} CdStrategy;

gboolean cd_strategy_from_string (const char *text, CdStrategy *strategy);
const char *cd_strategy_to_string (CdStrategy strategy);

typedef struct {
  const char *name;
  int min_level;
} CdRequiredSkill;

/* What a queue asks of its agents and how it picks one. */
typedef struct {
  CdStrategy strategy;
  const CdRequiredSkill *required; /* all of them, at or above the level */
  guint n_required;
  const char *const *languages; /* the agent speaks one of them; none: any */
  guint n_languages;
  const CdRule *rule; /* NULL: any agent */
} CdQueuePolicy;

/* An agent of the queue as the router sees it now. */
typedef struct {
  const char *id;
  gboolean free;          /* available and not reserved, on a call or in wrap-up */
  gboolean declined;      /* already offered this call and did not take it */
  gint64 idle_since_us;   /* when the agent last became free */
  guint calls_taken;      /* today, for fewest-calls */
  CdRuleAgent attributes; /* skills, languages, the level in this queue */
} CdCandidate;

typedef enum {
  CD_SKIP_NONE,     /* eligible */
  CD_SKIP_BUSY,     /* not free */
  CD_SKIP_DECLINED, /* did not take this call before */
  CD_SKIP_SKILL,    /* below a required skill's level */
  CD_SKIP_LANGUAGE, /* speaks none of the queue's languages */
  CD_SKIP_RULE,     /* the queue's rule says no */
} CdSkip;

const char *cd_skip_to_string (CdSkip skip);

/* The outcome for one call: the chosen agents (ring-all: every eligible
 * one, in the candidates' order; otherwise at most one) and why each
 * candidate was skipped. */
typedef struct {
  guint *chosen; /* candidate indexes, best first */
  guint n_chosen;
  CdSkip *skips; /* one per candidate */
  guint n_eligible;
  int skill_score; /* skills-based: the winner's total over the required skills */
} CdDecision;

void cd_decision_init (CdDecision *decision, guint n_candidates);
void cd_decision_clear (CdDecision *decision);

/* Chooses among @candidates for @call. @cursor is the queue's round-robin
 * position (read and moved on); @random_value a uniform 32-bit number for
 * the random strategy. */
void cd_strategy_choose (const CdQueuePolicy *policy, const CdCandidate *candidates, guint n,
                         const CdRuleCall *call, guint *cursor, guint32 random_value,
                         CdDecision *decision);

/* Priority aging: a call's effective priority grows by one every
 * CD_PRIORITY_AGING_S seconds it waits. */
#define CD_PRIORITY_AGING_S 30

gint64 cd_priority_effective (int priority, gint64 wait_s);

/* Waiting calls in the order they are served: highest effective priority
 * first, then the longest waiting. */
typedef struct {
  int priority;
  gint64 entered_us; /* when the call entered the queue */
  gconstpointer data;
} CdWaiting;

void cd_waiting_sort (CdWaiting *calls, guint n, gint64 now_us);
/* Whether @a is served before @b at @now_us (the order cd_waiting_sort makes). */
gboolean cd_waiting_before (const CdWaiting *a, const CdWaiting *b, gint64 now_us);

G_END_DECLS
