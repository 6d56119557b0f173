/* SPDX-License-Identifier: GPL-3.0-or-later */
/* docs/api/openapi.yaml describes exactly the routes the daemon serves:
 * every route is documented, and every documented operation exists. */

#include "cd-test-harness.h"

#include <string.h>

/* "METHOD /path" for every operation: paths at two spaces, methods at four. */
static GHashTable *
documented_operations (void)
{
  g_autofree char *path =
      g_test_build_filename (G_TEST_DIST, "..", "docs", "api", "openapi.yaml", NULL);
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;
  GHashTable *ops = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autofree char *current = NULL;
  gboolean in_paths = FALSE;
  static const char *methods[] = { "get",  "put",   "post",  "delete", "options",
                                   "head", "patch", "trace", NULL };

  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  lines = g_strsplit (text, "\n", -1);
  for (gsize i = 0; lines[i]; i++) {
    const char *l = lines[i];
    if (l[0] != ' ' && l[0] != '\0' && l[0] != '#') {
      in_paths = g_str_has_prefix (l, "paths:");
      continue;
    }
    if (!in_paths)
      continue;
    if (g_str_has_prefix (l, "  /") && g_str_has_suffix (l, ":")) {
      g_free (current);
      current = g_strndup (l + 2, strlen (l) - 3);
    } else if (current && g_str_has_prefix (l, "    ") && l[4] != ' ') {
      g_autofree char *word = g_strndup (l + 4, strcspn (l + 4, ":"));
      if (g_strv_contains (methods, word)) {
        g_autofree char *upper = g_ascii_strup (word, -1);
        g_hash_table_add (ops, g_strdup_printf ("%s %s", upper, current));
      }
    }
  }
  return ops;
}

static GHashTable *
served_routes (void)
{
  const char *argv[] = { cd_test_daemon_binary (), "--print-routes", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);
  g_autofree char *out = NULL;
  g_auto (GStrv) lines = NULL;
  GHashTable *routes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  g_assert_no_error (error);
  g_assert_true (g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL, &error));
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_successful (p));
  lines = g_strsplit (out, "\n", -1);
  for (gsize i = 0; lines[i]; i++) {
    if (lines[i][0])
      g_hash_table_add (routes, g_strdup (lines[i]));
  }
  return routes;
}

static void
test_routes_match_document (void)
{
  g_autoptr (GHashTable) documented = documented_operations ();
  g_autoptr (GHashTable) served = served_routes ();
  GHashTableIter iter;
  gpointer key;
  guint missing = 0, extra = 0;

  g_assert_cmpuint (g_hash_table_size (served), >, 10);
  g_hash_table_iter_init (&iter, served);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    if (!g_hash_table_contains (documented, key)) {
      g_test_message ("served but not documented: %s", (char *) key);
      missing++;
    }
  }
  g_hash_table_iter_init (&iter, documented);
  while (g_hash_table_iter_next (&iter, &key, NULL)) {
    if (!g_hash_table_contains (served, key)) {
      g_test_message ("documented but not served: %s", (char *) key);
      extra++;
    }
  }
  g_assert_cmpuint (missing, ==, 0);
  g_assert_cmpuint (extra, ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/openapi/routes-match-document", test_routes_match_document);
  return g_test_run ();
}
