/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Field-by-field validation of JSON bodies: unknown fields refused, types
 * checked, lengths bounded; every error names the field. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-http-fields.h"

#include "../../common/cd-json.h"
#include "../auth/cd-jwt.h"
#include "cd-http-problem.h"

#include <string.h>

#define MAX_DEPTH 8

gboolean
cd_is_email (const char *text)
{
  const char *at;
  gsize n;

  if (text == NULL)
    return FALSE;
  n = strlen (text);
  if (n < 3 || n > 254 || !g_utf8_validate (text, -1, NULL))
    return FALSE;
  at = strchr (text, '@');
  if (at == NULL || at == text || at[1] == '\0' || strchr (at + 1, '@') != NULL || at - text > 64)
    return FALSE;
  for (const char *p = text; *p; p++) {
    if ((guchar) *p <= ' ' || *p == 0x7f || *p == '<' || *p == '>' || *p == '"' || *p == ',')
      return FALSE;
  }
  return strchr (at + 1, '.') != NULL && text[n - 1] != '.';
}

static gboolean
field_error (GError **error, const char *name, const char *problem)
{
  g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, "field '%s': %s", name, problem);
  return FALSE;
}

static const CdField *
find_field (const CdField *fields, gsize n, const char *name)
{
  for (gsize i = 0; i < n; i++) {
    if (g_str_equal (fields[i].name, name))
      return &fields[i];
  }
  return NULL;
}

static gboolean
check_string (JsonNode *node, const CdField *f, GError **error)
{
  const char *s;
  glong length;

  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_STRING)
    return field_error (error, f->name, "must be a string");
  s = json_node_get_string (node);
  if (f->type == CD_FIELD_SECRET) {
    if ((gint64) strlen (s) < f->min || (gint64) strlen (s) > f->max) {
      g_autofree char *why = g_strdup_printf (
          "must have %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " bytes", f->min, f->max);
      return field_error (error, f->name, why);
    }
    return TRUE;
  }
  for (const char *p = s; *p; p++) {
    if ((guchar) *p < 0x20 && *p != '\n' && *p != '\t' && !(*p == '\r' && f->type == CD_FIELD_TEXT))
      return field_error (error, f->name, "must not contain control characters");
  }
  if (f->type == CD_FIELD_EMAIL)
    return cd_is_email (s) ? TRUE : field_error (error, f->name, "is not an email address");
  if (f->type == CD_FIELD_UUID)
    return cd_is_uuid (s) ? TRUE : field_error (error, f->name, "is not a UUID");
  length = g_utf8_strlen (s, -1);
  if (length < f->min || length > f->max) {
    g_autofree char *why = g_strdup_printf (
        "must have %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " characters", f->min, f->max);
    return field_error (error, f->name, why);
  }
  return TRUE;
}

/**
 * cd_fields_validate:
 * @fields: (array length=n_fields): what @object may and must hold
 *
 * Returns: whether @object matches; @error names the first bad field
 */
gboolean
cd_fields_validate (JsonObject *object, const CdField *fields, gsize n_fields, GError **error)
{
  JsonObjectIter iter;
  const char *name;
  JsonNode *node;

  json_object_iter_init_ordered (&iter, object);
  while (json_object_iter_next_ordered (&iter, &name, &node)) {
    const CdField *f = find_field (fields, n_fields, name);
    if (f == NULL) {
      g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                   "field '%.64s' is not known here", name);
      return FALSE;
    }
    /* null means nothing here: leave the field out instead */
    if (JSON_NODE_HOLDS_NULL (node))
      return field_error (error, f->name, "must not be null (leave the field out instead)");
    switch (f->type) {
    case CD_FIELD_STRING:
    case CD_FIELD_TEXT:
    case CD_FIELD_EMAIL:
    case CD_FIELD_SECRET:
    case CD_FIELD_UUID:
      if (!check_string (node, f, error))
        return FALSE;
      break;
    case CD_FIELD_INT: {
      gint64 v;
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64)
        return field_error (error, f->name, "must be a whole number");
      v = json_node_get_int (node);
      if (v < f->min || v > f->max) {
        g_autofree char *why = g_strdup_printf (
            "must be from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, f->min, f->max);
        return field_error (error, f->name, why);
      }
      break;
    }
    case CD_FIELD_BOOL:
      if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_BOOLEAN)
        return field_error (error, f->name, "must be true or false");
      break;
    case CD_FIELD_STRING_ARRAY: {
      JsonArray *array;
      guint n;
      if (!JSON_NODE_HOLDS_ARRAY (node))
        return field_error (error, f->name, "must be an array of strings");
      array = json_node_get_array (node);
      n = json_array_get_length (array);
      if (n < f->min || n > f->max) {
        g_autofree char *why = g_strdup_printf (
            "must have %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " elements", f->min, f->max);
        return field_error (error, f->name, why);
      }
      for (guint i = 0; i < n; i++) {
        CdField element = { f->name, CD_FIELD_STRING, TRUE, 1, 200 };
        if (!check_string (json_array_get_element (array, i), &element, error))
          return FALSE;
      }
      break;
    }
    case CD_FIELD_OBJECT: {
      guint n;
      if (!JSON_NODE_HOLDS_OBJECT (node))
        return field_error (error, f->name, "must be an object");
      n = json_object_get_size (json_node_get_object (node));
      if (n < f->min || n > f->max) {
        g_autofree char *why = g_strdup_printf (
            "must have %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT " members", f->min, f->max);
        return field_error (error, f->name, why);
      }
      break;
    }
    default:
      g_assert_not_reached ();
    }
  }
  for (gsize i = 0; i < n_fields; i++) {
    if (fields[i].required && !json_object_has_member (object, fields[i].name))
      return field_error (error, fields[i].name, "is required");
  }
  return TRUE;
}

/**
 * cd_http_request_read_json:
 *
 * Reads the body as a JSON object (Content-Type application/json, bounded
 * depth, no duplicate keys) and validates it against @fields.
 *
 * Returns: (transfer full): the object
 */
JsonObject *
cd_http_request_read_json (CdHttpRequest *request, const CdField *fields, gsize n_fields,
                           GError **error)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (request->msg);
  const char *type = soup_message_headers_get_content_type (headers, NULL);
  g_autoptr (GBytes) body = NULL;
  g_autoptr (JsonObject) object = NULL;
  CdJsonLimits limits = { 0, MAX_DEPTH, FALSE };

  if (type == NULL || g_ascii_strcasecmp (type, "application/json") != 0) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_UNSUPPORTED_MEDIA_TYPE,
                         "send the body as Content-Type: application/json");
    return NULL;
  }
  body = soup_message_body_flatten (soup_server_message_get_request_body (request->msg));
  object =
      cd_json_parse_object (g_bytes_get_data (body, NULL), g_bytes_get_size (body), &limits, error);
  if (object == NULL)
    return NULL;
  if (!cd_fields_validate (object, fields, n_fields, error))
    return NULL;
  return g_steal_pointer (&object);
}
