/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's IVR prompts, managed by its admins (and the super admin):
 * upload (the audio file as the body; decoded once into Ogg/Opus and kept
 * in the blob store), list, read, listen, delete (refused while a live IVR
 * flow plays it). See docs/ivr.md. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../../common/cd-json.h"
#include "../ivr/cd-prompt-import.h"
#include "cd-http-problem.h"

#include <string.h>

#define PROMPT_JSON                                                                          \
  "jsonb_build_object('id', p.id, 'company_id', p.company_id, 'name', p.name,"               \
  " 'duration_ms', p.duration_ms, 'size_bytes', p.size_bytes, 'source_type', p.source_type," \
  " 'source_bytes', p.source_bytes, 'created_at', p.created_at, 'used_by',"                  \
  " coalesce((SELECT jsonb_agg(f.name ORDER BY f.name) FROM ivr_flow_prompts u"              \
  "  JOIN ivr_flows f ON f.id = u.flow_id WHERE u.prompt_id = p.id), '[]'))"

static CdJwtClaims *
guard (CdApi *api, CdHttpRequest *request, gboolean with_prompt)
{
  return cd_api_guard_company_admin (api, request, with_prompt ? "prompt_id" : NULL,
                                     "no such prompt");
}

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, FALSE);

  if (claims)
    cd_api_list (user_data, request, claims,
                 "WITH page AS (SELECT p.created_at, p.id, " PROMPT_JSON " AS j FROM prompts p"
                 "  WHERE p.company_id = $1 AND ($2::timestamptz IS NULL"
                 "  OR (p.created_at, p.id) > ($2::timestamptz, $3::uuid))"
                 "  ORDER BY p.created_at, p.id LIMIT $4::int + 1)," CD_API_PAGE_OLDEST_FIRST (
                     "$4") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)");
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, TRUE);

  if (claims)
    cd_api_get_one (user_data, request, claims, "prompt_id",
                    "SELECT " PROMPT_JSON " FROM prompts p"
                    " WHERE p.company_id = $1 AND p.id = $2");
}

/* ---- upload ---- */

typedef struct {
  char *id;
  char *name;
  char *key;
  guint64 source_bytes;
  CdPromptInfo info;
} Upload;

static void
upload_free (gpointer data)
{
  Upload *u = data;

  g_free (u->id);
  g_free (u->name);
  g_free (u->key);
  g_free (u);
}

static void
on_blob_dropped (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *key = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_blob_store_delete_finish (CD_BLOB_STORE (source), result, &error))
    g_warning ("the unused prompt file %s stays: %s", key, error->message);
}

static void
drop_blob (CdApi *api, const char *key)
{
  cd_blob_store_delete_async (api->blobs, key, NULL, on_blob_dropped, g_strdup (key));
}

/* (company found, prompt JSON) */
static void
on_stored (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Upload *u = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL || PQgetisnull (res, 0, 1))
    drop_blob (call->api, u->key);
  if (res == NULL) {
    if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT)) {
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT, "a prompt with this name exists");
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQgetisnull (res, 0, 1)) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such company");
    return;
  }
  /* kept at hand too: the IVR plays it from there */
  cd_blob_store_commit (call->api->blobs, u->key, CD_BLOB_COMMIT_KEEP_LOCAL);
  {
    g_autoptr (JsonNode) node = json_from_string (PQgetvalue (res, 0, 1), NULL);
    cd_api_call_respond_json (call, 201, node);
  }
}

static void
on_imported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Upload *u = call->data;
  g_autoptr (GError) error = NULL;
  g_autofree char *duration = NULL;
  g_autofree char *size = NULL;
  g_autofree char *source_bytes = NULL;
  CdPgScope scope;

  if (!cd_prompt_import_finish (result, &u->info, &error)) {
    switch (error->code) {
    case CD_PROMPT_ERROR_TYPE:
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_UNSUPPORTED_MEDIA_TYPE, error->message);
      return;
    case CD_PROMPT_ERROR_EMPTY:
    case CD_PROMPT_ERROR_DAMAGED:
    case CD_PROMPT_ERROR_TOO_LONG:
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_INVALID_FIELD, error->message);
      return;
    default:
      g_warning ("a prompt upload failed: %s", error->message);
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_INTERNAL, "the prompt could not be stored");
      return;
    }
  }
  duration = g_strdup_printf ("%u", u->info.duration_ms);
  size = g_strdup_printf ("%" G_GUINT64_FORMAT, u->info.size_bytes);
  source_bytes = g_strdup_printf ("%" G_GUINT64_FORMAT, u->source_bytes);
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (call->params, "id"),
                             u->id,
                             u->name,
                             u->key,
                             duration,
                             size,
                             u->info.source_type,
                             source_bytes,
                             call->caller->sub,
                             call->client_address,
                             call->request_id };
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH p AS (INSERT INTO prompts (id, company_id, name, storage_key, duration_ms,"
        "  size_bytes, source_type, source_bytes) SELECT $2::uuid, $1, $3, $4, $5::int,"
        "  $6::bigint, $7, $8::bigint WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)"
        "  RETURNING *),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $9::uuid, 'prompt.created', name, $10, $11 FROM p"
        "  RETURNING 1)"
        " SELECT (SELECT count(*) FROM a), (SELECT (" PROMPT_JSON ")::text FROM p)",
        params, G_N_ELEMENTS (params), NULL, on_stored, call);
  }
}

/* The prompt's name from the query: 1 to 100 characters, no controls; NULL
 * after answering the problem. */
static const char *
upload_name (CdHttpRequest *request)
{
  const char *name = request->query ? g_hash_table_lookup (request->query, "name") : NULL;
  g_autoptr (GError) error = NULL;
  glong length;

  if (name == NULL) {
    error = g_error_new_literal (
        CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
        "name: required, as a query parameter (POST …/prompts?name=greeting with the audio file "
        "as the body)");
  } else if (!g_utf8_validate (name, -1, NULL) || (length = g_utf8_strlen (name, -1)) < 1 ||
             length > 100) {
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                                 "name: 1 to 100 characters");
  } else {
    for (const char *c = name; *c; c++)
      if ((guchar) *c < 0x20 || *c == 0x7f) {
        error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                                     "name: must not contain control characters");
        break;
      }
  }
  if (error) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return NULL;
  }
  return name;
}

static void
handle_upload (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  g_autoptr (GBytes) body = NULL;
  g_autofree char *path = NULL;
  const char *name;
  CdApiCall *call;
  Upload *u;

  if (claims == NULL || (name = upload_name (request)) == NULL)
    return;
  body = soup_message_body_flatten (soup_server_message_get_request_body (request->msg));
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  u = g_new0 (Upload, 1);
  u->id = g_uuid_string_random ();
  u->name = g_strdup (name);
  u->key = g_strdup_printf ("prompts/%s/%s.ogg",
                            (const char *) g_hash_table_lookup (call->params, "id"), u->id);
  u->source_bytes = g_bytes_get_size (body);
  call->data = u;
  call->data_free = upload_free;
  path = cd_blob_store_local_path (api->blobs, u->key);
  cd_prompt_import_async (body, path, api->settings.max_prompt_ms, NULL, on_imported, call);
}

/* ---- listen ---- */

static void
on_audio_key (GObject *source, GAsyncResult *result, gpointer user_data)
{
  cd_api_call_respond_blob (user_data, result, "audio/ogg", "no such prompt");
}

static void
handle_audio (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "prompt_id") };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope, "SELECT storage_key FROM prompts WHERE company_id = $1 AND id = $2",
        params, 2, NULL, on_audio_key, call);
  }
}

/* ---- delete ---- */

/* (prompt found, the live flows that play it, its key) */
static void
on_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (cd_store_error_is_foreign_key (error)) {
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                   "an IVR flow that plays the prompt was published meanwhile");
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "0")) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such prompt");
    return;
  }
  if (!PQgetisnull (res, 0, 1)) {
    g_autofree char *detail =
        g_strdup_printf ("live IVR flows play this prompt: %.300s (publish them without it first)",
                         PQgetvalue (res, 0, 1));
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT, detail);
    return;
  }
  if (!PQgetisnull (res, 0, 2))
    drop_blob (call->api, PQgetvalue (res, 0, 2));
  cd_api_call_respond_empty (call, 204);
}

static void
handle_delete (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "prompt_id"), call->caller->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH target AS (SELECT id FROM prompts WHERE company_id = $1 AND id = $2),"
        " used AS (SELECT f.name FROM ivr_flow_prompts u JOIN ivr_flows f ON f.id = u.flow_id"
        "  WHERE u.company_id = $1 AND u.prompt_id = $2),"
        " d AS (DELETE FROM prompts WHERE id IN (SELECT id FROM target)"
        "  AND NOT EXISTS (SELECT 1 FROM used) RETURNING company_id, name, storage_key),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $3::uuid, 'prompt.deleted', name, $4, $5 FROM d"
        "  RETURNING 1)"
        " SELECT (SELECT count(*) FROM target),"
        "  (SELECT string_agg(name, ', ' ORDER BY name) FROM used),"
        "  (SELECT storage_key FROM d), (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_deleted, call);
  }
}

gboolean
cd_api_prompts_register (CdApi *api, CdHttpServer *server, GError **error)
{
  if (!(cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/prompts", handle_list, api,
                                  error) &&
        cd_http_server_add_route (server, "POST", "/api/v1/companies/{id}/prompts", handle_upload,
                                  api, error) &&
        cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/prompts/{prompt_id}",
                                  handle_get, api, error) &&
        cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/prompts/{prompt_id}/audio",
                                  handle_audio, api, error) &&
        cd_http_server_add_route (server, "DELETE", "/api/v1/companies/{id}/prompts/{prompt_id}",
                                  handle_delete, api, error)))
    return FALSE;
  cd_http_server_set_body_limit (server, "POST", "/api/v1/companies/{id}/prompts",
                                 api->settings.max_prompt_bytes);
  return TRUE;
}
