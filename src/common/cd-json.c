/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Bounded JSON parsing: a one-pass scan bounds size and depth and counts the
 * members of every object, so duplicate keys (which json-glib folds) are seen. */

#define G_LOG_DOMAIN "calldocker-json"

#include "cd-json.h"

#include <math.h>
#include <string.h>

G_DEFINE_QUARK (calldocker_json_error, cd_json_error)

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? that a double can hold.
 * Returns the offset just past the number, or 0 if it is malformed. */
static gsize
scan_number (const char *data, gsize length, gsize start)
{
  gsize i = start;
  char buf[64];
  double v;

  if (i < length && data[i] == '-')
    i++;
  if (i >= length || !g_ascii_isdigit (data[i]))
    return 0;
  if (data[i] == '0')
    i++;
  else
    while (i < length && g_ascii_isdigit (data[i]))
      i++;
  if (i < length && data[i] == '.') {
    i++;
    if (i >= length || !g_ascii_isdigit (data[i]))
      return 0;
    while (i < length && g_ascii_isdigit (data[i]))
      i++;
  }
  if (i < length && (data[i] == 'e' || data[i] == 'E')) {
    i++;
    if (i < length && (data[i] == '+' || data[i] == '-'))
      i++;
    if (i >= length || !g_ascii_isdigit (data[i]))
      return 0;
    while (i < length && g_ascii_isdigit (data[i]))
      i++;
  }
  if (i < length &&
      (g_ascii_isalnum (data[i]) || data[i] == '.' || data[i] == '-' || data[i] == '+'))
    return 0;
  /* json-glib reads this as a double or an int64 and prints large doubles in
   * a form that is not JSON ("1e+100.0"): numbers stay within JavaScript's
   * safe integer range, +-2^53 */
  if (i - start >= sizeof buf)
    return 0;
  memcpy (buf, data + start, i - start);
  buf[i - start] = '\0';
  v = g_ascii_strtod (buf, NULL);
  if (isinf (v) || isnan (v) || fabs (v) > 9007199254740992.0)
    return 0;
  /* nor small ones it would print as "1e-08.0": a double whose shortest
   * form has an exponent and no point */
  if (memchr (buf, '.', i - start) || memchr (buf, 'e', i - start) ||
      memchr (buf, 'E', i - start)) {
    char printed[G_ASCII_DTOSTR_BUF_SIZE];

    g_ascii_dtostr (printed, sizeof printed, v);
    if ((strchr (printed, 'e') || strchr (printed, 'E')) && !strchr (printed, '.'))
      return 0;
  }
  return i;
}

typedef struct {
  gboolean is_object;
  guint index; /* into member_counts, objects only */
} ScanFrame;

/* Scans @data and records, for each object in document order, its number of
 * members. Does not validate the grammar: json-glib does that afterwards. */
static gboolean
scan_structure (const char *data, gsize length, guint max_depth, GArray *member_counts,
                GError **error)
{
  g_autoptr (GArray) stack = g_array_new (FALSE, FALSE, sizeof (ScanFrame));
  gboolean in_string = FALSE;
  gboolean value_seen = FALSE; /* inside the innermost object since '{' or ',' */
  gsize bad_at = 0;

  for (gsize i = 0; i < length; i++) {
    char c = data[i];

    if (in_string) {
      if (c == '\\') {
        /* only JSON's escapes: json-glib takes more */
        if (i + 1 >= length || !strchr ("\"\\/bfnrtu", data[i + 1]) || data[i + 1] == '\0') {
          bad_at = i;
          goto unexpected;
        }
        if (data[i + 1] == 'u') {
          for (gsize k = 2; k < 6; k++) {
            if (i + k >= length || !g_ascii_isxdigit (data[i + k])) {
              bad_at = i;
              goto unexpected;
            }
          }
        }
        i++;
      } else if (c == '"') {
        in_string = FALSE;
      } else if ((guchar) c < 0x20) {
        bad_at = i;
        goto unexpected;
      }
      continue;
    }

    switch (c) {
    case '"':
      in_string = TRUE;
      value_seen = TRUE;
      break;
    case '{':
    case '[': {
      ScanFrame frame = { c == '{', 0 };
      if (max_depth > 0 && stack->len >= max_depth)
        goto too_deep;
      value_seen = TRUE;
      if (frame.is_object) {
        guint zero = 0;
        frame.index = member_counts->len;
        g_array_append_val (member_counts, zero);
      }
      g_array_append_val (stack, frame);
      value_seen = FALSE;
      break;
    }
    case '}':
    case ']':
      if (stack->len > 0) {
        ScanFrame *top = &g_array_index (stack, ScanFrame, stack->len - 1);
        if (top->is_object && value_seen)
          g_array_index (member_counts, guint, top->index)++;
        g_array_set_size (stack, stack->len - 1);
      }
      value_seen = TRUE;
      break;
    case ',':
      if (stack->len > 0) {
        ScanFrame *top = &g_array_index (stack, ScanFrame, stack->len - 1);
        if (top->is_object)
          g_array_index (member_counts, guint, top->index)++;
      }
      value_seen = FALSE;
      break;
    case ' ':
    case '\t':
    case '\n':
    case '\r':
    case ':':
      break;
    default:
      /* json-glib's scanner also takes single quotes, comments, "01", "1."
       * and more, and prints what overflows as "inf": outside strings, only
       * JSON's own tokens pass */
      if (c == '-' || g_ascii_isdigit (c)) {
        gsize end = scan_number (data, length, i);
        if (end == 0) {
          bad_at = i;
          goto bad_number;
        }
        i = end - 1;
      } else if (c == 't' || c == 'f' || c == 'n') {
        const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
        gsize n = strlen (word);
        if (length - i < n || memcmp (data + i, word, n) != 0) {
          bad_at = i;
          goto unexpected;
        }
        i += n - 1;
      } else {
        bad_at = i;
        goto unexpected;
      }
      value_seen = TRUE;
      break;
    }
  }
  if (in_string) {
    g_set_error_literal (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX,
                         "invalid JSON: unterminated string");
    return FALSE;
  }
  return TRUE;

unexpected:
  if (g_ascii_isprint (data[bad_at]))
    g_set_error (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX,
                 "invalid JSON: unexpected character '%c' at offset %" G_GSIZE_FORMAT, data[bad_at],
                 bad_at);
  else
    g_set_error (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX,
                 "invalid JSON: unexpected byte 0x%02x at offset %" G_GSIZE_FORMAT,
                 (guchar) data[bad_at], bad_at);
  return FALSE;

bad_number:
  g_set_error (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX,
               "invalid JSON: malformed or out-of-range number at offset %" G_GSIZE_FORMAT, bad_at);
  return FALSE;

too_deep:
  g_set_error (error, CD_JSON_ERROR, CD_JSON_ERROR_TOO_DEEP, "JSON nests deeper than %u levels",
               max_depth);
  return FALSE;
}

/* Walks objects in document order (pre-order, members in order) and compares
 * their sizes with the scan's counts. */
static gboolean
check_members (JsonNode *node, const GArray *member_counts, guint *next, const char **duplicate_in)
{
  switch (JSON_NODE_TYPE (node)) {
  case JSON_NODE_OBJECT: {
    JsonObject *object = json_node_get_object (node);
    guint index = (*next)++;
    JsonObjectIter iter;
    JsonNode *member;
    const char *name;

    if (index >= member_counts->len ||
        g_array_index (member_counts, guint, index) != json_object_get_size (object)) {
      *duplicate_in = "object";
      return FALSE;
    }
    json_object_iter_init_ordered (&iter, object);
    while (json_object_iter_next_ordered (&iter, &name, &member)) {
      if (!check_members (member, member_counts, next, duplicate_in))
        return FALSE;
    }
    return TRUE;
  }
  case JSON_NODE_ARRAY: {
    JsonArray *array = json_node_get_array (node);
    guint n = json_array_get_length (array);
    for (guint i = 0; i < n; i++) {
      if (!check_members (json_array_get_element (array, i), member_counts, next, duplicate_in))
        return FALSE;
    }
    return TRUE;
  }
  case JSON_NODE_VALUE:
  case JSON_NODE_NULL:
  default:
    return TRUE;
  }
}

/**
 * cd_json_parse_bounded:
 * @data: the text, not necessarily nul-terminated
 * @length: its length in bytes
 * @limits: (nullable): bounds; %NULL means 32 levels, any size, no duplicates
 * @error: return location for a #CD_JSON_ERROR
 *
 * Returns: (transfer full): the parsed root, or %NULL with @error set
 */
JsonNode *
cd_json_parse_bounded (const char *data, gsize length, const CdJsonLimits *limits, GError **error)
{
  CdJsonLimits defaults = { 0, CD_JSON_DEFAULT_MAX_DEPTH, FALSE };
  g_autoptr (GArray) member_counts = g_array_new (FALSE, FALSE, sizeof (guint));
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) parse_error = NULL;
  const char *duplicate_in = NULL;
  JsonNode *root;
  guint next = 0;

  if (limits == NULL)
    limits = &defaults;

  if (limits->max_bytes > 0 && length > limits->max_bytes) {
    g_set_error (error, CD_JSON_ERROR, CD_JSON_ERROR_TOO_LARGE,
                 "JSON text of %" G_GSIZE_FORMAT " bytes exceeds the limit of %" G_GSIZE_FORMAT,
                 length, limits->max_bytes);
    return NULL;
  }
  if (length > G_MAXSSIZE) {
    g_set_error_literal (error, CD_JSON_ERROR, CD_JSON_ERROR_TOO_LARGE, "JSON text too large");
    return NULL;
  }
  if (memchr (data, '\0', length) != NULL) {
    g_set_error_literal (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX,
                         "JSON text contains a NUL byte");
    return NULL;
  }
  if (!scan_structure (data, length, limits->max_depth, member_counts, error))
    return NULL;

  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, (gssize) length, &parse_error)) {
    g_set_error (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX, "invalid JSON: %s",
                 parse_error->message);
    return NULL;
  }
  root = json_parser_get_root (parser);
  if (root == NULL) {
    g_set_error_literal (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX, "empty JSON text");
    return NULL;
  }
  if (!limits->allow_duplicate_keys && !check_members (root, member_counts, &next, &duplicate_in)) {
    g_set_error_literal (error, CD_JSON_ERROR, CD_JSON_ERROR_DUPLICATE_KEY,
                         "JSON object has a duplicate key");
    return NULL;
  }
  return json_node_copy (root);
}

/**
 * cd_json_parse_object:
 *
 * As cd_json_parse_bounded(), and the root must be an object.
 *
 * Returns: (transfer full): the root object
 */
JsonObject *
cd_json_parse_object (const char *data, gsize length, const CdJsonLimits *limits, GError **error)
{
  g_autoptr (JsonNode) root = cd_json_parse_bounded (data, length, limits, error);

  if (root == NULL)
    return NULL;
  if (!JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error_literal (error, CD_JSON_ERROR, CD_JSON_ERROR_NOT_OBJECT,
                         "JSON text is not an object");
    return NULL;
  }
  return json_object_ref (json_node_get_object (root));
}

/**
 * cd_json_to_string:
 * Returns: (transfer full): compact JSON text of @node
 */
char *
cd_json_to_string (JsonNode *node)
{
  g_autoptr (JsonGenerator) generator = json_generator_new ();

  json_generator_set_root (generator, node);
  return json_generator_to_data (generator, NULL);
}
