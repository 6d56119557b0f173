/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Companies: public signup (a pending company and its admin), the super
 * admin's list and decisions (approve, reject, suspend), and each company's
 * own profile and settings. Every change is audited. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../../common/cd-json.h"
#include "../auth/cd-auth-error.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <string.h>

/* What a company looks like in answers. */
#define COMPANY_JSON                                                                         \
  "json_build_object('id', c.id, 'name', c.name, 'slug', c.slug, 'status', c.status,"        \
  " 'status_reason', c.status_reason, 'plan', c.plan, 'allowed_origins', c.allowed_origins," \
  " 'settings', c.settings, 'created_at', c.created_at, 'updated_at', c.updated_at)"

static const CdField signup_fields[] = {
  { "company_name", CD_FIELD_STRING, TRUE, 1, 200 }, { "slug", CD_FIELD_STRING, FALSE, 1, 64 },
  { "admin_name", CD_FIELD_STRING, TRUE, 1, 200 },   { "email", CD_FIELD_EMAIL, TRUE, 0, 0 },
  { "password", CD_FIELD_SECRET, TRUE, 1, 1024 },
};

static const CdField decision_fields[] = {
  { "reason", CD_FIELD_STRING, FALSE, 1, 1000 },
};

static const CdField settings_fields[] = {
  { "name", CD_FIELD_STRING, FALSE, 1, 200 },
  { "allowed_origins", CD_FIELD_STRING_ARRAY, FALSE, 0, 50 },
  { "time_zone", CD_FIELD_STRING, FALSE, 1, 64 },
  { "widget_theme", CD_FIELD_OBJECT, FALSE, 0, 20 },
  /* days recordings and voicemails are kept; 0: for ever */
  { "recording_retention_days", CD_FIELD_INT, FALSE, 0, 3650 },
  /* every call recorded from when an agent answers */
  { "record_calls", CD_FIELD_BOOL, FALSE, 0, 0 },
};

static gboolean
origin_is_lower_case (const char *origin)
{
  for (const char *p = origin; *p; p++) {
    if (g_ascii_isupper (*p))
      return FALSE;
  }
  return TRUE;
}

/* Area/Location names as in the tz database: letters, digits, _ + - and
 * single slashes; "UTC" alone is fine too. */
static gboolean
time_zone_name_is_valid (const char *name)
{
  gsize n = strlen (name);

  if (n == 0 || n > 64 || name[0] == '/' || name[n - 1] == '/' || strstr (name, "..") ||
      strstr (name, "//") || !g_ascii_isalpha (name[0]))
    return FALSE;
  for (const char *p = name; *p; p++) {
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '+' && *p != '-' && *p != '/')
      return FALSE;
  }
  return TRUE;
}

/* "Acme Inc." -> "acme-inc"; empty -> "company" */
static char *
slug_from_name (const char *name)
{
  GString *slug = g_string_new (NULL);
  gboolean dash = FALSE;

  for (const char *p = name; *p && slug->len < 56; p++) {
    if (g_ascii_isalnum (*p)) {
      if (dash && slug->len > 0)
        g_string_append_c (slug, '-');
      g_string_append_c (slug, g_ascii_tolower (*p));
      dash = FALSE;
    } else {
      dash = TRUE;
    }
  }
  if (slug->len == 0)
    g_string_append (slug, "company");
  return g_string_free (slug, FALSE);
}

static gboolean
slug_is_valid (const char *slug)
{
  gsize n = strlen (slug);

  if (n == 0 || n > 64 || slug[0] == '-' || slug[n - 1] == '-')
    return FALSE;
  for (const char *p = slug; *p; p++) {
    if (!g_ascii_islower (*p) && !g_ascii_isdigit (*p) && *p != '-')
      return FALSE;
  }
  return TRUE;
}

typedef struct {
  char *company_name;
  char *slug;
  gboolean slug_given;
  char *admin_name;
  char *email;
  char *password;
} Signup;

static void
signup_free (gpointer data)
{
  Signup *s = data;

  g_free (s->company_name);
  g_free (s->slug);
  g_free (s->admin_name);
  g_free (s->email);
  if (s->password)
    memset (s->password, 0, strlen (s->password));
  g_free (s->password);
  g_free (s);
}

static void
on_signup_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Signup *s = call->data;
  g_autoptr (GError) error = NULL;
  g_autofree char *hash = cd_password_hash_finish (result, &error);
  CdPgScope scope = { NULL, TRUE };

  if (hash == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  {
    const char *params[] = {
      s->company_name, s->slug, s->slug_given ? "t" : "f", s->admin_name,
      s->email,        hash,    call->client_address,      call->request_id
    };
    /* a derived slug that is taken gets a random suffix; a chosen one conflicts */
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH s AS (SELECT CASE WHEN $3::boolean OR NOT EXISTS"
        "  (SELECT 1 FROM companies WHERE slug = $2) THEN $2"
        "  ELSE $2 || '-' || substr(md5(random()::text), 1, 6) END AS slug),"
        " c AS (INSERT INTO companies (name, slug) SELECT $1, slug FROM s RETURNING *),"
        " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name)"
        "  SELECT c.id, $5, $6, 'company_admin', $4 FROM c RETURNING id, email),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target,"
        "  client_address, request_id)"
        "  SELECT c.id, u.id, 'company.signup', c.slug, $7, $8 FROM c, u RETURNING 1)"
        " SELECT json_build_object('company', " COMPANY_JSON ","
        "  'admin', json_build_object('id', u.id, 'email', u.email))"
        " FROM c, u, (SELECT count(*) FROM a) AS audited",
        params, 8, NULL, cd_api_call_on_query, call);
  }
}

static void signup_proceed (CdApiCall *call);

static void
signup_proceed_idempotent (CdApiCall *call)
{
  cd_api_call_idempotent (call, call->client_address, signup_proceed);
}

static void
signup_proceed (CdApiCall *call)
{
  Signup *s = call->data;

  cd_password_hash_async (call->api->passwords, s->password, NULL, on_signup_hashed, call);
}

static void
handle_signup (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body =
      cd_http_request_read_json (request, signup_fields, G_N_ELEMENTS (signup_fields), &error);
  CdApiCall *call;
  Signup *s;
  const char *password;

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  password = json_object_get_string_member (body, "password");
  if (!cd_password_policy_check (api->passwords, password,
                                 json_object_get_string_member (body, "email"), &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  s = g_new0 (Signup, 1);
  s->company_name = g_strdup (json_object_get_string_member (body, "company_name"));
  s->slug_given = json_object_has_member (body, "slug");
  s->slug = s->slug_given ? g_strdup (json_object_get_string_member (body, "slug"))
                          : slug_from_name (s->company_name);
  s->admin_name = g_strdup (json_object_get_string_member (body, "admin_name"));
  s->email = g_strdup (json_object_get_string_member (body, "email"));
  if (!slug_is_valid (s->slug)) {
    signup_free (s);
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                           "field 'slug': lower-case letters, digits and inner dashes only");
    return;
  }
  s->password = g_strdup (password);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 201,
                      "an account with this email, or a company with this slug, exists already");
  call->data = s;
  call->data_free = signup_free;
  /* public: signups per client address are limited like logins */
  cd_api_call_rate_limit_address (call, "signup", api->settings.login_limit_per_address,
                                  api->settings.login_limit_window_s, signup_proceed_idempotent);
}

/* ---- the super admin's view ---- */

static void
handle_admin_list (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_api_guard (api, request, CD_ROLE_SUPERADMIN, NULL, &error);
  const char *status = request->query ? g_hash_table_lookup (request->query, "status") : NULL;
  static const char *statuses[] = { "pending", "approved", "rejected", "suspended", NULL };
  g_autofree char *cursor_time = NULL;
  g_autofree char *cursor_id = NULL;
  g_autofree char *limit_text = NULL;
  CdApiCall *call;
  guint limit;
  CdPgScope scope = { NULL, TRUE };

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  if (!cd_api_page_params (request, &limit, &cursor_time, &cursor_id, &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  if (status != NULL && !g_strv_contains (statuses, status)) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                           "query parameter 'status': one of pending, approved, rejected, "
                           "suspended");
    return;
  }
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_PAGE, 200, NULL);
  limit_text = g_strdup_printf ("%u", limit);
  {
    const char *params[] = { status, cursor_time, cursor_id, limit_text };
    /* keyset pagination on (created_at, id); one more row says whether a
     * next page exists */
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH page AS (SELECT c.*, " COMPANY_JSON " AS j FROM companies c"
        "  WHERE ($1::text IS NULL OR c.status = $1)"
        "  AND ($2::timestamptz IS NULL OR (c.created_at, c.id) > ($2::timestamptz, $3::uuid))"
        "  ORDER BY c.created_at, c.id LIMIT $4::int + 1)," CD_API_PAGE_OLDEST_FIRST ("$4"),
        params, 4, NULL, cd_api_call_on_query, call);
  }
}

typedef struct {
  const char *action; /* audit action */
  const char *status; /* new status */
  const char *from;   /* allowed current statuses, SQL array literal */
  gboolean needs_reason;
} Decision;

static const Decision approve = { "company.approved", "approved", "{pending,rejected,suspended}",
                                  FALSE };
static const Decision reject = { "company.rejected", "rejected", "{pending}", TRUE };
static const Decision suspend = { "company.suspended", "suspended", "{pending,approved}", TRUE };

static void
on_decided (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    g_autoptr (GError) missing =
        g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such company");
    cd_api_call_respond_error (call, missing);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 1), "f")) {
    g_autoptr (GError) conflict = g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                                               "the company is %s: that cannot change to %s",
                                               PQgetvalue (res, 0, 2), PQgetvalue (res, 0, 3));
    cd_api_call_respond_error (call, conflict);
    return;
  }
  cd_mailer_kick (call->api->mailer);
  cd_api_call_respond_rows (call, 200, res);
}

static void
decide (CdHttpRequest *request, CdApi *api, const Decision *decision)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_api_guard (api, request, CD_ROLE_SUPERADMIN, NULL, &error);
  g_autoptr (JsonObject) body = NULL;
  const char *id = g_hash_table_lookup (request->params, "id");
  const char *reason;
  CdApiCall *call;
  CdPgScope scope = { NULL, TRUE };

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  if (!cd_is_uuid (id)) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_NOT_FOUND,
                           "no such company");
    return;
  }
  body =
      cd_http_request_read_json (request, decision_fields, G_N_ELEMENTS (decision_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  reason = json_object_has_member (body, "reason") ? json_object_get_string_member (body, "reason")
                                                   : NULL;
  if (decision->needs_reason && reason == NULL) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                           "field 'reason': is required");
    return;
  }
  if (!cd_is_uuid (id)) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_NOT_FOUND,
                           "no such company");
    return;
  }
  call = cd_api_call_new (api, request);
  if (decision != &approve)
    call->block_on_success = g_strdup (id);
  {
    const char *params[] = {
      id,          decision->status, decision->from,       reason,
      claims->sub, decision->action, call->client_address, call->request_id
    };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH cur AS (SELECT id, status FROM companies WHERE id = $1::uuid FOR UPDATE),"
        " upd AS (UPDATE companies c SET status = $2, status_reason = $4, updated_at = now()"
        "  FROM cur WHERE c.id = cur.id AND cur.status = ANY ($3::text[]) RETURNING c.*),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, details, client_address,"
        "  request_id) SELECT id, $5::uuid, $6, json_build_object('reason', $4::text), $7, $8"
        "  FROM upd RETURNING 1)"
        ", m AS (INSERT INTO mail_outbox (company_id, to_address, subject, body)"
        "  SELECT upd.id, u.email, 'Your company on CallDocker is ' || $2,"
        "  'Hello ' || u.display_name || E',\\n\\nyour company \"' || upd.name || '\" is now '"
        "  || $2 || '.' || coalesce(E'\\nReason: ' || $4::text, '') || E'\\n'"
        "  FROM upd JOIN users u ON u.company_id = upd.id AND u.role = 'company_admin'"
        "  AND u.active RETURNING 1)"
        " SELECT (SELECT " COMPANY_JSON " FROM upd c), EXISTS (SELECT 1 FROM upd),"
        "  cur.status, $2, (SELECT count(*) FROM a), (SELECT count(*) FROM m) FROM cur",
        params, 8, NULL, on_decided, call);
  }
}

static void
handle_approve (CdHttpRequest *request, gpointer user_data)
{
  decide (request, user_data, &approve);
}

static void
handle_reject (CdHttpRequest *request, gpointer user_data)
{
  decide (request, user_data, &reject);
}

static void
handle_suspend (CdHttpRequest *request, gpointer user_data)
{
  decide (request, user_data, &suspend);
}

/* ---- a company's own profile and settings ---- */

static void
handle_get_company (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id") };
    cd_pg_pool_query_scoped_async (api->pool, &scope,
                                   "SELECT " COMPANY_JSON " FROM companies c WHERE c.id = $1",
                                   params, 1, NULL, cd_api_call_on_query, call);
  }
}

static void
handle_patch_company (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);
  g_autoptr (JsonObject) body = NULL;
  g_autofree char *origins = NULL;
  g_autofree char *theme = NULL;
  const char *time_zone = NULL;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  body =
      cd_http_request_read_json (request, settings_fields, G_N_ELEMENTS (settings_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  if (json_object_has_member (body, "allowed_origins")) {
    JsonArray *array = json_object_get_array_member (body, "allowed_origins");
    for (guint i = 0; i < json_array_get_length (array); i++) {
      const char *origin = json_array_get_string_element (array, i);
      g_autoptr (GUri) uri = g_uri_parse (origin, G_URI_FLAGS_NONE, NULL);
      g_autofree char *rebuilt = NULL;
      /* the origin must be exactly what a browser sends: scheme://host[:port] */
      if (uri != NULL && g_uri_get_host (uri) != NULL)
        rebuilt = g_uri_get_port (uri) > 0
                      ? g_strdup_printf ("%s://%s:%d", g_uri_get_scheme (uri), g_uri_get_host (uri),
                                         g_uri_get_port (uri))
                      : g_strdup_printf ("%s://%s", g_uri_get_scheme (uri), g_uri_get_host (uri));
      if (uri == NULL || rebuilt == NULL || !g_str_equal (rebuilt, origin) ||
          strpbrk (origin, "*%\\ \t\r\n") != NULL || !origin_is_lower_case (origin) ||
          (!g_str_equal (g_uri_get_scheme (uri), "https") &&
           !g_str_equal (g_uri_get_scheme (uri), "http")) ||
          g_uri_get_host (uri) == NULL || (g_uri_get_path (uri)[0] != '\0') ||
          g_uri_get_query (uri) != NULL || g_uri_get_fragment (uri) != NULL ||
          g_uri_get_userinfo (uri) != NULL) {
        cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                               "field 'allowed_origins': '%.100s' is not an origin like "
                               "https://www.example.com",
                               origin);
        return;
      }
    }
    origins = cd_json_to_string (json_object_get_member (body, "allowed_origins"));
  }
  if (json_object_has_member (body, "time_zone")) {
    g_autoptr (GTimeZone) tz = NULL;
    time_zone = json_object_get_string_member (body, "time_zone");
    /* an IANA name only: no paths, no "..", no POSIX rules */
    tz = time_zone_name_is_valid (time_zone) ? g_time_zone_new_identifier (time_zone) : NULL;
    if (tz == NULL) {
      cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_INVALID_FIELD,
                             "field 'time_zone': not a time zone like Europe/Berlin");
      return;
    }
  }
  if (json_object_has_member (body, "widget_theme"))
    theme = cd_json_to_string (json_object_get_member (body, "widget_theme"));
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  {
    const char *name =
        json_object_has_member (body, "name") ? json_object_get_string_member (body, "name") : NULL;
    g_autofree char *retention =
        json_object_has_member (body, "recording_retention_days")
            ? g_strdup_printf ("%" G_GINT64_FORMAT,
                               json_object_get_int_member (body, "recording_retention_days"))
            : NULL;
    const char *record_calls = !json_object_has_member (body, "record_calls")          ? NULL
                               : json_object_get_boolean_member (body, "record_calls") ? "true"
                                                                                       : "false";
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             name,
                             origins,
                             time_zone,
                             theme,
                             claims->sub,
                             call->client_address,
                             call->request_id,
                             retention,
                             record_calls };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH upd AS (UPDATE companies SET name = coalesce($2, name),"
        "  allowed_origins = coalesce((SELECT array_agg(x) FROM json_array_elements_text($3::json)"
        "   AS x), CASE WHEN $3 IS NULL THEN allowed_origins ELSE '{}' END),"
        "  settings = settings || jsonb_strip_nulls(jsonb_build_object('time_zone', $4::text,"
        "   'widget_theme', $5::jsonb, 'recording_retention_days', $9::int,"
        "   'record_calls', $10::boolean)),"
        "  updated_at = now() WHERE id = $1 RETURNING *),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, client_address,"
        "  request_id) SELECT id, $6::uuid, 'company.settings-changed', $7, $8 FROM upd"
        "  RETURNING 1)"
        " SELECT " COMPANY_JSON " FROM upd c, (SELECT count(*) FROM a) AS audited",
        params, 10, NULL, cd_api_call_on_query, call);
  }
}

gboolean
cd_api_companies_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "POST", "/api/v1/companies", handle_signup, api,
                                   error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/admin/companies", handle_admin_list, api,
                                   error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/admin/companies/{id}/approve",
                                   handle_approve, api, error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/admin/companies/{id}/reject",
                                   handle_reject, api, error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/admin/companies/{id}/suspend",
                                   handle_suspend, api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}", handle_get_company, api,
                                   error) &&
         cd_http_server_add_route (server, "PATCH", "/api/v1/companies/{id}", handle_patch_company,
                                   api, error);
}
