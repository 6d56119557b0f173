/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routing rules: what they match, and every refusal with its position. */

#include "routing/cd-rule.h"

#include <string.h>

static const CdRuleSkill billing_skills[] = { { "billing", 4 }, { "first-line", 1 } };
static const char *const german_english[] = { "de", "en" };

/* an agent with billing 4, first-line 1, German and English, level 2 */
static const CdRuleAgent billing_agent = { billing_skills, G_N_ELEMENTS (billing_skills),
                                           german_english, G_N_ELEMENTS (german_english), 2 };
/* an agent with nothing */
static const CdRuleAgent new_agent = { NULL, 0, NULL, 0, 0 };

/* a caller from Austria speaking German, priority 5, waiting 90 s */
static const CdRuleCall austrian_call = { "AT", "de", 5, 90 };
/* a caller we know nothing of */
static const CdRuleCall unknown_call = { NULL, NULL, 0, 0 };

typedef struct {
  const char *rule;
  gboolean billing_austrian, billing_unknown, new_austrian;
} Good;

static const Good good[] = {
  { "skills.billing >= 3", TRUE, TRUE, FALSE },
  { "skills.billing >= 3 and \"de\" in languages", TRUE, TRUE, FALSE },
  { "skills.billing > 4", FALSE, FALSE, FALSE },
  { "skills.billing == 4 and skills.first-line < 2", TRUE, TRUE, FALSE },
  { "skills.sales == 0", TRUE, TRUE, TRUE },
  { "not skills.sales > 0", TRUE, TRUE, TRUE },
  { "\"fr\" in languages", FALSE, FALSE, FALSE },
  { "call.language in languages", TRUE, FALSE, FALSE },
  { "call.country in [\"DE\", \"AT\", \"CH\"]", TRUE, FALSE, TRUE },
  { "call.country in ['FR']", FALSE, FALSE, FALSE },
  { "call.country == \"\"", FALSE, TRUE, FALSE },
  { "call.country != 'AT'", FALSE, TRUE, FALSE },
  { "call.priority >= 5 or call.wait_s > 60", TRUE, FALSE, TRUE },
  { "call.wait_s > 120 or level >= 2", TRUE, TRUE, FALSE },
  { "level <= -1", FALSE, FALSE, FALSE },
  /* and binds tighter than or; parentheses change it */
  { "true or false and false", TRUE, TRUE, TRUE },
  { "(true or false) and false", FALSE, FALSE, FALSE },
  { "not not true", TRUE, TRUE, TRUE },
  { "(call.priority > 3) == (skills.billing > 3)", TRUE, FALSE, FALSE },
  { "'it\\'s' == \"it's\" and \"a\\\\b\" != 'a\\\\c'", TRUE, TRUE, TRUE },
  { "  skills.billing\t>=\n3  ", TRUE, TRUE, FALSE },
  { "\"ü\" in [\"ü\", \"ö\"]", TRUE, TRUE, TRUE },
};

static void
test_good (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CdRule) rule = cd_rule_compile (good[i].rule, &error);

    g_test_message ("%s", good[i].rule);
    g_assert_no_error (error);
    g_assert_cmpstr (cd_rule_get_text (rule), ==, good[i].rule);
    g_assert_cmpint (cd_rule_matches (rule, &billing_agent, &austrian_call), ==,
                     good[i].billing_austrian);
    g_assert_cmpint (cd_rule_matches (rule, &billing_agent, &unknown_call), ==,
                     good[i].billing_unknown);
    g_assert_cmpint (cd_rule_matches (rule, &new_agent, &austrian_call), ==, good[i].new_austrian);
  }
}

typedef struct {
  const char *rule;
  CdRuleError code;
  const char *message;
} Bad;

static const Bad bad[] = {
  { "", CD_RULE_ERROR_SYNTAX, "at 1: the rule is empty" },
  { "   ", CD_RULE_ERROR_SYNTAX, "at 1: the rule is empty" },
  { "skills.billing >=", CD_RULE_ERROR_SYNTAX,
    "at 18: expected a value (a number, a string, true, false, a name or '('), not the end of the "
    "rule" },
  { "skills.billing = 3", CD_RULE_ERROR_SYNTAX,
    "at 16: '=' alone is no operator: use '==' or '!='" },
  { "skills.billing >= 3 and", CD_RULE_ERROR_SYNTAX,
    "at 24: expected a value (a number, a string, true, false, a name or '('), not the end of the "
    "rule" },
  { "skills.billing >= 3 3", CD_RULE_ERROR_SYNTAX,
    "at 21: expected 'and', 'or' or the end of the rule, not a number" },
  { "(skills.billing >= 3", CD_RULE_ERROR_SYNTAX,
    "at 21: expected ')' to close the '(' at 1, not the end of the rule" },
  { "skills.billing >= 3)", CD_RULE_ERROR_SYNTAX,
    "at 20: expected 'and', 'or' or the end of the rule, not ')'" },
  { "\"de in languages", CD_RULE_ERROR_SYNTAX, "at 1: the string is not closed (\")" },
  { "'a\\n' == 'a'", CD_RULE_ERROR_SYNTAX, "at 3: only \\' and \\\\ are escapes in a string" },
  { "level >= 99999999999", CD_RULE_ERROR_SYNTAX, "at 10: the number is out of range" },
  { "level >= 3x", CD_RULE_ERROR_SYNTAX, "at 11: a number ends here" },
  { "level >= 3 & true", CD_RULE_ERROR_SYNTAX, "at 12: unexpected character '&'" },
  { "level >= 3 \x01", CD_RULE_ERROR_SYNTAX, "at 12: unexpected byte 0x01" },
  { "level >= 3 \xc3\xa9", CD_RULE_ERROR_SYNTAX, "at 12: unexpected byte 0xc3" },
  { "\"\xff\" == 'a'", CD_RULE_ERROR_SYNTAX, "the rule is not valid UTF-8" },
  { "call.country in [\"DE\" \"AT\"]", CD_RULE_ERROR_SYNTAX,
    "at 23: expected ',' or ']' in the list, not a string" },
  { "call.country in [3]", CD_RULE_ERROR_SYNTAX, "at 18: a list holds strings, not a number" },
  { "call.country in []", CD_RULE_ERROR_SYNTAX, "at 18: a list holds strings, not ']'" },
  { "call.country in \"DE\"", CD_RULE_ERROR_SYNTAX,
    "at 17: 'in' needs a list after it: languages or [\"a\", \"b\"]" },
  { "skils.billing >= 3", CD_RULE_ERROR_NAME,
    "at 1: unknown name 'skils.billing' (known: skills.NAME, level, languages, call.country, "
    "call.language, call.priority, call.wait_s, true, false)" },
  { "skills.a.b >= 3", CD_RULE_ERROR_NAME, "at 1: a skill's name has no '.': 'skills.a.b'" },
  { "skills. >= 3", CD_RULE_ERROR_NAME,
    "at 1: unknown name 'skills.' (known: skills.NAME, level, languages, call.country, "
    "call.language, call.priority, call.wait_s, true, false)" },
  { "skills.billing", CD_RULE_ERROR_TYPE,
    "at 1: a rule takes conditions, not a number (compare it: skills.x >= 3)" },
  { "call.country", CD_RULE_ERROR_TYPE,
    "at 1: a rule takes conditions, not a string (compare it: skills.x >= 3)" },
  { "languages", CD_RULE_ERROR_TYPE,
    "at 1: languages is a list: ask for one with \"de\" in languages" },
  { "languages == 'de'", CD_RULE_ERROR_TYPE,
    "at 1: languages is a list: ask for one with \"de\" in languages" },
  { "skills.billing >= 'three'", CD_RULE_ERROR_TYPE,
    "at 16: '>=' compares a number with a string" },
  { "call.country > 'A'", CD_RULE_ERROR_TYPE, "at 14: '>' compares numbers, not strings" },
  { "true < false", CD_RULE_ERROR_TYPE, "at 6: '<' compares numbers, not conditions" },
  { "3 in languages", CD_RULE_ERROR_TYPE, "at 1: 'in' looks for a string, not a number" },
  { "level and true", CD_RULE_ERROR_TYPE,
    "at 1: 'and' takes conditions, not a number (compare it: skills.x >= 3)" },
  { "true or call.priority", CD_RULE_ERROR_TYPE,
    "at 9: 'or' takes conditions, not a number (compare it: skills.x >= 3)" },
  { "not level", CD_RULE_ERROR_TYPE,
    "at 1: 'not' takes conditions, not a number (compare it: skills.x >= 3)" },
};

static void
test_bad (void)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CdRule) rule = cd_rule_compile (bad[i].rule, &error);

    g_autofree char *shown = g_strescape (bad[i].rule, NULL);

    /* escaped: some rules are not UTF-8, and the TAP log must be */
    g_test_message ("%s", shown);
    g_assert_null (rule);
    g_assert_error (error, CD_RULE_ERROR, (gint) bad[i].code);
    g_assert_cmpstr (error->message, ==, bad[i].message);
  }
}

static void
test_limits (void)
{
  g_autoptr (GString) deep = g_string_new (NULL);
  g_autoptr (GString) nots = g_string_new (NULL);
  g_autoptr (GString) longest = g_string_new ("true");
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRule) rule = NULL;

  /* as deep as allowed, with three values pending at each level */
  {
    g_autoptr (GString) pending = g_string_new (NULL);
    for (int i = 0; i < CD_RULE_MAX_DEPTH; i++)
      g_string_append (pending, "true or true and true == (");
    g_string_append (pending, "true");
    for (int i = 0; i < CD_RULE_MAX_DEPTH; i++)
      g_string_append_c (pending, ')');
    rule = cd_rule_compile (pending->str, &error);
    g_assert_no_error (error);
    g_assert_true (cd_rule_matches (rule, &new_agent, &unknown_call));
    g_clear_pointer (&rule, cd_rule_free);
  }
  /* as deep as allowed, right-nested */
  for (int i = 0; i < CD_RULE_MAX_DEPTH; i++)
    g_string_append (deep, "true == (");
  g_string_append (deep, "true");
  for (int i = 0; i < CD_RULE_MAX_DEPTH; i++)
    g_string_append_c (deep, ')');
  rule = cd_rule_compile (deep->str, &error);
  g_assert_no_error (error);
  g_assert_true (cd_rule_matches (rule, &new_agent, &unknown_call));
  g_clear_pointer (&rule, cd_rule_free);

  /* one deeper is refused where it goes too deep */
  g_string_prepend (deep, "(");
  g_string_append (deep, ")");
  rule = cd_rule_compile (deep->str, &error);
  g_assert_null (rule);
  g_assert_error (error, CD_RULE_ERROR, CD_RULE_ERROR_LIMIT);
  g_assert_cmpstr (error->message, ==, "at 289: nested more than 32 deep");
  g_clear_error (&error);

  for (int i = 0; i <= CD_RULE_MAX_DEPTH; i++)
    g_string_append (nots, "not ");
  g_string_append (nots, "true");
  rule = cd_rule_compile (nots->str, &error);
  g_assert_null (rule);
  g_assert_error (error, CD_RULE_ERROR, CD_RULE_ERROR_LIMIT);
  g_clear_error (&error);

  /* long and flat is fine up to the length limit */
  while (longest->len + 8 <= CD_RULE_MAX_LENGTH)
    g_string_append (longest, " or true");
  rule = cd_rule_compile (longest->str, &error);
  g_assert_no_error (error);
  g_assert_true (cd_rule_matches (rule, &new_agent, &unknown_call));
  g_clear_pointer (&rule, cd_rule_free);
  g_string_append (longest, " or true");
  rule = cd_rule_compile (longest->str, &error);
  g_assert_null (rule);
  g_assert_error (error, CD_RULE_ERROR, CD_RULE_ERROR_LIMIT);
  g_assert_cmpstr (error->message, ==, "the rule is longer than 2000 bytes");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/rule/good", test_good);
  g_test_add_func ("/rule/bad", test_bad);
  g_test_add_func ("/rule/limits", test_limits);
  return g_test_run ();
}
