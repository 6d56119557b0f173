/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cd-queue-roster.h"

#include "cd-json.h"

#include <string.h>

const char cd_queue_roster_sql[] =
    "SELECT jsonb_build_object('id', q.id, 'definition', q.definition, 'members',"
    " coalesce((SELECT jsonb_agg(jsonb_build_object('id', u.id, 'level', m.level,"
    "  'skills', u.skills, 'languages', to_jsonb(u.languages)) ORDER BY u.id)"
    "  FROM queue_members m JOIN users u ON u.id = m.user_id AND u.company_id = $1"
    "  WHERE m.queue_id = q.id AND u.active), '[]'::jsonb))::text,"
    " c.queue_id IS NOT NULL"
    " FROM queues q LEFT JOIN country_queues c ON c.company_id = $1 AND c.country = $3::text"
    "  AND c.queue_id = q.id"
    " WHERE q.company_id = $1 AND ($2::uuid IS NULL OR q.id = $2::uuid)"
    " ORDER BY c.queue_id IS NULL, q.created_at, q.id LIMIT 1";

static void
member_clear (CdRosterMember *m)
{
  for (guint i = 0; i < m->attributes.n_skills; i++)
    g_free ((char *) m->attributes.skills[i].name);
  g_free ((CdRuleSkill *) m->attributes.skills);
  g_strfreev ((char **) m->attributes.languages);
  g_free (m->id);
}

void
cd_queue_roster_free (CdQueueRoster *roster)
{
  if (roster == NULL)
    return;
  for (guint i = 0; i < roster->n_members; i++)
    member_clear (&roster->members[i]);
  g_free (roster->members);
  cd_queue_spec_free (roster->spec);
  g_free (roster->queue_id);
  g_free (roster);
}

static gboolean
member_from_json (JsonNode *node, CdRosterMember *m, GError **error)
{
  JsonObject *o = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  JsonNode *skills = o ? json_object_get_member (o, "skills") : NULL;
  JsonNode *languages = o ? json_object_get_member (o, "languages") : NULL;
  JsonNode *level = o ? json_object_get_member (o, "level") : NULL;
  const char *id = o ? json_object_get_string_member_with_default (o, "id", NULL) : NULL;

  if (id == NULL || level == NULL || json_node_get_value_type (level) != G_TYPE_INT64 ||
      (skills && !JSON_NODE_HOLDS_OBJECT (skills)) ||
      (languages && !JSON_NODE_HOLDS_ARRAY (languages))) {
    g_set_error_literal (error, CD_QUEUE_SPEC_ERROR, CD_QUEUE_SPEC_ERROR_INVALID,
                         "a member needs an id, a level, skills as an object and languages as "
                         "an array");
    return FALSE;
  }
  m->id = g_strdup (id);
  m->attributes.level = (int) json_node_get_int (level);
  if (skills) {
    JsonObject *map = json_node_get_object (skills);
    g_autoptr (GList) names = json_object_get_members (map);
    CdRuleSkill *out = g_new0 (CdRuleSkill, MAX (g_list_length (names), 1));
    guint n = 0;

    for (GList *l = names; l; l = l->next) {
      JsonNode *value = json_object_get_member (map, l->data);
      if (json_node_get_value_type (value) != G_TYPE_INT64)
        continue;
      out[n].name = g_strdup (l->data);
      out[n++].level = (int) json_node_get_int (value);
    }
    m->attributes.skills = out;
    m->attributes.n_skills = n;
  }
  if (languages) {
    JsonArray *list = json_node_get_array (languages);
    guint len = json_array_get_length (list);
    char **out = g_new0 (char *, len + 1);
    guint n = 0;

    for (guint i = 0; i < len; i++) {
      const char *text = json_node_get_string (json_array_get_element (list, i));
      if (text)
        out[n++] = g_ascii_strdown (text, -1);
    }
    m->attributes.languages = (const char *const *) out;
    m->attributes.n_languages = n;
  }
  return TRUE;
}

static int
compare_members (gconstpointer a, gconstpointer b)
{
  return strcmp (((const CdRosterMember *) a)->id, ((const CdRosterMember *) b)->id);
}

/**
 * cd_queue_roster_new:
 *
 * Returns: (transfer full) (nullable): the roster, or NULL with @error
 */
CdQueueRoster *
cd_queue_roster_new (JsonObject *object, GError **error)
{
  g_autoptr (CdQueueRoster) roster = g_new0 (CdQueueRoster, 1);
  const char *id = json_object_get_string_member_with_default (object, "id", NULL);
  JsonNode *definition = json_object_get_member (object, "definition");
  JsonNode *members = json_object_get_member (object, "members");
  JsonArray *list;

  if (id == NULL || definition == NULL || !JSON_NODE_HOLDS_OBJECT (definition) ||
      (members && !JSON_NODE_HOLDS_ARRAY (members))) {
    g_set_error_literal (error, CD_QUEUE_SPEC_ERROR, CD_QUEUE_SPEC_ERROR_INVALID,
                         "a roster needs an id, a definition and a list of members");
    return NULL;
  }
  roster->queue_id = g_strdup (id);
  roster->spec = cd_queue_spec_parse (json_node_get_object (definition), error);
  if (roster->spec == NULL)
    return NULL;
  roster->policy.strategy = roster->spec->strategy;
  roster->policy.required = roster->spec->skills;
  roster->policy.n_required = roster->spec->n_skills;
  roster->policy.languages = (const char *const *) roster->spec->languages;
  roster->policy.n_languages = roster->spec->n_languages;
  roster->policy.rule = roster->spec->rule;
  list = members ? json_node_get_array (members) : NULL;
  roster->members = g_new0 (CdRosterMember, MAX (list ? json_array_get_length (list) : 0, 1));
  for (guint i = 0; list && i < json_array_get_length (list); i++) {
    if (!member_from_json (json_array_get_element (list, i), &roster->members[i], error))
      return NULL;
    roster->n_members++;
  }
  qsort (roster->members, roster->n_members, sizeof *roster->members, compare_members);
  return g_steal_pointer (&roster);
}

/**
 * cd_queue_roster_parse:
 *
 * Returns: (transfer full) (nullable): the roster, or NULL with @error
 */
CdQueueRoster *
cd_queue_roster_parse (const char *text, gsize length, GError **error)
{
  g_autoptr (JsonObject) object = cd_json_parse_object (text, length, NULL, error);

  return object ? cd_queue_roster_new (object, error) : NULL;
}

/**
 * cd_queue_roster_decide:
 *
 * Returns: (transfer full): the explanation
 */
JsonObject *
cd_queue_roster_decide (const CdQueueRoster *roster, CdMemberLookup lookup, gpointer user_data,
                        const CdRuleCall *call, guint *cursor, guint32 random_value, gint64 now_us,
                        GPtrArray *chosen)
{
  guint n = roster->n_members;
  g_autofree CdCandidate *candidates = g_new0 (CdCandidate, MAX (n, 1));
  g_autofree gboolean *online = g_new0 (gboolean, MAX (n, 1));
  g_autofree gboolean *picked = g_new0 (gboolean, MAX (n, 1));
  JsonObject *explanation = json_object_new ();
  JsonArray *outcomes = json_array_new ();
  JsonArray *chosen_ids = json_array_new ();
  CdDecision decision;

  for (guint i = 0; i < n; i++) {
    CdMemberNow now = { 0 };

    online[i] = lookup (roster->members[i].id, &now, user_data) && now.online;
    candidates[i].id = roster->members[i].id;
    candidates[i].free = online[i] && now.free;
    candidates[i].declined = now.declined;
    candidates[i].idle_since_us = now.idle_since_us;
    candidates[i].calls_taken = now.calls_taken;
    candidates[i].attributes = roster->members[i].attributes;
  }
  cd_decision_init (&decision, n);
  cd_strategy_choose (&roster->policy, candidates, n, call, cursor, random_value, &decision);
  for (guint k = 0; k < decision.n_chosen; k++) {
    guint i = decision.chosen[k];
    picked[i] = TRUE;
    g_ptr_array_add (chosen, roster->members[i].id);
    json_array_add_string_element (chosen_ids, roster->members[i].id);
  }
  for (guint i = 0; i < n; i++) {
    JsonObject *o = json_object_new ();
    const char *outcome = picked[i]    ? "chosen"
                          : !online[i] ? "offline"
                                       : cd_skip_to_string (decision.skips[i]);

    json_object_set_string_member (o, "agent_id", roster->members[i].id);
    json_object_set_int_member (o, "level", roster->members[i].attributes.level);
    json_object_set_string_member (o, "outcome", outcome);
    if (candidates[i].free) {
      /* what the strategies compare */
      json_object_set_int_member (o, "idle_s",
                                  MAX (now_us - candidates[i].idle_since_us, 0) / G_USEC_PER_SEC);
      json_object_set_int_member (o, "calls_taken", candidates[i].calls_taken);
    }
    if (picked[i] && roster->policy.strategy == CD_STRATEGY_SKILLS)
      json_object_set_int_member (o, "skill_score", decision.skill_score);
    json_array_add_object_element (outcomes, o);
  }
  json_object_set_string_member (explanation, "queue_id", roster->queue_id);
  json_object_set_string_member (explanation, "strategy",
                                 cd_strategy_to_string (roster->policy.strategy));
  json_object_set_int_member (explanation, "members", n);
  json_object_set_int_member (explanation, "eligible", decision.n_eligible);
  json_object_set_array_member (explanation, "chosen", chosen_ids);
  json_object_set_array_member (explanation, "outcomes", outcomes);
  cd_decision_clear (&decision);
  return explanation;
}
