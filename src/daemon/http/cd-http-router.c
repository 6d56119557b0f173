/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A linear router: few routes, matched segment by segment. Literal segments
 * win over {name} segments when two patterns could match one path. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-http-router.h"

#include "cd-http-problem.h"

#include <string.h>

#define MAX_SEGMENTS 16

typedef struct {
  char *method;
  char *pattern;
  char **segments;
  guint n_segments;
  guint n_literals;
  CdHttpHandler handler;
  gpointer user_data;
} Route;

struct _CdHttpRouter {
  GPtrArray *routes;
};

static void
route_free (gpointer data)
{
  Route *r = data;

  g_free (r->method);
  g_free (r->pattern);
  g_strfreev (r->segments);
  g_free (r);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Route, route_free)

CdHttpRouter *
cd_http_router_new (void)
{
  CdHttpRouter *router = g_new0 (CdHttpRouter, 1);

  router->routes = g_ptr_array_new_with_free_func (route_free);
  return router;
}

void
cd_http_router_free (CdHttpRouter *router)
{
  if (router == NULL)
    return;
  g_ptr_array_unref (router->routes);
  g_free (router);
}

static gboolean
is_param (const char *segment)
{
  gsize n = strlen (segment);

  return n > 2 && segment[0] == '{' && segment[n - 1] == '}';
}

/* "/a/b/" and "/a//b" are not the same path as "/a/b": refuse rather than guess */
static char **
split_path (const char *path)
{
  if (path[0] != '/')
    return NULL;
  if (path[1] == '\0')
    return g_new0 (char *, 1);
  return g_strsplit (path + 1, "/", MAX_SEGMENTS + 1);
}

/**
 * cd_http_router_add:
 * @pattern: like /api/v1/companies/{id}; each {name} matches one segment
 */
gboolean
cd_http_router_add (CdHttpRouter *router, const char *method, const char *pattern,
                    CdHttpHandler handler, gpointer user_data, GError **error)
{
  g_autoptr (Route) r = NULL;
  g_auto (GStrv) segments = split_path (pattern);

  if (segments == NULL || g_strv_length (segments) > MAX_SEGMENTS) {
    g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INTERNAL, "bad route pattern %s", pattern);
    return FALSE;
  }
  for (guint i = 0; i < router->routes->len; i++) {
    Route *other = g_ptr_array_index (router->routes, i);
    if (g_str_equal (other->method, method) && g_str_equal (other->pattern, pattern)) {
      g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INTERNAL, "route %s %s is already taken",
                   method, pattern);
      return FALSE;
    }
  }
  r = g_new0 (Route, 1);
  r->method = g_strdup (method);
  r->pattern = g_strdup (pattern);
  r->n_segments = g_strv_length (segments);
  for (guint i = 0; i < r->n_segments; i++) {
    if (segments[i][0] == '\0' && r->n_segments > 0) {
      g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INTERNAL, "empty segment in %s", pattern);
      return FALSE;
    }
    if (!is_param (segments[i]))
      r->n_literals++;
  }
  r->segments = g_steal_pointer (&segments);
  r->handler = handler;
  r->user_data = user_data;
  g_ptr_array_add (router->routes, g_steal_pointer (&r));
  return TRUE;
}

static gboolean
route_matches (const Route *r, char **segments, guint n_segments, GHashTable *params)
{
  if (r->n_segments != n_segments)
    return FALSE;
  for (guint i = 0; i < n_segments; i++) {
    if (is_param (r->segments[i])) {
      if (segments[i][0] == '\0')
        return FALSE;
      if (params) {
        gsize n = strlen (r->segments[i]);
        char *decoded = g_uri_unescape_string (segments[i], "/");
        if (decoded == NULL)
          return FALSE;
        g_hash_table_insert (params, g_strndup (r->segments[i] + 1, n - 2), decoded);
      }
    } else if (!g_str_equal (r->segments[i], segments[i])) {
      return FALSE;
    }
  }
  return TRUE;
}

/**
 * cd_http_router_match:
 * @pattern: (out): the matched route's pattern
 * @params: (out) (transfer full): the {name} values
 * @allowed: (out) (transfer full): for %CD_ROUTE_NO_METHOD, the Allow header value
 */
CdRouteResult
cd_http_router_match (CdHttpRouter *router, const char *method, const char *path,
                      const char **pattern, CdHttpHandler *handler, gpointer *user_data,
                      GHashTable **params, char **allowed)
{
  g_auto (GStrv) segments = split_path (path);
  g_autoptr (GString) allow = NULL;
  Route *best = NULL;
  guint n_segments;

  if (segments == NULL)
    return CD_ROUTE_NO_PATH;
  n_segments = g_strv_length (segments);
  if (n_segments > MAX_SEGMENTS)
    return CD_ROUTE_NO_PATH;
  for (guint i = 0; i < n_segments; i++) {
    if (segments[i][0] == '\0')
      return CD_ROUTE_NO_PATH;
  }

  for (guint i = 0; i < router->routes->len; i++) {
    Route *r = g_ptr_array_index (router->routes, i);
    if (!route_matches (r, segments, n_segments, NULL))
      continue;
    if (g_str_equal (r->method, method) ||
        (g_str_equal (method, "HEAD") && g_str_equal (r->method, "GET"))) {
      if (best == NULL || r->n_literals > best->n_literals)
        best = r;
    } else {
      if (allow == NULL)
        allow = g_string_new (r->method);
      else if (!strstr (allow->str, r->method))
        g_string_append_printf (allow, ", %s", r->method);
    }
  }
  if (best != NULL) {
    GHashTable *values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
    if (!route_matches (best, segments, n_segments, values)) {
      g_hash_table_unref (values);
      return CD_ROUTE_NO_PATH;
    }
    *pattern = best->pattern;
    *handler = best->handler;
    *user_data = best->user_data;
    *params = values;
    return CD_ROUTE_FOUND;
  }
  if (allow != NULL) {
    *allowed = g_string_free (g_steal_pointer (&allow), FALSE);
    return CD_ROUTE_NO_METHOD;
  }
  return CD_ROUTE_NO_PATH;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

/**
 * cd_http_router_list:
 *
 * Returns: (transfer full): "METHOD PATTERN" of every route, sorted
 */
GStrv
cd_http_router_list (CdHttpRouter *router)
{
  GPtrArray *out = g_ptr_array_new ();

  for (guint i = 0; i < router->routes->len; i++) {
    Route *r = g_ptr_array_index (router->routes, i);
    g_ptr_array_add (out, g_strdup_printf ("%s %s", r->method, r->pattern));
  }
  g_ptr_array_sort (out, compare_strings);
  g_ptr_array_add (out, NULL);
  return (GStrv) g_ptr_array_free (out, FALSE);
}
