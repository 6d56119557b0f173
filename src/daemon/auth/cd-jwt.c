/* SPDX-License-Identifier: GPL-3.0-or-later */
/* JWT signing and verification. The header is read and checked (alg HS256,
 * a known kid) before anything else; the signature is compared in constant
 * time; then libjwt decodes and the claims are checked one by one. */

#define G_LOG_DOMAIN "calldocker-auth"

#include "cd-jwt.h"

#include "../../common/cd-json.h"
#include "cd-auth-error.h"

#include <glib/gstdio.h>
#include <jwt.h>
#include <sodium.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOKEN_BYTES  4096
#define MIN_SECRET_BYTES 32
#define CLOCK_SKEW_S     60

typedef struct {
  char *kid;
  guint8 *secret;
  gsize length;
} Key;

struct _CdJwtKeys {
  GPtrArray *keys; /* Key*, the first signs */
};

static void
key_free (gpointer data)
{
  Key *key = data;

  sodium_memzero (key->secret, key->length);
  g_free (key->secret);
  g_free (key->kid);
  g_free (key);
}

void
cd_jwt_claims_free (CdJwtClaims *claims)
{
  if (claims == NULL)
    return;
  g_free (claims->sub);
  g_free (claims->role);
  g_free (claims->company);
  g_free (claims->kid);
  g_free (claims);
}

CdJwtKeys *
cd_jwt_keys_new (void)
{
  CdJwtKeys *keys = g_new0 (CdJwtKeys, 1);

  keys->keys = g_ptr_array_new_with_free_func (key_free);
  return keys;
}

void
cd_jwt_keys_free (CdJwtKeys *keys)
{
  if (keys == NULL)
    return;
  g_ptr_array_unref (keys->keys);
  g_free (keys);
}

static gboolean
kid_is_valid (const char *kid)
{
  gsize n = strlen (kid);

  if (n == 0 || n > 64)
    return FALSE;
  for (const char *p = kid; *p; p++) {
    if (!g_ascii_isalnum (*p) && *p != '-' && *p != '_' && *p != '.')
      return FALSE;
  }
  return TRUE;
}

/**
 * cd_jwt_keys_add:
 *
 * Adds a key; the first one added signs new tokens, all of them verify.
 */
gboolean
cd_jwt_keys_add (CdJwtKeys *keys, const char *kid, const guint8 *secret, gsize length,
                 GError **error)
{
  Key *key;

  if (!kid_is_valid (kid)) {
    g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                 "key id '%s' is not 1-64 of A-Z a-z 0-9 . _ -", kid);
    return FALSE;
  }
  if (length < MIN_SECRET_BYTES) {
    g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                 "key '%s' has %zu bytes; HS256 keys need at least %d", kid, length,
                 MIN_SECRET_BYTES);
    return FALSE;
  }
  for (guint i = 0; i < keys->keys->len; i++) {
    if (g_str_equal (((Key *) g_ptr_array_index (keys->keys, i))->kid, kid)) {
      g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID, "key id '%s' appears twice",
                   kid);
      return FALSE;
    }
  }
  key = g_new0 (Key, 1);
  key->kid = g_strdup (kid);
  key->secret = g_memdup2 (secret, length);
  key->length = length;
  g_ptr_array_add (keys->keys, key);
  return TRUE;
}

/**
 * cd_jwt_keys_load_file:
 * @path: lines "KID BASE64-SECRET"; the first signs; '#' starts a comment
 * @create: when the file does not exist, write one with a new random key
 *
 * Blocking (a small local file): call at start-up.
 */
gboolean
cd_jwt_keys_load_file (CdJwtKeys *keys, const char *path, gboolean create, GError **error)
{
  g_autofree char *text = NULL;
  g_auto (GStrv) lines = NULL;

  if (create && !g_file_test (path, G_FILE_TEST_EXISTS)) {
    guint8 secret[64];
    g_autofree char *encoded = NULL;
    g_autofree char *content = NULL;
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    g_autofree char *kid = g_date_time_format (now, "k%Y%m%d%H%M%S");
    g_autofree char *dir = g_path_get_dirname (path);

    randombytes_buf (secret, sizeof secret);
    encoded = g_base64_encode (secret, sizeof secret);
    sodium_memzero (secret, sizeof secret);
    content = g_strdup_printf ("# JWT signing keys: \"KID BASE64\" per line; the first signs.\n"
                               "%s %s\n",
                               kid, encoded);
    if (g_mkdir_with_parents (dir, 0700) != 0 ||
        !g_file_set_contents_full (path, content, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                   error)) {
      if (error && *error == NULL)
        g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot create %s", dir);
      return FALSE;
    }
    g_info ("created a JWT signing key in %s", path);
  }
  if (!g_file_get_contents (path, &text, NULL, error))
    return FALSE;
  lines = g_strsplit (text, "\n", -1);
  for (gsize i = 0; lines[i]; i++) {
    char *line = g_strstrip (lines[i]);
    g_auto (GStrv) parts = NULL;
    g_autofree guint8 *secret = NULL;
    gsize length = 0;

    if (line[0] == '\0' || line[0] == '#')
      continue;
    parts = g_strsplit_set (line, " \t", 2);
    if (g_strv_length (parts) != 2) {
      g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                   "%s line %zu: expected \"KID BASE64\"", path, i + 1);
      return FALSE;
    }
    secret = g_base64_decode (g_strstrip (parts[1]), &length);
    if (!cd_jwt_keys_add (keys, parts[0], secret, length, error)) {
      g_prefix_error (error, "%s line %zu: ", path, i + 1);
      if (secret)
        sodium_memzero (secret, length);
      return FALSE;
    }
    sodium_memzero (secret, length);
  }
  if (keys->keys->len == 0) {
    g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID, "%s holds no key", path);
    return FALSE;
  }
  return TRUE;
}

const char *
cd_jwt_keys_get_active_kid (CdJwtKeys *keys)
{
  return keys->keys->len ? ((Key *) g_ptr_array_index (keys->keys, 0))->kid : NULL;
}

static Key *
find_key (CdJwtKeys *keys, const char *kid)
{
  for (guint i = 0; i < keys->keys->len; i++) {
    Key *key = g_ptr_array_index (keys->keys, i);
    if (g_str_equal (key->kid, kid))
      return key;
  }
  return NULL;
}

gboolean
cd_is_uuid (const char *text)
{
  static const int dashes[] = { 8, 13, 18, 23 };

  if (text == NULL || strlen (text) != 36)
    return FALSE;
  for (int i = 0; i < 36; i++) {
    gboolean dash = i == dashes[0] || i == dashes[1] || i == dashes[2] || i == dashes[3];
    if (dash ? text[i] != '-' : !g_ascii_isxdigit (text[i]))
      return FALSE;
  }
  return TRUE;
}

char *
cd_base64url_encode (const guint8 *data, gsize length)
{
  gsize size = sodium_base64_ENCODED_LEN (length, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  char *out = g_malloc (size);

  sodium_bin2base64 (out, size, data, length, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

/**
 * cd_base64url_decode:
 *
 * Returns: (transfer full) (nullable): the bytes, nul-terminated (not counted)
 */
guint8 *
cd_base64url_decode (const char *text, gsize length, gsize *out_length)
{
  guint8 *out = g_malloc (length + 1);
  size_t n = 0;

  if (sodium_base642bin (out, length, text, length, NULL, &n, NULL,
                         sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    g_free (out);
    return NULL;
  }
  out[n] = '\0';
  *out_length = n;
  return out;
}

/* "visitor": a website visitor's short token from the widget session; it
 * opens signaling only, never the REST API (see cd_api_authenticate()) */
static const char *roles[] = { "superadmin", "company_admin", "agent", "visitor", NULL };

/**
 * cd_jwt_sign:
 * @company: (nullable): the company's UUID; %NULL for the super admin
 *
 * Returns: (transfer full): a compact HS256 JWT signed with the active key
 */
char *
cd_jwt_sign (CdJwtKeys *keys, const char *sub, const char *role, const char *company, gint64 now,
             gint64 ttl_s, GError **error)
{
  return cd_jwt_sign_at_ms (keys, sub, role, company, now * 1000, ttl_s, error);
}

/**
 * cd_jwt_sign_at_ms:
 * @now_ms: the issue time in milliseconds: also in the token as `iat_ms`,
 *   so that sessions ended within a second are told apart from new ones
 */
char *
cd_jwt_sign_at_ms (CdJwtKeys *keys, const char *sub, const char *role, const char *company,
                   gint64 now_ms, gint64 ttl_s, GError **error)
{
  gint64 now = now_ms / 1000;
  Key *key = keys->keys->len ? g_ptr_array_index (keys->keys, 0) : NULL;
  jwt_t *jwt = NULL;
  char *encoded;
  char *token;

  g_return_val_if_fail (key != NULL, NULL);
  g_return_val_if_fail (g_strv_contains (roles, role), NULL);
  if (jwt_new (&jwt) != 0 ||
      jwt_set_alg (jwt, JWT_ALG_HS256, key->secret, (int) key->length) != 0 ||
      jwt_add_header (jwt, "kid", key->kid) != 0 ||
      jwt_add_grant (jwt, "iss", CD_JWT_ISSUER) != 0 || jwt_add_grant (jwt, "sub", sub) != 0 ||
      jwt_add_grant (jwt, "role", role) != 0 ||
      (company && jwt_add_grant (jwt, "company", company) != 0) ||
      jwt_add_grant_int (jwt, "iat", (long) now) != 0 ||
      jwt_add_grant_int (jwt, "iat_ms", (long) now_ms) != 0 ||
      jwt_add_grant_int (jwt, "exp", (long) (now + ttl_s)) != 0 ||
      (encoded = jwt_encode_str (jwt)) == NULL) {
    jwt_free (jwt);
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                         "cannot sign the token");
    return NULL;
  }
  token = g_strdup (encoded);
  free (encoded);
  jwt_free (jwt);
  return token;
}

static gboolean
invalid (GError **error, const char *why)
{
  g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID, "invalid token: %s", why);
  return FALSE;
}

/* alg must be HS256, typ JWT if present, kid a key we have. */
static Key *
check_header (CdJwtKeys *keys, const char *token, gsize header_length, GError **error)
{
  gsize length = 0;
  g_autofree guint8 *json = cd_base64url_decode (token, header_length, &length);
  CdJsonLimits limits = { 1024, 2, FALSE };
  g_autoptr (JsonObject) header = NULL;
  JsonNode *alg, *kid, *typ;
  Key *key;

  if (json == NULL) {
    invalid (error, "the header is not base64url");
    return NULL;
  }
  header = cd_json_parse_object ((const char *) json, length, &limits, NULL);
  if (header == NULL) {
    invalid (error, "the header is not a JSON object");
    return NULL;
  }
  alg = json_object_get_member (header, "alg");
  if (alg == NULL || json_node_get_value_type (alg) != G_TYPE_STRING ||
      !g_str_equal (json_node_get_string (alg), "HS256")) {
    invalid (error, "only alg HS256 is accepted");
    return NULL;
  }
  typ = json_object_get_member (header, "typ");
  if (typ != NULL && (json_node_get_value_type (typ) != G_TYPE_STRING ||
                      !g_str_equal (json_node_get_string (typ), "JWT"))) {
    invalid (error, "typ must be JWT");
    return NULL;
  }
  kid = json_object_get_member (header, "kid");
  if (kid == NULL || json_node_get_value_type (kid) != G_TYPE_STRING) {
    invalid (error, "no kid");
    return NULL;
  }
  key = find_key (keys, json_node_get_string (kid));
  if (key == NULL) {
    invalid (error, "unknown kid");
    return NULL;
  }
  return key;
}

/**
 * cd_jwt_verify:
 * @now: the current time, in seconds since the epoch
 *
 * Returns: (transfer full): the claims of a valid, unexpired token
 */
CdJwtClaims *
cd_jwt_verify (CdJwtKeys *keys, const char *token, gint64 now, GError **error)
{
  gsize token_length = strlen (token);
  const char *dot1, *dot2;
  Key *key;
  guint8 mac[crypto_auth_hmacsha256_BYTES];
  g_autofree guint8 *signature = NULL;
  gsize signature_length = 0;
  crypto_auth_hmacsha256_state state;
  jwt_t *jwt = NULL;
  g_autoptr (CdJwtClaims) claims = NULL;
  const char *iss, *sub, *role, *company;
  long exp, iat, iat_ms, nbf;

  if (token_length == 0 || token_length > MAX_TOKEN_BYTES) {
    invalid (error, "empty or too long");
    return NULL;
  }
  dot1 = strchr (token, '.');
  dot2 = dot1 ? strchr (dot1 + 1, '.') : NULL;
  if (dot1 == NULL || dot2 == NULL || strchr (dot2 + 1, '.') != NULL || dot2[1] == '\0') {
    invalid (error, "not three dot-separated parts");
    return NULL;
  }
  key = check_header (keys, token, (gsize) (dot1 - token), error);
  if (key == NULL)
    return NULL;

  /* constant-time HMAC-SHA256 over "header.payload" */
  signature = cd_base64url_decode (dot2 + 1, strlen (dot2 + 1), &signature_length);
  if (signature == NULL || signature_length != sizeof mac) {
    invalid (error, "bad signature");
    return NULL;
  }
  crypto_auth_hmacsha256_init (&state, key->secret, key->length);
  crypto_auth_hmacsha256_update (&state, (const guint8 *) token, (gsize) (dot2 - token));
  crypto_auth_hmacsha256_final (&state, mac);
  if (sodium_memcmp (mac, signature, sizeof mac) != 0) {
    invalid (error, "bad signature");
    return NULL;
  }

  if (jwt_decode (&jwt, token, key->secret, (int) key->length) != 0 || jwt == NULL ||
      jwt_get_alg (jwt) != JWT_ALG_HS256) {
    jwt_free (jwt);
    invalid (error, "cannot decode");
    return NULL;
  }
  iss = jwt_get_grant (jwt, "iss");
  sub = jwt_get_grant (jwt, "sub");
  role = jwt_get_grant (jwt, "role");
  company = jwt_get_grant (jwt, "company");
  errno = 0;
  exp = jwt_get_grant_int (jwt, "exp");
  gboolean has_exp = errno == 0;
  errno = 0;
  iat = jwt_get_grant_int (jwt, "iat");
  gboolean has_iat = errno == 0;
  errno = 0;
  iat_ms = jwt_get_grant_int (jwt, "iat_ms");
  gboolean has_iat_ms = errno == 0;
  errno = 0;
  nbf = jwt_get_grant_int (jwt, "nbf");
  gboolean has_nbf = errno == 0;

  if (iss == NULL || !g_str_equal (iss, CD_JWT_ISSUER) || sub == NULL || !cd_is_uuid (sub) ||
      role == NULL || !g_strv_contains (roles, role) || !has_exp || !has_iat ||
      (company != NULL && !cd_is_uuid (company)) ||
      (has_iat_ms && (iat_ms < (gint64) iat * 1000 || iat_ms >= ((gint64) iat + 1) * 1000)) ||
      ((company == NULL) != g_str_equal (role, "superadmin"))) {
    jwt_free (jwt);
    invalid (error, "missing or malformed claims");
    return NULL;
  }
  if (iat > now + CLOCK_SKEW_S || (has_nbf && nbf > now + CLOCK_SKEW_S)) {
    jwt_free (jwt);
    invalid (error, "not valid yet");
    return NULL;
  }
  if (exp <= now) {
    jwt_free (jwt);
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_EXPIRED, "the token expired");
    return NULL;
  }
  claims = g_new0 (CdJwtClaims, 1);
  claims->sub = g_strdup (sub);
  claims->role = g_strdup (role);
  claims->company = g_strdup (company);
  claims->iat = iat;
  claims->iat_ms = has_iat_ms ? iat_ms : (gint64) iat * 1000;
  claims->exp = exp;
  claims->kid = g_strdup (key->kid);
  jwt_free (jwt);
  return g_steal_pointer (&claims);
}
