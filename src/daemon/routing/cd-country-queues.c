/* SPDX-License-Identifier: GPL-3.0-or-later */

#define G_LOG_DOMAIN "calldocker-routing"

#include "cd-country-queues.h"

#include <string.h>

G_DEFINE_QUARK (cd - country - queues - error - quark, cd_country_queues_error)

gboolean
cd_country_code_normalize (const char *code, char out[3])
{
  out[0] = '\0';
  if (code == NULL || !g_ascii_isalpha (code[0]) || !g_ascii_isalpha (code[1]) || code[2] != '\0' ||
      g_ascii_strcasecmp (code, "XX") == 0)
    return FALSE;
  out[0] = g_ascii_toupper (code[0]);
  out[1] = g_ascii_toupper (code[1]);
  out[2] = '\0';
  return TRUE;
}

JsonObject *
cd_country_queues_parse (JsonObject *map, GError **error)
{
  g_autoptr (JsonObject) canonical = json_object_new ();
  JsonObjectIter iter;
  const char *code;
  JsonNode *queue;

  if (json_object_get_size (map) > CD_COUNTRY_QUEUES_MAX) {
    g_set_error (error, CD_COUNTRY_QUEUES_ERROR, CD_COUNTRY_QUEUES_ERROR_INVALID,
                 "countries: at most %u countries", CD_COUNTRY_QUEUES_MAX);
    return NULL;
  }
  json_object_iter_init_ordered (&iter, map);
  while (json_object_iter_next_ordered (&iter, &code, &queue)) {
    char country[3];
    g_autofree char *id = NULL;

    if (!cd_country_code_normalize (code, country)) {
      /* (at most 40 bytes of it, cut where UTF-8 allows) */
      g_autofree char *shown = g_utf8_make_valid (code, MIN (strlen (code), 40));

      g_set_error (error, CD_COUNTRY_QUEUES_ERROR, CD_COUNTRY_QUEUES_ERROR_INVALID,
                   "countries.%s: not a two-letter country code (ISO 3166-1 alpha-2, "
                   "e.g. \"DE\")",
                   shown);
      return NULL;
    }
    if (!JSON_NODE_HOLDS_VALUE (queue) || json_node_get_value_type (queue) != G_TYPE_STRING ||
        !g_uuid_string_is_valid (json_node_get_string (queue))) {
      g_set_error (error, CD_COUNTRY_QUEUES_ERROR, CD_COUNTRY_QUEUES_ERROR_INVALID,
                   "countries.%s: the value is a queue id (UUID)", country);
      return NULL;
    }
    if (json_object_has_member (canonical, country)) {
      g_set_error (error, CD_COUNTRY_QUEUES_ERROR, CD_COUNTRY_QUEUES_ERROR_INVALID,
                   "countries.%s: listed twice", country);
      return NULL;
    }
    id = g_ascii_strdown (json_node_get_string (queue), -1);
    json_object_set_string_member (canonical, country, id);
  }
  return g_steal_pointer (&canonical);
}
