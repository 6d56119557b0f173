/* SPDX-License-Identifier: GPL-3.0-or-later */
/* An IVR flow: every node and field checked, targets resolved, and the
 * graph refused when a node cannot be reached or a loop never waits for
 * the visitor. */

#define G_LOG_DOMAIN "calldocker-ivr"

#include "ivr/cd-ivr-flow.h"

#include "auth/cd-jwt.h"
#include "routing/cd-country-queues.h"
#include "routing/cd-queue-spec.h"

#include <string.h>

G_DEFINE_QUARK (cd - ivr - flow - error - quark, cd_ivr_flow_error)

static const char *type_names[CD_IVR_N_TYPES] = {
  "play", "say", "menu", "gather", "branch", "set", "queue", "voicemail", "transfer", "hangup",
};

const char *
cd_ivr_node_type_to_string (CdIvrNodeType type)
{
  g_return_val_if_fail (type < CD_IVR_N_TYPES, "unknown");
  return type_names[type];
}

/* Menus, gathers and voicemail wait for the visitor; a loop through
 * nodes that all do not would run for ever. */
gboolean
cd_ivr_node_waits_for_input (CdIvrNodeType type)
{
  return type == CD_IVR_MENU || type == CD_IVR_GATHER || type == CD_IVR_VOICEMAIL;
}

guint
cd_ivr_node_successors (const CdIvrNode *node, int *out)
{
  guint n = 0;

  if (node->next != CD_IVR_NO_NODE)
    out[n++] = node->next;
  if (node->fallback != CD_IVR_NO_NODE)
    out[n++] = node->fallback;
  if (node->otherwise != CD_IVR_NO_NODE)
    out[n++] = node->otherwise;
  for (guint i = 0; i < node->n_cases; i++)
    out[n++] = node->cases[i].target;
  return n;
}

static gboolean invalid (GError **error, const char *node, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

/* A refusal: "node "menu": options."7": no node "sales"" */
static gboolean
invalid (GError **error, const char *node, const char *format, ...)
{
  va_list args;
  g_autofree char *what = NULL;

  if (error == NULL)
    return FALSE;
  g_return_val_if_fail (*error == NULL, FALSE);
  va_start (args, format);
  what = g_strdup_vprintf (format, args);
  va_end (args);
  if (node)
    *error =
        g_error_new (CD_IVR_FLOW_ERROR, CD_IVR_FLOW_ERROR_INVALID, "node \"%s\": %s", node, what);
  else
    *error = g_error_new_literal (CD_IVR_FLOW_ERROR, CD_IVR_FLOW_ERROR_INVALID, what);
  return FALSE;
}

static gboolean
only_known (JsonObject *object, const char *const *known, const char *node, const char *where,
            GError **error)
{
  g_autoptr (GList) members = json_object_get_members (object);

  for (GList *l = members; l; l = l->next)
    if (!g_strv_contains (known, l->data)) {
      g_autofree char *list = g_strjoinv (", ", (char **) known);
      return invalid (error, node, "%s%s\"%.40s\" is not a field here (%s)", where,
                      *where ? ": " : "", (const char *) l->data, list);
    }
  return TRUE;
}

static gboolean
is_string (JsonNode *node)
{
  return node && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING;
}

/* A node id or a variable's name: letters, digits, "_" and "-", 1 to 64. */
static gboolean
is_name (const char *s, gboolean variable)
{
  gsize n = strlen (s);

  if (n < 1 || n > (variable ? 32 : 64) || (variable && !g_ascii_islower (s[0])))
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!(variable ? g_ascii_islower (s[i]) || g_ascii_isdigit (s[i]) || s[i] == '_'
                   : g_ascii_isalnum (s[i]) || s[i] == '_' || s[i] == '-'))
      return FALSE;
  return TRUE;
}

static gboolean
is_digits (const char *s, gsize max)
{
  gsize n = strlen (s);

  return n >= 1 && n <= max && strspn (s, "0123456789*#") == n;
}

/* @name: a string of @min..@max characters (UTF-8), or absent (NULL). */
static gboolean
get_text (JsonObject *o, const char *where, const char *name, gsize min, gsize max,
          gboolean required, const char *node, char **out, GError **error)
{
  JsonNode *member = json_object_get_member (o, name);
  const char *s;
  glong chars;

  if (member == NULL) {
    if (required)
      return invalid (error, node, "%s%s is missing", where, name);
    return TRUE;
  }
  if (!is_string (member))
    return invalid (error, node, "%s%s: a string", where, name);
  s = json_node_get_string (member);
  chars = g_utf8_strlen (s, -1);
  if ((gsize) chars < min || (gsize) chars > max)
    return invalid (error, node, "%s%s: %" G_GSIZE_FORMAT " to %" G_GSIZE_FORMAT " characters",
                    where, name, min, max);
  *out = g_strdup (s);
  return TRUE;
}

static gboolean
get_uint (JsonObject *o, const char *name, guint min, guint max, guint fallback, const char *node,
          guint *out, GError **error)
{
  JsonNode *member = json_object_get_member (o, name);

  *out = fallback;
  if (member == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (member) || json_node_get_value_type (member) != G_TYPE_INT64 ||
      json_node_get_int (member) < min || json_node_get_int (member) > max)
    return invalid (error, node, "%s: a whole number from %u to %u", name, min, max);
  *out = json_node_get_int (member);
  return TRUE;
}

static gboolean
get_bool (JsonObject *o, const char *name, gboolean fallback, const char *node, gboolean *out,
          GError **error)
{
  JsonNode *member = json_object_get_member (o, name);

  *out = fallback;
  if (member == NULL)
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (member) || json_node_get_value_type (member) != G_TYPE_BOOLEAN)
    return invalid (error, node, "%s: true or false", name);
  *out = json_node_get_boolean (member);
  return TRUE;
}

static gboolean
get_uuid (JsonObject *o, const char *name, gboolean required, const char *node, char **out,
          GError **error)
{
  JsonNode *member = json_object_get_member (o, name);

  if (member == NULL)
    return required ? invalid (error, node, "%s is missing", name) : TRUE;
  if (!is_string (member) || !cd_is_uuid (json_node_get_string (member)))
    return invalid (error, node, "%s: a UUID", name);
  *out = g_ascii_strdown (json_node_get_string (member), -1);
  return TRUE;
}

/* @name names a node of the flow. */
static gboolean
get_target (JsonObject *o, const char *name, gboolean required, GHashTable *ids, const char *node,
            int *out, GError **error)
{
  JsonNode *member = json_object_get_member (o, name);
  gpointer index;

  *out = CD_IVR_NO_NODE;
  if (member == NULL)
    return required ? invalid (error, node, "%s is missing", name) : TRUE;
  if (!is_string (member))
    return invalid (error, node, "%s: a node's id", name);
  if (!g_hash_table_lookup_extended (ids, json_node_get_string (member), NULL, &index))
    return invalid (error, node, "%s: no node \"%.64s\"", name, json_node_get_string (member));
  *out = GPOINTER_TO_INT (index);
  return TRUE;
}

static void
prompt_clear (CdIvrPrompt *p)
{
  g_clear_pointer (&p->prompt_id, g_free);
  g_clear_pointer (&p->text, g_free);
  g_clear_pointer (&p->language, g_free);
  g_clear_pointer (&p->voice, g_free);
}

/* Text to speak: text, language ("en" unless given), voice. */
static gboolean
get_speech (JsonObject *o, const char *node, const char *where, CdIvrPrompt *p, GError **error)
{
  if (!get_text (o, where, "text", 1, CD_IVR_MAX_TEXT, TRUE, node, &p->text, error) ||
      !get_text (o, where, "language", 2, 12, FALSE, node, &p->language, error) ||
      !get_text (o, where, "voice", 1, 40, FALSE, node, &p->voice, error))
    return FALSE;
  if (p->language && !cd_language_code_is_valid (p->language))
    return invalid (error, node, "%slanguage: a language code such as \"en\" or \"pt-br\"", where);
  if (p->voice && !is_name (p->voice, FALSE))
    return invalid (error, node, "%svoice: letters, digits, \"_\" and \"-\"", where);
  if (p->language == NULL)
    p->language = g_strdup ("en");
  return TRUE;
}

/* @name: {"prompt_id": UUID} or {"text": ..., "language": ..., "voice": ...} */
static gboolean
get_prompt (JsonObject *o, const char *name, gboolean required, const char *node, CdIvrPrompt *p,
            GError **error)
{
  static const char *const stored[] = { "prompt_id", NULL };
  static const char *const spoken[] = { "text", "language", "voice", NULL };
  JsonNode *member = json_object_get_member (o, name);
  JsonObject *po;
  g_autofree char *where = g_strdup_printf ("%s.", name);

  if (member == NULL)
    return required ? invalid (error, node, "%s is missing (what the visitor hears)", name) : TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (member))
    return invalid (error, node, "%s: {\"prompt_id\": a stored prompt} or {\"text\": what to say}",
                    name);
  po = json_node_get_object (member);
  if (json_object_has_member (po, "prompt_id"))
    return only_known (po, stored, node, name, error) &&
           get_uuid (po, "prompt_id", TRUE, node, &p->prompt_id, error);
  if (json_object_has_member (po, "text"))
    return only_known (po, spoken, node, name, error) && get_speech (po, node, where, p, error);
  return invalid (error, node, "%s: {\"prompt_id\": a stored prompt} or {\"text\": what to say}",
                  name);
}

/* menu options and branch cases: {key: node id} */
static gboolean
get_cases (JsonObject *o, const char *name, gboolean required, GHashTable *ids, CdIvrNode *n,
           GError **error)
{
  JsonNode *member = json_object_get_member (o, name);
  JsonObjectIter iter;
  const char *key;
  JsonNode *value;
  guint i = 0;

  if (member == NULL)
    return required ? invalid (error, n->id, "%s is missing", name) : TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (member) ||
      json_object_get_size (json_node_get_object (member)) > CD_IVR_MAX_CASES)
    return invalid (error, n->id, "%s: an object of at most %d choices, each to a node's id", name,
                    CD_IVR_MAX_CASES);
  if (required && json_object_get_size (json_node_get_object (member)) == 0)
    return invalid (error, n->id, "%s: at least one choice", name);
  n->cases = g_new0 (CdIvrCase, json_object_get_size (json_node_get_object (member)));
  json_object_iter_init (&iter, json_node_get_object (member));
  while (json_object_iter_next (&iter, &key, &value)) {
    CdIvrCase *c = &n->cases[i];
    char country[3];
    gpointer index;

    if (n->type == CD_IVR_MENU && !is_digits (key, CD_IVR_MAX_DIGITS))
      return invalid (error, n->id, "%s.\"%.40s\": digits (0-9, * and #), at most %d", name, key,
                      CD_IVR_MAX_DIGITS);
    if (n->type == CD_IVR_BRANCH && n->on == CD_IVR_ON_COUNTRY) {
      if (!cd_country_code_normalize (key, country))
        return invalid (error, n->id, "%s.\"%.40s\": a two-letter country code", name, key);
      c->key = g_strdup (country);
    } else if (n->type == CD_IVR_BRANCH && n->on == CD_IVR_ON_LANGUAGE) {
      if (!cd_language_code_is_valid (key))
        return invalid (error, n->id, "%s.\"%.40s\": a language code such as \"de\"", name, key);
      c->key = g_strdup (key);
    } else {
      if (g_utf8_strlen (key, -1) > 200)
        return invalid (error, n->id, "%s: a choice longer than 200 characters", name);
      c->key = g_strdup (key);
    }
    n->n_cases = ++i;
    if (!is_string (value) ||
        !g_hash_table_lookup_extended (ids, json_node_get_string (value), NULL, &index))
      return invalid (error, n->id, "%s.\"%.40s\": no node \"%.64s\"", name, key,
                      is_string (value) ? json_node_get_string (value) : "");
    c->target = GPOINTER_TO_INT (index);
  }
  for (guint a = 0; a < n->n_cases; a++)
    for (guint b = a + 1; b < n->n_cases; b++)
      if (g_str_equal (n->cases[a].key, n->cases[b].key))
        return invalid (error, n->id, "%s: \"%s\" twice", name, n->cases[a].key);
  return TRUE;
}

static gboolean
parse_node (JsonObject *o, GHashTable *ids, CdIvrNode *n, GError **error)
{
  static const char *const known[CD_IVR_N_TYPES][14] = {
    [CD_IVR_PLAY] = { "id", "type", "prompt_id", "next", "barge_in", NULL },
    [CD_IVR_SAY] = { "id", "type", "text", "language", "voice", "next", "barge_in", NULL },
    [CD_IVR_MENU] = { "id", "type", "prompt", "options", "timeout_s", "inter_digit_timeout_s",
                      "max_retries", "invalid_prompt", "timeout_prompt", "fallback", "barge_in",
                      NULL },
    [CD_IVR_GATHER] = { "id", "type", "prompt", "variable", "max_digits", "finish_on", "timeout_s",
                        "inter_digit_timeout_s", "next", "fallback", "barge_in", NULL },
    [CD_IVR_BRANCH] = { "id", "type", "on", "hours", "open", "variable", "cases", "otherwise",
                        NULL },
    [CD_IVR_SET] = { "id", "type", "variable", "value", "next", NULL },
    [CD_IVR_QUEUE] = { "id", "type", "queue_id", "priority", NULL },
    [CD_IVR_VOICEMAIL] = { "id", "type", "prompt", "max_s", "silence_s", "next", NULL },
    [CD_IVR_TRANSFER] = { "id", "type", "agent_id", "queue_id", NULL },
    [CD_IVR_HANGUP] = { "id", "type", "prompt", NULL },
  };
  static const char *const branch_on[] = { "business_hours", "variable", "country", "language",
                                           NULL };
  const char *type = json_object_get_string_member_with_default (o, "type", NULL);
  const char *id = n->id;
  guint priority = 0;

  n->next = n->fallback = n->otherwise = CD_IVR_NO_NODE;
  n->type = CD_IVR_N_TYPES;
  for (int t = 0; type && t < CD_IVR_N_TYPES; t++)
    if (g_str_equal (type, type_names[t]))
      n->type = t;
  if (n->type == CD_IVR_N_TYPES) {
    g_autofree char *list = g_strjoinv (", ", (char **) type_names);
    return type ? invalid (error, id, "type: \"%.40s\" is not a node type (%s)", type, list)
                : invalid (error, id, "type is missing (%s)", list);
  }
  if (!only_known (o, known[n->type], id, "", error) ||
      !get_bool (o, "barge_in", TRUE, id, &n->barge_in, error))
    return FALSE;
  switch (n->type) {
  case CD_IVR_PLAY:
    if (!json_object_has_member (o, "prompt_id"))
      return invalid (error, id, "prompt_id is missing (the stored prompt to play)");
    return get_uuid (o, "prompt_id", TRUE, id, &n->prompt.prompt_id, error) &&
           get_target (o, "next", TRUE, ids, id, &n->next, error);
  case CD_IVR_SAY:
    return get_speech (o, id, "", &n->prompt, error) &&
           get_target (o, "next", TRUE, ids, id, &n->next, error);
  case CD_IVR_MENU:
    return get_prompt (o, "prompt", TRUE, id, &n->prompt, error) &&
           get_cases (o, "options", TRUE, ids, n, error) &&
           get_uint (o, "timeout_s", 1, 60, 5, id, &n->timeout_s, error) &&
           get_uint (o, "inter_digit_timeout_s", 1, 30, 2, id, &n->inter_digit_timeout_s, error) &&
           get_uint (o, "max_retries", 0, 10, 2, id, &n->max_retries, error) &&
           get_prompt (o, "invalid_prompt", FALSE, id, &n->invalid_prompt, error) &&
           get_prompt (o, "timeout_prompt", FALSE, id, &n->timeout_prompt, error) &&
           get_target (o, "fallback", FALSE, ids, id, &n->fallback, error);
  case CD_IVR_GATHER:
    if (!get_prompt (o, "prompt", TRUE, id, &n->prompt, error) ||
        !get_text (o, "", "variable", 1, 32, TRUE, id, &n->variable, error) ||
        !get_uint (o, "max_digits", 1, CD_IVR_MAX_DIGITS, 10, id, &n->max_digits, error) ||
        !get_text (o, "", "finish_on", 1, 1, FALSE, id, &n->finish_on, error) ||
        !get_uint (o, "timeout_s", 1, 60, 5, id, &n->timeout_s, error) ||
        !get_uint (o, "inter_digit_timeout_s", 1, 30, 3, id, &n->inter_digit_timeout_s, error) ||
        !get_target (o, "next", TRUE, ids, id, &n->next, error) ||
        !get_target (o, "fallback", FALSE, ids, id, &n->fallback, error))
      return FALSE;
    if (!is_name (n->variable, TRUE))
      return invalid (error, id,
                      "variable: lower case letters, digits and \"_\", starting with a letter");
    if (n->finish_on == NULL)
      n->finish_on = g_strdup ("#");
    if (!is_digits (n->finish_on, 1))
      return invalid (error, id, "finish_on: one of 0-9, * and #");
    return TRUE;
  case CD_IVR_BRANCH: {
    const char *on = json_object_get_string_member_with_default (o, "on", NULL);
    int which = -1;

    for (int i = 0; on && branch_on[i]; i++)
      if (g_str_equal (on, branch_on[i]))
        which = i;
    if (which < 0)
      return invalid (error, id, "on: business_hours, variable, country or language");
    n->on = which;
    if (n->on == CD_IVR_ON_BUSINESS_HOURS) {
      JsonNode *hours = json_object_get_member (o, "hours");
      g_autoptr (GError) inner = NULL;

      if (json_object_has_member (o, "cases") || json_object_has_member (o, "variable"))
        return invalid (error, id,
                        "on business_hours: \"hours\", \"open\" (a node) and \"otherwise\" "
                        "(closed), no cases");
      if (hours == NULL || !JSON_NODE_HOLDS_OBJECT (hours))
        return invalid (error, id, "hours is missing (the business hours, as a queue's)");
      n->hours = cd_business_hours_parse (json_node_get_object (hours), &inner);
      if (n->hours == NULL)
        return invalid (error, id, "hours: %s", inner->message);
    } else if (json_object_has_member (o, "hours") || json_object_has_member (o, "open")) {
      return invalid (error, id, "hours and open: only with \"on\": \"business_hours\"");
    }
    if (n->on == CD_IVR_ON_VARIABLE) {
      if (!get_text (o, "", "variable", 1, 32, TRUE, id, &n->variable, error))
        return FALSE;
      if (!is_name (n->variable, TRUE))
        return invalid (error, id,
                        "variable: lower case letters, digits and \"_\", starting with a letter");
    } else if (json_object_has_member (o, "variable")) {
      return invalid (error, id, "variable: only with \"on\": \"variable\"");
    }
    if (n->on == CD_IVR_ON_BUSINESS_HOURS)
      return get_target (o, "open", TRUE, ids, id, &n->next, error) &&
             get_target (o, "otherwise", TRUE, ids, id, &n->otherwise, error);
    return get_cases (o, "cases", TRUE, ids, n, error) &&
           get_target (o, "otherwise", TRUE, ids, id, &n->otherwise, error);
  }
  case CD_IVR_SET:
    if (!get_text (o, "", "variable", 1, 32, TRUE, id, &n->variable, error) ||
        !get_text (o, "", "value", 0, 200, TRUE, id, &n->value, error) ||
        !get_target (o, "next", TRUE, ids, id, &n->next, error))
      return FALSE;
    if (!is_name (n->variable, TRUE))
      return invalid (error, id,
                      "variable: lower case letters, digits and \"_\", starting with a letter");
    return TRUE;
  case CD_IVR_QUEUE:
    if (!get_uuid (o, "queue_id", TRUE, id, &n->queue_id, error) ||
        !get_uint (o, "priority", 0, 100, 0, id, &priority, error))
      return FALSE;
    n->priority = priority;
    return TRUE;
  case CD_IVR_VOICEMAIL:
    return get_prompt (o, "prompt", FALSE, id, &n->prompt, error) &&
           get_uint (o, "max_s", 5, 600, 120, id, &n->max_s, error) &&
           get_uint (o, "silence_s", 1, 30, 5, id, &n->silence_s, error) &&
           get_target (o, "next", FALSE, ids, id, &n->next, error);
  case CD_IVR_TRANSFER:
    if (!get_uuid (o, "agent_id", FALSE, id, &n->agent_id, error) ||
        !get_uuid (o, "queue_id", FALSE, id, &n->queue_id, error))
      return FALSE;
    if ((n->agent_id == NULL) == (n->queue_id == NULL))
      return invalid (error, id, "give either agent_id or queue_id");
    return TRUE;
  case CD_IVR_HANGUP:
    return get_prompt (o, "prompt", FALSE, id, &n->prompt, error);
  case CD_IVR_N_TYPES:
  default:
    return FALSE;
  }
}

/* Every node reachable from the start; no loop through nodes that never
 * wait for the visitor (it would play or branch for ever). */
static gboolean
check_graph (CdIvrFlow *flow, GError **error)
{
  g_autofree guint8 *seen = g_new0 (guint8, flow->n_nodes);
  g_autofree int *stack = g_new (int, flow->n_nodes *(CD_IVR_MAX_CASES + 3) + 1);
  g_autofree guint8 *state = g_new0 (guint8, flow->n_nodes); /* 0 new, 1 open, 2 done */
  g_autofree int *path = g_new (int, flow->n_nodes);
  g_autofree guint *edge = g_new0 (guint, flow->n_nodes);
  int next[CD_IVR_MAX_CASES + 3];
  guint top = 0;

  stack[top++] = flow->start;
  seen[flow->start] = 1;
  while (top > 0) {
    int at = stack[--top];
    guint n = cd_ivr_node_successors (&flow->nodes[at], next);

    for (guint i = 0; i < n; i++)
      if (!seen[next[i]]) {
        seen[next[i]] = 1;
        stack[top++] = next[i];
      }
  }
  for (guint i = 0; i < flow->n_nodes; i++)
    if (!seen[i])
      return invalid (error, flow->nodes[i].id, "cannot be reached from the start");
  /* depth first through the nodes that do not wait, from each of them */
  for (guint root = 0; root < flow->n_nodes; root++) {
    guint depth = 0;

    if (state[root] || cd_ivr_node_waits_for_input (flow->nodes[root].type))
      continue;
    path[depth++] = root;
    state[root] = 1;
    edge[root] = 0;
    while (depth > 0) {
      int at = path[depth - 1];
      guint n = cd_ivr_node_successors (&flow->nodes[at], next);
      int to;

      if (edge[at] >= n) {
        state[at] = 2;
        depth--;
        continue;
      }
      to = next[edge[at]++];
      if (cd_ivr_node_waits_for_input (flow->nodes[to].type) || state[to] == 2)
        continue;
      if (state[to] == 1) {
        g_autoptr (GString) loop = g_string_new (NULL);
        guint from = 0;

        while (path[from] != to)
          from++;
        for (guint k = from; k < depth; k++)
          g_string_append_printf (loop, "%s -> ", flow->nodes[path[k]].id);
        g_string_append (loop, flow->nodes[to].id);
        return invalid (error, flow->nodes[to].id,
                        "the loop %s never waits for the visitor (put a menu, a gather or a "
                        "voicemail in it)",
                        loop->str);
      }
      state[to] = 1;
      edge[to] = 0;
      path[depth++] = to;
    }
  }
  return TRUE;
}

/**
 * cd_ivr_flow_parse:
 *
 * {"start": NODE_ID, "nodes": [NODE, ...]}: every node checked (its type's
 * fields, their ranges, the nodes it goes on to), then the graph.
 *
 * Returns: (transfer full): the flow, or %NULL with @error naming the node
 * and what is wrong
 */
CdIvrFlow *
cd_ivr_flow_parse (JsonObject *object, GError **error)
{
  static const char *const known[] = { "start", "nodes", NULL };
  g_autoptr (CdIvrFlow) flow = g_new0 (CdIvrFlow, 1);
  g_autoptr (GHashTable) ids = g_hash_table_new (g_str_hash, g_str_equal);
  JsonNode *nodes = json_object_get_member (object, "nodes");
  JsonNode *start = json_object_get_member (object, "start");
  JsonArray *list;
  gpointer index;

  if (!only_known (object, known, NULL, "", error))
    return NULL;
  if (nodes == NULL || !JSON_NODE_HOLDS_ARRAY (nodes))
    return invalid (error, NULL, "nodes: a list of nodes"), NULL;
  list = json_node_get_array (nodes);
  if (json_array_get_length (list) == 0 || json_array_get_length (list) > CD_IVR_MAX_NODES)
    return invalid (error, NULL, "nodes: 1 to %d nodes", CD_IVR_MAX_NODES), NULL;
  flow->n_nodes = json_array_get_length (list);
  flow->nodes = g_new0 (CdIvrNode, flow->n_nodes);
  for (guint i = 0; i < flow->n_nodes; i++) {
    JsonNode *item = json_array_get_element (list, i);
    JsonNode *id = JSON_NODE_HOLDS_OBJECT (item)
                       ? json_object_get_member (json_node_get_object (item), "id")
                       : NULL;

    flow->nodes[i].next = flow->nodes[i].fallback = flow->nodes[i].otherwise = CD_IVR_NO_NODE;
    if (!JSON_NODE_HOLDS_OBJECT (item))
      return invalid (error, NULL, "nodes[%u]: an object", i), NULL;
    if (!is_string (id) || !is_name (json_node_get_string (id), FALSE))
      return invalid (error, NULL, "nodes[%u].id: 1 to 64 letters, digits, \"_\" or \"-\"", i),
             NULL;
    if (g_hash_table_contains (ids, json_node_get_string (id)))
      return invalid (error, json_node_get_string (id), "a second node with this id"), NULL;
    flow->nodes[i].id = g_strdup (json_node_get_string (id));
    g_hash_table_insert (ids, flow->nodes[i].id, GINT_TO_POINTER (i));
  }
  if (!is_string (start))
    return invalid (error, NULL, "start: the id of the first node"), NULL;
  if (!g_hash_table_lookup_extended (ids, json_node_get_string (start), NULL, &index))
    return invalid (error, NULL, "start: no node \"%.64s\"", json_node_get_string (start)), NULL;
  flow->start = GPOINTER_TO_INT (index);
  for (guint i = 0; i < flow->n_nodes; i++)
    if (!parse_node (json_array_get_object_element (list, i), ids, &flow->nodes[i], error))
      return NULL;
  if (!check_graph (flow, error))
    return NULL;
  return g_steal_pointer (&flow);
}

void
cd_ivr_flow_free (CdIvrFlow *flow)
{
  if (flow == NULL)
    return;
  for (guint i = 0; i < flow->n_nodes; i++) {
    CdIvrNode *n = &flow->nodes[i];

    g_free (n->id);
    prompt_clear (&n->prompt);
    prompt_clear (&n->invalid_prompt);
    prompt_clear (&n->timeout_prompt);
    for (guint c = 0; c < n->n_cases; c++)
      g_free (n->cases[c].key);
    g_free (n->cases);
    g_clear_pointer (&n->hours, cd_business_hours_free);
    g_free (n->variable);
    g_free (n->value);
    g_free (n->queue_id);
    g_free (n->agent_id);
    g_free (n->finish_on);
  }
  g_free (flow->nodes);
  g_free (flow);
}

static void
add_reference (JsonBuilder *b, const CdIvrNode *node, const char *field, const char *kind,
               const char *id)
{
  if (id == NULL)
    return;
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "node");
  json_builder_add_string_value (b, node->id);
  json_builder_set_member_name (b, "field");
  json_builder_add_string_value (b, field);
  json_builder_set_member_name (b, "kind");
  json_builder_add_string_value (b, kind);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, id);
  json_builder_end_object (b);
}

char *
cd_ivr_flow_references (const CdIvrFlow *flow)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_array (b);
  for (guint i = 0; i < flow->n_nodes; i++) {
    const CdIvrNode *n = &flow->nodes[i];
    /* a play node's prompt is its own prompt_id; the others nest theirs */
    gboolean play = n->type == CD_IVR_PLAY;

    add_reference (b, n, play ? "prompt_id" : "prompt.prompt_id", "prompt", n->prompt.prompt_id);
    add_reference (b, n, "invalid_prompt.prompt_id", "prompt", n->invalid_prompt.prompt_id);
    add_reference (b, n, "timeout_prompt.prompt_id", "prompt", n->timeout_prompt.prompt_id);
    add_reference (b, n, "queue_id", "queue", n->queue_id);
    add_reference (b, n, "agent_id", "agent", n->agent_id);
  }
  json_builder_end_array (b);
  root = json_builder_get_root (b);
  return json_to_string (root, FALSE);
}
