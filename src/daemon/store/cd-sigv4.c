/* SPDX-License-Identifier: GPL-3.0-or-later */
/* AWS Signature Version 4: canonical request -> string to sign -> HMAC
 * chain of date, region, service -> signature. */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-sigv4.h"

#include <gio/gio.h>
#include <sodium.h>
#include <string.h>

char *
cd_sigv4_uri_encode (const char *s, gboolean encode_slash)
{
  GString *out = g_string_sized_new (strlen (s) + 8);

  for (const guchar *p = (const guchar *) s; *p; p++) {
    if (g_ascii_isalnum (*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
        (*p == '/' && !encode_slash))
      g_string_append_c (out, (char) *p);
    else
      g_string_append_printf (out, "%%%02X", *p);
  }
  return g_string_free (out, FALSE);
}

char *
cd_sigv4_amz_date (GDateTime *when)
{
  g_autoptr (GDateTime) utc = g_date_time_to_utc (when);

  return g_date_time_format (utc, "%Y%m%dT%H%M%SZ");
}

typedef struct {
  char *name;
  char *value;
} Pair;

static void
pair_clear (gpointer data)
{
  Pair *p = data;

  g_free (p->name);
  g_free (p->value);
}

static int
compare_pairs (gconstpointer a, gconstpointer b)
{
  const Pair *x = a, *y = b;
  int by_name = strcmp (x->name, y->name);

  return by_name ? by_name : strcmp (x->value, y->value);
}

char *
cd_sigv4_canonical_query (const char *const *query)
{
  g_autoptr (GArray) pairs = g_array_new (FALSE, FALSE, sizeof (Pair));
  GString *out = g_string_new (NULL);

  g_array_set_clear_func (pairs, pair_clear);
  for (gsize i = 0; query && query[i] && query[i + 1]; i += 2) {
    Pair p = { cd_sigv4_uri_encode (query[i], TRUE), cd_sigv4_uri_encode (query[i + 1], TRUE) };

    g_array_append_val (pairs, p);
  }
  /* sorted by the encoded name (byte order), then value */
  g_array_sort (pairs, compare_pairs);
  for (guint i = 0; i < pairs->len; i++) {
    Pair *p = &g_array_index (pairs, Pair, i);

    g_string_append_printf (out, "%s%s=%s", i ? "&" : "", p->name, p->value);
  }
  return g_string_free (out, FALSE);
}

/* A header value as signed: leading and trailing blanks gone, inner runs
 * of blanks one space. */
static char *
trim_value (const char *value)
{
  GString *out = g_string_new (NULL);
  gboolean blank = FALSE;

  for (const char *p = value; *p; p++) {
    if (*p == ' ' || *p == '\t') {
      blank = TRUE;
      continue;
    }
    if (blank && out->len)
      g_string_append_c (out, ' ');
    blank = FALSE;
    g_string_append_c (out, *p);
  }
  return g_string_free (out, FALSE);
}

static gboolean
valid_amz_date (const char *d)
{
  if (d == NULL || strlen (d) != 16 || d[8] != 'T' || d[15] != 'Z')
    return FALSE;
  for (int i = 0; i < 15; i++)
    if (i != 8 && !g_ascii_isdigit (d[i]))
      return FALSE;
  return TRUE;
}

static void
hmac (const guint8 *key, gsize key_len, const char *data, guint8 out[32])
{
  g_autoptr (GHmac) h = g_hmac_new (G_CHECKSUM_SHA256, key, key_len);
  gsize len = 32;

  g_hmac_update (h, (const guchar *) data, -1);
  g_hmac_get_digest (h, out, &len);
}

char *
cd_sigv4_authorization (const CdSigV4Key *key, const char *method, const char *path,
                        const char *const *query, const char *const *headers,
                        const char *payload_sha256, const char *amz_date, char **canonical_request,
                        GError **error)
{
  g_autoptr (GArray) signed_headers = g_array_new (FALSE, FALSE, sizeof (Pair));
  g_autoptr (GString) canonical = g_string_new (NULL);
  g_autoptr (GString) names = g_string_new (NULL);
  g_autofree char *encoded_path = NULL;
  g_autofree char *canonical_query = NULL;
  g_autofree char *canonical_hash = NULL;
  g_autofree char *scope = NULL;
  g_autofree char *to_sign = NULL;
  g_autofree char *secret = NULL;
  char date[9];
  guint8 k[32];
  gboolean have_host = FALSE, have_date = FALSE;

  g_return_val_if_fail (key && key->access_key && key->secret_key && key->region && key->service,
                        NULL);
  if (canonical_request)
    *canonical_request = NULL;
  if (!valid_amz_date (amz_date)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "not an x-amz-date (YYYYMMDDTHHMMSSZ): %.40s", amz_date ? amz_date : "(none)");
    return NULL;
  }
  if (path == NULL || path[0] != '/') {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "the path to sign must begin with '/': %.100s", path ? path : "(none)");
    return NULL;
  }
  g_array_set_clear_func (signed_headers, pair_clear);
  for (gsize i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
    Pair p;

    if (headers[i][0] == '\0' || strpbrk (headers[i], " \t:\r\n") ||
        strpbrk (headers[i + 1], "\r\n")) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "not a header to sign: %.60s",
                   headers[i]);
      return NULL;
    }
    p.name = g_ascii_strdown (headers[i], -1);
    p.value = trim_value (headers[i + 1]);
    have_host |= g_str_equal (p.name, "host");
    if (g_str_equal (p.name, "x-amz-date")) {
      have_date = TRUE;
      if (!g_str_equal (p.value, amz_date)) {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     "the x-amz-date header (%.40s) is not the date signed (%s)", p.value,
                     amz_date);
        pair_clear (&p);
        return NULL;
      }
    }
    g_array_append_val (signed_headers, p);
  }
  if (!have_host || !have_date) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "the headers to sign need host and x-amz-date");
    return NULL;
  }
  g_array_sort (signed_headers, compare_pairs);

  /* the canonical request */
  encoded_path = cd_sigv4_uri_encode (path, FALSE);
  canonical_query = cd_sigv4_canonical_query (query);
  g_string_append_printf (canonical, "%s\n%s\n%s\n", method, encoded_path, canonical_query);
  for (guint i = 0; i < signed_headers->len; i++) {
    Pair *p = &g_array_index (signed_headers, Pair, i);
    gboolean repeated =
        i > 0 && g_str_equal (g_array_index (signed_headers, Pair, i - 1).name, p->name);

    /* a repeated name: its values joined by commas on one line */
    if (repeated) {
      g_string_truncate (canonical, canonical->len - 1);
      g_string_append_printf (canonical, ",%s\n", p->value);
      continue;
    }
    g_string_append_printf (canonical, "%s:%s\n", p->name, p->value);
    g_string_append_printf (names, "%s%s", names->len ? ";" : "", p->name);
  }
  g_string_append_printf (canonical, "\n%s\n%s", names->str, payload_sha256);
  canonical_hash = g_compute_checksum_for_string (G_CHECKSUM_SHA256, canonical->str, -1);

  /* the string to sign */
  memcpy (date, amz_date, 8);
  date[8] = '\0';
  scope = g_strdup_printf ("%s/%s/%s/aws4_request", date, key->region, key->service);
  to_sign = g_strdup_printf ("AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, canonical_hash);

  /* the signing key: HMAC over date, region, service, "aws4_request" */
  secret = g_strconcat ("AWS4", key->secret_key, NULL);
  hmac ((const guint8 *) secret, strlen (secret), date, k);
  hmac (k, sizeof k, key->region, k);
  hmac (k, sizeof k, key->service, k);
  hmac (k, sizeof k, "aws4_request", k);
  hmac (k, sizeof k, to_sign, k);
  sodium_memzero (secret, strlen (secret));
  {
    char hex[65];

    for (int i = 0; i < 32; i++)
      g_snprintf (hex + 2 * i, 3, "%02x", k[i]);
    sodium_memzero (k, sizeof k);
    if (canonical_request)
      *canonical_request = g_strdup (canonical->str);
    return g_strdup_printf ("AWS4-HMAC-SHA256 Credential=%s/%s,SignedHeaders=%s,Signature=%s",
                            key->access_key, scope, names->str, hex);
  }
}
