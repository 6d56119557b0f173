/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a routing rule (a queue's target expression). */

#include "routing/cd-rule.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const CdRuleSkill skills[] = { { "billing", 4 }, { "a", -1 } };
  static const char *const languages[] = { "de", "" };
  static const CdRuleAgent agents[] = { { skills, 2, languages, 2, 3 }, { NULL, 0, NULL, 0, 0 } };
  static const CdRuleCall calls[] = { { "AT", "de", 5, 90 }, { NULL, NULL, G_MININT, G_MAXINT64 } };
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRule) rule = cd_rule_compile (text, &error);

  g_assert_true ((rule != NULL) == (error == NULL));
  if (rule == NULL) {
    /* a refusal says where, within the text, or names a limit */
    if (g_str_has_prefix (error->message, "at ")) {
      guint64 at = g_ascii_strtoull (error->message + 3, NULL, 10);
      g_assert_cmpuint (at, >=, 1);
      g_assert_cmpuint (at, <=, strlen (text) + 1);
    } else {
      g_assert_true (g_str_has_prefix (error->message, "the rule is"));
    }
    return 0;
  }
  g_assert_cmpstr (cd_rule_get_text (rule), ==, text);
  for (gsize a = 0; a < G_N_ELEMENTS (agents); a++)
    for (gsize c = 0; c < G_N_ELEMENTS (calls); c++)
      g_assert_true (cd_rule_matches (rule, &agents[a], &calls[c]) ==
                     cd_rule_matches (rule, &agents[a], &calls[c]));
  return 0;
}
