/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Login, tokens and /me against the real daemon: the super admin made with
 * --create-superadmin, accounts of two companies, and every way a request
 * without a valid token, with bad input or too many attempts is refused. */

#include "auth/cd-jwt.h"
#include "auth/cd-password.h"
#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-pg-pool.h"

#include <signal.h>
#include <sodium.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"

static char *state;
static CdTestDaemon *daemon_proc;
static char *company_ok;
static char *company_suspended;
static char *stale_token; /* ended by a role change; must stay ended after a restart */

static char *
url (const char *path)
{
  return g_strconcat (daemon_proc->base_url, path + 1, NULL);
}

static guint
post (const char *path, const char *json, char **body, GHashTable **headers)
{
  g_autofree char *u = url (path);

  return cd_test_http_request ("POST", u, "application/json", json, strlen (json), NULL, body,
                               headers);
}

static guint
get_with_token (const char *path, const char *token, char **body, GHashTable **headers)
{
  g_autofree char *u = url (path);
  g_autofree char *bearer = token ? g_strconcat ("Bearer ", token, NULL) : NULL;
  const char *h[] = { "Authorization", bearer, NULL };

  return cd_test_http_request ("GET", u, NULL, NULL, 0, token ? h : NULL, body, headers);
}

static JsonObject *
parse (const char *body)
{
  g_autoptr (GError) error = NULL;
  JsonObject *o = cd_json_parse_object (body, strlen (body), NULL, &error);

  g_assert_no_error (error);
  return o;
}

static void
assert_problem (const char *body, const char *slug)
{
  g_autoptr (JsonObject) o = parse (body);
  g_autofree char *type = g_strconcat ("urn:calldocker:problem:", slug, NULL);

  g_assert_cmpstr (json_object_get_string_member (o, "type"), ==, type);
}

static JsonObject *
login (const char *email, const char *password, guint expect)
{
  g_autofree char *json =
      g_strdup_printf ("{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
  g_autofree char *body = NULL;

  g_assert_cmpuint (post ("/api/v1/auth/login", json, &body, NULL), ==, expect);
  return parse (body);
}

static void
test_superadmin_login_and_me (void)
{
  g_autoptr (JsonObject) tokens = login ("ROOT@example.com", PASSWORD, 200);
  g_autofree char *me = NULL;
  g_autoptr (JsonObject) me_json = NULL;

  g_assert_cmpstr (json_object_get_string_member (tokens, "token_type"), ==, "Bearer");
  g_assert_cmpint (json_object_get_int_member (tokens, "expires_in"), ==, 900);
  g_assert_cmpuint (get_with_token ("/api/v1/me",
                                    json_object_get_string_member (tokens, "access_token"), &me,
                                    NULL),
                    ==, 200);
  me_json = parse (me);
  g_assert_cmpstr (json_object_get_string_member (me_json, "email"), ==, "root@example.com");
  g_assert_cmpstr (json_object_get_string_member (me_json, "role"), ==, "superadmin");
  g_assert_true (json_object_get_null_member (me_json, "company_id"));
}

static void
test_agent_sees_own_company (void)
{
  g_autoptr (JsonObject) tokens = login ("agent@alpha.test", PASSWORD, 200);
  g_autofree char *me = NULL;
  g_autoptr (JsonObject) me_json = NULL;

  g_assert_cmpuint (get_with_token ("/api/v1/me",
                                    json_object_get_string_member (tokens, "access_token"), &me,
                                    NULL),
                    ==, 200);
  me_json = parse (me);
  g_assert_cmpstr (json_object_get_string_member (me_json, "company_id"), ==, company_ok);
  g_assert_cmpstr (json_object_get_string_member (me_json, "role"), ==, "agent");
}

static void
test_same_answer_for_unknown_email (void)
{
  g_autoptr (JsonObject) wrong = login ("agent@alpha.test", "not the password", 401);
  g_autoptr (JsonObject) unknown = login ("nobody@alpha.test", "not the password", 401);

  g_assert_cmpstr (json_object_get_string_member (wrong, "type"), ==,
                   "urn:calldocker:problem:invalid-credentials");
  g_assert_cmpstr (json_object_get_string_member (wrong, "type"), ==,
                   json_object_get_string_member (unknown, "type"));
  g_assert_cmpstr (json_object_get_string_member (wrong, "detail"), ==,
                   json_object_get_string_member (unknown, "detail"));
}

static void
test_suspended_company_refused (void)
{
  g_autoptr (JsonObject) refused = login ("agent@suspended.test", PASSWORD, 403);

  g_assert_cmpstr (json_object_get_string_member (refused, "type"), ==,
                   "urn:calldocker:problem:account-disabled");
  g_assert_nonnull (strstr (json_object_get_string_member (refused, "detail"), "suspended"));
}

static char *
forge_with_state_key (gint64 iat, gint64 ttl)
{
  g_autoptr (CdJwtKeys) keys = cd_jwt_keys_new ();
  g_autofree char *path = g_build_filename (state, "auth", "jwt-keys", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_true (cd_jwt_keys_load_file (keys, path, FALSE, &error));
  return cd_jwt_sign (keys, "6f1c2b9e-3d4a-4c5b-8e6f-7a8b9c0d1e2f", "superadmin", NULL, iat, ttl,
                      NULL);
}

static void
test_bad_tokens_refused (void)
{
  guint8 other[32];
  g_autoptr (CdJwtKeys) other_keys = cd_jwt_keys_new ();
  g_autofree char *expired = forge_with_state_key (g_get_real_time () / G_USEC_PER_SEC - 7200, 60);
  g_autofree char *foreign = NULL;
  g_autofree char *none = NULL;
  const char *header = "{\"alg\":\"none\",\"kid\":\"x\"}";
  const char *payload = "{\"iss\":\"calldocker\",\"sub\":\"6f1c2b9e-3d4a-4c5b-8e6f-7a8b9c0d1e2f\","
                        "\"role\":\"superadmin\",\"iat\":1790000000,\"exp\":4000000000}";
  g_autofree char *h = cd_base64url_encode ((const guint8 *) header, strlen (header));
  g_autofree char *p = cd_base64url_encode ((const guint8 *) payload, strlen (payload));
  const char *cases[5];

  randombytes_buf (other, sizeof other);
  g_assert_true (cd_jwt_keys_add (other_keys, "k-other", other, sizeof other, NULL));
  foreign = cd_jwt_sign (other_keys, "6f1c2b9e-3d4a-4c5b-8e6f-7a8b9c0d1e2f", "superadmin", NULL,
                         g_get_real_time () / G_USEC_PER_SEC, 600, NULL);
  none = g_strdup_printf ("%s.%s.", h, p);
  cases[0] = NULL;
  cases[1] = "garbage";
  cases[2] = none;
  cases[3] = foreign;
  cases[4] = expired;

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *body = NULL;
    g_autoptr (GHashTable) headers = NULL;
    g_test_message ("case %zu", i);
    g_assert_cmpuint (get_with_token ("/api/v1/me", cases[i], &body, &headers), ==, 401);
    assert_problem (body, i == 4 ? "token-expired" : "unauthorized");
    g_assert_true (g_str_has_prefix (g_hash_table_lookup (headers, "www-authenticate"), "Bearer"));
  }
}

static void
test_refresh_rotation_and_reuse (void)
{
  g_autoptr (JsonObject) first = login ("admin@alpha.test", PASSWORD, 200);
  const char *r1 = json_object_get_string_member (first, "refresh_token");
  g_autofree char *j1 = g_strdup_printf ("{\"refresh_token\":\"%s\"}", r1);
  g_autofree char *b1 = NULL;
  g_autofree char *b2 = NULL;
  g_autofree char *b3 = NULL;
  g_autoptr (JsonObject) second = NULL;
  g_autofree char *j2 = NULL;

  g_assert_cmpuint (post ("/api/v1/auth/refresh", j1, &b1, NULL), ==, 200);
  second = parse (b1);
  g_assert_cmpstr (json_object_get_string_member (second, "refresh_token"), !=, r1);
  j2 = g_strdup_printf ("{\"refresh_token\":\"%s\"}",
                        json_object_get_string_member (second, "refresh_token"));

  /* the first token again: stolen. Refused, and the whole family revoked */
  g_assert_cmpuint (post ("/api/v1/auth/refresh", j1, &b2, NULL), ==, 401);
  g_assert_cmpuint (post ("/api/v1/auth/refresh", j2, &b3, NULL), ==, 401);
}

static void
test_logout_revokes (void)
{
  g_autoptr (JsonObject) tokens = login ("admin@alpha.test", PASSWORD, 200);
  g_autofree char *j = g_strdup_printf ("{\"refresh_token\":\"%s\"}",
                                        json_object_get_string_member (tokens, "refresh_token"));
  g_autofree char *body = NULL;

  g_assert_cmpuint (post ("/api/v1/auth/logout", j, NULL, NULL), ==, 204);
  g_assert_cmpuint (post ("/api/v1/auth/refresh", j, &body, NULL), ==, 401);
  /* logging out twice, or with an unknown token, is not an error */
  g_assert_cmpuint (post ("/api/v1/auth/logout", j, NULL, NULL), ==, 204);
  g_assert_cmpuint (post ("/api/v1/auth/logout", "{\"refresh_token\":\"nope\"}", NULL, NULL), ==,
                    204);
}

static void
test_bad_bodies (void)
{
  g_autofree char *big = g_strnfill (1024 * 1024, 'a');
  g_autofree char *big_json = g_strdup_printf ("{\"email\":\"%s\",\"password\":\"x\"}", big);
  const struct {
    const char *json;
    guint status;
    const char *slug;
    const char *mentions;
  } cases[] = {
    { "{\"email\":\"a@b.test\"}", 422, "invalid-field", "password" },
    { "{\"email\":\"a@b.test\",\"password\":\"x\",\"role\":\"superadmin\"}", 422, "invalid-field",
      "role" },
    { "{\"email\":42,\"password\":\"x\"}", 422, "invalid-field", "email" },
    { "{\"email\":\"a@b.test\",\"password\":[\"x\"]}", 422, "invalid-field", "password" },
    { "{\"email\":\"a@b.test\",", 400, "invalid-json", NULL },
    { "[\"email\"]", 400, "invalid-json", NULL },
    { "{\"email\":\"a@b.test\",\"email\":\"root@example.com\",\"password\":\"x\"}", 400,
      "invalid-json", "duplicate" },
    { "{\"email\":\"' OR 1=1 --\",\"password\":\"'; DROP TABLE users; --\"}", 422, "invalid-field",
      "email" },
    { "{\"email\":\"o'brien;--@y.test\",\"password\":\"'; DROP TABLE users; --\"}", 401,
      "invalid-credentials", NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *body = NULL;
    g_test_message ("%s", cases[i].json);
    g_assert_cmpuint (post ("/api/v1/auth/login", cases[i].json, &body, NULL), ==, cases[i].status);
    assert_problem (body, cases[i].slug);
    if (cases[i].mentions)
      g_assert_nonnull (strstr (body, cases[i].mentions));
  }
  {
    g_autofree char *body = NULL;
    g_assert_cmpuint (post ("/api/v1/auth/login", big_json, &body, NULL), ==, 413);
  }
  {
    g_autofree char *u = url ("/api/v1/auth/login");
    g_autofree char *body = NULL;
    g_assert_cmpuint (cd_test_http_request ("POST", u, "text/plain", "{}", 2, NULL, &body, NULL),
                      ==, 415);
  }
  /* the daemon still serves, and the super admin can still log in */
  {
    g_autoptr (JsonObject) ok = login ("root@example.com", PASSWORD, 200);
    g_assert_true (json_object_has_member (ok, "access_token"));
  }
}

/* The newest .eml in STATE/mail addressed to @to, or NULL. */
static char *
find_mail (const char *to, const char *subject_part)
{
  g_autofree char *dir = g_build_filename (state, "mail", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autofree char *header = g_strdup_printf ("\r\nTo: %s\r\n", to);
  const char *name;

  while (d && (name = g_dir_read_name (d)) != NULL) {
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_autofree char *text = NULL;
    if (g_file_get_contents (path, &text, NULL, NULL) && strstr (text, header) &&
        strstr (text, subject_part))
      return g_steal_pointer (&text);
  }
  return NULL;
}

static void
test_password_reset (void)
{
  g_autoptr (JsonObject) before = login ("reset@alpha.test", PASSWORD, 200);
  g_autofree char *old_refresh = g_strdup_printf (
      "{\"refresh_token\":\"%s\"}", json_object_get_string_member (before, "refresh_token"));
  g_autofree char *known = NULL;
  g_autofree char *unknown = NULL;
  g_autofree char *mail = NULL;
  g_autofree char *token = NULL;
  g_autofree char *weak = NULL;
  g_autofree char *good = NULL;
  g_autofree char *body = NULL;
  const char *t;

  g_assert_cmpuint (
      post ("/api/v1/auth/password-reset", "{\"email\":\"reset@alpha.test\"}", &known, NULL), ==,
      202);
  g_assert_cmpuint (
      post ("/api/v1/auth/password-reset", "{\"email\":\"ghost@alpha.test\"}", &unknown, NULL), ==,
      202);
  g_assert_cmpstr (known, ==, unknown);

  WAIT_UNTIL ((mail = find_mail ("reset@alpha.test", "Reset your CallDocker password")) != NULL,
              20000);
  g_assert_null (find_mail ("ghost@alpha.test", "Reset"));
  t = strstr (mail, "reset-password?token=");
  g_assert_nonnull (t);
  t += strlen ("reset-password?token=");
  token = g_strndup (t, strcspn (t, "\r\n"));

  weak = g_strdup_printf ("{\"token\":\"%s\",\"new_password\":\"short\"}", token);
  g_assert_cmpuint (post ("/api/v1/auth/password-reset/confirm", weak, &body, NULL), ==, 422);
  assert_problem (body, "weak-password");
  g_clear_pointer (&body, g_free);

  good = g_strdup_printf ("{\"token\":\"%s\",\"new_password\":\"a brand new passphrase\"}", token);
  g_assert_cmpuint (post ("/api/v1/auth/password-reset/confirm", good, NULL, NULL), ==, 204);
  /* single use */
  g_assert_cmpuint (post ("/api/v1/auth/password-reset/confirm", good, &body, NULL), ==, 401);
  /* the new password works, the old one not, and old sessions are over */
  {
    g_autoptr (JsonObject) fresh = login ("reset@alpha.test", "a brand new passphrase", 200);
    g_autoptr (JsonObject) stale = login ("reset@alpha.test", PASSWORD, 401);
    g_assert_true (json_object_has_member (fresh, "access_token"));
    g_assert_false (json_object_has_member (stale, "access_token"));
  }
  g_assert_cmpuint (post ("/api/v1/auth/refresh", old_refresh, NULL, NULL), ==, 401);
}

static void
test_changes_end_sessions (void)
{
  g_autoptr (JsonObject) agent = login ("change@alpha.test", PASSWORD, 200);
  g_autoptr (JsonObject) admin = login ("admin@alpha.test", PASSWORD, 200);
  const char *agent_token = json_object_get_string_member (agent, "access_token");
  g_autofree char *me = NULL;
  g_autoptr (JsonObject) me_json = NULL;
  g_autofree char *path = NULL;
  g_autofree char *u = NULL;
  g_autofree char *bearer =
      g_strconcat ("Bearer ", json_object_get_string_member (admin, "access_token"), NULL);
  const char *h[] = { "Authorization", bearer, NULL };
  const char *json = "{\"role\":\"company_admin\"}";

  g_assert_cmpuint (get_with_token ("/api/v1/me", agent_token, &me, NULL), ==, 200);
  me_json = parse (me);
  path = g_strdup_printf ("/api/v1/companies/%s/users/%s", company_ok,
                          json_object_get_string_member (me_json, "id"));
  u = url (path);
  /* tokens are issued with second precision: let one pass */
  cd_test_sleep (1100);
  g_assert_cmpuint (
      cd_test_http_request ("PATCH", u, "application/json", json, strlen (json), h, NULL, NULL), ==,
      200);
  /* the token that says "agent" is over; a new login says company_admin */
  g_assert_cmpuint (get_with_token ("/api/v1/me", agent_token, NULL, NULL), ==, 401);
  stale_token = g_strdup (agent_token);
  cd_test_sleep (1100);
  {
    g_autoptr (JsonObject) again = login ("change@alpha.test", PASSWORD, 200);
    g_assert_cmpstr (
        json_object_get_string_member (json_object_get_object_member (again, "user"), "role"), ==,
        "company_admin");
    g_assert_cmpuint (get_with_token ("/api/v1/me",
                                      json_object_get_string_member (again, "access_token"), NULL,
                                      NULL),
                      ==, 200);
  }
}

static void
test_decisions_are_mailed (void)
{
  g_autoptr (JsonObject) root = login ("root@example.com", PASSWORD, 200);
  g_autoptr (JsonObject) created = NULL;
  g_autoptr (JsonObject) gina = NULL;
  const char *gina_token;
  g_autofree char *body = NULL;
  g_autofree char *path = NULL;
  g_autofree char *mail = NULL;
  g_autofree char *u = NULL;
  g_autofree char *bearer = NULL;

  g_assert_cmpuint (post ("/api/v1/companies",
                          "{\"company_name\":\"Gamma\",\"admin_name\":\"Gina\",\"email\":"
                          "\"gina@gamma.test\",\"password\":\"" PASSWORD "\"}",
                          &body, NULL),
                    ==, 201);
  created = parse (body);
  gina = login ("gina@gamma.test", PASSWORD, 200);
  gina_token = json_object_get_string_member (gina, "access_token");
  g_assert_cmpuint (get_with_token ("/api/v1/me", gina_token, NULL, NULL), ==, 200);
  cd_test_sleep (1100);
  path = g_strdup_printf (
      "/api/v1/admin/companies/%s/suspend",
      json_object_get_string_member (json_object_get_object_member (created, "company"), "id"));
  u = url (path);
  bearer = g_strconcat ("Bearer ", json_object_get_string_member (root, "access_token"), NULL);
  {
    const char *h[] = { "Authorization", bearer, NULL };
    const char *json = "{\"reason\":\"unpaid invoices\"}";
    g_assert_cmpuint (
        cd_test_http_request ("POST", u, "application/json", json, strlen (json), h, NULL, NULL),
        ==, 200);
  }
  WAIT_UNTIL ((mail = find_mail ("gina@gamma.test", "is suspended")) != NULL, 20000);
  /* her session from before the suspension is over */
  g_assert_cmpuint (get_with_token ("/api/v1/me", gina_token, NULL, NULL), ==, 401);
  g_assert_nonnull (strstr (mail, "Reason: unpaid invoices"));
}

static void
test_idempotent_signup (void)
{
  const char *json = "{\"company_name\":\"Delta\",\"admin_name\":\"Dee\",\"email\":"
                     "\"dee@delta.test\",\"password\":\"" PASSWORD "\"}";
  const char *other = "{\"company_name\":\"Delta 2\",\"admin_name\":\"Dee\",\"email\":"
                      "\"dee2@delta.test\",\"password\":\"" PASSWORD "\"}";
  const char *headers[] = { "Idempotency-Key", "signup-delta-1", NULL };
  g_autofree char *u = url ("/api/v1/companies");
  g_autofree char *first = NULL;
  g_autofree char *second = NULL;
  g_autofree char *third = NULL;
  g_autoptr (GHashTable) h2 = NULL;

  g_assert_cmpuint (cd_test_http_request ("POST", u, "application/json", json, strlen (json),
                                          headers, &first, NULL),
                    ==, 201);
  /* the retry gets the same answer, and nothing is created twice */
  g_assert_cmpuint (cd_test_http_request ("POST", u, "application/json", json, strlen (json),
                                          headers, &second, &h2),
                    ==, 201);
  g_assert_cmpstr (first, ==, second);
  g_assert_cmpstr (g_hash_table_lookup (h2, "idempotent-replayed"), ==, "true");
  /* the same key for another request is refused */
  g_assert_cmpuint (cd_test_http_request ("POST", u, "application/json", other, strlen (other),
                                          headers, &third, NULL),
                    ==, 422);
  assert_problem (third, "invalid-field");
  /* without the key, the same signup conflicts: it exists once */
  {
    g_autofree char *again = NULL;
    g_assert_cmpuint (post ("/api/v1/companies", json, &again, NULL), ==, 409);
  }
}

/* Every reset token in the mails to @to. */
static GPtrArray *
reset_tokens (const char *to)
{
  g_autofree char *dir = g_build_filename (state, "mail", NULL);
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  g_autofree char *header = g_strdup_printf ("\r\nTo: %s\r\n", to);
  GPtrArray *tokens = g_ptr_array_new_with_free_func (g_free);
  const char *name;

  while (d && (name = g_dir_read_name (d)) != NULL) {
    g_autofree char *path = g_build_filename (dir, name, NULL);
    g_autofree char *text = NULL;
    const char *t;
    if (!g_file_get_contents (path, &text, NULL, NULL) || !strstr (text, header) ||
        (t = strstr (text, "reset-password?token=")) == NULL)
      continue;
    t += strlen ("reset-password?token=");
    g_ptr_array_add (tokens, g_strndup (t, strcspn (t, "\r\n")));
  }
  return tokens;
}

static guint
count_reset_tokens (const char *to)
{
  g_autoptr (GPtrArray) tokens = reset_tokens (to);

  return tokens->len;
}

static void
test_older_reset_links_die (void)
{
  g_autoptr (GPtrArray) tokens = NULL;
  const char *json = "{\"email\":\"twice@alpha.test\"}";

  g_assert_cmpuint (post ("/api/v1/auth/password-reset", json, NULL, NULL), ==, 202);
  g_assert_cmpuint (post ("/api/v1/auth/password-reset", json, NULL, NULL), ==, 202);
  WAIT_UNTIL (count_reset_tokens ("twice@alpha.test") == 2, 20000);
  tokens = reset_tokens ("twice@alpha.test");
  for (guint i = 0; i < 2; i++) {
    g_autofree char *confirm =
        g_strdup_printf ("{\"token\":\"%s\",\"new_password\":\"another fine passphrase %u\"}",
                         (char *) g_ptr_array_index (tokens, i), i);
    /* the first confirmed link spends the other one too */
    g_assert_cmpuint (post ("/api/v1/auth/password-reset/confirm", confirm, NULL, NULL), ==,
                      i == 0 ? 204 : 401);
  }
}

static guint
admin_call (const char *method, const char *path, const char *json, const char *key, char **body,
            GHashTable **headers)
{
  g_autoptr (JsonObject) admin = login ("root@example.com", PASSWORD, 200);
  g_autofree char *u = url (path);
  g_autofree char *bearer =
      g_strconcat ("Bearer ", json_object_get_string_member (admin, "access_token"), NULL);
  const char *h[] = { "Authorization", bearer, key ? "Idempotency-Key" : NULL, key, NULL };

  return cd_test_http_request (method, u, json ? "application/json" : NULL, json,
                               json ? strlen (json) : 0, h, body, headers);
}

static void
test_idempotency_is_per_path (void)
{
  g_autofree char *a = g_strdup_printf ("/api/v1/companies/%s/users", company_ok);
  g_autofree char *b = g_strdup_printf ("/api/v1/companies/%s/users", company_suspended);
  const char *json =
      "{\"email\":\"same@key.test\",\"display_name\":\"Same\",\"password\":\"" PASSWORD
      "\",\"role\":\"agent\"}";
  const char *json_b = "{\"email\":\"same2@key.test\",\"display_name\":\"Same\","
                       "\"password\":\"" PASSWORD "\",\"role\":\"agent\"}";
  g_autoptr (GHashTable) hb = NULL;
  g_autofree char *body_b = NULL;

  g_assert_cmpuint (admin_call ("POST", a, json, "k1", NULL, NULL), ==, 201);
  /* the same key on another company's path is another request: refused,
   * never answered with company A's user */
  g_assert_cmpuint (admin_call ("POST", b, json_b, "k1", &body_b, &hb), ==, 422);
  g_assert_null (g_hash_table_lookup (hb, "idempotent-replayed"));
  g_assert_null (strstr (body_b, company_ok));
  /* a fresh key there works */
  g_assert_cmpuint (admin_call ("POST", b, json_b, "k2", NULL, NULL), ==, 201);
}

static void
test_settings_refuse_odd_values (void)
{
  g_autofree char *path = g_strdup_printf ("/api/v1/companies/%s", company_ok);
  const char *bad[] = {
    "{\"time_zone\":\"/etc/passwd\"}",
    "{\"time_zone\":\"../../../../etc/localtime\"}",
    "{\"time_zone\":\"EST5EDT,M3.2.0,M11.1.0\"}",
    "{\"allowed_origins\":[\"https://a.test\\n\"]}",
    "{\"allowed_origins\":[\"https://*\"]}",
    "{\"allowed_origins\":[\"https://A.test\"]}",
    "{\"allowed_origins\":[\"https://a.test/\"]}",
    "{\"allowed_origins\":[\"https://a.test#x\"]}",
  };
  g_autofree char *ok_body = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *body = NULL;
    g_test_message ("%s", bad[i]);
    g_assert_cmpuint (admin_call ("PATCH", path, bad[i], NULL, &body, NULL), ==, 422);
    assert_problem (body, "invalid-field");
  }
  g_assert_cmpuint (admin_call ("PATCH", path,
                                "{\"time_zone\":\"America/Argentina/Buenos_Aires\","
                                "\"allowed_origins\":[\"https://www.alpha.test:8443\"]}",
                                NULL, &ok_body, NULL),
                    ==, 200);
  g_assert_nonnull (strstr (ok_body, "https://www.alpha.test:8443"));
}

static void
test_odd_cursor_is_refused_or_read (void)
{
  g_autofree char *raw = g_strdup ("2026-W01-1T00:00:00Z|6f1c2b9e-3d4a-4c5b-8e6f-7a8b9c0d1e2f");
  g_autofree char *cursor = cd_base64url_encode ((const guint8 *) raw, strlen (raw));
  g_autofree char *path =
      g_strdup_printf ("/api/v1/companies/%s/users?cursor=%s", company_ok, cursor);
  guint status = admin_call ("GET", path, NULL, NULL, NULL, NULL);

  g_assert_true (status == 200 || status == 422);
}

static void
test_pausing_revokes_refresh_tokens (void)
{
  g_autoptr (JsonObject) before = login ("paused@alpha.test", PASSWORD, 200);
  g_autofree char *refresh = g_strdup_printf (
      "{\"refresh_token\":\"%s\"}", json_object_get_string_member (before, "refresh_token"));
  g_autofree char *me = NULL;
  g_autoptr (JsonObject) me_json = NULL;
  g_autofree char *path = NULL;

  g_assert_cmpuint (get_with_token ("/api/v1/me",
                                    json_object_get_string_member (before, "access_token"), &me,
                                    NULL),
                    ==, 200);
  me_json = parse (me);
  path = g_strdup_printf ("/api/v1/companies/%s/users/%s", company_ok,
                          json_object_get_string_member (me_json, "id"));
  g_assert_cmpuint (admin_call ("PATCH", path, "{\"active\":false}", NULL, NULL, NULL), ==, 200);
  g_assert_cmpuint (admin_call ("PATCH", path, "{\"active\":true}", NULL, NULL, NULL), ==, 200);
  /* reactivated, but the sessions from before stay over */
  g_assert_cmpuint (post ("/api/v1/auth/refresh", refresh, NULL, NULL), ==, 401);
}

static void
test_password_change_is_rate_limited (void)
{
  g_autoptr (JsonObject) tokens = login ("guess@alpha.test", PASSWORD, 200);
  g_autofree char *u = url ("/api/v1/me/password");
  g_autofree char *bearer =
      g_strconcat ("Bearer ", json_object_get_string_member (tokens, "access_token"), NULL);
  const char *h[] = { "Authorization", bearer, NULL };
  const char *guess = "{\"current_password\":\"a wrong guess\",\"new_password\":\"x\"}";
  g_autofree char *body = NULL;

  for (int i = 0; i < 5; i++)
    g_assert_cmpuint (
        cd_test_http_request ("POST", u, "application/json", guess, strlen (guess), h, NULL, NULL),
        ==, 401);
  g_assert_cmpuint (
      cd_test_http_request ("POST", u, "application/json", guess, strlen (guess), h, &body, NULL),
      ==, 429);
  assert_problem (body, "rate-limited");
}

/* Last but one: it uses up the attempts of one account. */
static void
test_rate_limited (void)
{
  g_autofree char *body = NULL;
  g_autoptr (GHashTable) headers = NULL;
  guint status = 0;

  /* the limit is 5 per account (set in start()): the 6th attempt is refused,
   * even with the right password */
  for (int i = 0; i < 5; i++) {
    g_autoptr (JsonObject) refused = login ("limited@alpha.test", "wrong password", 401);
    g_assert_false (json_object_has_member (refused, "access_token"));
  }
  status =
      post ("/api/v1/auth/login",
            "{\"email\":\"limited@alpha.test\",\"password\":\"" PASSWORD "\"}", &body, &headers);
  g_assert_cmpuint (status, ==, 429);
  assert_problem (body, "rate-limited");
  g_assert_nonnull (g_hash_table_lookup (headers, "retry-after"));
}

/* Last: a daemon that starts knows which sessions were ended before. */
static void
test_ended_sessions_survive_restart (void)
{
  const char *env[] = { "CALLDOCKER_AUTH_LOGIN_LIMIT_PER_ACCOUNT=5", NULL };

  g_assert_nonnull (stale_token);
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  g_assert_cmpuint (get_with_token ("/api/v1/me", stale_token, NULL, NULL), ==, 401);
}

static void
seed_accounts (void)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) owner = cd_pg_pool_new (conninfo, 1, 10000, 20, 200);
  g_autoptr (CdPasswordPolicy) policy =
      cd_password_policy_new (19 * 1024 * 1024, 2, 10, NULL, NULL);
  g_autofree char *hash = cd_password_hash (policy, PASSWORD, NULL);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = NULL;
  const char *params[] = { hash };

  cd_pg_pool_start (owner);
  cd_pg_pool_query_async (
      owner,
      "WITH a AS (INSERT INTO companies (name, slug, status) VALUES ('Alpha', 'alpha', 'approved')"
      "  RETURNING id),"
      " s AS (INSERT INTO companies (name, slug, status) VALUES ('Sus', 'sus', 'suspended')"
      "  RETURNING id),"
      " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
      "  SELECT a.id, 'admin@alpha.test', $1, 'company_admin', 'Admin' FROM a"
      "  UNION ALL SELECT a.id, 'agent@alpha.test', $1, 'agent', 'Agent' FROM a"
      "  UNION ALL SELECT a.id, 'limited@alpha.test', $1, 'agent', 'Limited' FROM a"
      "  UNION ALL SELECT a.id, 'reset@alpha.test', $1, 'agent', 'Reset Me' FROM a"
      "  UNION ALL SELECT a.id, 'change@alpha.test', $1, 'agent', 'Change Me' FROM a"
      "  UNION ALL SELECT a.id, 'twice@alpha.test', $1, 'agent', 'Twice' FROM a"
      "  UNION ALL SELECT a.id, 'paused@alpha.test', $1, 'agent', 'Paused' FROM a"
      "  UNION ALL SELECT a.id, 'guess@alpha.test', $1, 'agent', 'Guess' FROM a"
      "  UNION ALL SELECT s.id, 'agent@suspended.test', $1, 'agent', 'Sus' FROM s RETURNING 1)"
      " SELECT (SELECT id FROM a), (SELECT id FROM s), (SELECT count(*) FROM u)",
      params, 1, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  res = cd_pg_pool_query_finish (owner, result, &error);
  g_assert_no_error (error);
  company_ok = g_strdup (PQgetvalue (res, 0, 0));
  company_suspended = g_strdup (PQgetvalue (res, 0, 1));
  cd_pg_pool_close (owner);
}

static void
start (void)
{
  g_autofree char *password_file = NULL;
  const char *create[] = { "--create-superadmin", "root@example.com", "--password-file", NULL,
                           NULL };
  const char *env[] = { "CALLDOCKER_AUTH_LOGIN_LIMIT_PER_ACCOUNT=5", NULL };
  CdTestDaemon *once;

  state = cd_test_make_tmp_dir ("cd-auth-XXXXXX");
  password_file = g_build_filename (state, "password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD "\n", -1, NULL));
  create[3] = password_file;
  once = cd_test_daemon_spawn (state, create, NULL);
  cd_test_daemon_wait_exit (once, 60000);
  g_assert_cmpint (once->exit_status, ==, 0);
  g_assert_nonnull (strstr (once->out->str, "created super admin root@example.com"));
  cd_test_daemon_free (once);

  daemon_proc = cd_test_daemon_spawn (state, NULL, env);
  cd_test_daemon_wait_ready (daemon_proc, 60000);
  seed_accounts ();
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  start ();
  g_test_add_func ("/api/auth/superadmin-login-and-me", test_superadmin_login_and_me);
  g_test_add_func ("/api/auth/agent-sees-own-company", test_agent_sees_own_company);
  g_test_add_func ("/api/auth/same-answer-for-unknown-email", test_same_answer_for_unknown_email);
  g_test_add_func ("/api/auth/suspended-company-refused", test_suspended_company_refused);
  g_test_add_func ("/api/auth/bad-tokens-refused", test_bad_tokens_refused);
  g_test_add_func ("/api/auth/refresh-rotation-and-reuse", test_refresh_rotation_and_reuse);
  g_test_add_func ("/api/auth/logout-revokes", test_logout_revokes);
  g_test_add_func ("/api/auth/bad-bodies", test_bad_bodies);
  g_test_add_func ("/api/auth/password-reset", test_password_reset);
  g_test_add_func ("/api/auth/changes-end-sessions", test_changes_end_sessions);
  g_test_add_func ("/api/auth/decisions-are-mailed", test_decisions_are_mailed);
  g_test_add_func ("/api/auth/idempotent-signup", test_idempotent_signup);
  g_test_add_func ("/api/auth/older-reset-links-die", test_older_reset_links_die);
  g_test_add_func ("/api/auth/idempotency-is-per-path", test_idempotency_is_per_path);
  g_test_add_func ("/api/auth/settings-refuse-odd-values", test_settings_refuse_odd_values);
  g_test_add_func ("/api/auth/odd-cursor-is-refused-or-read", test_odd_cursor_is_refused_or_read);
  g_test_add_func ("/api/auth/pausing-revokes-refresh-tokens", test_pausing_revokes_refresh_tokens);
  g_test_add_func ("/api/auth/password-change-is-rate-limited",
                   test_password_change_is_rate_limited);
  g_test_add_func ("/api/auth/rate-limited", test_rate_limited);
  g_test_add_func ("/api/auth/ended-sessions-stay-ended-after-restart",
                   test_ended_sessions_survive_restart);
  status = g_test_run ();
  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  g_free (company_ok);
  g_free (company_suspended);
  g_free (stale_token);
  return status;
}
