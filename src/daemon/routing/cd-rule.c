/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Routing rules: a recursive-descent parser that type-checks as it goes and
 * emits a postfix program; the evaluator runs it on a fixed stack. */

#define G_LOG_DOMAIN "calldocker-routing"

#include "routing/cd-rule.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (cd - rule - error - quark, cd_rule_error)

/* ---- the program ---- */

typedef enum {
  OP_PUSH_INT,
  OP_PUSH_BOOL,
  OP_PUSH_STR,
  OP_SKILL,        /* the agent's level in skill s (0 without it) */
  OP_LEVEL,        /* the agent's level in the queue */
  OP_CALL_COUNTRY, /* strings */
  OP_CALL_LANGUAGE,
  OP_CALL_PRIORITY, /* numbers */
  OP_CALL_WAIT,
  OP_EQ, /* numbers, booleans or strings by the operands' type */
  OP_NE,
  OP_LT, /* numbers */
  OP_LE,
  OP_GT,
  OP_GE,
  OP_IN_LANGUAGES, /* string in the agent's languages */
  OP_IN_LIST,      /* string in list i .. i + n */
  OP_AND,
  OP_OR,
  OP_NOT,
} Op;

typedef enum { TYPE_INT, TYPE_BOOL, TYPE_STR, TYPE_LIST } Type;

typedef struct {
  guint8 op;
  guint8 type; /* of the operands, for OP_EQ and OP_NE */
  guint32 n;   /* string length, or list length */
  gint64 i;    /* number, boolean, or first list item */
  const char *s;
} Instr;

typedef struct {
  const char *s;
  gsize len;
} Str;

/* The deepest the evaluator's stack can get: each nesting level leaves at
 * most three values waiting (an 'or' operand, an 'and' operand and a
 * comparison's left side). */
#define MAX_STACK (3 * CD_RULE_MAX_DEPTH + 8)

struct _CdRule {
  char *text;
  char *pool; /* unescaped strings and skill names; never reallocated */
  Instr *program;
  guint length;
  Str *items; /* list literals' strings */
};

/* ---- the tokenizer ---- */

typedef enum {
  TOK_END,
  TOK_NUMBER,
  TOK_STRING,
  TOK_NAME,
  TOK_LPAREN,
  TOK_RPAREN,
  TOK_LBRACKET,
  TOK_RBRACKET,
  TOK_COMMA,
  TOK_EQ,
  TOK_NE,
  TOK_LT,
  TOK_LE,
  TOK_GT,
  TOK_GE,
  TOK_AND,
  TOK_OR,
  TOK_NOT,
  TOK_IN,
  TOK_TRUE,
  TOK_FALSE,
} TokenKind;

typedef struct {
  TokenKind kind;
  gsize at;          /* byte offset in the text */
  const char *start; /* the token's text */
  gsize len;
  gint64 number;
  const char *string; /* TOK_STRING: unescaped, in the pool */
  gsize string_len;
} Token;

typedef struct {
  const char *text;
  gsize pos;
  Token tok;
  CdRule *rule;
  gsize pool_len;
  GArray *program; /* Instr */
  GArray *items;   /* Str */
  int stack, max_stack;
  guint depth;
  GError **error;
} Parser;

static const char *const token_names[] = {
  [TOK_END] = "the end of the rule",
  [TOK_NUMBER] = "a number",
  [TOK_STRING] = "a string",
  [TOK_NAME] = "a name",
  [TOK_LPAREN] = "'('",
  [TOK_RPAREN] = "')'",
  [TOK_LBRACKET] = "'['",
  [TOK_RBRACKET] = "']'",
  [TOK_COMMA] = "','",
  [TOK_EQ] = "'=='",
  [TOK_NE] = "'!='",
  [TOK_LT] = "'<'",
  [TOK_LE] = "'<='",
  [TOK_GT] = "'>'",
  [TOK_GE] = "'>='",
  [TOK_AND] = "'and'",
  [TOK_OR] = "'or'",
  [TOK_NOT] = "'not'",
  [TOK_IN] = "'in'",
  [TOK_TRUE] = "'true'",
  [TOK_FALSE] = "'false'",
};

static const char *const type_names[] = {
  [TYPE_INT] = "a number",
  [TYPE_BOOL] = "a condition",
  [TYPE_STR] = "a string",
  [TYPE_LIST] = "a list",
};

#define KNOWN_NAMES                                                                          \
  "skills.NAME, level, languages, call.country, call.language, call.priority, call.wait_s, " \
  "true, false"

static gboolean fail (Parser *p, CdRuleError code, gsize at, const char *format, ...)
    G_GNUC_PRINTF (4, 5);

static gboolean
fail (Parser *p, CdRuleError code, gsize at, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (p->error, CD_RULE_ERROR, code, "at %" G_GSIZE_FORMAT ": %s", at + 1, message);
  return FALSE;
}

static gboolean
is_name_char (char c)
{
  return g_ascii_isalnum (c) || c == '_' || c == '-' || c == '.';
}

static gboolean
lex_string (Parser *p, Token *t)
{
  char quote = p->text[p->pos++];
  char *out = p->rule->pool + p->pool_len;
  gsize n = 0;

  t->kind = TOK_STRING;
  for (;;) {
    char c = p->text[p->pos];

    if (c == '\0')
      return fail (p, CD_RULE_ERROR_SYNTAX, t->at, "the string is not closed (%c)", quote);
    p->pos++;
    if (c == quote)
      break;
    if (c == '\\') {
      c = p->text[p->pos];
      if (c != quote && c != '\\')
        return fail (p, CD_RULE_ERROR_SYNTAX, p->pos - 1,
                     "only \\%c and \\\\ are escapes in a string", quote);
      p->pos++;
    }
    out[n++] = c;
  }
  t->string = out;
  t->string_len = n;
  p->pool_len += n;
  return TRUE;
}

static gboolean
lex_number (Parser *p, Token *t)
{
  const char *start = p->text + p->pos;
  char *end = NULL;

  t->kind = TOK_NUMBER;
  errno = 0;
  t->number = g_ascii_strtoll (start, &end, 10);
  if (errno == ERANGE || t->number > G_MAXINT32 || t->number < G_MININT32)
    return fail (p, CD_RULE_ERROR_SYNTAX, t->at, "the number is out of range");
  if (is_name_char (*end))
    return fail (p, CD_RULE_ERROR_SYNTAX, (gsize) (end - p->text), "a number ends here");
  p->pos = (gsize) (end - p->text);
  return TRUE;
}

static const struct {
  const char *word;
  TokenKind kind;
} keywords[] = {
  { "and", TOK_AND }, { "or", TOK_OR },     { "not", TOK_NOT },
  { "in", TOK_IN },   { "true", TOK_TRUE }, { "false", TOK_FALSE },
};

/* The next token into p->tok. */
static gboolean
lex (Parser *p)
{
  Token *t = &p->tok;
  const char *s;

  while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' || p->text[p->pos] == '\n' ||
         p->text[p->pos] == '\r')
    p->pos++;
  memset (t, 0, sizeof *t);
  t->at = p->pos;
  t->start = s = p->text + p->pos;
  switch (*s) {
  case '\0':
    t->kind = TOK_END;
    return TRUE;
  case '(':
  case ')':
  case '[':
  case ']':
  case ',':
    t->kind = *s == '('   ? TOK_LPAREN
              : *s == ')' ? TOK_RPAREN
              : *s == '[' ? TOK_LBRACKET
              : *s == ']' ? TOK_RBRACKET
                          : TOK_COMMA;
    p->pos++;
    t->len = 1;
    return TRUE;
  case '=':
  case '!':
    if (s[1] != '=')
      return fail (p, CD_RULE_ERROR_SYNTAX, t->at, "'%c' alone is no operator: use '==' or '!='",
                   *s);
    t->kind = *s == '=' ? TOK_EQ : TOK_NE;
    p->pos += 2;
    t->len = 2;
    return TRUE;
  case '<':
  case '>':
    t->len = s[1] == '=' ? 2 : 1;
    t->kind = *s == '<' ? (t->len == 2 ? TOK_LE : TOK_LT) : (t->len == 2 ? TOK_GE : TOK_GT);
    p->pos += t->len;
    return TRUE;
  case '"':
  case '\'':
    if (!lex_string (p, t))
      return FALSE;
    t->len = p->pos - t->at;
    return TRUE;
  default:
    break;
  }
  if (g_ascii_isdigit (*s) || (*s == '-' && g_ascii_isdigit (s[1]))) {
    if (!lex_number (p, t))
      return FALSE;
    t->len = p->pos - t->at;
    return TRUE;
  }
  if (g_ascii_isalpha (*s) || *s == '_') {
    while (is_name_char (p->text[p->pos]))
      p->pos++;
    t->len = p->pos - t->at;
    t->kind = TOK_NAME;
    for (gsize k = 0; k < G_N_ELEMENTS (keywords); k++)
      if (strlen (keywords[k].word) == t->len && memcmp (keywords[k].word, s, t->len) == 0)
        t->kind = keywords[k].kind;
    return TRUE;
  }
  if ((guchar) *s < 0x20 || (guchar) *s >= 0x7f)
    return fail (p, CD_RULE_ERROR_SYNTAX, t->at, "unexpected byte 0x%02x", (guchar) *s);
  return fail (p, CD_RULE_ERROR_SYNTAX, t->at, "unexpected character '%c'", *s);
}

/* ---- the parser ---- */

static gboolean
emit (Parser *p, Op op, Type type, gint64 i, const char *s, guint32 n)
{
  Instr instr = { .op = op, .type = type, .n = n, .i = i, .s = s };

  switch (op) {
  case OP_PUSH_INT:
  case OP_PUSH_BOOL:
  case OP_PUSH_STR:
  case OP_SKILL:
  case OP_LEVEL:
  case OP_CALL_COUNTRY:
  case OP_CALL_LANGUAGE:
  case OP_CALL_PRIORITY:
  case OP_CALL_WAIT:
    p->stack++;
    break;
  case OP_IN_LANGUAGES:
  case OP_IN_LIST:
  case OP_NOT:
    break;
  default:
    p->stack--;
    break;
  }
  p->max_stack = MAX (p->max_stack, p->stack);
  g_array_append_val (p->program, instr);
  return TRUE;
}

static gboolean parse_or (Parser *p, Type *type);

static gboolean
enter (Parser *p, gsize at)
{
  if (++p->depth > CD_RULE_MAX_DEPTH)
    return fail (p, CD_RULE_ERROR_LIMIT, at, "nested more than %d deep", CD_RULE_MAX_DEPTH);
  return TRUE;
}

/* A name: loads it, or (languages) leaves a list that only 'in' takes. */
static gboolean
parse_name (Parser *p, Type *type)
{
  const Token *t = &p->tok;
  static const struct {
    const char *name;
    Op op;
    Type type;
  } names[] = {
    { "level", OP_LEVEL, TYPE_INT },
    { "call.country", OP_CALL_COUNTRY, TYPE_STR },
    { "call.language", OP_CALL_LANGUAGE, TYPE_STR },
    { "call.priority", OP_CALL_PRIORITY, TYPE_INT },
    { "call.wait_s", OP_CALL_WAIT, TYPE_INT },
  };

  if (t->len > 7 && memcmp (t->start, "skills.", 7) == 0) {
    char *name = p->rule->pool + p->pool_len;
    gsize n = t->len - 7;

    if (memchr (t->start + 7, '.', n))
      return fail (p, CD_RULE_ERROR_NAME, t->at, "a skill's name has no '.': '%.*s'", (int) t->len,
                   t->start);
    memcpy (name, t->start + 7, n);
    p->pool_len += n;
    *type = TYPE_INT;
    return emit (p, OP_SKILL, TYPE_INT, 0, name, (guint32) n);
  }
  if (t->len == 9 && memcmp (t->start, "languages", 9) == 0) {
    *type = TYPE_LIST;
    return TRUE;
  }
  for (gsize k = 0; k < G_N_ELEMENTS (names); k++)
    if (strlen (names[k].name) == t->len && memcmp (names[k].name, t->start, t->len) == 0) {
      *type = names[k].type;
      return emit (p, names[k].op, names[k].type, 0, NULL, 0);
    }
  return fail (p, CD_RULE_ERROR_NAME, t->at, "unknown name '%.*s' (known: " KNOWN_NAMES ")",
               (int) MIN (t->len, 64), t->start);
}

/* [ "a", "b" ]: its items, for OP_IN_LIST */
static gboolean
parse_list (Parser *p, guint *first, guint *n)
{
  *first = p->items->len;
  *n = 0;
  if (!lex (p))
    return FALSE;
  for (;;) {
    Str item;

    if (p->tok.kind != TOK_STRING)
      return fail (p, CD_RULE_ERROR_SYNTAX, p->tok.at, "a list holds strings, not %s",
                   token_names[p->tok.kind]);
    item.s = p->tok.string;
    item.len = p->tok.string_len;
    g_array_append_val (p->items, item);
    (*n)++;
    if (!lex (p))
      return FALSE;
    if (p->tok.kind == TOK_RBRACKET)
      break;
    if (p->tok.kind != TOK_COMMA)
      return fail (p, CD_RULE_ERROR_SYNTAX, p->tok.at, "expected ',' or ']' in the list, not %s",
                   token_names[p->tok.kind]);
    if (!lex (p))
      return FALSE;
  }
  return lex (p);
}

static gboolean
parse_value (Parser *p, Type *type)
{
  const Token t = p->tok;

  switch (t.kind) {
  case TOK_LPAREN:
    if (!enter (p, t.at) || !lex (p) || !parse_or (p, type))
      return FALSE;
    if (p->tok.kind != TOK_RPAREN)
      return fail (p, CD_RULE_ERROR_SYNTAX, p->tok.at,
                   "expected ')' to close the '(' at %" G_GSIZE_FORMAT ", not %s", t.at + 1,
                   token_names[p->tok.kind]);
    p->depth--;
    return lex (p);
  case TOK_NUMBER:
    *type = TYPE_INT;
    return emit (p, OP_PUSH_INT, TYPE_INT, t.number, NULL, 0) && lex (p);
  case TOK_STRING:
    *type = TYPE_STR;
    return emit (p, OP_PUSH_STR, TYPE_STR, 0, t.string, (guint32) t.string_len) && lex (p);
  case TOK_TRUE:
  case TOK_FALSE:
    *type = TYPE_BOOL;
    return emit (p, OP_PUSH_BOOL, TYPE_BOOL, t.kind == TOK_TRUE, NULL, 0) && lex (p);
  case TOK_NAME:
    return parse_name (p, type) && lex (p);
  default:
    return fail (p, CD_RULE_ERROR_SYNTAX, t.at,
                 "expected a value (a number, a string, true, false, a name or '('), not %s",
                 token_names[t.kind]);
  }
}

/* value [op value | in list] */
static gboolean
parse_comparison (Parser *p, Type *type)
{
  gsize left_at = p->tok.at;
  Token op;
  Type left, right;
  gsize right_at;

  if (!parse_value (p, &left))
    return FALSE;
  op = p->tok;
  if (op.kind == TOK_IN) {
    guint first, n;

    if (left != TYPE_STR)
      return fail (p, CD_RULE_ERROR_TYPE, left_at, "'in' looks for a string, not %s",
                   type_names[left]);
    if (!lex (p))
      return FALSE;
    *type = TYPE_BOOL;
    if (p->tok.kind == TOK_NAME && p->tok.len == 9 && memcmp (p->tok.start, "languages", 9) == 0)
      return emit (p, OP_IN_LANGUAGES, TYPE_STR, 0, NULL, 0) && lex (p);
    if (p->tok.kind != TOK_LBRACKET)
      return fail (p, CD_RULE_ERROR_SYNTAX, p->tok.at,
                   "'in' needs a list after it: languages or [\"a\", \"b\"]");
    if (!parse_list (p, &first, &n))
      return FALSE;
    return emit (p, OP_IN_LIST, TYPE_STR, first, NULL, n);
  }
  if (op.kind < TOK_EQ || op.kind > TOK_GE) {
    *type = left;
    if (left == TYPE_LIST)
      return fail (p, CD_RULE_ERROR_TYPE, left_at,
                   "languages is a list: ask for one with \"de\" in languages");
    return TRUE;
  }
  if (!lex (p))
    return FALSE;
  right_at = p->tok.at;
  if (!parse_value (p, &right))
    return FALSE;
  if (left == TYPE_LIST || right == TYPE_LIST)
    return fail (p, CD_RULE_ERROR_TYPE, left == TYPE_LIST ? left_at : right_at,
                 "languages is a list: ask for one with \"de\" in languages");
  if (left != right)
    return fail (p, CD_RULE_ERROR_TYPE, op.at, "%s compares %s with %s", token_names[op.kind],
                 type_names[left], type_names[right]);
  if (op.kind >= TOK_LT && left != TYPE_INT)
    return fail (p, CD_RULE_ERROR_TYPE, op.at, "%s compares numbers, not %ss", token_names[op.kind],
                 left == TYPE_STR ? "string" : "condition");
  *type = TYPE_BOOL;
  return emit (p, (Op) (OP_EQ + (op.kind - TOK_EQ)), left, 0, NULL, 0);
}

static gboolean
expect_condition (Parser *p, Type type, gsize at, const char *what)
{
  if (type == TYPE_BOOL)
    return TRUE;
  return fail (p, CD_RULE_ERROR_TYPE, at, "%s takes conditions, not %s (compare it: skills.x >= 3)",
               what, type_names[type]);
}

static gboolean
parse_not (Parser *p, Type *type)
{
  gsize at = p->tok.at;

  if (p->tok.kind != TOK_NOT)
    return parse_comparison (p, type);
  if (!enter (p, at) || !lex (p) || !parse_not (p, type))
    return FALSE;
  p->depth--;
  if (!expect_condition (p, *type, at, "'not'"))
    return FALSE;
  return emit (p, OP_NOT, TYPE_BOOL, 0, NULL, 0);
}

static gboolean
parse_and (Parser *p, Type *type)
{
  gsize at = p->tok.at;

  if (!parse_not (p, type))
    return FALSE;
  while (p->tok.kind == TOK_AND) {
    Type right;

    if (!expect_condition (p, *type, at, "'and'"))
      return FALSE;
    if (!lex (p))
      return FALSE;
    at = p->tok.at;
    if (!parse_not (p, &right) || !expect_condition (p, right, at, "'and'"))
      return FALSE;
    emit (p, OP_AND, TYPE_BOOL, 0, NULL, 0);
  }
  return TRUE;
}

static gboolean
parse_or (Parser *p, Type *type)
{
  gsize at = p->tok.at;

  if (!parse_and (p, type))
    return FALSE;
  while (p->tok.kind == TOK_OR) {
    Type right;

    if (!expect_condition (p, *type, at, "'or'"))
      return FALSE;
    if (!lex (p))
      return FALSE;
    at = p->tok.at;
    if (!parse_and (p, &right) || !expect_condition (p, right, at, "'or'"))
      return FALSE;
    emit (p, OP_OR, TYPE_BOOL, 0, NULL, 0);
  }
  return TRUE;
}

/**
 * cd_rule_compile:
 * @text: the rule, e.g. `skills.billing >= 3 and "de" in languages`
 *
 * Returns: (transfer full): the rule, or %NULL with @error saying where
 * (1-based byte column) and what is wrong.
 */
CdRule *
cd_rule_compile (const char *text, GError **error)
{
  g_autoptr (CdRule) rule = NULL;
  Parser p = { .text = text, .error = error };
  Type type = TYPE_BOOL;
  gsize length = strlen (text);

  if (length > CD_RULE_MAX_LENGTH) {
    g_set_error (error, CD_RULE_ERROR, CD_RULE_ERROR_LIMIT, "the rule is longer than %d bytes",
                 CD_RULE_MAX_LENGTH);
    return NULL;
  }
  if (!g_utf8_validate (text, -1, NULL)) {
    g_set_error_literal (error, CD_RULE_ERROR, CD_RULE_ERROR_SYNTAX, "the rule is not valid UTF-8");
    return NULL;
  }
  rule = g_new0 (CdRule, 1);
  rule->text = g_strdup (text);
  /* unescaped strings and names are never longer than the text */
  rule->pool = g_malloc (length + 1);
  p.rule = rule;
  p.program = g_array_new (FALSE, FALSE, sizeof (Instr));
  p.items = g_array_new (FALSE, FALSE, sizeof (Str));
  if (!lex (&p))
    goto failed;
  if (p.tok.kind == TOK_END) {
    fail (&p, CD_RULE_ERROR_SYNTAX, 0, "the rule is empty");
    goto failed;
  }
  if (!parse_or (&p, &type))
    goto failed;
  if (p.tok.kind != TOK_END) {
    fail (&p, CD_RULE_ERROR_SYNTAX, p.tok.at, "expected 'and', 'or' or the end of the rule, not %s",
          token_names[p.tok.kind]);
    goto failed;
  }
  if (!expect_condition (&p, type, 0, "a rule"))
    goto failed;
  if (p.max_stack > MAX_STACK) {
    fail (&p, CD_RULE_ERROR_LIMIT, 0, "the rule keeps more than %d values pending", MAX_STACK);
    goto failed;
  }
  g_assert (p.stack == 1);
  rule->length = p.program->len;
  rule->program = (Instr *) (gpointer) g_array_free (p.program, FALSE);
  rule->items = (Str *) (gpointer) g_array_free (p.items, FALSE);
  return g_steal_pointer (&rule);

  /* ERRORS */
failed:
  g_array_free (p.program, TRUE);
  g_array_free (p.items, TRUE);
  return NULL;
}

/* ---- the evaluator ---- */

typedef struct {
  gint64 i;
  const char *s;
  gsize len;
} Value;

static gboolean
str_equal (const char *a, gsize a_len, const char *b, gsize b_len)
{
  return a_len == b_len && (a_len == 0 || (a[0] == b[0] && memcmp (a, b, a_len) == 0));
}

/* @name (nul-terminated) equals @s of @len bytes; the first byte first */
static inline gboolean
name_equal (const char *name, const char *s, gsize len)
{
  if (len == 0)
    return name[0] == '\0';
  return name[0] == s[0] && strncmp (name, s, len) == 0 && name[len] == '\0';
}

static void
load_str (Value *v, const char *s)
{
  v->s = s ? s : "";
  v->len = strlen (v->s);
}

static int
skill_level (const CdRuleAgent *agent, const char *name, gsize len)
{
  for (guint k = 0; k < agent->n_skills; k++)
    if (name_equal (agent->skills[k].name, name, len))
      return agent->skills[k].level;
  return 0;
}

/**
 * cd_rule_matches:
 *
 * Whether @agent may take @call. Allocates nothing.
 */
gboolean
cd_rule_matches (const CdRule *rule, const CdRuleAgent *agent, const CdRuleCall *call)
{
  Value stack[MAX_STACK];
  int top = -1;

  for (guint k = 0; k < rule->length; k++) {
    const Instr *in = &rule->program[k];
    Value *a = top >= 0 ? &stack[top] : NULL;
    Value *b = top >= 1 ? &stack[top - 1] : NULL;

    switch ((Op) in->op) {
    case OP_PUSH_INT:
    case OP_PUSH_BOOL:
      stack[++top] = (Value){ .i = in->i };
      break;
    case OP_PUSH_STR:
      stack[++top] = (Value){ .s = in->s, .len = in->n };
      break;
    case OP_SKILL:
      stack[++top] = (Value){ .i = skill_level (agent, in->s, in->n) };
      break;
    case OP_LEVEL:
      stack[++top] = (Value){ .i = agent->level };
      break;
    case OP_CALL_COUNTRY:
      load_str (&stack[++top], call->country);
      break;
    case OP_CALL_LANGUAGE:
      load_str (&stack[++top], call->language);
      break;
    case OP_CALL_PRIORITY:
      stack[++top] = (Value){ .i = call->priority };
      break;
    case OP_CALL_WAIT:
      stack[++top] = (Value){ .i = call->wait_s };
      break;
    case OP_EQ:
    case OP_NE: {
      gboolean same = in->type == TYPE_STR ? str_equal (b->s, b->len, a->s, a->len) : b->i == a->i;
      b->i = in->op == OP_EQ ? same : !same;
      top--;
      break;
    }
    case OP_LT:
      b->i = b->i < a->i;
      top--;
      break;
    case OP_LE:
      b->i = b->i <= a->i;
      top--;
      break;
    case OP_GT:
      b->i = b->i > a->i;
      top--;
      break;
    case OP_GE:
      b->i = b->i >= a->i;
      top--;
      break;
    case OP_IN_LANGUAGES: {
      gboolean found = FALSE;
      for (guint l = 0; l < agent->n_languages && !found; l++)
        found = name_equal (agent->languages[l], a->s, a->len);
      a->i = found;
      break;
    }
    case OP_IN_LIST: {
      gboolean found = FALSE;
      for (guint l = 0; l < in->n && !found; l++)
        found = str_equal (rule->items[in->i + l].s, rule->items[in->i + l].len, a->s, a->len);
      a->i = found;
      break;
    }
    case OP_AND:
      b->i = b->i && a->i;
      top--;
      break;
    case OP_OR:
      b->i = b->i || a->i;
      top--;
      break;
    case OP_NOT:
      a->i = !a->i;
      break;
    default:
      g_assert_not_reached ();
    }
  }
  return stack[0].i != 0;
}

const char *
cd_rule_get_text (const CdRule *rule)
{
  return rule->text;
}

void
cd_rule_free (CdRule *rule)
{
  if (rule == NULL)
    return;
  g_free (rule->text);
  g_free (rule->pool);
  g_free (rule->program);
  g_free (rule->items);
  g_free (rule);
}
