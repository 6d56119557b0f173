/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routing rules: a small expression language that says which agents may take
 * a queue's calls, compiled once when saved and evaluated without allocation
 * (docs/routing-rules.md). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CD_RULE_ERROR (cd_rule_error_quark ())
GQuark cd_rule_error_quark (void);

typedef enum {
  CD_RULE_ERROR_SYNTAX, /* not in the grammar */
  CD_RULE_ERROR_NAME,   /* an unknown name */
  CD_RULE_ERROR_TYPE,   /* e.g. a number compared with a string */
  CD_RULE_ERROR_LIMIT,  /* too long or too deeply nested */
} CdRuleError;

/* The longest rule text, and the deepest nesting, a rule may have. */
#define CD_RULE_MAX_LENGTH 2000
#define CD_RULE_MAX_DEPTH  32

typedef struct {
  const char *name;
  int level;
} CdRuleSkill;

/* What a rule reads of the agent it is asked about. */
typedef struct {
  const CdRuleSkill *skills;
  guint n_skills;
  const char *const *languages;
  guint n_languages;
  int level; /* the agent's level in the queue */
} CdRuleAgent;

/* What a rule reads of the call; NULL strings read as "". */
typedef struct {
  const char *country;  /* ISO 3166-1 alpha-2, upper case */
  const char *language; /* the visitor's language, lower case */
  int priority;
  gint64 wait_s; /* seconds in the queue */
} CdRuleCall;

typedef struct _CdRule CdRule;

CdRule *cd_rule_compile (const char *text, GError **error);
gboolean cd_rule_matches (const CdRule *rule, const CdRuleAgent *agent, const CdRuleCall *call);
const char *cd_rule_get_text (const CdRule *rule);
void cd_rule_free (CdRule *rule);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdRule, cd_rule_free)

G_END_DECLS
