/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routing strategies over a snapshot of a queue's agents. */

#define G_LOG_DOMAIN "calldocker-routing"

#include "routing/cd-strategy.h"

#include <stdlib.h>
#include <string.h>

static const char *const strategy_names[] = {
  [CD_STRATEGY_RING_ALL] = "ring-all",
  [CD_STRATEGY_ROUND_ROBIN] = "round-robin",
  [CD_STRATEGY_LONGEST_IDLE] = "longest-idle",
  [CD_STRATEGY_FEWEST_CALLS] = "fewest-calls",
  [CD_STRATEGY_RANDOM] = "random",
  [CD_STRATEGY_SKILLS] = "skills-based",
};

gboolean
cd_strategy_from_string (const char *text, CdStrategy *strategy)
{
  for (gsize i = 0; i < G_N_ELEMENTS (strategy_names); i++)
    if (g_strcmp0 (text, strategy_names[i]) == 0) {
      *strategy = (CdStrategy) i;
      return TRUE;
    }
  return FALSE;
}

const char *
cd_strategy_to_string (CdStrategy strategy)
{
  g_return_val_if_fail (strategy < G_N_ELEMENTS (strategy_names), NULL);
  return strategy_names[strategy];
}

const char *
cd_skip_to_string (CdSkip skip)
{
  static const char *const names[] = {
    [CD_SKIP_NONE] = "eligible", [CD_SKIP_BUSY] = "busy",         [CD_SKIP_DECLINED] = "declined",
    [CD_SKIP_SKILL] = "skill",   [CD_SKIP_LANGUAGE] = "language", [CD_SKIP_RULE] = "rule",
  };

  g_return_val_if_fail (skip < G_N_ELEMENTS (names), NULL);
  return names[skip];
}

void
cd_decision_init (CdDecision *decision, guint n_candidates)
{
  memset (decision, 0, sizeof *decision);
  decision->chosen = g_new (guint, MAX (n_candidates, 1));
  decision->skips = g_new0 (CdSkip, MAX (n_candidates, 1));
}

void
cd_decision_clear (CdDecision *decision)
{
  g_clear_pointer (&decision->chosen, g_free);
  g_clear_pointer (&decision->skips, g_free);
  decision->n_chosen = 0;
  decision->n_eligible = 0;
}

/* The hot path compares many short names that mostly differ in their first
 * byte: check that (and the pointer, for interned names) before strcmp. */
static inline gboolean
same_name (const char *a, const char *b)
{
  return a == b || (a[0] == b[0] && strcmp (a, b) == 0);
}

static int
skill_level (const CdRuleAgent *agent, const char *name)
{
  for (guint k = 0; k < agent->n_skills; k++)
    if (same_name (agent->skills[k].name, name))
      return agent->skills[k].level;
  return 0;
}

static gboolean
speaks_one_of (const CdRuleAgent *agent, const char *const *languages, guint n)
{
  for (guint i = 0; i < n; i++)
    for (guint k = 0; k < agent->n_languages; k++)
      if (same_name (agent->languages[k], languages[i]))
        return TRUE;
  return FALSE;
}

/* Why @c cannot take the call, or CD_SKIP_NONE; its skill total in @score. */
static CdSkip
check (const CdQueuePolicy *policy, const CdCandidate *c, const CdRuleCall *call, int *score)
{
  *score = 0;
  if (!c->free)
    return CD_SKIP_BUSY;
  if (c->declined)
    return CD_SKIP_DECLINED;
  for (guint i = 0; i < policy->n_required; i++) {
    int level = skill_level (&c->attributes, policy->required[i].name);
    if (level < policy->required[i].min_level)
      return CD_SKIP_SKILL;
    *score += level;
  }
  if (policy->n_languages > 0 &&
      !speaks_one_of (&c->attributes, policy->languages, policy->n_languages))
    return CD_SKIP_LANGUAGE;
  if (policy->rule && !cd_rule_matches (policy->rule, &c->attributes, call))
    return CD_SKIP_RULE;
  return CD_SKIP_NONE;
}

/* Whether @a goes before @b among eligible candidates, by the strategy. */
static gboolean
better (CdStrategy strategy, const CdCandidate *a, int a_score, const CdCandidate *b, int b_score)
{
  if (strategy == CD_STRATEGY_SKILLS && a_score != b_score)
    return a_score > b_score;
  if (strategy == CD_STRATEGY_FEWEST_CALLS && a->calls_taken != b->calls_taken)
    return a->calls_taken < b->calls_taken;
  /* then, and for longest-idle, the longest idle */
  return a->idle_since_us < b->idle_since_us;
}

/**
 * cd_strategy_choose:
 *
 * Fills @decision (initialised with cd_decision_init() for @n) for @call.
 * Candidates keep their order: round-robin walks it from @cursor, and ties
 * go to the earlier one.
 */
void
cd_strategy_choose (const CdQueuePolicy *policy, const CdCandidate *candidates, guint n,
                    const CdRuleCall *call, guint *cursor, guint32 random_value,
                    CdDecision *decision)
{
  g_autofree int *scores = g_new0 (int, MAX (n, 1));
  guint best = G_MAXUINT;

  decision->n_chosen = 0;
  decision->n_eligible = 0;
  decision->skill_score = 0;
  for (guint i = 0; i < n; i++) {
    decision->skips[i] = check (policy, &candidates[i], call, &scores[i]);
    if (decision->skips[i] == CD_SKIP_NONE)
      decision->chosen[decision->n_eligible++] = i;
  }
  if (decision->n_eligible == 0)
    return;

  switch (policy->strategy) {
  case CD_STRATEGY_RING_ALL:
    /* all of them at once, in the queue's order: the first to accept wins */
    decision->n_chosen = decision->n_eligible;
    return;
  case CD_STRATEGY_ROUND_ROBIN:
    /* the first eligible at or after the cursor, wrapping */
    for (guint k = 0; k < n && best == G_MAXUINT; k++) {
      guint i = (*cursor + k) % n;
      if (decision->skips[i] == CD_SKIP_NONE)
        best = i;
    }
    *cursor = (best + 1) % n;
    break;
  case CD_STRATEGY_RANDOM:
    best = decision->chosen[random_value % decision->n_eligible];
    break;
  case CD_STRATEGY_LONGEST_IDLE:
  case CD_STRATEGY_FEWEST_CALLS:
  case CD_STRATEGY_SKILLS:
    for (guint k = 0; k < decision->n_eligible; k++) {
      guint i = decision->chosen[k];
      if (best == G_MAXUINT ||
          better (policy->strategy, &candidates[i], scores[i], &candidates[best], scores[best]))
        best = i;
    }
    break;
  default:
    g_assert_not_reached ();
  }
  decision->chosen[0] = best;
  decision->n_chosen = 1;
  decision->skill_score = scores[best];
}

gint64
cd_priority_effective (int priority, gint64 wait_s)
{
  return (gint64) priority + MAX (wait_s, 0) / CD_PRIORITY_AGING_S;
}

static int
compare_waiting (gconstpointer pa, gconstpointer pb, gpointer user_data)
{
  const CdWaiting *a = pa, *b = pb;
  gint64 now_us = *(const gint64 *) user_data;
  gint64 ea = cd_priority_effective (a->priority, (now_us - a->entered_us) / G_USEC_PER_SEC);
  gint64 eb = cd_priority_effective (b->priority, (now_us - b->entered_us) / G_USEC_PER_SEC);

  if (ea != eb)
    return ea > eb ? -1 : 1;
  return a->entered_us < b->entered_us ? -1 : a->entered_us > b->entered_us;
}

gboolean
cd_waiting_before (const CdWaiting *a, const CdWaiting *b, gint64 now_us)
{
  return compare_waiting (a, b, &now_us) < 0;
}

void
cd_waiting_sort (CdWaiting *calls, guint n, gint64 now_us)
{
  g_qsort_with_data (calls, (gint) n, sizeof (CdWaiting), compare_waiting, &now_us);
}
