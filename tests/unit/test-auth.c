/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Access tokens and passwords: what is accepted, and every way a forged,
 * stale or malformed token is refused. */

#include "auth/cd-auth-error.h"
#include "auth/cd-jwt.h"
#include "auth/cd-password.h"
#include "auth/cd-turn.h"
#include "cd-test-harness.h"

#include <sodium.h>
#include <glib/gstdio.h>
#include <string.h>

#define USER    "6f1c2b9e-3d4a-4c5b-8e6f-7a8b9c0d1e2f"
#define COMPANY "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
#define NOW     ((gint64) 1790000000)

static const guint8 secret1[32] = "0123456789abcdef0123456789abcde";
static const guint8 secret2[32] = "fedcba9876543210fedcba987654321";

static CdJwtKeys *
keys_with (const char *kid, const guint8 *secret)
{
  CdJwtKeys *keys = cd_jwt_keys_new ();
  g_autoptr (GError) error = NULL;

  g_assert_true (cd_jwt_keys_add (keys, kid, secret, 32, &error));
  return keys;
}

/* A token with any header and payload, correctly signed with @secret. */
static char *
forge (const char *header, const char *payload, const guint8 *secret)
{
  g_autofree char *h = cd_base64url_encode ((const guint8 *) header, strlen (header));
  g_autofree char *p = cd_base64url_encode ((const guint8 *) payload, strlen (payload));
  g_autofree char *signing_input = g_strdup_printf ("%s.%s", h, p);
  guint8 mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_state state;
  g_autofree char *sig = NULL;

  crypto_auth_hmacsha256_init (&state, secret, 32);
  crypto_auth_hmacsha256_update (&state, (const guint8 *) signing_input, strlen (signing_input));
  crypto_auth_hmacsha256_final (&state, mac);
  sig = cd_base64url_encode (mac, sizeof mac);
  return g_strdup_printf ("%s.%s", signing_input, sig);
}

static void
assert_refused (CdJwtKeys *keys, const char *token, int code)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_jwt_verify (keys, token, NOW, &error);

  g_assert_null (claims);
  g_assert_error (error, CD_AUTH_ERROR, code);
}

static void
test_roundtrip (void)
{
  g_autoptr (CdJwtKeys) keys = keys_with ("k1", secret1);
  g_autoptr (GError) error = NULL;
  g_autofree char *token = cd_jwt_sign (keys, USER, "agent", COMPANY, NOW, 900, &error);
  g_autoptr (CdJwtClaims) claims = cd_jwt_verify (keys, token, NOW + 10, &error);

  g_assert_no_error (error);
  g_assert_cmpstr (claims->sub, ==, USER);
  g_assert_cmpstr (claims->role, ==, "agent");
  g_assert_cmpstr (claims->company, ==, COMPANY);
  g_assert_cmpint (claims->exp, ==, NOW + 900);
  g_assert_cmpstr (claims->kid, ==, "k1");
}

static void
test_superadmin_has_no_company (void)
{
  g_autoptr (CdJwtKeys) keys = keys_with ("k1", secret1);
  g_autoptr (GError) error = NULL;
  g_autofree char *token = cd_jwt_sign (keys, USER, "superadmin", NULL, NOW, 900, &error);
  g_autoptr (CdJwtClaims) claims = cd_jwt_verify (keys, token, NOW, &error);
  g_autofree char *agent_without_company =
      forge ("{\"alg\":\"HS256\",\"kid\":\"k1\"}",
             "{\"iss\":\"calldocker\",\"sub\":\"" USER "\",\"role\":\"agent\",\"iat\":1790000000,"
             "\"exp\":1790000900}",
             secret1);

  g_assert_no_error (error);
  g_assert_null (claims->company);
  assert_refused (keys, agent_without_company, CD_AUTH_ERROR_TOKEN_INVALID);
}

static void
test_expired (void)
{
  g_autoptr (CdJwtKeys) keys = keys_with ("k1", secret1);
  g_autofree char *token = cd_jwt_sign (keys, USER, "agent", COMPANY, NOW - 1000, 900, NULL);

  assert_refused (keys, token, CD_AUTH_ERROR_TOKEN_EXPIRED);
}

static void
test_alg_none_and_others (void)
{
  g_autoptr (CdJwtKeys) keys = keys_with ("k1", secret1);
  const char *payload = "{\"iss\":\"calldocker\",\"sub\":\"" USER "\",\"role\":\"superadmin\","
                        "\"iat\":1790000000,\"exp\":1790000900}";
  const char *headers[] = {
    "{\"alg\":\"none\",\"kid\":\"k1\"}",
    "{\"alg\":\"None\",\"kid\":\"k1\"}",
    "{\"alg\":\"HS512\",\"kid\":\"k1\"}",
    "{\"alg\":\"RS256\",\"kid\":\"k1\"}",
    "{\"kid\":\"k1\"}",
    "{\"alg\":\"HS256\"}",
    "{\"alg\":\"HS256\",\"kid\":\"k9\"}",
    "{\"alg\":\"HS256\",\"kid\":\"k1\",\"typ\":\"JWE\"}",
    "{\"alg\":\"HS256\",\"alg\":\"none\",\"kid\":\"k1\"}",
  };
  g_autofree char *h = cd_base64url_encode ((const guint8 *) headers[0], strlen (headers[0]));
  g_autofree char *p = cd_base64url_encode ((const guint8 *) payload, strlen (payload));
  g_autofree char *unsigned_token = g_strdup_printf ("%s.%s.", h, p);

  for (gsize i = 0; i < G_N_ELEMENTS (headers); i++) {
    g_autofree char *token = forge (headers[i], payload, secret1);
    g_test_message ("header %s", headers[i]);
    assert_refused (keys, token, CD_AUTH_ERROR_TOKEN_INVALID);
  }
  /* the classic: alg none with an empty signature */
  assert_refused (keys, unsigned_token, CD_AUTH_ERROR_TOKEN_INVALID);
}

static void
test_wrong_key_and_tampering (void)
{
  g_autoptr (CdJwtKeys) keys = keys_with ("k1", secret1);
  g_autoptr (CdJwtKeys) other = keys_with ("k1", secret2);
  g_autofree char *foreign = cd_jwt_sign (other, USER, "company_admin", COMPANY, NOW, 900, NULL);
  g_autofree char *token = cd_jwt_sign (keys, USER, "agent", COMPANY, NOW, 900, NULL);
  g_autofree char *tampered = NULL;
  g_auto (GStrv) parts = g_strsplit (token, ".", 3);
  g_autofree char *payload = g_strdup_printf ("{\"iss\":\"calldocker\",\"sub\":\"" USER
                                              "\",\"role\":\"company_admin\",\"company\":\"" COMPANY
                                              "\",\"iat\":1790000000,\"exp\":1790000900}");
  g_autofree char *p = cd_base64url_encode ((const guint8 *) payload, strlen (payload));

  assert_refused (keys, foreign, CD_AUTH_ERROR_TOKEN_INVALID);
  /* the agent promotes itself: the old signature does not cover the new payload */
  tampered = g_strdup_printf ("%s.%s.%s", parts[0], p, parts[2]);
  assert_refused (keys, tampered, CD_AUTH_ERROR_TOKEN_INVALID);
}

static void
test_rotation (void)
{
  g_autoptr (CdJwtKeys) old_keys = keys_with ("k1", secret1);
  g_autoptr (CdJwtKeys) keys = keys_with ("k2", secret2);
  g_autoptr (GError) error = NULL;
  g_autofree char *old_token = cd_jwt_sign (old_keys, USER, "agent", COMPANY, NOW, 900, NULL);
  g_autofree char *new_token = NULL;
  g_autoptr (CdJwtClaims) a = NULL;
  g_autoptr (CdJwtClaims) b = NULL;

  g_assert_true (cd_jwt_keys_add (keys, "k1", secret1, 32, &error));
  g_assert_cmpstr (cd_jwt_keys_get_active_kid (keys), ==, "k2");
  new_token = cd_jwt_sign (keys, USER, "agent", COMPANY, NOW, 900, NULL);
  a = cd_jwt_verify (keys, old_token, NOW, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (a->kid, ==, "k1");
  b = cd_jwt_verify (keys, new_token, NOW, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (b->kid, ==, "k2");
}

static void
test_malformed (void)
{
  g_autoptr (CdJwtKeys) keys = keys_with ("k1", secret1);
  g_autofree char *huge = g_strnfill (5000, 'a');
  const char *bad[] = { "",
                        "abc",
                        "a.b",
                        "a.b.c.d",
                        "..",
                        "a..",
                        "!!!.???.###",
                        "e30.e30.",
                        "eyJhbGciOiJIUzI1NiJ9.e30.e30" };
  const char *claims_missing[] = {
    "{\"iss\":\"calldocker\",\"sub\":\"" USER "\",\"role\":\"agent\",\"company\":\"" COMPANY
    "\",\"iat\":1790000000}",
    "{\"iss\":\"other\",\"sub\":\"" USER "\",\"role\":\"agent\",\"company\":\"" COMPANY
    "\",\"iat\":1790000000,\"exp\":1790000900}",
    "{\"iss\":\"calldocker\",\"sub\":\"not-a-uuid\",\"role\":\"agent\",\"company\":\"" COMPANY
    "\",\"iat\":1790000000,\"exp\":1790000900}",
    "{\"iss\":\"calldocker\",\"sub\":\"" USER "\",\"role\":\"root\",\"company\":\"" COMPANY
    "\",\"iat\":1790000000,\"exp\":1790000900}",
    "{\"iss\":\"calldocker\",\"sub\":\"" USER "\",\"role\":\"agent\",\"company\":\"" COMPANY
    "\",\"iat\":1790099000,\"exp\":1790099900}",
    "[1,2,3]",
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_refused (keys, bad[i], CD_AUTH_ERROR_TOKEN_INVALID);
  assert_refused (keys, huge, CD_AUTH_ERROR_TOKEN_INVALID);
  for (gsize i = 0; i < G_N_ELEMENTS (claims_missing); i++) {
    g_autofree char *token =
        forge ("{\"alg\":\"HS256\",\"kid\":\"k1\"}", claims_missing[i], secret1);
    g_test_message ("payload %s", claims_missing[i]);
    assert_refused (keys, token, CD_AUTH_ERROR_TOKEN_INVALID);
  }
}

static void
test_keys_refused (void)
{
  g_autoptr (CdJwtKeys) keys = cd_jwt_keys_new ();
  g_autoptr (GError) error = NULL;

  g_assert_false (cd_jwt_keys_add (keys, "k1", (const guint8 *) "short", 5, &error));
  g_assert_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID);
  g_clear_error (&error);
  g_assert_false (cd_jwt_keys_add (keys, "bad kid", secret1, 32, &error));
  g_assert_nonnull (error);
}

static void
test_key_file (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-keys-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "auth", "jwt-keys", NULL);
  g_autoptr (CdJwtKeys) keys = cd_jwt_keys_new ();
  g_autoptr (CdJwtKeys) again = cd_jwt_keys_new ();
  g_autoptr (GError) error = NULL;
  GStatBuf st;

  g_assert_true (cd_jwt_keys_load_file (keys, path, TRUE, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_true (cd_jwt_keys_load_file (again, path, TRUE, &error));
  g_assert_cmpstr (cd_jwt_keys_get_active_kid (keys), ==, cd_jwt_keys_get_active_kid (again));
  cd_test_remove_tree (dir);
}

static CdPasswordPolicy *
policy (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *list =
      g_build_filename (g_getenv ("CALLDOCKER_DATADIR"), "common-passwords.txt", NULL);
  CdPasswordPolicy *p = cd_password_policy_new (19 * 1024 * 1024, 2, 10, list, &error);

  g_assert_no_error (error);
  return p;
}

static void
test_password_policy (void)
{
  g_autoptr (CdPasswordPolicy) p = policy ();
  const char *weak[] = { "short", "Password123", "qwertyuiop", "ann@example.com", "1234567890" };

  for (gsize i = 0; i < G_N_ELEMENTS (weak); i++) {
    g_autoptr (GError) error = NULL;
    g_test_message ("%s", weak[i]);
    g_assert_false (cd_password_policy_check (p, weak[i], "ann@example.com", &error));
    g_assert_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD);
  }
  g_assert_true (cd_password_policy_check (p, "correct horse battery", "ann@example.com", NULL));
  g_assert_true (cd_password_policy_check (p, "Пароль-достаточно", NULL, NULL));
}

static void
test_password_hash (void)
{
  g_autoptr (CdPasswordPolicy) p = policy ();
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = cd_password_hash (p, "correct horse battery", &error);
  g_autoptr (GAsyncResult) ok = NULL;
  g_autoptr (GAsyncResult) bad = NULL;

  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (hash, "$argon2id$v=19$m=19456,t=2,"));
  g_assert_true (cd_password_verify (hash, "correct horse battery"));
  g_assert_false (cd_password_verify (hash, "correct horse batterz"));
  g_assert_false (cd_password_verify ("not a hash", "x"));
  g_assert_false (cd_password_verify (cd_password_dummy_hash (p), ""));

  cd_password_verify_async (hash, "correct horse battery", NULL, cd_test_capture, &ok);
  cd_password_verify_async (hash, "wrong", NULL, cd_test_capture, &bad);
  cd_test_wait_result (&ok, 10000);
  cd_test_wait_result (&bad, 10000);
  g_assert_true (cd_password_verify_finish (ok));
  g_assert_false (cd_password_verify_finish (bad));
}

static void
test_turn_credentials (void)
{
  g_autofree char *username = NULL;
  g_autofree char *password = NULL;

  /* the vector was computed independently: base64 (HMAC-SHA1 (secret, username)) */
  cd_turn_credentials ("s3cret", COMPANY, 1700000000, &username, &password);
  g_assert_cmpstr (username, ==, "1700000000:" COMPANY);
  g_assert_cmpstr (password, ==, "516rdg6qOtX+/bQO2vpoJs7PIZk=");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/auth/jwt/roundtrip", test_roundtrip);
  g_test_add_func ("/auth/jwt/superadmin-has-no-company", test_superadmin_has_no_company);
  g_test_add_func ("/auth/jwt/refuses-expired", test_expired);
  g_test_add_func ("/auth/jwt/refuses-alg-none-and-others", test_alg_none_and_others);
  g_test_add_func ("/auth/jwt/refuses-wrong-key-and-tampering", test_wrong_key_and_tampering);
  g_test_add_func ("/auth/jwt/rotation", test_rotation);
  g_test_add_func ("/auth/jwt/refuses-malformed", test_malformed);
  g_test_add_func ("/auth/jwt/refuses-bad-keys", test_keys_refused);
  g_test_add_func ("/auth/jwt/key-file", test_key_file);
  g_test_add_func ("/auth/turn/credentials", test_turn_credentials);
  g_test_add_func ("/auth/password/policy", test_password_policy);
  g_test_add_func ("/auth/password/hash", test_password_hash);
  return g_test_run ();
}
