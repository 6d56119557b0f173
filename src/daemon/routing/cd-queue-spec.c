/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A queue's definition: every field checked, unknown fields refused. */

#define G_LOG_DOMAIN "calldocker-routing"

#include "routing/cd-queue-spec.h"

#include <string.h>

G_DEFINE_QUARK (cd - queue - spec - error - quark, cd_queue_spec_error)

static gboolean invalid (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *format, ...)
{
  va_list args;

  if (error == NULL)
    return FALSE;
  g_return_val_if_fail (*error == NULL, FALSE);
  va_start (args, format);
  *error = g_error_new_valist (CD_QUEUE_SPEC_ERROR, CD_QUEUE_SPEC_ERROR_INVALID, format, args);
  va_end (args);
  return FALSE;
}

/* Refuses members of @object not in @known (NULL-terminated). */
static gboolean
only_known (JsonObject *object, const char *const *known, const char *where, GError **error)
{
  g_autoptr (GList) members = json_object_get_members (object);

  for (GList *l = members; l; l = l->next) {
    if (!g_strv_contains (known, l->data)) {
      g_autofree char *list = g_strjoinv (", ", (char **) known);
      return invalid (error, "%s%s\"%.40s\" is not a field (%s)", where, *where ? ": " : "",
                      (const char *) l->data, list);
    }
  }
  return TRUE;
}

static gboolean
is_string (JsonNode *node)
{
  return node && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_STRING;
}

static gboolean
is_integer (JsonNode *node)
{
  return node && JSON_NODE_HOLDS_VALUE (node) && json_node_get_value_type (node) == G_TYPE_INT64;
}

static gboolean
get_int (JsonObject *object, const char *name, const char *where, gint64 min, gint64 max,
         gint64 fallback, gint64 *out, GError **error)
{
  JsonNode *node = json_object_get_member (object, name);

  if (node == NULL || JSON_NODE_HOLDS_NULL (node)) {
    *out = fallback;
    return TRUE;
  }
  if (!is_integer (node) || json_node_get_int (node) < min || json_node_get_int (node) > max)
    return invalid (error, "%s%s: a whole number from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT,
                    where, name, min, max);
  *out = json_node_get_int (node);
  return TRUE;
}

static gboolean
get_uint (JsonObject *object, const char *name, gint64 min, gint64 max, gint64 fallback, guint *out,
          GError **error)
{
  gint64 value;

  if (!get_int (object, name, "", min, max, fallback, &value, error))
    return FALSE;
  *out = (guint) value;
  return TRUE;
}

/* letters, digits, '_' and '-', 1 to @max */
static gboolean
is_token (const char *s, gsize max)
{
  gsize n = strlen (s);

  if (n < 1 || n > max)
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

/**
 * cd_language_code_is_valid:
 *
 * "de", "en", "pt-br": two or three lower case letters, an optional region.
 */
gboolean
cd_language_code_is_valid (const char *s)
{
  gsize n = strlen (s), letters = 0;

  while (letters < n && g_ascii_islower (s[letters]))
    letters++;
  if (letters < 2 || letters > 3)
    return FALSE;
  if (letters == n)
    return TRUE;
  if (s[letters] != '-' || n - letters - 1 < 2 || n - letters - 1 > 8)
    return FALSE;
  for (gsize i = letters + 1; i < n; i++)
    if (!g_ascii_isalnum (s[i]))
      return FALSE;
  return TRUE;
}

static gboolean
parse_skills (CdQueueSpec *spec, JsonNode *node, GError **error)
{
  JsonObject *skills;
  g_autoptr (GList) members = NULL;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return invalid (error, "skills: an object of skill names and minimum levels, "
                           "e.g. {\"billing\": 3}");
  skills = json_node_get_object (node);
  if (json_object_get_size (skills) > CD_QUEUE_MAX_SKILLS)
    return invalid (error, "skills: at most %d", CD_QUEUE_MAX_SKILLS);
  members = json_object_get_members (skills);
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *level = json_object_get_member (skills, name);

    if (!is_token (name, 40))
      return invalid (error,
                      "skills: \"%.40s\" is not a skill name (letters, digits, _ and -, "
                      "at most 40)",
                      name);
    if (!is_integer (level) || json_node_get_int (level) < 0 || json_node_get_int (level) > 10)
      return invalid (error, "skills.%s: a minimum level from 0 to 10", name);
    spec->skills[spec->n_skills].name = g_strdup (name);
    spec->skills[spec->n_skills].min_level = (int) json_node_get_int (level);
    spec->n_skills++;
  }
  return TRUE;
}

static gboolean
parse_languages (CdQueueSpec *spec, JsonNode *node, GError **error)
{
  JsonArray *list;

  if (node == NULL || JSON_NODE_HOLDS_NULL (node))
    return TRUE;
  if (!JSON_NODE_HOLDS_ARRAY (node))
    return invalid (error, "languages: a list of language codes, e.g. [\"de\", \"en\"]");
  list = json_node_get_array (node);
  if (json_array_get_length (list) > CD_QUEUE_MAX_LANGUAGES)
    return invalid (error, "languages: at most %d", CD_QUEUE_MAX_LANGUAGES);
  for (guint i = 0; i < json_array_get_length (list); i++) {
    JsonNode *item = json_array_get_element (list, i);

    if (!is_string (item) || !cd_language_code_is_valid (json_node_get_string (item)))
      return invalid (error,
                      "languages[%u]: a lower-case language code such as \"de\" or "
                      "\"pt-br\"",
                      i);
    spec->languages[spec->n_languages++] = g_strdup (json_node_get_string (item));
  }
  return TRUE;
}

/* when_closed, when_full (@overflow FALSE) and overflow */
static gboolean
parse_fallback (JsonNode *node, const char *name, gboolean overflow, CdQueueFallback *out,
                GError **error)
{
  static const char *const fallback_fields[] = { "action", "queue_id", "message", NULL };
  static const char *const overflow_fields[] = { "after_s", "action", "queue_id", "raise_by",
                                                 NULL };
  g_autofree char *where = g_strdup_printf ("%s.", name);
  JsonObject *o;
  JsonNode *action, *text;
  gint64 value;

  if (!JSON_NODE_HOLDS_OBJECT (node))
    return invalid (error, "%s: an object with an action", name);
  o = json_node_get_object (node);
  if (!only_known (o, overflow ? overflow_fields : fallback_fields, name, error))
    return FALSE;
  action = json_object_get_member (o, "action");
  if (!is_string (action))
    return invalid (error, "%s.action: %s", name,
                    overflow ? "\"queue\" or \"priority\""
                             : "\"hangup\", \"voicemail\" or \"queue\"");
  if (g_str_equal (json_node_get_string (action), "queue"))
    out->action = CD_QUEUE_ACTION_QUEUE;
  else if (!overflow && g_str_equal (json_node_get_string (action), "hangup"))
    out->action = CD_QUEUE_ACTION_HANGUP;
  else if (!overflow && g_str_equal (json_node_get_string (action), "voicemail"))
    out->action = CD_QUEUE_ACTION_VOICEMAIL;
  else if (overflow && g_str_equal (json_node_get_string (action), "priority"))
    out->action = CD_QUEUE_ACTION_PRIORITY;
  else
    return invalid (error, "%s.action: %s, not \"%.20s\"", name,
                    overflow ? "\"queue\" or \"priority\""
                             : "\"hangup\", \"voicemail\" or \"queue\"",
                    json_node_get_string (action));

  text = json_object_get_member (o, "queue_id");
  if (out->action == CD_QUEUE_ACTION_QUEUE) {
    if (!is_string (text) || !g_uuid_string_is_valid (json_node_get_string (text)))
      return invalid (error, "%s.queue_id: the id (UUID) of the queue to move the call to", name);
    out->queue_id = g_strdup (json_node_get_string (text));
  } else if (text) {
    return invalid (error, "%s.queue_id: only with the action \"queue\"", name);
  }
  text = json_object_get_member (o, "message");
  if (text && out->action != CD_QUEUE_ACTION_HANGUP)
    return invalid (error, "%s.message: only with the action \"hangup\"", name);
  if (text) {
    if (!is_string (text) || strlen (json_node_get_string (text)) < 1 ||
        g_utf8_strlen (json_node_get_string (text), -1) > 500)
      return invalid (error, "%s.message: text of 1 to 500 characters", name);
    out->message = g_strdup (json_node_get_string (text));
  }
  if (overflow) {
    if (!json_object_has_member (o, "after_s"))
      return invalid (error, "%s.after_s: required, seconds in the queue before it applies", name);
    if (!get_int (o, "after_s", where, 1, 86400, 0, &value, error))
      return FALSE;
    out->after_s = (guint) value;
    if (out->action == CD_QUEUE_ACTION_PRIORITY) {
      if (!json_object_has_member (o, "raise_by"))
        return invalid (error, "%s.raise_by: required with the action \"priority\"", name);
      if (!get_int (o, "raise_by", where, 1, 100, 0, &value, error))
        return FALSE;
      out->raise_by = (int) value;
    } else if (json_object_has_member (o, "raise_by")) {
      return invalid (error, "%s.raise_by: only with the action \"priority\"", name);
    }
  }
  return TRUE;
}

/**
 * cd_queue_spec_parse:
 *
 * Returns: (transfer full): the queue, or %NULL with @error naming the
 * field that is wrong and what it must be.
 */
CdQueueSpec *
cd_queue_spec_parse (JsonObject *object, GError **error)
{
  static const char *const fields[] = {
    "name",       "strategy",       "skills",           "languages",
    "rule",       "business_hours", "ring_timeout_s",   "max_wait_s",
    "max_length", "wrap_up_s",      "announce_every_s", "when_closed",
    "when_full",  "overflow",       "record",           NULL,
  };
  g_autoptr (CdQueueSpec) spec = g_new0 (CdQueueSpec, 1);
  JsonNode *node;
  g_autoptr (GError) inner = NULL;

  if (!only_known (object, fields, "", error))
    return NULL;

  node = json_object_get_member (object, "name");
  if (!is_string (node) || g_utf8_strlen (json_node_get_string (node), -1) < 1 ||
      g_utf8_strlen (json_node_get_string (node), -1) > 100) {
    invalid (error, "name: required, 1 to 100 characters");
    return NULL;
  }
  spec->name = g_strdup (json_node_get_string (node));

  spec->strategy = CD_STRATEGY_LONGEST_IDLE;
  node = json_object_get_member (object, "strategy");
  if (node && (!is_string (node) ||
               !cd_strategy_from_string (json_node_get_string (node), &spec->strategy))) {
    invalid (error, "strategy: one of ring-all, round-robin, longest-idle, fewest-calls, random, "
                    "skills-based");
    return NULL;
  }
  if (!parse_skills (spec, json_object_get_member (object, "skills"), error) ||
      !parse_languages (spec, json_object_get_member (object, "languages"), error))
    return NULL;
  if (spec->strategy == CD_STRATEGY_SKILLS && spec->n_skills == 0) {
    invalid (error, "skills: the skills-based strategy needs at least one required skill");
    return NULL;
  }

  node = json_object_get_member (object, "rule");
  if (node && !JSON_NODE_HOLDS_NULL (node)) {
    if (!is_string (node)) {
      invalid (error, "rule: a routing rule (text), e.g. \"skills.billing >= 3\"");
      return NULL;
    }
    spec->rule = cd_rule_compile (json_node_get_string (node), &inner);
    if (spec->rule == NULL) {
      invalid (error, "rule: %s", inner->message);
      return NULL;
    }
  }
  node = json_object_get_member (object, "business_hours");
  if (node && !JSON_NODE_HOLDS_NULL (node)) {
    if (!JSON_NODE_HOLDS_OBJECT (node)) {
      invalid (error, "business_hours: an object with time_zone, weekly and holidays");
      return NULL;
    }
    spec->business_hours = cd_business_hours_parse (json_node_get_object (node), &inner);
    if (spec->business_hours == NULL) {
      gboolean names_field = g_str_has_prefix (inner->message, "time_zone") ||
                             g_str_has_prefix (inner->message, "weekly") ||
                             g_str_has_prefix (inner->message, "holidays");
      invalid (error, "business_hours%s%s", names_field ? "." : ": ", inner->message);
      return NULL;
    }
  }
  if (!get_uint (object, "ring_timeout_s", 5, 300, 20, &spec->ring_timeout_s, error) ||
      !get_uint (object, "max_wait_s", 10, 86400, 900, &spec->max_wait_s, error) ||
      !get_uint (object, "max_length", 0, 10000, 0, &spec->max_length, error) ||
      !get_uint (object, "wrap_up_s", 0, 3600, 0, &spec->wrap_up_s, error) ||
      !get_uint (object, "announce_every_s", 0, 3600, 60, &spec->announce_every_s, error))
    return NULL;
  if (spec->announce_every_s > 0 && spec->announce_every_s < 15) {
    invalid (error, "announce_every_s: 0 (never) or from 15 to 3600");
    return NULL;
  }
  node = json_object_get_member (object, "record");
  if (node && !JSON_NODE_HOLDS_NULL (node)) {
    if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN) {
      invalid (error, "record: true (its calls are recorded once answered) or false");
      return NULL;
    }
    spec->record = json_node_get_boolean (node);
  }
  node = json_object_get_member (object, "when_closed");
  if (node && !parse_fallback (node, "when_closed", FALSE, &spec->when_closed, error))
    return NULL;
  node = json_object_get_member (object, "when_full");
  if (node && !parse_fallback (node, "when_full", FALSE, &spec->when_full, error))
    return NULL;
  node = json_object_get_member (object, "overflow");
  if (node && !JSON_NODE_HOLDS_NULL (node)) {
    if (!parse_fallback (node, "overflow", TRUE, &spec->overflow, error))
      return NULL;
    spec->has_overflow = TRUE;
  }
  return g_steal_pointer (&spec);
}

static void
fallback_clear (CdQueueFallback *f)
{
  g_clear_pointer (&f->queue_id, g_free);
  g_clear_pointer (&f->message, g_free);
}

void
cd_queue_spec_free (CdQueueSpec *spec)
{
  if (spec == NULL)
    return;
  g_free (spec->name);
  for (guint i = 0; i < spec->n_skills; i++)
    g_free ((char *) spec->skills[i].name);
  for (guint i = 0; i < spec->n_languages; i++)
    g_free (spec->languages[i]);
  g_clear_pointer (&spec->rule, cd_rule_free);
  g_clear_pointer (&spec->business_hours, cd_business_hours_free);
  fallback_clear (&spec->when_closed);
  fallback_clear (&spec->when_full);
  fallback_clear (&spec->overflow);
  g_free (spec);
}
