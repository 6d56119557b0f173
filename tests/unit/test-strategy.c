/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routing strategies on fixed snapshots: who is chosen, who is skipped and
 * why, and the order waiting calls are served in. */

#include "routing/cd-strategy.h"

#include <string.h>

static const CdRuleSkill skills_ann[] = { { "billing", 2 }, { "tech", 5 } };
static const CdRuleSkill skills_bob[] = { { "billing", 4 }, { "tech", 1 } };
static const CdRuleSkill skills_cid[] = { { "billing", 5 } };
static const CdRuleSkill skills_dee[] = { { "billing", 3 }, { "tech", 3 } };
static const char *const de[] = { "de" };
static const char *const en_fr[] = { "en", "fr" };

static const CdRuleCall call = { "DE", "de", 0, 0 };

/* Four agents, all free: ann idle longest, then dee, cid, bob. */
static void
make_team (CdCandidate team[4])
{
  const CdCandidate defaults[4] = {
    { "ann", TRUE, FALSE, 1000, 7, { skills_ann, 2, de, 1, 1 } },
    { "bob", TRUE, FALSE, 4000, 2, { skills_bob, 2, en_fr, 2, 1 } },
    { "cid", TRUE, FALSE, 3000, 2, { skills_cid, 1, de, 1, 3 } },
    { "dee", TRUE, FALSE, 2000, 5, { skills_dee, 2, en_fr, 2, 2 } },
  };
  memcpy (team, defaults, sizeof defaults);
}

/* The chosen agents' names, space-separated, and each skip: "ann | bob:busy". */
static char *
choose (const CdQueuePolicy *policy, const CdCandidate *team, guint n, guint *cursor,
        guint32 random_value)
{
  CdDecision d;
  GString *out = g_string_new (NULL);
  guint spare = 0;

  cd_decision_init (&d, n);
  cd_strategy_choose (policy, team, n, &call, cursor ? cursor : &spare, random_value, &d);
  for (guint i = 0; i < d.n_chosen; i++)
    g_string_append_printf (out, "%s%s", i ? " " : "", team[d.chosen[i]].id);
  g_string_append (out, " |");
  for (guint i = 0; i < n; i++)
    if (d.skips[i] != CD_SKIP_NONE)
      g_string_append_printf (out, " %s:%s", team[i].id, cd_skip_to_string (d.skips[i]));
  cd_decision_clear (&d);
  return g_string_free (out, FALSE);
}

#define ASSERT_CHOICE(policy, team, cursor, random, expected)                 \
  G_STMT_START                                                                \
  {                                                                           \
    g_autofree char *_got = choose ((policy), (team), 4, (cursor), (random)); \
    g_assert_cmpstr (_got, ==, (expected));                                   \
  }                                                                           \
  G_STMT_END

static void
test_names (void)
{
  CdStrategy s;

  for (int i = CD_STRATEGY_RING_ALL; i <= CD_STRATEGY_SKILLS; i++) {
    g_assert_true (cd_strategy_from_string (cd_strategy_to_string ((CdStrategy) i), &s));
    g_assert_cmpint (s, ==, i);
  }
  g_assert_false (cd_strategy_from_string ("longest_idle", &s));
  g_assert_false (cd_strategy_from_string (NULL, &s));
}

static void
test_longest_idle (void)
{
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_LONGEST_IDLE };
  CdCandidate team[4];

  make_team (team);
  ASSERT_CHOICE (&policy, team, NULL, 0, "ann |");
  team[0].free = FALSE;
  ASSERT_CHOICE (&policy, team, NULL, 0, "dee | ann:busy");
  team[3].declined = TRUE;
  ASSERT_CHOICE (&policy, team, NULL, 0, "cid | ann:busy dee:declined");
  /* a tie goes to the earlier candidate */
  team[1].idle_since_us = team[2].idle_since_us;
  ASSERT_CHOICE (&policy, team, NULL, 0, "bob | ann:busy dee:declined");
}

static void
test_ring_all (void)
{
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_RING_ALL };
  CdCandidate team[4];

  make_team (team);
  ASSERT_CHOICE (&policy, team, NULL, 0, "ann bob cid dee |");
  team[3].free = FALSE;
  ASSERT_CHOICE (&policy, team, NULL, 0, "ann bob cid | dee:busy");
}

static void
test_round_robin (void)
{
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_ROUND_ROBIN };
  CdCandidate team[4];
  guint cursor = 0;

  make_team (team);
  ASSERT_CHOICE (&policy, team, &cursor, 0, "ann |");
  g_assert_cmpuint (cursor, ==, 1);
  ASSERT_CHOICE (&policy, team, &cursor, 0, "bob |");
  /* cid is busy: skipped, and the walk goes on from dee */
  team[2].free = FALSE;
  ASSERT_CHOICE (&policy, team, &cursor, 0, "dee | cid:busy");
  g_assert_cmpuint (cursor, ==, 0);
  ASSERT_CHOICE (&policy, team, &cursor, 0, "ann | cid:busy");
  team[2].free = TRUE;
  ASSERT_CHOICE (&policy, team, &cursor, 0, "bob |");
  ASSERT_CHOICE (&policy, team, &cursor, 0, "cid |");
  /* nobody free: the cursor stays */
  for (int i = 0; i < 4; i++)
    team[i].free = FALSE;
  ASSERT_CHOICE (&policy, team, &cursor, 0, " | ann:busy bob:busy cid:busy dee:busy");
  g_assert_cmpuint (cursor, ==, 3);
}

static void
test_fewest_calls (void)
{
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_FEWEST_CALLS };
  CdCandidate team[4];

  make_team (team);
  /* bob and cid took 2 each: cid has been idle longer */
  ASSERT_CHOICE (&policy, team, NULL, 0, "cid |");
  team[1].calls_taken = 1;
  ASSERT_CHOICE (&policy, team, NULL, 0, "bob |");
}

static void
test_random (void)
{
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_RANDOM };
  CdCandidate team[4];

  make_team (team);
  team[1].free = FALSE;
  /* the random value picks among the eligible, in their order */
  ASSERT_CHOICE (&policy, team, NULL, 0, "ann | bob:busy");
  ASSERT_CHOICE (&policy, team, NULL, 1, "cid | bob:busy");
  ASSERT_CHOICE (&policy, team, NULL, 2, "dee | bob:busy");
  ASSERT_CHOICE (&policy, team, NULL, 3, "ann | bob:busy");
}

static void
test_skills_based (void)
{
  const CdRequiredSkill billing3[] = { { "billing", 3 } };
  const CdRequiredSkill both[] = { { "billing", 3 }, { "tech", 1 } };
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_SKILLS, .required = billing3, .n_required = 1 };
  CdCandidate team[4];

  make_team (team);
  /* billing >= 3: bob 4, cid 5, dee 3; best total first */
  ASSERT_CHOICE (&policy, team, NULL, 0, "cid | ann:skill");
  /* billing >= 3 and tech >= 1: bob 5, dee 6 (cid has no tech) */
  policy.required = both;
  policy.n_required = 2;
  ASSERT_CHOICE (&policy, team, NULL, 0, "dee | ann:skill cid:skill");
  /* equal totals: the longest idle */
  team[1].attributes.skills = skills_dee;
  ASSERT_CHOICE (&policy, team, NULL, 0, "dee | ann:skill cid:skill");
  team[1].idle_since_us = 1500;
  ASSERT_CHOICE (&policy, team, NULL, 0, "bob | ann:skill cid:skill");
}

static void
test_languages_and_rule (void)
{
  const char *const french[] = { "fr" };
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRule) rule = cd_rule_compile ("level >= 2 or skills.tech >= 5", &error);
  CdQueuePolicy policy = { .strategy = CD_STRATEGY_LONGEST_IDLE,
                           .languages = french,
                           .n_languages = 1 };
  CdCandidate team[4];

  g_assert_no_error (error);
  make_team (team);
  ASSERT_CHOICE (&policy, team, NULL, 0, "dee | ann:language cid:language");
  policy.n_languages = 0;
  policy.rule = rule;
  /* ann: tech 5; bob: level 1, tech 1 */
  ASSERT_CHOICE (&policy, team, NULL, 0, "ann | bob:rule");
}

static void
test_priority_aging (void)
{
  gint64 now = 1000 * G_USEC_PER_SEC;
  CdWaiting waiting[] = {
    { 5, now - 100 * G_USEC_PER_SEC, "old-5" }, /* 5 + 3 = 8 */
    { 9, now - 5 * G_USEC_PER_SEC, "new-9" },   /* 9 */
    { 5, now - 50 * G_USEC_PER_SEC, "mid-5" },  /* 5 + 1 = 6 */
    { 9, now - 20 * G_USEC_PER_SEC, "old-9" },  /* 9 */
  };

  g_assert_cmpint (cd_priority_effective (5, 0), ==, 5);
  g_assert_cmpint (cd_priority_effective (5, 29), ==, 5);
  g_assert_cmpint (cd_priority_effective (5, 30), ==, 6);
  g_assert_cmpint (cd_priority_effective (5, -10), ==, 5);
  cd_waiting_sort (waiting, G_N_ELEMENTS (waiting), now);
  g_assert_cmpstr (waiting[0].data, ==, "old-9");
  g_assert_cmpstr (waiting[1].data, ==, "new-9");
  g_assert_cmpstr (waiting[2].data, ==, "old-5");
  g_assert_cmpstr (waiting[3].data, ==, "mid-5");

  /* a stream of fresh priority-9 callers: the priority-5 caller is served
   * once it has waited 4 aging steps and ties on age */
  {
    gint64 entered = now;
    gboolean served = FALSE;

    for (gint64 t = now; t < now + 600 * G_USEC_PER_SEC && !served; t += 10 * G_USEC_PER_SEC) {
      CdWaiting pair[] = { { 9, t, "fresh-9" }, { 5, entered, "waiting-5" } };
      cd_waiting_sort (pair, 2, t);
      if (g_str_equal (pair[0].data, "waiting-5")) {
        served = TRUE;
        g_assert_cmpint ((t - entered) / G_USEC_PER_SEC, ==, 4 * CD_PRIORITY_AGING_S);
      }
    }
    g_assert_true (served);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/strategy/names", test_names);
  g_test_add_func ("/strategy/longest-idle", test_longest_idle);
  g_test_add_func ("/strategy/ring-all", test_ring_all);
  g_test_add_func ("/strategy/round-robin", test_round_robin);
  g_test_add_func ("/strategy/fewest-calls", test_fewest_calls);
  g_test_add_func ("/strategy/random", test_random);
  g_test_add_func ("/strategy/skills-based", test_skills_based);
  g_test_add_func ("/strategy/languages-and-rule", test_languages_and_rule);
  g_test_add_func ("/strategy/priority-aging", test_priority_aging);
  return g_test_run ();
}
