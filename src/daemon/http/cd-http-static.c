/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Static pages: each site is one folder of data/web/ served under a prefix.
 * Only the regular files directly in the folder are served. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-http-static.h"

#include "cd-config.h"

#include "cd-build-config.h"
#include "cd-http-problem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Larger files are not ours to serve: a page and its scripts are small. */
#define MAX_FILE_BYTES (4 * 1024 * 1024)

/* A request names one path segment; the router has decoded it already. */
#define MAX_NAME_LENGTH 64

/* The sites: URL prefix, folder under data/web/. "GET PREFIX" serves the
 * folder's index.html and "GET PREFIX/{file}" any file of the folder. The
 * router refuses paths ending in '/', so the page is PREFIX, not PREFIX/. */
static const struct {
  const char *prefix;
  const char *folder;
} sites[] = {
  { "/call-check", "call-check" },
};

static const struct {
  const char *extension;
  const char *content_type;
} content_types[] = {
  { ".html", "text/html; charset=utf-8" },
  { ".js", "text/javascript; charset=utf-8" },
  { ".css", "text/css; charset=utf-8" },
  { ".svg", "image/svg+xml" },
  { ".png", "image/png" },
  { ".wav", "audio/wav" },
  { ".json", "application/json" },
};

typedef struct {
  GBytes *bytes;
  const char *content_type; /* static */
  char *etag;               /* strong, quoted */
  char *last_modified;      /* an HTTP date */
  gint64 mtime;             /* seconds since the epoch */
} StaticFile;

/* Filled at start-up, read-only afterwards; the main thread's. */
typedef struct {
  char *prefix;
  char *folder;      /* the folder's path, for logs */
  GHashTable *files; /* name -> StaticFile* */
} StaticSite;

static void
static_file_free (gpointer data)
{
  StaticFile *f = data;

  g_bytes_unref (f->bytes);
  g_free (f->etag);
  g_free (f->last_modified);
  g_free (f);
}

static void
static_site_free (gpointer data)
{
  StaticSite *site = data;

  g_free (site->prefix);
  g_free (site->folder);
  g_hash_table_unref (site->files);
  g_free (site);
}

static const char *
content_type_of (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (content_types); i++) {
    if (g_str_has_suffix (name, content_types[i].extension))
      return content_types[i].content_type;
  }
  return NULL;
}

/* Names a request may ask for: no dotfiles (so neither "." nor ".."), no
 * separators, printable ASCII of a known type. */
static gboolean
name_is_servable (const char *name)
{
  gsize n = strlen (name);

  if (n == 0 || n > MAX_NAME_LENGTH || name[0] == '.')
    return FALSE;
  for (const char *p = name; *p; p++) {
    if (!g_ascii_isalnum (*p) && *p != '.' && *p != '-' && *p != '_')
      return FALSE;
  }
  return content_type_of (name) != NULL;
}

/* One regular file, not through a symbolic link (O_NONBLOCK: a FIFO put
 * there does not hang the open). */
static StaticFile *
static_file_load (const char *path, GError **error)
{
  g_autofree char *data = NULL;
  g_autoptr (GDateTime) modified = NULL;
  g_autofree char *sum = NULL;
  StaticFile *f;
  struct stat st;
  gsize done = 0;
  int fd, e;

  fd = open (path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || fstat (fd, &st) != 0)
    goto read_failed;
  if (!S_ISREG (st.st_mode) || st.st_size > MAX_FILE_BYTES)
    goto not_regular;
  data = g_malloc ((gsize) st.st_size + 1);
  while (done < (gsize) st.st_size) {
    ssize_t n = read (fd, data + done, (gsize) st.st_size - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      goto read_failed;
    if (n == 0)
      break;
    done += (gsize) n;
  }
  close (fd);

  f = g_new0 (StaticFile, 1);
  f->bytes = g_bytes_new_take (g_steal_pointer (&data), done);
  sum = g_compute_checksum_for_bytes (G_CHECKSUM_SHA256, f->bytes);
  f->etag = g_strdup_printf ("\"%.32s\"", sum);
  f->mtime = st.st_mtime;
  modified = g_date_time_new_from_unix_utc (st.st_mtime);
  f->last_modified = soup_date_time_to_string (modified, SOUP_DATE_HTTP);
  return f;

  /* ERRORS */
read_failed:
  e = errno;
  if (fd >= 0)
    close (fd);
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot read %s: %s", path,
               g_strerror (e));
  return NULL;
not_regular:
  close (fd);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
               "%s is not a regular file of at most %d bytes", path, MAX_FILE_BYTES);
  return NULL;
}

/* The folder's files as they are now. A missing folder serves nothing. */
static StaticSite *
static_site_load (const char *prefix, const char *folder)
{
  StaticSite *site = g_new0 (StaticSite, 1);
  g_autoptr (GDir) dir = NULL;
  g_autoptr (GError) error = NULL;
  const char *name;

  site->prefix = g_strdup (prefix);
  site->folder = g_strdup (folder);
  site->files = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, static_file_free);
  dir = g_dir_open (folder, 0, &error);
  if (dir == NULL) {
    g_debug ("no pages at %s: %s", prefix, error->message);
    return site;
  }
  while ((name = g_dir_read_name (dir)) != NULL) {
    g_autofree char *path = NULL;
    g_autoptr (GError) file_error = NULL;
    StaticFile *f;

    if (!name_is_servable (name))
      continue;
    path = g_build_filename (folder, name, NULL);
    f = static_file_load (path, &file_error);
    if (f == NULL) {
      g_message ("not serving %s: %s", path, file_error->message);
      continue;
    }
    f->content_type = content_type_of (name);
    g_hash_table_insert (site->files, g_strdup (name), f);
  }
  return site;
}

/* "ws:" and "wss:" to the Host the page was asked from, for browsers whose
 * 'self' does not cover WebSockets yet; nothing when the Host looks odd. */
static char *
connect_sources (SoupServerMessage *msg)
{
  const char *host =
      soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Host");
  gsize n = host ? strlen (host) : 0;

  if (n == 0 || n > 255)
    return g_strdup ("'self'");
  for (const char *p = host; *p; p++) {
    if (!g_ascii_isalnum (*p) && !strchr (".-:[]", *p))
      return g_strdup ("'self'");
  }
  return g_strdup_printf ("'self' ws://%s wss://%s", host, host);
}

/* If-None-Match (weak comparison) first, else If-Modified-Since (RFC 9110). */
static gboolean
not_modified (SoupMessageHeaders *in, const StaticFile *f)
{
  const char *match = soup_message_headers_get_list (in, "If-None-Match");
  const char *since = soup_message_headers_get_one (in, "If-Modified-Since");

  if (match) {
    g_auto (GStrv) tags = g_strsplit (match, ",", -1);
    for (char **t = tags; *t; t++) {
      const char *tag = g_strstrip (*t);
      if (g_str_has_prefix (tag, "W/"))
        tag += 2;
      if (g_str_equal (tag, "*") || g_str_equal (tag, f->etag))
        return TRUE;
    }
    return FALSE;
  }
  if (since) {
    g_autoptr (GDateTime) date = soup_date_time_new_from_http_string (since);
    return date && f->mtime <= g_date_time_to_unix (date);
  }
  return FALSE;
}

static void
handle_file (CdHttpRequest *request, gpointer user_data)
{
  StaticSite *site = user_data;
  SoupMessageHeaders *out = soup_server_message_get_response_headers (request->msg);
  const char *name = request->params ? g_hash_table_lookup (request->params, "file") : NULL;
  g_autofree char *csp = NULL;
  g_autofree char *connect = NULL;
  StaticFile *f;

  if (name == NULL)
    name = "index.html";
  f = name_is_servable (name) ? g_hash_table_lookup (site->files, name) : NULL;
  if (f == NULL) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_NOT_FOUND,
                           "nothing is served at %s/%s", site->prefix, name);
    return;
  }
  /* the daemon's own pages: scripts, styles and connections to itself only,
   * nothing inline, never in a frame */
  connect = connect_sources (request->msg);
  csp = g_strdup_printf ("default-src 'none'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; media-src 'self'; connect-src %s; "
                         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
                         connect);
  soup_message_headers_replace (out, "Content-Security-Policy", csp);
  soup_message_headers_replace (out, "Permissions-Policy",
                                "microphone=(self), camera=(), geolocation=()");
  soup_message_headers_replace (out, "Cross-Origin-Opener-Policy", "same-origin");
  soup_message_headers_replace (out, "Cross-Origin-Resource-Policy", "same-origin");
  soup_message_headers_replace (out, "Cache-Control", "no-cache");
  soup_message_headers_replace (out, "ETag", f->etag);
  soup_message_headers_replace (out, "Last-Modified", f->last_modified);
  if (not_modified (soup_server_message_get_request_headers (request->msg), f)) {
    soup_server_message_set_status (request->msg, SOUP_STATUS_NOT_MODIFIED, NULL);
    return;
  }
  soup_server_message_set_status (request->msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_set_content_type (out, f->content_type, NULL);
  soup_message_body_append_bytes (soup_server_message_get_response_body (request->msg), f->bytes);
}

/**
 * cd_http_static_web_dir:
 *
 * data/web/, found as the migrations are (cd_config_data_path()).
 *
 * Returns: (transfer full): the folder's path
 */
char *
cd_http_static_web_dir (void)
{
  return cd_config_data_path ("web");
}

/**
 * cd_http_static_register:
 *
 * Reads the sites' files (small, local: once, at start-up) and adds their
 * routes. The server owns what was read.
 */
gboolean
cd_http_static_register (CdHttpServer *server, GError **error)
{
  g_autofree char *web = cd_http_static_web_dir ();

  for (gsize i = 0; i < G_N_ELEMENTS (sites); i++) {
    g_autofree char *folder = g_build_filename (web, sites[i].folder, NULL);
    g_autofree char *files_pattern = g_strconcat (sites[i].prefix, "/{file}", NULL);
    g_autofree char *key = g_strconcat ("cd-static-site:", sites[i].prefix, NULL);
    StaticSite *site = static_site_load (sites[i].prefix, folder);

    g_object_set_data_full (G_OBJECT (server), key, site, static_site_free);
    if (!cd_http_server_add_route (server, "GET", sites[i].prefix, handle_file, site, error) ||
        !cd_http_server_add_route (server, "GET", files_pattern, handle_file, site, error))
      return FALSE;
  }
  return TRUE;
}
