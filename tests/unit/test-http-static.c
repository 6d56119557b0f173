/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The daemon's own pages on loopback: only the plain files of their folder
 * (no dotfiles, links, FIFOs or subfolders), validators, a strict CSP. */

#include "cd-test-harness.h"
#include "http/cd-http-server.h"
#include "http/cd-http-static.h"

#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>

#define PAGE   "<!doctype html><title>check</title><script src=\"/call-check/app.js\"></script>"
#define SCRIPT "console.log('hi');\n"

typedef struct {
  char *data_dir; /* what CALLDOCKER_DATADIR names */
  CdMetrics *metrics;
  CdHttpServer *server;
  char *base;    /* http://127.0.0.1:PORT */
  char *address; /* 127.0.0.1:PORT */
} Fixture;

static void
write_file (const char *dir, const char *name, const char *text)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);

  g_assert_true (g_file_set_contents (path, text, -1, NULL));
}

/* data/web/call-check/ with what may be served and what may not */
static void
make_site (const char *data_dir)
{
  g_autofree char *site = g_build_filename (data_dir, "web", "call-check", NULL);
  g_autofree char *sub = g_build_filename (site, "sub", NULL);
  g_autofree char *link = g_build_filename (site, "link.js", NULL);
  g_autofree char *fifo = g_build_filename (site, "fifo.js", NULL);

  g_assert_cmpint (g_mkdir_with_parents (sub, 0700), ==, 0);
  write_file (site, "index.html", PAGE);
  write_file (site, "app.js", SCRIPT);
  write_file (site, ".hidden.js", "secret");
  write_file (site, "notes.txt", "not a served type");
  write_file (sub, "inner.js", "in a subfolder");
  write_file (data_dir, "secret.js", "outside the folder");
  g_assert_cmpint (symlink ("../../secret.js", link), ==, 0);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  GSList *uris;

  f->data_dir = cd_test_make_tmp_dir ("cd-static-XXXXXX");
  if (data == NULL)
    make_site (f->data_dir);
  g_setenv ("CALLDOCKER_DATADIR", f->data_dir, TRUE);
  f->metrics = cd_metrics_new ();
  f->server = cd_http_server_new (f->metrics, 1024);
  /* the link and the FIFO are logged ("not serving ..."), not served */
  g_assert_true (cd_http_static_register (f->server, &error));
  g_assert_no_error (error);
  g_assert_true (cd_http_server_listen (f->server, "127.0.0.1", 0, &error));
  uris = cd_http_server_get_uris (f->server);
  f->base = g_strdup_printf ("http://127.0.0.1:%d", g_uri_get_port (uris->data));
  f->address = g_strdup_printf ("127.0.0.1:%d", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->server);
  g_assert_finalize_object (f->metrics);
  cd_test_remove_tree (f->data_dir);
  g_unsetenv ("CALLDOCKER_DATADIR");
  g_free (f->data_dir);
  g_free (f->base);
  g_free (f->address);
}

static guint
request (Fixture *f, const char *method, const char *path, const char *const *headers, char **body,
         GHashTable **response_headers)
{
  g_autofree char *url = g_strconcat (f->base, path, NULL);

  return cd_test_http_request (method, url, NULL, NULL, 0, headers, body, response_headers);
}

static void
test_serves_page_and_files (Fixture *f, gconstpointer data)
{
  g_autofree char *body = NULL;
  g_autoptr (GHashTable) headers = NULL;
  g_autofree char *connect =
      g_strdup_printf ("connect-src 'self' ws://%s wss://%s", f->address, f->address);
  const char *csp;

  g_assert_cmpuint (request (f, "GET", "/call-check", NULL, &body, &headers), ==, 200);
  g_assert_cmpstr (body, ==, PAGE);
  g_assert_cmpstr (g_hash_table_lookup (headers, "content-type"), ==, "text/html; charset=utf-8");
  csp = g_hash_table_lookup (headers, "content-security-policy");
  g_assert_true (g_str_has_prefix (csp, "default-src 'none'; script-src 'self';"));
  g_assert_nonnull (strstr (csp, connect));
  g_assert_nonnull (strstr (csp, "frame-ancestors 'none'"));
  g_assert_null (strstr (csp, "unsafe"));
  g_assert_cmpstr (g_hash_table_lookup (headers, "x-content-type-options"), ==, "nosniff");
  g_assert_cmpstr (g_hash_table_lookup (headers, "cache-control"), ==, "no-cache");
  g_assert_nonnull (g_hash_table_lookup (headers, "etag"));
  g_assert_nonnull (g_hash_table_lookup (headers, "last-modified"));
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&headers, g_hash_table_unref);

  g_assert_cmpuint (request (f, "GET", "/call-check/index.html", NULL, &body, NULL), ==, 200);
  g_assert_cmpstr (body, ==, PAGE);
  g_clear_pointer (&body, g_free);
  g_assert_cmpuint (request (f, "GET", "/call-check/app.js?v=1", NULL, &body, &headers), ==, 200);
  g_assert_cmpstr (body, ==, SCRIPT);
  g_assert_cmpstr (g_hash_table_lookup (headers, "content-type"), ==,
                   "text/javascript; charset=utf-8");
  g_clear_pointer (&body, g_free);
  g_clear_pointer (&headers, g_hash_table_unref);

  /* HEAD: the headers without the body */
  g_assert_cmpuint (request (f, "HEAD", "/call-check/app.js", NULL, &body, &headers), ==, 200);
  g_assert_true (body == NULL || body[0] == '\0');
  g_assert_cmpstr (g_hash_table_lookup (headers, "content-length"), ==, "19");
}

static void
test_refuses_what_is_not_a_plain_file (Fixture *f, gconstpointer data)
{
  static const char *const not_served[] = {
    "/call-check/.hidden.js", /* a dotfile */
    "/call-check/notes.txt",  /* a type not served */
    "/call-check/link.js",    /* a symbolic link, to a file outside */
    "/call-check/fifo.js",    /* not a regular file */
    "/call-check/sub",        /* a folder */
    "/call-check/sub/inner.js", "/call-check/secret.js", "/call-check/",
    "/call-check/missing.js",   "/call-check/%2e%2e",
  };
  g_autoptr (GHashTable) headers = NULL;
  guint status;

  for (gsize i = 0; i < G_N_ELEMENTS (not_served); i++) {
    g_autofree char *body = NULL;
    g_test_message ("%s", not_served[i]);
    g_assert_cmpuint (request (f, "GET", not_served[i], NULL, &body, NULL), ==, 404);
    g_assert_null (strstr (body, "outside"));
  }
  /* an encoded separator is refused before any route (libsoup: 400) */
  status = request (f, "GET", "/call-check/..%2Fsecret.js", NULL, NULL, NULL);
  g_assert_true (status == 400 || status == 404);

  g_assert_cmpuint (request (f, "POST", "/call-check", NULL, NULL, &headers), ==, 405);
  g_assert_cmpstr (g_hash_table_lookup (headers, "allow"), ==, "GET");
  g_clear_pointer (&headers, g_hash_table_unref);
  g_assert_cmpuint (request (f, "DELETE", "/call-check/app.js", NULL, NULL, NULL), ==, 405);
}

static void
test_validators (Fixture *f, gconstpointer data)
{
  g_autoptr (GHashTable) headers = NULL;
  g_autofree char *etag = NULL;
  g_autofree char *weak = NULL;
  g_autofree char *list = NULL;
  g_autofree char *body = NULL;
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autoptr (GDateTime) later = g_date_time_add_days (now, 1);
  g_autoptr (GDateTime) earlier = g_date_time_add_days (now, -1);
  g_autofree char *later_text = soup_date_time_to_string (later, SOUP_DATE_HTTP);
  g_autofree char *earlier_text = soup_date_time_to_string (earlier, SOUP_DATE_HTTP);

  g_assert_cmpuint (request (f, "GET", "/call-check/app.js", NULL, NULL, &headers), ==, 200);
  etag = g_strdup (g_hash_table_lookup (headers, "etag"));
  weak = g_strconcat ("W/", etag, NULL);
  list = g_strconcat ("\"other\", ", etag, NULL);
  {
    const char *h[] = { "If-None-Match", etag, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, &body, NULL), ==, 304);
    g_assert_true (body == NULL || body[0] == '\0');
  }
  {
    const char *h[] = { "If-None-Match", weak, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, NULL, NULL), ==, 304);
  }
  {
    const char *h[] = { "If-None-Match", list, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, NULL, NULL), ==, 304);
  }
  {
    const char *h[] = { "If-None-Match", "\"other\"", NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, NULL, NULL), ==, 200);
  }
  {
    /* another file's tag is not this one's */
    const char *h[] = { "If-None-Match", etag, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check", h, NULL, NULL), ==, 200);
  }
  {
    const char *h[] = { "If-Modified-Since", later_text, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, NULL, NULL), ==, 304);
  }
  {
    const char *h[] = { "If-Modified-Since", earlier_text, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, NULL, NULL), ==, 200);
  }
  {
    /* If-None-Match wins over If-Modified-Since */
    const char *h[] = { "If-None-Match", "\"other\"", "If-Modified-Since", later_text, NULL };
    g_assert_cmpuint (request (f, "GET", "/call-check/app.js", h, NULL, NULL), ==, 200);
  }
}

/* The Host goes into the CSP only when it looks like a host. */
static void
test_odd_host_stays_out_of_csp (Fixture *f, gconstpointer data)
{
  static const char raw[] = "GET /call-check HTTP/1.1\r\nHost: x; script-src *\r\n"
                            "Connection: close\r\n\r\n";
  g_autofree char *response = cd_test_http_raw (f->address, raw, strlen (raw), 10000);

  g_assert_true (g_str_has_prefix (response, "HTTP/1.1 200"));
  g_assert_nonnull (strstr (response, "connect-src 'self'; base-uri"));
  g_assert_null (strstr (response, "script-src *"));
}

static void
test_missing_folder_serves_nothing (Fixture *f, gconstpointer data)
{
  g_assert_cmpuint (request (f, "GET", "/call-check", NULL, NULL, NULL), ==, 404);
  g_assert_cmpuint (request (f, "GET", "/call-check/app.js", NULL, NULL, NULL), ==, 404);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn, data) g_test_add (path, Fixture, data, fixture_setup, fn, fixture_teardown)
  ADD ("/http/static/serves-page-and-files", test_serves_page_and_files, NULL);
  ADD ("/http/static/refuses-what-is-not-a-plain-file", test_refuses_what_is_not_a_plain_file,
       NULL);
  ADD ("/http/static/validators", test_validators, NULL);
  ADD ("/http/static/odd-host-stays-out-of-csp", test_odd_host_stays_out_of_csp, NULL);
  ADD ("/http/static/missing-folder-serves-nothing", test_missing_folder_serves_nothing, "empty");
#undef ADD
  return g_test_run ();
}
