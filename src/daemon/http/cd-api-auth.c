/* SPDX-License-Identifier: GPL-3.0-or-later */
/* POST /api/v1/auth/login, /auth/refresh, /auth/logout and GET /api/v1/me.
 * Login: rate limit (Redis), look the account up, verify in a worker thread
 * (a dummy hash when there is no account), then issue both tokens. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../auth/cd-auth-error.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <string.h>

static const CdField login_fields[] = {
  { "email", CD_FIELD_EMAIL, TRUE, 0, 0 },
  { "password", CD_FIELD_SECRET, TRUE, 1, 1024 },
};

static const CdField reset_request_fields[] = {
  { "email", CD_FIELD_EMAIL, TRUE, 0, 0 },
};

static const CdField reset_confirm_fields[] = {
  { "token", CD_FIELD_SECRET, TRUE, 1, 200 },
  { "new_password", CD_FIELD_SECRET, TRUE, 1, 1024 },
};

static const CdField refresh_fields[] = {
  { "refresh_token", CD_FIELD_SECRET, TRUE, 1, 200 },
};

typedef struct {
  char *email;
  char *password;
  char *account_key;
  /* the account, once looked up */
  char *user_id;
  char *company_id;
  char *role;
  char *hash;
  gboolean active;
  char *company_status;
  /* the refresh token issued */
  char *refresh_token;
} Login;

static void
login_free (gpointer data)
{
  Login *l = data;

  g_free (l->email);
  if (l->password) {
    memset (l->password, 0, strlen (l->password));
    g_free (l->password);
  }
  g_free (l->account_key);
  g_free (l->user_id);
  g_free (l->company_id);
  g_free (l->role);
  g_free (l->hash);
  g_free (l->company_status);
  g_free (l->refresh_token);
  g_free (l);
}

static void
fail (CdApiCall *call, GQuark domain, int code, const char *message)
{
  g_autoptr (GError) error = g_error_new_literal (domain, code, message);

  cd_api_call_respond_error (call, error);
}

static gboolean
company_usable (const char *status, GError **error)
{
  if (status == NULL || g_str_equal (status, "approved") || g_str_equal (status, "pending"))
    return TRUE;
  g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_ACCOUNT_DISABLED, "the company is %s", status);
  return FALSE;
}

/* {access_token, refresh_token, ...} */
static void
respond_tokens (CdApiCall *call, const char *user_id, const char *role, const char *company_id,
                const char *refresh_token)
{
  g_autoptr (GError) error = NULL;
  CdApi *api = call->api;
  g_autofree char *access =
      cd_jwt_sign_at_ms (api->keys, user_id, role, company_id, g_get_real_time () / 1000,
                         api->settings.access_ttl_s, &error);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) body = NULL;

  if (access == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "access_token");
  json_builder_add_string_value (b, access);
  json_builder_set_member_name (b, "token_type");
  json_builder_add_string_value (b, "Bearer");
  json_builder_set_member_name (b, "expires_in");
  json_builder_add_int_value (b, api->settings.access_ttl_s);
  json_builder_set_member_name (b, "refresh_token");
  json_builder_add_string_value (b, refresh_token);
  json_builder_set_member_name (b, "user");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "id");
  json_builder_add_string_value (b, user_id);
  json_builder_set_member_name (b, "role");
  json_builder_add_string_value (b, role);
  json_builder_set_member_name (b, "company_id");
  if (company_id)
    json_builder_add_string_value (b, company_id);
  else
    json_builder_add_null_value (b);
  json_builder_end_object (b);
  json_builder_end_object (b);
  body = json_builder_get_root (b);
  cd_api_call_respond_json (call, 200, body);
}

static void
on_login_recorded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Login *l = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  /* a good login clears the account's failures */
  cd_redis_commandv_async (call->api->redis, NULL, NULL, NULL, "DEL", l->account_key, NULL);
  respond_tokens (call, l->user_id, l->role, l->company_id, l->refresh_token);
}

static void
on_password_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Login *l = call->data;
  CdApi *api = call->api;
  gboolean match = cd_password_verify_finish (result);
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = NULL;
  g_autofree char *ttl = NULL;

  if (!match || l->user_id == NULL) {
    fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_BAD_CREDENTIALS, "wrong email or password");
    return;
  }
  if (!l->active) {
    fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_ACCOUNT_DISABLED, "the account is deactivated");
    return;
  }
  if (!company_usable (l->company_status, &error)) {
    cd_api_call_respond_error (call, error);
    return;
  }
  l->refresh_token = cd_api_new_token ();
  hash = cd_api_hash_token (l->refresh_token);
  ttl = g_strdup_printf ("%u", api->settings.refresh_ttl_s);
  {
    const char *params[] = { l->user_id, l->company_id,        hash,
                             ttl,        call->client_address, call->request_id };
    CdPgScope scope = { NULL, TRUE };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH t AS (INSERT INTO refresh_tokens"
        " (user_id, company_id, family_id, token_hash, expires_at, created_from)"
        " VALUES ($1, $2, gen_random_uuid(), $3, now() + make_interval(secs => $4::int), $5)"
        " RETURNING id)"
        " INSERT INTO audit_log (company_id, actor_user_id, action, client_address, request_id)"
        " SELECT $2, $1, 'auth.login', $5, $6 FROM t",
        params, 6, NULL, on_login_recorded, call);
  }
}

static void
on_account_found (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Login *l = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 1) {
    l->user_id = g_strdup (PQgetvalue (res, 0, 0));
    l->company_id = PQgetisnull (res, 0, 1) ? NULL : g_strdup (PQgetvalue (res, 0, 1));
    l->hash = g_strdup (PQgetvalue (res, 0, 2));
    l->role = g_strdup (PQgetvalue (res, 0, 3));
    l->active = g_str_equal (PQgetvalue (res, 0, 4), "t");
    l->company_status = PQgetisnull (res, 0, 5) ? NULL : g_strdup (PQgetvalue (res, 0, 5));
  }
  /* the same work whether the account exists or not */
  cd_password_verify_async (l->hash ? l->hash : cd_password_dummy_hash (call->api->passwords),
                            l->password, NULL, on_password_checked, call);
}

static void
login_lookup (CdApiCall *call)
{
  Login *l = call->data;
  const char *params[1];
  CdPgScope scope = { NULL, TRUE };

  params[0] = l->email;
  cd_pg_pool_query_scoped_async (
      call->api->pool, &scope,
      "SELECT u.id, u.company_id, u.password_hash, u.role, u.active, c.status"
      " FROM users u LEFT JOIN companies c ON c.id = u.company_id"
      " WHERE lower(u.email) = lower($1)",
      params, 1, NULL, on_account_found, call);
}

static void
handle_login (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body =
      cd_http_request_read_json (request, login_fields, G_N_ELEMENTS (login_fields), &error);
  CdApiCall *call;
  Login *l;

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_new (api, request);
  l = g_new0 (Login, 1);
  call->data = l;
  call->data_free = login_free;
  l->email = g_strdup (json_object_get_string_member (body, "email"));
  l->password = g_strdup (json_object_get_string_member (body, "password"));
  l->account_key = cd_api_rate_limit_key ("login", l->email);
  cd_api_call_rate_limit (call, "login", l->email, login_lookup);
}

/* ---- refresh: rotate in one statement; a token used twice revokes its family ---- */

typedef struct {
  char *hash;
  char *new_token;
} Refresh;

static void
refresh_free (gpointer data)
{
  Refresh *r = data;

  g_free (r->hash);
  g_free (r->new_token);
  g_free (r);
}

static void
on_family_revoked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res && PQntuples (res) > 0 && g_str_equal (PQgetvalue (res, 0, 0), "t"))
    g_message ("refresh token reused (request %s from %s): its family is revoked", call->request_id,
               call->client_address);
  fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
        "the refresh token is not valid; log in again");
}

static void
on_rotated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Refresh *r = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (GError) refused = NULL;

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    /* unknown, expired, or already used: if used, that is a theft signal */
    const char *params[] = { r->hash, call->client_address, call->request_id };
    CdPgScope scope = { NULL, TRUE };
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH reused AS (SELECT family_id, user_id, company_id FROM refresh_tokens"
        "  WHERE token_hash = $1 AND used_at IS NOT NULL),"
        " revoked AS (UPDATE refresh_tokens SET revoked_at = now()"
        "  WHERE family_id IN (SELECT family_id FROM reused) AND revoked_at IS NULL RETURNING 1),"
        " audit AS (INSERT INTO audit_log (company_id, actor_user_id, action, client_address,"
        "  request_id) SELECT company_id, user_id, 'auth.refresh-token-reused', $2, $3"
        "  FROM reused RETURNING 1)"
        " SELECT EXISTS (SELECT 1 FROM reused), (SELECT count(*) FROM revoked),"
        "  (SELECT count(*) FROM audit)",
        params, 3, NULL, on_family_revoked, call);
    return;
  }
  if (!g_str_equal (PQgetvalue (res, 0, 3), "t")) {
    fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_ACCOUNT_DISABLED, "the account is deactivated");
    return;
  }
  if (!company_usable (PQgetisnull (res, 0, 4) ? NULL : PQgetvalue (res, 0, 4), &refused)) {
    cd_api_call_respond_error (call, refused);
    return;
  }
  respond_tokens (call, PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1),
                  PQgetisnull (res, 0, 2) ? NULL : PQgetvalue (res, 0, 2), r->new_token);
}

static void
handle_refresh (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body =
      cd_http_request_read_json (request, refresh_fields, G_N_ELEMENTS (refresh_fields), &error);
  CdApiCall *call;
  Refresh *r;
  g_autofree char *new_hash = NULL;
  g_autofree char *ttl = NULL;
  CdPgScope scope = { NULL, TRUE };

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_new (api, request);
  r = g_new0 (Refresh, 1);
  call->data = r;
  call->data_free = refresh_free;
  r->hash = cd_api_hash_token (json_object_get_string_member (body, "refresh_token"));
  r->new_token = cd_api_new_token ();
  new_hash = cd_api_hash_token (r->new_token);
  ttl = g_strdup_printf ("%u", api->settings.refresh_ttl_s);
  {
    const char *params[] = { r->hash, new_hash, ttl, call->client_address };
    /* one statement: a concurrent second use of the same token finds it used */
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH old AS (UPDATE refresh_tokens SET used_at = now()"
        "  WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL"
        "  AND expires_at > now() RETURNING family_id, user_id, company_id),"
        " fresh AS (INSERT INTO refresh_tokens"
        "  (user_id, company_id, family_id, token_hash, expires_at, created_from)"
        "  SELECT user_id, company_id, family_id, $2, now() + make_interval(secs => $3::int), $4"
        "  FROM old RETURNING user_id)"
        " SELECT u.id, u.role, u.company_id, u.active, c.status"
        " FROM fresh JOIN users u ON u.id = fresh.user_id"
        " LEFT JOIN companies c ON c.id = u.company_id",
        params, 4, NULL, on_rotated, call);
  }
}

static void
on_logged_out (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_api_call_respond_empty (call, 204);
}

/* Revokes the refresh token's whole family; unknown tokens too get 204. */
static void
handle_logout (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body =
      cd_http_request_read_json (request, refresh_fields, G_N_ELEMENTS (refresh_fields), &error);
  CdApiCall *call;
  g_autofree char *hash = NULL;
  CdPgScope scope = { NULL, TRUE };

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_new (api, request);
  hash = cd_api_hash_token (json_object_get_string_member (body, "refresh_token"));
  {
    const char *params[] = { hash, call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH t AS (SELECT family_id, user_id, company_id FROM refresh_tokens"
        "  WHERE token_hash = $1),"
        " r AS (UPDATE refresh_tokens SET revoked_at = now()"
        "  WHERE family_id IN (SELECT family_id FROM t) AND revoked_at IS NULL RETURNING 1)"
        " INSERT INTO audit_log (company_id, actor_user_id, action, client_address, request_id)"
        " SELECT company_id, user_id, 'auth.logout', $2, $3 FROM t",
        params, 3, NULL, on_logged_out, call);
  }
}

/* ---- GET /api/v1/me ---- */

static void
on_me (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (JsonNode) body = NULL;

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) != 1 || !g_str_equal (PQgetvalue (res, 0, 1), "t")) {
    fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID, "the account no longer exists");
    return;
  }
  body = json_from_string (PQgetvalue (res, 0, 0), &error);
  if (body == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_api_call_respond_json (call, 200, body);
}

static void
handle_me (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  CdJwtClaims *claims = cd_api_authenticate (api, request, &error);
  CdApiCall *call;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  call = cd_api_call_new (api, request);
  call->caller = claims;
  {
    const char *params[] = { claims->sub };
    CdPgScope scope = { claims->company, claims->company == NULL };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "SELECT json_build_object('id', u.id, 'email', u.email, 'role', u.role,"
        " 'display_name', u.display_name, 'company_id', u.company_id, 'skills', u.skills,"
        " 'languages', u.languages, 'active', u.active, 'company_status', c.status,"
        " 'created_at', u.created_at), u.active"
        " FROM users u LEFT JOIN companies c ON c.id = u.company_id WHERE u.id = $1",
        params, 1, NULL, on_me, call);
  }
}

/* ---- password reset: a single-use link by mail, valid 30 minutes ---- */

#define RESET_MAIL_BODY                                                             \
  "Hello {name},\n\n"                                                               \
  "someone, we hope you, asked to reset the password of your CallDocker account.\n" \
  "Open this link within 30 minutes to choose a new one:\n\n"                       \
  "%sreset-password?token=%s\n\n"                                                   \
  "If you did not ask for this, ignore this mail: your password stays as it is.\n"

typedef struct {
  char *email;
  char *token;
  char *new_password;
  char *account_key;
} Reset;

static void
reset_free (gpointer data)
{
  Reset *r = data;

  g_free (r->email);
  g_free (r->token);
  if (r->new_password) {
    memset (r->new_password, 0, strlen (r->new_password));
    g_free (r->new_password);
  }
  g_free (r->account_key);
  g_free (r);
}

static void
on_reset_queued (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (JsonNode) body = NULL;

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_mailer_kick (call->api->mailer);
  /* the same answer whether the account exists or not */
  body = json_from_string ("{\"detail\":\"If an account has this email, a reset link is on "
                           "its way.\"}",
                           NULL);
  cd_api_call_respond_json (call, 202, body);
}

static void
reset_queue (CdApiCall *call)
{
  Reset *r = call->data;
  g_autofree char *hash = NULL;
  g_autofree char *mail = NULL;
  CdPgScope scope = { NULL, TRUE };

  r->token = cd_api_new_token ();
  hash = cd_api_hash_token (r->token);
  mail = g_strdup_printf (RESET_MAIL_BODY, call->api->public_url, r->token);
  {
    const char *params[] = { r->email, hash, mail };
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH u AS (SELECT id, company_id, email, display_name FROM users"
        "  WHERE lower(email) = lower($1) AND active),"
        " t AS (INSERT INTO password_reset_tokens (user_id, company_id, token_hash, expires_at)"
        "  SELECT id, company_id, $2, now() + interval '30 minutes' FROM u RETURNING 1),"
        " m AS (INSERT INTO mail_outbox (company_id, to_address, subject, body)"
        "  SELECT company_id, email, 'Reset your CallDocker password',"
        "  replace($3, '{name}', display_name) FROM u RETURNING 1)"
        " SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM m)",
        params, 3, NULL, on_reset_queued, call);
  }
}

static void
handle_reset_request (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = cd_http_request_read_json (
      request, reset_request_fields, G_N_ELEMENTS (reset_request_fields), &error);
  CdApiCall *call;
  Reset *r;

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_new (api, request);
  r = g_new0 (Reset, 1);
  call->data = r;
  call->data_free = reset_free;
  r->email = g_strdup (json_object_get_string_member (body, "email"));
  cd_api_call_rate_limit (call, "reset", r->email, reset_queue);
}

static void
on_reset_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "0")) {
    /* used meanwhile by a concurrent confirmation */
    fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
          "the reset link was used or expired; ask for a new one");
    return;
  }
  call->block_on_success = g_strdup (PQgetvalue (res, 0, 3));
  cd_api_call_respond_empty (call, 204);
}

static void
on_reset_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Reset *r = call->data;
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = cd_password_hash_finish (result, &error);
  g_autofree char *token_hash = NULL;
  CdPgScope scope = { NULL, TRUE };

  if (hash == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  token_hash = cd_api_hash_token (r->token);
  {
    const char *params[] = { token_hash, hash, call->client_address, call->request_id };
    /* the link is spent, the password set and every session ended, at once */
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH t AS (UPDATE password_reset_tokens SET used_at = now() WHERE token_hash = $1"
        "  AND used_at IS NULL AND expires_at > now() RETURNING user_id),"
        " u AS (UPDATE users SET password_hash = $2, password_changed_at = now(),"
        "  sessions_valid_after = now(), updated_at = now()"
        "  WHERE id IN (SELECT user_id FROM t) AND active RETURNING id, company_id),"
        " l AS (UPDATE password_reset_tokens SET used_at = now()"
        "  WHERE user_id IN (SELECT id FROM u) AND used_at IS NULL RETURNING 1),"
        " r AS (UPDATE refresh_tokens SET revoked_at = now()"
        "  WHERE user_id IN (SELECT id FROM u) AND revoked_at IS NULL RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, client_address,"
        "  request_id) SELECT company_id, id, 'auth.password-reset', $3, $4 FROM u RETURNING 1)"
        " SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM r), (SELECT count(*) FROM a)"
        ", (SELECT id FROM u), (SELECT count(*) FROM l)",
        params, 4, NULL, on_reset_done, call);
  }
}

static void
on_reset_token_found (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Reset *r = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) != 1) {
    fail (call, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
          "the reset link was used or expired; ask for a new one");
    return;
  }
  if (!cd_password_policy_check (call->api->passwords, r->new_password, PQgetvalue (res, 0, 0),
                                 &error)) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_password_hash_async (call->api->passwords, r->new_password, NULL, on_reset_hashed, call);
}

static void
handle_reset_confirm (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = cd_http_request_read_json (
      request, reset_confirm_fields, G_N_ELEMENTS (reset_confirm_fields), &error);
  g_autofree char *token_hash = NULL;
  CdApiCall *call;
  Reset *r;
  CdPgScope scope = { NULL, TRUE };

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_new (api, request);
  r = g_new0 (Reset, 1);
  call->data = r;
  call->data_free = reset_free;
  r->token = g_strdup (json_object_get_string_member (body, "token"));
  r->new_password = g_strdup (json_object_get_string_member (body, "new_password"));
  token_hash = cd_api_hash_token (r->token);
  {
    const char *params[] = { token_hash };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "SELECT u.email FROM password_reset_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > now() AND u.active",
        params, 1, NULL, on_reset_token_found, call);
  }
}

gboolean
cd_api_auth_register (CdApi *api, CdHttpServer *server, GError **error)
{
  if (!cd_http_server_add_route (server, "POST", "/api/v1/auth/password-reset",
                                 handle_reset_request, api, error) ||
      !cd_http_server_add_route (server, "POST", "/api/v1/auth/password-reset/confirm",
                                 handle_reset_confirm, api, error))
    return FALSE;
  return cd_http_server_add_route (server, "POST", "/api/v1/auth/login", handle_login, api,
                                   error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/auth/refresh", handle_refresh, api,
                                   error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/auth/logout", handle_logout, api,
                                   error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/me", handle_me, api, error);
}
