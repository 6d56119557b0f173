/* SPDX-License-Identifier: GPL-3.0-or-later */
/* routing-bench: how long choosing an agent for one call takes among N
 * available agents of one queue, per strategy, with required skills, a
 * language list and a rule; prints JSON (docs/benchmarks.md). */

#include "routing/cd-strategy.h"

#include <stdio.h>
#include <stdlib.h>

static const char *const skill_names[] = { "billing", "tech", "sales", "returns", "vip" };
static const char *const language_sets[][2] = { { "de", "en" }, { "en", "fr" }, { "es", "en" } };

typedef struct {
  CdCandidate *candidates;
  CdRuleSkill *skills; /* 5 per agent */
  char **ids;
  guint n;
} Team;

/* @n agents: skills 0..5, one of three language pairs, one in ten busy */
static void
team_init (Team *team, guint n, GRand *rand)
{
  team->n = n;
  team->candidates = g_new0 (CdCandidate, n);
  team->skills = g_new0 (CdRuleSkill, (gsize) n * G_N_ELEMENTS (skill_names));
  team->ids = g_new0 (char *, n);
  for (guint i = 0; i < n; i++) {
    CdCandidate *c = &team->candidates[i];
    CdRuleSkill *s = &team->skills[(gsize) i * G_N_ELEMENTS (skill_names)];

    for (gsize k = 0; k < G_N_ELEMENTS (skill_names); k++)
      s[k] = (CdRuleSkill){ skill_names[k], g_rand_int_range (rand, 0, 6) };
    team->ids[i] = g_strdup_printf ("agent-%u", i);
    c->id = team->ids[i];
    c->free = g_rand_int_range (rand, 0, 10) != 0;
    c->idle_since_us = g_rand_int_range (rand, 0, 1000000);
    c->calls_taken = (guint) g_rand_int_range (rand, 0, 40);
    c->attributes = (CdRuleAgent){ s, G_N_ELEMENTS (skill_names), language_sets[i % 3], 2,
                                   g_rand_int_range (rand, 0, 4) };
  }
}

static void
team_clear (Team *team)
{
  for (guint i = 0; i < team->n; i++)
    g_free (team->ids[i]);
  g_free (team->ids);
  g_free (team->skills);
  g_free (team->candidates);
}

static int
compare_gint64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  guint agents = 10000, rounds = 2000;
  const char *rule_text = "skills.billing >= 2 and (call.language in languages or level >= 3)";
  GOptionEntry entries[] = {
    { "agents", 0, 0, G_OPTION_ARG_INT, &agents, "agents in the queue (default 10000)", "N" },
    { "rounds", 0, 0, G_OPTION_ARG_INT, &rounds, "decisions timed per strategy (default 2000)",
      "N" },
    { NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- time routing decisions");
  g_autoptr (GError) error = NULL;
  g_autoptr (GRand) rand = g_rand_new_with_seed (4733);
  g_autoptr (CdRule) rule = NULL;
  const CdRequiredSkill required[] = { { "tech", 1 }, { "vip", 0 } };
  const char *const languages[] = { "de", "en", "es" };
  const CdRuleCall call = { "DE", "de", 3, 45 };
  Team team;
  guint cursor = 0;
  gint64 *took;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error) || agents < 1 || rounds < 10) {
    g_printerr ("routing-bench: %s\n", error ? error->message : "--agents >= 1, --rounds >= 10");
    return 2;
  }
  rule = cd_rule_compile (rule_text, &error);
  g_assert_no_error (error);
  team_init (&team, agents, rand);
  took = g_new (gint64, rounds);

  g_print ("{\n  \"agents\": %u,\n  \"rounds\": %u,\n  \"rule\": \"%s\",\n  \"strategies\": {",
           agents, rounds, rule_text);
  for (int s = CD_STRATEGY_RING_ALL; s <= CD_STRATEGY_SKILLS; s++) {
    CdQueuePolicy policy = { (CdStrategy) s,           required, G_N_ELEMENTS (required), languages,
                             G_N_ELEMENTS (languages), rule };
    CdDecision decision;
    guint chosen = 0;

    /* one untimed pass warms the caches */
    for (guint r = 0; r <= rounds; r++) {
      gint64 start = g_get_monotonic_time ();

      cd_decision_init (&decision, team.n);
      cd_strategy_choose (&policy, team.candidates, team.n, &call, &cursor, g_rand_int (rand),
                          &decision);
      chosen = decision.n_chosen;
      cd_decision_clear (&decision);
      if (r > 0)
        took[r - 1] = g_get_monotonic_time () - start;
    }
    qsort (took, rounds, sizeof (gint64), compare_gint64);
    g_print ("%s\n    \"%s\": {\"p50_us\": %" G_GINT64_FORMAT ", \"p99_us\": %" G_GINT64_FORMAT
             ", \"max_us\": %" G_GINT64_FORMAT ", \"chosen\": %u}",
             s == CD_STRATEGY_RING_ALL ? "" : ",", cd_strategy_to_string ((CdStrategy) s),
             took[rounds / 2], took[rounds * 99 / 100], took[rounds - 1], chosen);
  }
  g_print ("\n  }\n}\n");
  g_free (took);
  team_clear (&team);
  return 0;
}
