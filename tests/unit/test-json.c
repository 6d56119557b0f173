/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Bounded JSON parsing: size, depth, duplicate keys, NUL bytes. */

#include "cd-json.h"

#include <string.h>

static JsonNode *
parse (const char *text, gsize max_bytes, guint max_depth, GError **error)
{
  CdJsonLimits limits = { max_bytes, max_depth, FALSE };

  return cd_json_parse_bounded (text, strlen (text), &limits, error);
}

static void
test_accepts_valid (void)
{
  static const char *good[] = {
    "{}",
    "[]",
    "1",
    "\"s\"",
    "null",
    "{\"a\":1,\"b\":[1,2,{\"c\":\"}\"}]}",
    "{\"a\":{\"a\":{\"a\":1}}}",
    "[{\"x\":1},{\"x\":2}]",
    "{\"k\\\"\":1,\"k\":2}",
    "  {\"a\" : [ ] , \"b\" : { } }  ",
    "[-0.5e-3,123,0,1E+2,-7,9007199254740992,1.5e-300,0.000001]",
    "\"\\u00e9\\n\\/\"",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (good); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) node = parse (good[i], 0, 8, &error);
    g_test_message ("%s", good[i]);
    g_assert_no_error (error);
    g_assert_nonnull (node);
  }
}

static void
test_refuses_duplicates (void)
{
  static const char *dups[] = {
    "{\"role\":\"agent\",\"role\":\"superadmin\"}",
    "{\"a\":{\"x\":1,\"x\":2}}",
    "[{\"ok\":1},{\"id\":1,\"id\":2}]",
    "{\"a\":1,\"\\u0061\":2}",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (dups); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) node = parse (dups[i], 0, 8, &error);
    g_test_message ("%s", dups[i]);
    g_assert_null (node);
    g_assert_error (error, CD_JSON_ERROR, CD_JSON_ERROR_DUPLICATE_KEY);
  }
}

static void
test_refuses_deep (void)
{
  g_autoptr (GString) deep = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = NULL;

  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  node = parse (deep->str, 0, 32, &error);
  g_assert_null (node);
  g_assert_error (error, CD_JSON_ERROR, CD_JSON_ERROR_TOO_DEEP);
  g_clear_error (&error);

  /* exactly at the limit is fine; brackets inside strings do not count */
  g_clear_pointer (&node, json_node_unref);
  node = parse ("[[[\"[[[[[[\"]]]", 0, 3, &error);
  g_assert_no_error (error);
  g_assert_nonnull (node);
}

static void
test_refuses_large (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = parse ("{\"a\":\"0123456789\"}", 10, 8, &error);

  g_assert_null (node);
  g_assert_error (error, CD_JSON_ERROR, CD_JSON_ERROR_TOO_LARGE);
}

static void
test_refuses_garbage (void)
{
  static const char *bad[] = {
    "",
    "{",
    "{\"a\":}",
    "[1,]",
    "{'a':1}",
    "nul",
    "nulll",
    "tru",
    "\"\\x\"",
    "01",
    "1.",
    "1.e5",
    "-",
    "+1",
    "-1e+100",
    "10000000000000000",
    "1e",
    "[1e999]",
    "0x10",
    "/* c */ 1",
    "# c\n1",
    "\"a\tb\"",
    "\"\\u12\"",
    "\"open",
    /* doubles json-glib would print as "1e-08.0", which is not JSON */
    "1e-8",
    "[1e-300]",
    "0.00000001",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonNode) node = parse (bad[i], 0, 8, &error);
    g_test_message ("%s", bad[i]);
    g_assert_null (node);
    g_assert_error (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX);
  }
}

static void
test_refuses_nul (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) node = cd_json_parse_bounded ("{\"a\":\"x\0y\"}", 11, NULL, &error);

  g_assert_null (node);
  g_assert_error (error, CD_JSON_ERROR, CD_JSON_ERROR_SYNTAX);
}

static void
test_object (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) object = cd_json_parse_object ("[1]", 3, NULL, &error);

  g_assert_null (object);
  g_assert_error (error, CD_JSON_ERROR, CD_JSON_ERROR_NOT_OBJECT);
  g_clear_error (&error);
  object = cd_json_parse_object ("{\"n\":5}", 7, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (json_object_get_int_member (object, "n"), ==, 5);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/json/accepts-valid", test_accepts_valid);
  g_test_add_func ("/json/refuses-duplicate-keys", test_refuses_duplicates);
  g_test_add_func ("/json/refuses-deep-nesting", test_refuses_deep);
  g_test_add_func ("/json/refuses-large", test_refuses_large);
  g_test_add_func ("/json/refuses-garbage", test_refuses_garbage);
  g_test_add_func ("/json/refuses-nul", test_refuses_nul);
  g_test_add_func ("/json/object", test_object);
  return g_test_run ();
}
