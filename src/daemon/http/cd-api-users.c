/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's users, managed by its admins (and the super admin): list,
 * create, read, update, deactivate; and everyone's own password change. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../auth/cd-auth-error.h"
#include "../../common/cd-json.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <string.h>

#define USER_JSON                                                                               \
  "json_build_object('id', u.id, 'company_id', u.company_id, 'email', u.email, 'role', u.role," \
  " 'display_name', u.display_name, 'skills', u.skills, 'languages', u.languages,"              \
  " 'active', u.active, 'created_at', u.created_at, 'updated_at', u.updated_at)"

static const CdField create_fields[] = {
  { "email", CD_FIELD_EMAIL, TRUE, 0, 0 },
  { "display_name", CD_FIELD_STRING, TRUE, 1, 200 },
  { "password", CD_FIELD_SECRET, TRUE, 1, 1024 },
  { "role", CD_FIELD_STRING, TRUE, 1, 20 },
  { "skills", CD_FIELD_OBJECT, FALSE, 0, 50 },
  { "languages", CD_FIELD_STRING_ARRAY, FALSE, 0, 20 },
};

static const CdField update_fields[] = {
  { "display_name", CD_FIELD_STRING, FALSE, 1, 200 },
  { "role", CD_FIELD_STRING, FALSE, 1, 20 },
  { "skills", CD_FIELD_OBJECT, FALSE, 0, 50 },
  { "languages", CD_FIELD_STRING_ARRAY, FALSE, 0, 20 },
  { "active", CD_FIELD_BOOL, FALSE, 0, 0 },
};

static const CdField password_fields[] = {
  { "current_password", CD_FIELD_SECRET, TRUE, 1, 1024 },
  { "new_password", CD_FIELD_SECRET, TRUE, 1, 1024 },
};

/* {skill: level 1..10}; the role an admin may give; language tags */
static gboolean
check_profile (JsonObject *body, GError **error)
{
  if (json_object_has_member (body, "role")) {
    const char *role = json_object_get_string_member (body, "role");
    if (!g_str_equal (role, "agent") && !g_str_equal (role, "company_admin")) {
      g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                           "field 'role': agent or company_admin");
      return FALSE;
    }
  }
  if (json_object_has_member (body, "skills")) {
    JsonObject *skills = json_object_get_object_member (body, "skills");
    JsonObjectIter iter;
    const char *name;
    JsonNode *level;
    json_object_iter_init_ordered (&iter, skills);
    while (json_object_iter_next_ordered (&iter, &name, &level)) {
      gsize n = strlen (name);
      if (n == 0 || n > 50 || !JSON_NODE_HOLDS_VALUE (level) ||
          json_node_get_value_type (level) != G_TYPE_INT64 || json_node_get_int (level) < 1 ||
          json_node_get_int (level) > 10) {
        g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                     "field 'skills': each skill (1-50 characters) needs a level from 1 to 10");
        return FALSE;
      }
    }
  }
  if (json_object_has_member (body, "languages")) {
    JsonArray *langs = json_object_get_array_member (body, "languages");
    for (guint i = 0; i < json_array_get_length (langs); i++) {
      const char *tag = json_array_get_string_element (langs, i);
      gsize n = strlen (tag);
      gboolean ok = n >= 2 && n <= 35;
      for (const char *p = tag; ok && *p; p++)
        ok = g_ascii_isalnum (*p) || *p == '-';
      if (!ok) {
        g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                     "field 'languages': '%.40s' is not a language tag like de or pt-BR", tag);
        return FALSE;
      }
    }
  }
  return TRUE;
}

static char *
member_json (JsonObject *body, const char *name)
{
  return json_object_has_member (body, name)
             ? cd_json_to_string (json_object_get_member (body, name))
             : NULL;
}

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  g_autofree char *cursor_time = NULL;
  g_autofree char *cursor_id = NULL;
  g_autofree char *limit_text = NULL;
  CdApiCall *call;
  CdPgScope scope;
  guint limit;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  if (!cd_api_page_params (request, &limit, &cursor_time, &cursor_id, &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_PAGE, 200, NULL);
  limit_text = g_strdup_printf ("%u", limit);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"), cursor_time, cursor_id,
                             limit_text };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH page AS (SELECT u.*, " USER_JSON " AS j FROM users u WHERE u.company_id = $1"
        "  AND ($2::timestamptz IS NULL OR (u.created_at, u.id) > ($2::timestamptz, $3::uuid))"
        "  ORDER BY u.created_at, u.id LIMIT $4::int + 1)," CD_API_PAGE_OLDEST_FIRST (
            "$4") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)",
        params, 4, NULL, cd_api_call_on_query, call);
  }
}

typedef struct {
  char *company;
  char *email;
  char *display_name;
  char *role;
  char *skills;
  char *languages;
  char *password;
} NewUser;

static void
new_user_free (gpointer data)
{
  NewUser *u = data;

  g_free (u->company);
  g_free (u->email);
  g_free (u->display_name);
  g_free (u->role);
  g_free (u->skills);
  g_free (u->languages);
  if (u->password)
    memset (u->password, 0, strlen (u->password));
  g_free (u->password);
  g_free (u);
}

static void
on_new_user_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  NewUser *u = call->data;
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = cd_password_hash_finish (result, &error);
  CdPgScope scope = cd_api_scope_of (call->caller);

  if (hash == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  {
    const char *params[] = { u->company,           u->email,        hash,         u->role,
                             u->display_name,      u->skills,       u->languages, call->caller->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH ins AS (INSERT INTO users (company_id, email, password_hash, role, display_name,"
        "  skills, languages) SELECT $1, $2, $3, $4, $5, coalesce($6::jsonb, '{}'),"
        "  coalesce((SELECT array_agg(x) FROM json_array_elements_text($7::json) x), '{}')"
        "  WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1) RETURNING *),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $8::uuid, 'user.created', email, $9, $10 FROM ins"
        "  RETURNING 1)"
        " SELECT " USER_JSON " FROM ins u, (SELECT count(*) FROM a) AS audited",
        params, 10, NULL, cd_api_call_on_query, call);
  }
}

static void
create_proceed (CdApiCall *call)
{
  NewUser *u = call->data;

  cd_password_hash_async (call->api->passwords, u->password, NULL, on_new_user_hashed, call);
}

static void
handle_create (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  g_autoptr (JsonObject) body = NULL;
  CdApiCall *call;
  NewUser *u;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  body = cd_http_request_read_json (request, create_fields, G_N_ELEMENTS (create_fields), &error);
  if (body == NULL || !check_profile (body, &error) ||
      !cd_password_policy_check (api->passwords, json_object_get_string_member (body, "password"),
                                 json_object_get_string_member (body, "email"), &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  u = g_new0 (NewUser, 1);
  u->company = g_strdup (g_hash_table_lookup (request->params, "id"));
  u->email = g_strdup (json_object_get_string_member (body, "email"));
  u->display_name = g_strdup (json_object_get_string_member (body, "display_name"));
  u->role = g_strdup (json_object_get_string_member (body, "role"));
  u->skills = member_json (body, "skills");
  u->languages = member_json (body, "languages");
  call = cd_api_call_new (api, request);
  call->caller = g_steal_pointer (&claims);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 201, "an account with this email exists");
  u->password = g_strdup (json_object_get_string_member (body, "password"));
  call->data = u;
  call->data_free = new_user_free;
  cd_api_call_idempotent (call, call->caller->sub, create_proceed);
}

static gboolean
user_param (CdHttpRequest *request, GError **error)
{
  const char *id = g_hash_table_lookup (request->params, "user_id");

  if (!cd_is_uuid (id)) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such user");
    return FALSE;
  }
  return TRUE;
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL || !user_param (request, &error)) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, "an account with this email exists");
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "user_id") };
    cd_pg_pool_query_scoped_async (api->pool, &scope,
                                   "SELECT " USER_JSON " FROM users u"
                                   " WHERE u.company_id = $1 AND u.id = $2",
                                   params, 2, NULL, cd_api_call_on_query, call);
  }
}

static void
handle_update (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  g_autoptr (JsonObject) body = NULL;
  g_autofree char *skills = NULL;
  g_autofree char *languages = NULL;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL || !user_param (request, &error)) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  body = cd_http_request_read_json (request, update_fields, G_N_ELEMENTS (update_fields), &error);
  if (body == NULL || !check_profile (body, &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  skills = member_json (body, "skills");
  languages = member_json (body, "languages");
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, "an account with this email exists");
  /* a new role or a deactivation ends the sessions holding the old ones */
  if (json_object_has_member (body, "role") || json_object_has_member (body, "active"))
    call->block_on_success = g_strdup (g_hash_table_lookup (request->params, "user_id"));
  {
    const char *display_name = json_object_has_member (body, "display_name")
                                   ? json_object_get_string_member (body, "display_name")
                                   : NULL;
    const char *role =
        json_object_has_member (body, "role") ? json_object_get_string_member (body, "role") : NULL;
    const char *active = json_object_has_member (body, "active")
                             ? (json_object_get_boolean_member (body, "active") ? "t" : "f")
                             : NULL;
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "user_id"),
                             display_name,
                             role,
                             skills,
                             languages,
                             active,
                             claims->sub,
                             call->client_address,
                             call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH upd AS (UPDATE users SET display_name = coalesce($3, display_name),"
        "  role = coalesce($4, role), skills = coalesce($5::jsonb, skills),"
        "  languages = coalesce((SELECT array_agg(x) FROM json_array_elements_text($6::json) x),"
        "   CASE WHEN $6 IS NULL THEN languages ELSE '{}' END),"
        "  active = coalesce($7::boolean, active), updated_at = now(),"
        "  sessions_valid_after = CASE WHEN $4 IS NOT NULL OR $7 IS NOT NULL THEN now()"
        "   ELSE sessions_valid_after END"
        "  WHERE company_id = $1 AND id = $2 RETURNING *),"
        " r AS (UPDATE refresh_tokens SET revoked_at = now() WHERE $7::boolean IS FALSE"
        "  AND user_id IN (SELECT id FROM upd) AND revoked_at IS NULL RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $8::uuid, 'user.updated', email, $9, $10 FROM upd"
        "  RETURNING 1)"
        " SELECT " USER_JSON " FROM upd u, (SELECT count(*) FROM a) AS audited,"
        "  (SELECT count(*) FROM r) AS revoked",
        params, 10, NULL, cd_api_call_on_query, call);
  }
}

/* Deactivates (users are never deleted: the audit log and calls refer to
 * them) and ends every session. */
static void
handle_deactivate (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL || !user_param (request, &error)) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_EMPTY, 204, NULL);
  call->block_on_success = g_strdup (g_hash_table_lookup (request->params, "user_id"));
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "user_id"), claims->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH upd AS (UPDATE users SET active = false, updated_at = now(),"
        "  sessions_valid_after = now()"
        "  WHERE company_id = $1 AND id = $2 RETURNING id, company_id, email),"
        " r AS (UPDATE refresh_tokens SET revoked_at = now()"
        "  WHERE user_id IN (SELECT id FROM upd) AND revoked_at IS NULL RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $3::uuid, 'user.deactivated', email, $4, $5 FROM upd"
        "  RETURNING 1)"
        " SELECT 1 FROM upd, (SELECT count(*) FROM r) AS revoked, (SELECT count(*) FROM a) AS x",
        params, 5, NULL, cd_api_call_on_query, call);
  }
}

/* ---- POST /api/v1/me/password ---- */

typedef struct {
  char *current;
  char *next;
  char *email;
} PasswordChange;

static void
password_change_free (gpointer data)
{
  PasswordChange *p = data;

  if (p->current)
    memset (p->current, 0, strlen (p->current));
  if (p->next)
    memset (p->next, 0, strlen (p->next));
  g_free (p->current);
  g_free (p->next);
  g_free (p->email);
  g_free (p);
}

static void
on_new_password_stored (GObject *source, GAsyncResult *result, gpointer user_data)
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

static void
on_new_password_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = cd_password_hash_finish (result, &error);
  CdPgScope scope = cd_api_scope_of (call->caller);

  if (hash == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  {
    /* every other session ends: refresh tokens are revoked */
    const char *params[] = { call->caller->sub, hash, call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH upd AS (UPDATE users SET password_hash = $2, password_changed_at = now(),"
        "  sessions_valid_after = now(), updated_at = now() WHERE id = $1"
        "  RETURNING id, company_id),"
        " r AS (UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1"
        "  AND revoked_at IS NULL RETURNING 1),"
        " l AS (UPDATE password_reset_tokens SET used_at = now() WHERE user_id = $1"
        "  AND used_at IS NULL RETURNING 1)"
        " INSERT INTO audit_log (company_id, actor_user_id, action, client_address, request_id)"
        " SELECT company_id, id, 'user.password-changed', $3, $4 FROM upd",
        params, 4, NULL, on_new_password_stored, call);
  }
}

static void
on_current_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  PasswordChange *p = call->data;
  g_autoptr (GError) error = NULL;

  if (!cd_password_verify_finish (result)) {
    error = g_error_new_literal (CD_AUTH_ERROR, CD_AUTH_ERROR_BAD_CREDENTIALS,
                                 "the current password is wrong");
    cd_api_call_respond_error (call, error);
    return;
  }
  if (!cd_password_policy_check (call->api->passwords, p->next, p->email, &error)) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_password_hash_async (call->api->passwords, p->next, NULL, on_new_password_hashed, call);
}

static void
on_password_row (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  PasswordChange *p = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) != 1) {
    error = g_error_new_literal (CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                                 "the account no longer exists");
    cd_api_call_respond_error (call, error);
    return;
  }
  p->email = g_strdup (PQgetvalue (res, 0, 1));
  cd_password_verify_async (PQgetvalue (res, 0, 0), p->current, NULL, on_current_checked, call);
}

static void
password_lookup (CdApiCall *call)
{
  CdPgScope scope = cd_api_scope_of (call->caller);
  const char *params[] = { call->caller->sub };

  cd_pg_pool_query_scoped_async (call->api->pool, &scope,
                                 "SELECT password_hash, email FROM users WHERE id = $1 AND active",
                                 params, 1, NULL, on_password_row, call);
}

static void
handle_change_password (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_api_guard (api, request, CD_ROLE_ANY, NULL, &error);
  g_autoptr (JsonObject) body = NULL;
  PasswordChange *p;
  CdApiCall *call;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  body =
      cd_http_request_read_json (request, password_fields, G_N_ELEMENTS (password_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  p = g_new0 (PasswordChange, 1);
  p->current = g_strdup (json_object_get_string_member (body, "current_password"));
  p->next = g_strdup (json_object_get_string_member (body, "new_password"));
  call = cd_api_call_new (api, request);
  call->caller = g_steal_pointer (&claims);
  call->block_on_success = g_strdup (call->caller->sub);
  call->data = p;
  call->data_free = password_change_free;
  /* a stolen access token must not allow guessing the current password */
  cd_api_call_rate_limit (call, "password", call->caller->sub, password_lookup);
}

gboolean
cd_api_users_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/users", handle_list, api,
                                   error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/companies/{id}/users", handle_create,
                                   api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/users/{user_id}",
                                   handle_get, api, error) &&
         cd_http_server_add_route (server, "PATCH", "/api/v1/companies/{id}/users/{user_id}",
                                   handle_update, api, error) &&
         cd_http_server_add_route (server, "DELETE", "/api/v1/companies/{id}/users/{user_id}",
                                   handle_deactivate, api, error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/me/password", handle_change_password,
                                   api, error);
}
