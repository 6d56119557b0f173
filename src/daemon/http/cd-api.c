/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The API context: bearer authentication, calls answered later, tokens. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../auth/cd-auth-error.h"
#include "../../common/cd-json.h"
#include "cd-http-problem.h"
#include "cd-http-fields.h"
#include "cd-http-static.h"
#include "../../common/cd-json.h"

#include <sodium.h>
#include <string.h>

/**
 * cd_api_authenticate:
 *
 * Returns: (transfer full): the caller's verified claims, from
 *   "Authorization: Bearer TOKEN"
 */
CdJwtClaims *
cd_api_authenticate (CdApi *api, CdHttpRequest *request, GError **error)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (request->msg);
  const char *value = soup_message_headers_get_one (headers, "Authorization");

  if (value == NULL || g_ascii_strncasecmp (value, "Bearer ", 7) != 0 || value[7] == '\0') {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_MISSING,
                         "send an access token as Authorization: Bearer TOKEN");
    return NULL;
  }
  g_autoptr (CdJwtClaims) claims =
      cd_jwt_verify (api->keys, value + 7, g_get_real_time () / G_USEC_PER_SEC, error);
  if (claims == NULL)
    return NULL;
  if (g_str_equal (claims->role, "visitor")) {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                         "a visitor token opens signaling only, not the API");
    return NULL;
  }
  if (cd_api_is_blocked (api, claims->sub, claims->iat_ms) ||
      (claims->company && cd_api_is_blocked (api, claims->company, claims->iat_ms))) {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_TOKEN_INVALID,
                         "this session ended when the account or its company changed; log in "
                         "again");
    return NULL;
  }
  return g_steal_pointer (&claims);
}

/* Access tokens live on until they expire; when an account is deactivated,
 * changes role or password, or its company is suspended or rejected, the
 * tokens issued before are refused from then on, on every daemon (Redis
 * pub/sub carries the news). Entries older than a token's life are dropped. */

#define BLOCKED_CHANNEL "cd:blocked"

/* @since: milliseconds since the epoch */
static void
blocked_add (CdApi *api, const char *id, gint64 since)
{
  gint64 now = g_get_real_time () / 1000;
  gint64 *old;
  GHashTableIter iter;
  gpointer value;

  if (api->blocked == NULL)
    api->blocked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_hash_table_iter_init (&iter, api->blocked);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    if (*(gint64 *) value + (gint64) api->settings.access_ttl_s * 1000 < now)
      g_hash_table_iter_remove (&iter);
  }
  old = g_hash_table_lookup (api->blocked, id);
  if (old != NULL && *old >= since)
    return;
  g_hash_table_insert (api->blocked, g_ascii_strdown (id, -1), g_memdup2 (&since, sizeof since));
}

/**
 * cd_api_block:
 * @id: a user's or a company's UUID
 *
 * Refuses, from now on and on every daemon, the access tokens issued to @id
 * (or to anyone of company @id) until now.
 */
void
cd_api_block (CdApi *api, const char *id)
{
  gint64 now = g_get_real_time () / 1000;
  g_autofree char *message = g_strdup_printf ("%s %" G_GINT64_FORMAT, id, now);

  blocked_add (api, id, now);
  if (api->redis)
    cd_redis_commandv_async (api->redis, NULL, NULL, NULL, "PUBLISH", BLOCKED_CHANNEL, message,
                             NULL);
}

/* @issued_at: the token's iat_ms */
gboolean
cd_api_is_blocked (CdApi *api, const char *id, gint64 issued_at)
{
  g_autofree char *lower = NULL;
  gint64 *since;

  if (api->blocked == NULL || id == NULL)
    return FALSE;
  lower = g_ascii_strdown (id, -1);
  since = g_hash_table_lookup (api->blocked, lower);
  return since != NULL && issued_at <= *since;
}

static void
on_blocked_message (CdRedis *redis, const char *channel, GBytes *payload, gpointer user_data)
{
  CdApi *api = user_data;
  g_autofree char *text = NULL;
  g_auto (GStrv) parts = NULL;
  gint64 since;

  if (!g_str_equal (channel, BLOCKED_CHANNEL) || g_bytes_get_size (payload) > 100)
    return;
  text = g_strndup (g_bytes_get_data (payload, NULL), g_bytes_get_size (payload));
  parts = g_strsplit (text, " ", 2);
  if (g_strv_length (parts) != 2 || !cd_is_uuid (parts[0]) ||
      !g_ascii_string_to_signed (parts[1], 10, 0, G_MAXINT64, &since, NULL))
    return;
  blocked_add (api, parts[0], since);
}

/**
 * cd_api_listen_for_blocks:
 *
 * Follows the other daemons' blocks (Redis pub/sub).
 */
void
cd_api_listen_for_blocks (CdApi *api)
{
  g_signal_connect (api->redis, "message", G_CALLBACK (on_blocked_message), api);
  cd_redis_subscribe (api->redis, BLOCKED_CHANNEL);
}

static void
on_recent_changes (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CdApi *api = g_task_get_task_data (task);
  GError *error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    g_task_return_error (task, error);
    return;
  }
  for (int r = 0; r < PQntuples (res); r++)
    blocked_add (api, PQgetvalue (res, r, 0), g_ascii_strtoll (PQgetvalue (res, r, 1), NULL, 10));
  g_task_return_boolean (task, TRUE);
}

/**
 * cd_api_load_recent_blocks:
 *
 * At start: the changes of the last token lifetime, which a daemon that was
 * not running then did not hear of (suspensions, deactivations, password
 * changes; a role change is not recorded and is only heard of live).
 */
void
cd_api_load_recent_blocks_async (CdApi *api, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data)
{
  g_autofree char *ttl = g_strdup_printf ("%u", api->settings.access_ttl_s);
  const char *params[] = { ttl };
  CdPgScope scope = { NULL, TRUE };
  GTask *task = g_task_new (NULL, cancellable, callback, user_data);

  g_task_set_source_tag (task, cd_api_load_recent_blocks_async);
  g_task_set_task_data (task, api, NULL);

  cd_pg_pool_query_scoped_async (
      api->pool, &scope,
      "SELECT id, floor(extract(epoch FROM updated_at) * 1000)::bigint FROM companies"
      " WHERE status IN ('suspended', 'rejected')"
      "  AND updated_at > now() - make_interval(secs => $1::int)"
      " UNION ALL SELECT id, floor(extract(epoch FROM sessions_valid_after) * 1000)::bigint"
      " FROM users WHERE sessions_valid_after > now() - make_interval(secs => $1::int)",
      params, 1, cancellable, on_recent_changes, task);
}

gboolean
cd_api_load_recent_blocks_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* 401s say how to authenticate (RFC 6750). */
void
cd_api_respond_auth_error (CdHttpRequest *request, const GError *error)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (request->msg);

  if (error->domain == CD_AUTH_ERROR &&
      (error->code == CD_AUTH_ERROR_TOKEN_MISSING || error->code == CD_AUTH_ERROR_TOKEN_INVALID ||
       error->code == CD_AUTH_ERROR_TOKEN_EXPIRED))
    soup_message_headers_replace (headers, "WWW-Authenticate",
                                  error->code == CD_AUTH_ERROR_TOKEN_MISSING
                                      ? "Bearer realm=\"calldocker\""
                                      : "Bearer realm=\"calldocker\", error=\"invalid_token\"");
  cd_http_respond_problem (request->msg, request->request_id, error);
}

const char *
cd_api_client_address (SoupServerMessage *msg)
{
  const char *host = soup_server_message_get_remote_host (msg);

  return host ? host : "unknown";
}

/**
 * cd_api_call_new:
 *
 * Pauses the message until one of the respond functions runs.
 */
CdApiCall *
cd_api_call_new (CdApi *api, CdHttpRequest *request)
{
  CdApiCall *call = g_new0 (CdApiCall, 1);

  call->api = api;
  cd_paused_message_init (&call->paused, request->msg);
  call->msg = call->paused.msg;
  call->request_id = g_strdup (request->request_id);
  call->client_address = g_strdup (cd_api_client_address (request->msg));
  call->params = request->params ? g_hash_table_ref (request->params) : NULL;
  return call;
}

/* The answer to a request with an Idempotency-Key is kept for a day, so a
 * retry gets it again instead of creating twice. Server errors are not kept:
 * those may be retried for real. */
static void
idempotency_store (CdApiCall *call)
{
  SoupMessageBody *body;
  g_autoptr (GBytes) bytes = NULL;
  g_autoptr (JsonBuilder) b = NULL;
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *text = NULL;
  g_autofree char *body_text = NULL;
  guint status;

  if (call->idempotency_key == NULL)
    return;
  status = soup_server_message_get_status (call->msg);
  if (status >= 500) {
    cd_redis_commandv_async (call->api->redis, NULL, NULL, NULL, "DEL", call->idempotency_key,
                             NULL);
    return;
  }
  body = soup_server_message_get_response_body (call->msg);
  bytes = soup_message_body_flatten (body);
  body_text = g_strndup (g_bytes_get_data (bytes, NULL), g_bytes_get_size (bytes));
  b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "fingerprint");
  json_builder_add_string_value (b, call->idempotency_fingerprint);
  json_builder_set_member_name (b, "status");
  json_builder_add_int_value (b, status);
  json_builder_set_member_name (b, "content_type");
  json_builder_add_string_value (b, soup_message_headers_get_content_type (
                                        soup_server_message_get_response_headers (call->msg), NULL)
                                        ?: "application/json");
  json_builder_set_member_name (b, "body");
  json_builder_add_string_value (b, body_text);
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  text = cd_json_to_string (node);
  cd_redis_commandv_async (call->api->redis, NULL, NULL, NULL, "SET", call->idempotency_key, text,
                           "EX", "86400", NULL);
}

static void
call_free (CdApiCall *call)
{
  guint status = soup_server_message_get_status (call->msg);

  if (call->block_on_success && status >= 200 && status < 300)
    cd_api_block (call->api, call->block_on_success);
  g_free (call->block_on_success);
  idempotency_store (call);
  g_free (call->idempotency_key);
  g_free (call->idempotency_fingerprint);
  cd_paused_message_release (&call->paused);
  g_free (call->request_id);
  g_free (call->client_address);
  g_clear_pointer (&call->caller, cd_jwt_claims_free);
  g_clear_pointer (&call->body, json_object_unref);
  g_clear_pointer (&call->params, g_hash_table_unref);
  if (call->data_free)
    call->data_free (call->data);
  g_free (call);
}

void
cd_api_call_respond_json (CdApiCall *call, guint status, JsonNode *body)
{
  cd_http_respond_json (call->msg, status, body);
  soup_message_headers_replace (soup_server_message_get_response_headers (call->msg),
                                "Cache-Control", "no-store");
  call_free (call);
}

void
cd_api_call_respond_bytes (CdApiCall *call, guint status, const char *content_type, GBytes *body)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (call->msg);

  soup_server_message_set_status (call->msg, status, NULL);
  soup_message_headers_replace (headers, "Content-Type", content_type);
  soup_message_headers_replace (headers, "Cache-Control", "no-store");
  soup_message_body_append_bytes (soup_server_message_get_response_body (call->msg), body);
  call_free (call);
}

void
cd_api_call_respond_empty (CdApiCall *call, guint status)
{
  soup_server_message_set_status (call->msg, status, NULL);
  call_free (call);
}

void
cd_api_call_respond_error (CdApiCall *call, const GError *error)
{
  SoupMessageHeaders *headers = soup_server_message_get_response_headers (call->msg);

  if (error->domain == CD_AUTH_ERROR && error->code == CD_AUTH_ERROR_RATE_LIMITED) {
    g_autofree char *seconds = g_strdup_printf ("%u", call->api->settings.login_limit_window_s);
    soup_message_headers_replace (headers, "Retry-After", seconds);
  }
  if (error->domain == CD_AUTH_ERROR &&
      (error->code == CD_AUTH_ERROR_TOKEN_INVALID || error->code == CD_AUTH_ERROR_TOKEN_EXPIRED ||
       error->code == CD_AUTH_ERROR_TOKEN_MISSING || error->code == CD_AUTH_ERROR_BAD_CREDENTIALS))
    soup_message_headers_replace (headers, "WWW-Authenticate", "Bearer realm=\"calldocker\"");
  cd_http_respond_problem (call->msg, call->request_id, error);
  call_free (call);
}

/**
 * cd_api_new_token:
 *
 * Returns: (transfer full): 256 random bits, base64url
 */
char *
cd_api_new_token (void)
{
  guint8 bytes[32];

  randombytes_buf (bytes, sizeof bytes);
  return cd_base64url_encode (bytes, sizeof bytes);
}

/**
 * cd_api_hash_token:
 *
 * Returns: (transfer full): SHA-256 of @token as a PostgreSQL bytea literal
 *   (\\x...), how opaque tokens are stored
 */
char *
cd_api_hash_token (const char *token)
{
  g_autofree char *hex = g_compute_checksum_for_string (G_CHECKSUM_SHA256, token, -1);

  return g_strconcat ("\\x", hex, NULL);
}

gboolean
cd_api_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_api_auth_register (api, server, error) &&
         cd_api_companies_register (api, server, error) &&
         cd_api_users_register (api, server, error) &&
         cd_api_widget_register (api, server, error) &&
         cd_api_calls_register (api, server, error) &&
         cd_api_call_media_register (api, server, error) &&
         cd_api_queues_register (api, server, error) && cd_api_ivr_register (api, server, error) &&
         cd_api_prompts_register (api, server, error) &&
         cd_api_voicemails_register (api, server, error) &&
         cd_api_recordings_register (api, server, error) && cd_http_static_register (server, error);
}

static CdRoles
role_flag (const char *role)
{
  if (g_str_equal (role, "superadmin"))
    return CD_ROLE_SUPERADMIN;
  if (g_str_equal (role, "company_admin"))
    return CD_ROLE_COMPANY_ADMIN;
  if (g_str_equal (role, "agent"))
    return CD_ROLE_AGENT;
  return 0;
}

/**
 * cd_api_guard:
 * @roles: who may call the route
 * @company_param: (nullable): the path parameter naming a company; callers
 *   other than the super admin may only name their own
 *
 * Another company's id answers 404, exactly as an id that does not exist:
 * nothing tells one company about another.
 *
 * Returns: (transfer full): the caller, or %NULL with @error
 */
CdJwtClaims *
cd_api_guard (CdApi *api, CdHttpRequest *request, CdRoles roles, const char *company_param,
              GError **error)
{
  g_autoptr (CdJwtClaims) claims = cd_api_authenticate (api, request, error);
  const char *company;

  if (claims == NULL)
    return NULL;
  if (company_param != NULL) {
    company = g_hash_table_lookup (request->params, company_param);
    if (company == NULL || !cd_is_uuid (company) ||
        (claims->company != NULL && g_ascii_strcasecmp (company, claims->company) != 0)) {
      g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such company");
      return NULL;
    }
  }
  if (!(role_flag (claims->role) & roles)) {
    g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_FORBIDDEN, "a %s may not do this",
                 claims->role);
    return NULL;
  }
  return g_steal_pointer (&claims);
}

/**
 * cd_api_guard_company_admin:
 * @item_param: (nullable): a path parameter that must be a UUID
 * @missing: the 404's detail when it is not
 *
 * For the routes of a company's own things (queues, flows, prompts...):
 * the caller must be an admin of the company the path names ("id"), or the
 * super admin.
 *
 * Returns: (transfer full): the caller, or %NULL once the problem is answered
 */
CdJwtClaims *
cd_api_guard_company_admin (CdApi *api, CdHttpRequest *request, const char *item_param,
                            const char *missing)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "id", &error);

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return NULL;
  }
  if (item_param && !cd_is_uuid (g_hash_table_lookup (request->params, item_param))) {
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, missing);
    cd_http_respond_problem (request->msg, request->request_id, error);
    return NULL;
  }
  return g_steal_pointer (&claims);
}

/* A request answered later, for @claims (taken). */
CdApiCall *
cd_api_call_start (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims)
{
  CdApiCall *call = cd_api_call_new (api, request);

  call->caller = claims;
  return call;
}

void
cd_api_call_respond_problem (CdApiCall *call, CdHttpError code, const char *detail)
{
  g_autoptr (GError) error = g_error_new_literal (CD_HTTP_ERROR, code, detail);

  cd_api_call_respond_error (call, error);
}

static void
on_blob_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) data = cd_blob_store_read_finish (CD_BLOB_STORE (source), result, &error);

  if (data == NULL) {
    g_message ("request %s: a stored file cannot be read: %s", call->request_id, error->message);
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND,
                                   "the file is missing from storage");
    else
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_UNAVAILABLE,
                                   "the storage cannot be reached; try again later");
    return;
  }
  cd_api_call_respond_bytes (call, 200, call->data, data);
}

/* The stored file at @storage_key as @content_type (static). */
void
cd_api_call_respond_stored (CdApiCall *call, const char *storage_key, const char *content_type)
{
  call->data = (gpointer) content_type;
  cd_blob_store_read_async (call->api->blobs, storage_key, NULL, on_blob_read, call);
}

/* A statement's answer (the blob's key, or no row): the blob as
 * @content_type (static), or 404 @missing. */
void
cd_api_call_respond_blob (CdApiCall *call, GAsyncResult *result, const char *content_type,
                          const char *missing)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (call->api->pool, result, &error);

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, missing);
    return;
  }
  cd_api_call_respond_stored (call, PQgetvalue (res, 0, 0), content_type);
}

/* ---- a sealed file (recordings, voicemails) read from the blob store
 * (the spool or the bucket), opened with the company's key in a worker
 * thread; a file that fails its check is refused, never served ---- */

typedef struct {
  char *storage_key;
  GBytes *sealed;
  char *company_id;
  guint32 key_version;
  CdCompanyKey *key;
  GBytes *plain;
  const char *content_type;
} Opening;

static void
opening_free (Opening *o)
{
  g_free (o->storage_key);
  g_clear_pointer (&o->sealed, g_bytes_unref);
  g_free (o->company_id);
  g_clear_pointer (&o->key, cd_company_key_unref);
  g_clear_pointer (&o->plain, g_bytes_unref);
  g_free (o);
}

static void
open_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  Opening *o = task_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GInputStream) in = g_memory_input_stream_new_from_bytes (o->sealed);
  g_autoptr (CdUnsealer) unsealer = NULL;
  g_autoptr (GInputStream) opening = NULL;
  g_autoptr (GOutputStream) plain = g_memory_output_stream_new_resizable ();

  unsealer = cd_unsealer_new (o->key->key, o->company_id, o->key_version);
  opening = g_converter_input_stream_new (G_INPUT_STREAM (in), G_CONVERTER (unsealer));
  if (g_output_stream_splice (plain, opening, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, cancellable,
                              &error) < 0) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  o->plain = g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (plain));
  g_task_return_boolean (task, TRUE);
}

static void
on_opened (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Opening *o = g_task_get_task_data (G_TASK (result));
  g_autoptr (GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error)) {
    g_message ("request %s: %s does not open: %s", call->request_id, o->storage_key,
               error->message);
    if (error->domain == CD_SEAL_ERROR)
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                   "the stored file fails its check (changed or cut) and is not "
                                   "served");
    else
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_INTERNAL, "the stored file cannot be read");
    return;
  }
  /* the whole body: libsoup answers a Range request with just that part */
  cd_api_call_respond_bytes (call, 200, o->content_type, o->plain);
}

static void
on_sealed_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Opening *o = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GTask) task = NULL;

  o->sealed = cd_blob_store_read_finish (CD_BLOB_STORE (source), result, &error);
  if (o->sealed == NULL) {
    g_message ("request %s: %s cannot be read: %s", call->request_id, o->storage_key,
               error->message);
    if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND,
                                   "the file is missing from storage");
    else
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_UNAVAILABLE,
                                   "the storage cannot be reached; try again later");
    return;
  }
  call->data = NULL;
  call->data_free = NULL;
  task = g_task_new (NULL, NULL, on_opened, call);
  g_task_set_task_data (task, o, (GDestroyNotify) opening_free);
  g_task_run_in_thread (task, open_thread);
}

static void
on_key (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  Opening *o = call->data;
  g_autoptr (GError) error = NULL;

  o->key = cd_keyring_get_finish (CD_KEYRING (source), result, &error);
  if (o->key == NULL) {
    g_message ("request %s: no key for %s: %s", call->request_id, o->storage_key, error->message);
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_INTERNAL, "the file's key cannot be had");
    return;
  }
  cd_blob_store_read_async (call->api->blobs, o->storage_key, NULL, on_sealed_read, call);
}

/**
 * cd_api_call_respond_sealed:
 *
 * Answers with the sealed file at @storage_key, opened with @company_id's
 * key of @key_version: the whole body (libsoup answers a Range request with
 * its part); 404 when the file is gone, 409 when it fails its check, 503
 * when the storage cannot be reached.
 */
void
cd_api_call_respond_sealed (CdApiCall *call, const char *storage_key, const char *company_id,
                            guint32 key_version, const char *content_type)
{
  Opening *o = g_new0 (Opening, 1);

  o->storage_key = g_strdup (storage_key);
  o->company_id = g_strdup (company_id);
  o->key_version = key_version;
  o->content_type = content_type;
  call->data = o;
  call->data_free = (GDestroyNotify) opening_free;
  cd_keyring_get_async (call->api->keyring, o->company_id, o->key_version, NULL, on_key, call);
}

/**
 * cd_api_list:
 * @claims: (transfer full): the caller
 * @sql: a keyset-paged list (CD_API_PAGE_*): $1 the company of the path,
 *   $2 and $3 the cursor's time and id (NULL on the first page), $4 the limit
 */
void
cd_api_list (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims, const char *sql)
{
  cd_api_list_where (api, request, claims, sql, NULL, 0);
}

/**
 * cd_api_list_where:
 * @claims: (transfer full): the caller
 * @sql: as cd_api_list()'s, with @n_filters more parameters from $5 on
 * @filters: (array length=n_filters) (nullable): their values (validated)
 */
void
cd_api_list_where (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims, const char *sql,
                   const char *const *filters, int n_filters)
{
  g_autoptr (CdJwtClaims) caller = claims;
  g_autoptr (GError) error = NULL;
  g_autofree char *cursor_time = NULL;
  g_autofree char *cursor_id = NULL;
  g_autofree char *limit_text = NULL;
  CdApiCall *call;
  CdPgScope scope;
  guint limit;

  if (!cd_api_page_params (request, &limit, &cursor_time, &cursor_id, &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_start (api, request, g_steal_pointer (&caller));
  scope = cd_api_scope_of (call->caller);
  cd_api_call_expect (call, CD_API_ANSWER_PAGE, 200, NULL);
  limit_text = g_strdup_printf ("%u", limit);
  {
    const char *params[8] = { g_hash_table_lookup (request->params, "id"), cursor_time, cursor_id,
                              limit_text };

    g_return_if_fail (n_filters >= 0 && n_filters <= 4);
    for (int i = 0; i < n_filters; i++)
      params[4 + i] = filters[i];
    cd_pg_pool_query_scoped_async (api->pool, &scope, sql, params, 4 + n_filters, NULL,
                                   cd_api_call_on_query, call);
  }
}

/**
 * cd_api_get_one:
 * @claims: (transfer full): the caller
 * @sql: one row's JSON: $1 the company of the path, $2 its @item_param
 */
void
cd_api_get_one (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims, const char *item_param,
                const char *sql)
{
  CdApiCall *call = cd_api_call_start (api, request, claims);
  CdPgScope scope = cd_api_scope_of (call->caller);
  const char *params[] = { g_hash_table_lookup (request->params, "id"),
                           g_hash_table_lookup (request->params, item_param) };

  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  cd_pg_pool_query_scoped_async (api->pool, &scope, sql, params, 2, NULL, cd_api_call_on_query,
                                 call);
}

/* The super admin sees every company's rows; anyone else their company's. */
CdPgScope
cd_api_scope_of (const CdJwtClaims *claims)
{
  CdPgScope scope = { claims->company, claims->company == NULL };

  return scope;
}

/**
 * cd_api_call_respond_rows:
 *
 * Answers with the JSON text in the first column of the first row, or 404
 * when there is no row.
 */
void
cd_api_call_respond_rows (CdApiCall *call, guint status, PGresult *res)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) body = NULL;

  if (PQntuples (res) == 0 || PQgetisnull (res, 0, 0)) {
    g_set_error_literal (&error, CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such resource");
    cd_api_call_respond_error (call, error);
    return;
  }
  body = json_from_string (PQgetvalue (res, 0, 0), &error);
  if (body == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_api_call_respond_json (call, status, body);
}

/**
 * cd_api_call_respond_page:
 *
 * Answers a list: the first column holds {"items": [...], "next_cursor":
 * "TIME|UUID" or null}; the cursor goes out opaque (base64url).
 */
void
cd_api_call_respond_page (CdApiCall *call, PGresult *res)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) body = NULL;
  JsonObject *object;
  const char *raw;

  if (PQntuples (res) == 0) {
    g_set_error_literal (&error, CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such resource");
    cd_api_call_respond_error (call, error);
    return;
  }
  body = json_from_string (PQgetvalue (res, 0, 0), &error);
  if (body == NULL || !JSON_NODE_HOLDS_OBJECT (body)) {
    if (error == NULL)
      g_set_error_literal (&error, CD_HTTP_ERROR, CD_HTTP_ERROR_INTERNAL, "not a page");
    cd_api_call_respond_error (call, error);
    return;
  }
  object = json_node_get_object (body);
  raw = json_object_get_string_member_with_default (object, "next_cursor", NULL);
  if (raw != NULL) {
    g_autofree char *opaque = cd_base64url_encode ((const guint8 *) raw, strlen (raw));
    json_object_set_string_member (object, "next_cursor", opaque);
  }
  cd_api_call_respond_json (call, 200, body);
}

/**
 * cd_api_call_expect:
 * @conflict_detail: (nullable): static text answered (409) when the statement
 *   breaks a constraint, such as "an account with this email exists"
 *
 * Says how cd_api_call_on_query() answers this call.
 */
void
cd_api_call_expect (CdApiCall *call, CdApiAnswer answer, guint status, const char *conflict_detail)
{
  call->answer = answer;
  call->answer_status = status;
  call->conflict_detail = conflict_detail;
}

/**
 * cd_api_call_on_query:
 *
 * The usual end of a handler: a scoped statement's result answered as
 * cd_api_call_expect() said.
 */
void
cd_api_call_on_query (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (call->conflict_detail &&
        g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT)) {
      g_autoptr (GError) conflict =
          g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT, call->conflict_detail);
      cd_api_call_respond_error (call, conflict);
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  switch (call->answer) {
  case CD_API_ANSWER_PAGE:
    cd_api_call_respond_page (call, res);
    return;
  case CD_API_ANSWER_EMPTY:
    if (PQntuples (res) == 0) {
      g_autoptr (GError) missing =
          g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such resource");
      cd_api_call_respond_error (call, missing);
      return;
    }
    cd_api_call_respond_empty (call, call->answer_status);
    return;
  case CD_API_ANSWER_ROW:
  default:
    cd_api_call_respond_rows (call, call->answer_status, res);
    return;
  }
}

/**
 * cd_api_page_params:
 * @limit: (out): ?limit=, 1..100, default 50
 * @cursor_time: (out): from ?cursor=, or %NULL for the first page
 *
 * Reads the pagination parameters of a list route.
 */
gboolean
cd_api_page_params (CdHttpRequest *request, guint *limit, char **cursor_time, char **cursor_id,
                    GError **error)
{
  const char *l = request->query ? g_hash_table_lookup (request->query, "limit") : NULL;
  const char *c = request->query ? g_hash_table_lookup (request->query, "cursor") : NULL;
  guint64 v = 50;

  *cursor_time = NULL;
  *cursor_id = NULL;
  if (l != NULL && !g_ascii_string_to_unsigned (l, 10, 1, 100, &v, NULL)) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                         "query parameter 'limit': must be from 1 to 100");
    return FALSE;
  }
  *limit = (guint) v;
  if (c != NULL) {
    gsize n = 0;
    g_autofree guint8 *raw = strlen (c) < 200 ? cd_base64url_decode (c, strlen (c), &n) : NULL;
    char *bar = raw ? strchr ((char *) raw, '|') : NULL;
    if (bar == NULL || !cd_is_uuid (bar + 1) || bar - (char *) raw > 40) {
      g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                           "query parameter 'cursor': not a cursor this API gave out");
      return FALSE;
    }
    *cursor_time = g_strndup ((char *) raw, (gsize) (bar - (char *) raw));
    {
      g_autoptr (GDateTime) t = g_date_time_new_from_iso8601 (*cursor_time, NULL);
      g_autoptr (GDateTime) utc = t ? g_date_time_to_utc (t) : NULL;
      if (utc != NULL) {
        /* PostgreSQL reads a canonical form, not every ISO 8601 GLib takes */
        g_free (*cursor_time);
        *cursor_time = g_date_time_format (utc, "%Y-%m-%dT%H:%M:%S.%fZ");
      }
      if (t == NULL) {
        g_clear_pointer (cursor_time, g_free);
        g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                             "query parameter 'cursor': not a cursor this API gave out");
        return FALSE;
      }
    }
    *cursor_id = g_strdup (bar + 1);
  }
  return TRUE;
}

/* KEYS[1]: the key; ARGV[1]: the request's fingerprint. Returns the stored
 * answer, "pending:FP" while the first request runs, or nil: go ahead. */
#define IDEMPOTENCY_SCRIPT                                        \
  "local v = redis.call('GET', KEYS[1]) "                         \
  "if v then return v end "                                       \
  "redis.call('SET', KEYS[1], 'pending:' .. ARGV[1], 'EX', 120) " \
  "return false"

typedef struct {
  CdApiCall *call;
  CdApiProceedFunc proceed;
} Idempotent;

static void
on_idempotency_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Idempotent *idem = user_data;
  CdApiCall *call = idem->call;
  CdApiProceedFunc proceed = idem->proceed;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) reply = cd_redis_command_finish (CD_REDIS (source), result, &error);
  g_autoptr (JsonObject) stored = NULL;

  g_free (idem);
  if (reply == NULL) {
    g_clear_pointer (&call->idempotency_key, g_free);
    cd_api_call_respond_error (call, error);
    return;
  }
  if (reply->type == CD_REDIS_REPLY_NIL) {
    proceed (call);
    return;
  }
  /* someone else's answer: never store over it */
  g_clear_pointer (&call->idempotency_key, g_free);
  if (reply->type != CD_REDIS_REPLY_STRING || g_str_has_prefix (reply->str, "pending:")) {
    g_set_error_literal (&error, CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                         "a request with this Idempotency-Key is still running");
    cd_api_call_respond_error (call, error);
    return;
  }
  stored = cd_json_parse_object (reply->str, reply->len, NULL, &error);
  if (stored == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (!g_str_equal (json_object_get_string_member_with_default (stored, "fingerprint", ""),
                    call->idempotency_fingerprint)) {
    g_set_error_literal (&error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                         "header 'Idempotency-Key': already used for a different request");
    cd_api_call_respond_error (call, error);
    return;
  }
  {
    const char *body = json_object_get_string_member_with_default (stored, "body", "");
    soup_server_message_set_status (
        call->msg, (guint) json_object_get_int_member_with_default (stored, "status", 200), NULL);
    soup_server_message_set_response (
        call->msg,
        json_object_get_string_member_with_default (stored, "content_type", "application/json"),
        SOUP_MEMORY_COPY, body, strlen (body));
    soup_message_headers_replace (soup_server_message_get_response_headers (call->msg),
                                  "Idempotent-Replayed", "true");
    call_free (call);
  }
}

/**
 * cd_api_call_idempotent:
 * @caller: whose keys these are (a user id, or the client address)
 * @proceed: does the work; runs at once without the header
 *
 * For POSTs that create: with an Idempotency-Key, the first request runs and
 * its answer is kept a day; a retry with the same key and body gets that
 * answer again; the same key with another body is refused.
 */
void
cd_api_call_idempotent (CdApiCall *call, const char *caller, CdApiProceedFunc proceed)
{
  SoupMessageHeaders *headers = soup_server_message_get_request_headers (call->msg);
  const char *key = soup_message_headers_get_one (headers, "Idempotency-Key");
  g_autoptr (GBytes) body = NULL;
  g_autoptr (GChecksum) checksum = NULL;
  g_autofree char *key_digest = NULL;
  Idempotent *idem;
  gsize n;

  if (key == NULL) {
    proceed (call);
    return;
  }
  n = strlen (key);
  for (gsize i = 0; i < n; i++) {
    if ((guchar) key[i] < 0x21 || (guchar) key[i] > 0x7e)
      n = 0;
  }
  if (n == 0 || n > 255) {
    g_autoptr (GError) error =
        g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                             "header 'Idempotency-Key': 1 to 255 visible ASCII characters");
    cd_api_call_respond_error (call, error);
    return;
  }
  body = soup_message_body_flatten (soup_server_message_get_request_body (call->msg));
  checksum = g_checksum_new (G_CHECKSUM_SHA256);
  /* the real path (its ids), not the route's pattern: another company's
   * request is another request */
  g_checksum_update (checksum, (const guchar *) soup_server_message_get_method (call->msg), -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  g_checksum_update (checksum,
                     (const guchar *) g_uri_get_path (soup_server_message_get_uri (call->msg)), -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  g_checksum_update (checksum, g_bytes_get_data (body, NULL), g_bytes_get_size (body));
  call->idempotency_fingerprint = g_strdup (g_checksum_get_string (checksum));
  key_digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, key, -1);
  call->idempotency_key = g_strdup_printf ("cd:idem:%s:%s", caller, key_digest);
  idem = g_new0 (Idempotent, 1);
  idem->call = call;
  idem->proceed = proceed;
  cd_redis_commandv_async (call->api->redis, NULL, on_idempotency_checked, idem, "EVAL",
                           IDEMPOTENCY_SCRIPT, "1", call->idempotency_key,
                           call->idempotency_fingerprint, NULL);
}

/* KEYS: account, address. ARGV: window. Returns both counts. */
#define RATE_LIMIT_SCRIPT                                      \
  "local a = redis.call('INCR', KEYS[1]) "                     \
  "if a == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end " \
  "local b = redis.call('INCR', KEYS[2]) "                     \
  "if b == 1 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end " \
  "return {a, b}"

/**
 * cd_api_rate_limit_key:
 * @kind: what is limited: login, reset, password
 *
 * Returns: (transfer full): the Redis key counting @account's attempts
 */
char *
cd_api_rate_limit_key (const char *kind, const char *account)
{
  g_autofree char *lower = g_utf8_strdown (account, -1);
  g_autofree char *digest = g_compute_checksum_for_string (G_CHECKSUM_SHA256, lower, -1);

  return g_strdup_printf ("cd:rl:%s:account:%s", kind, digest);
}

typedef struct {
  CdApiCall *call;
  CdApiProceedFunc proceed;
  char *kind;
} RateCheck;

static void
on_rate_limit_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  RateCheck *check = user_data;
  CdApiCall *call = check->call;
  CdApiProceedFunc proceed = check->proceed;
  CdApiSettings *settings = &call->api->settings;
  g_autofree char *kind = check->kind;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) reply = cd_redis_command_finish (CD_REDIS (source), result, &error);

  g_free (check);
  if (reply == NULL) {
    /* without the limiter, attempts would be unlimited: refuse instead */
    cd_api_call_respond_error (call, error);
    return;
  }
  if (reply->type != CD_REDIS_REPLY_ARRAY || reply->n_elements != 2 ||
      reply->elements[0]->integer > settings->login_limit_per_account ||
      reply->elements[1]->integer > settings->login_limit_per_address) {
    g_info ("%s rate limit reached for %s (request %s)", kind, call->client_address,
            call->request_id);
    g_set_error (&error, CD_AUTH_ERROR, CD_AUTH_ERROR_RATE_LIMITED,
                 "too many %s attempts; retry later", kind);
    cd_api_call_respond_error (call, error);
    return;
  }
  proceed (call);
}

/**
 * cd_api_call_rate_limit:
 * @kind: login, reset or password
 * @account: the account tried (an email or a user id)
 * @proceed: runs when neither @account nor the client address is over its limit
 *
 * Counts an attempt per account and per client address in Redis (one Lua
 * script); over either limit the call answers 429. While Redis is down the
 * call answers 503 rather than go unlimited.
 */
void
cd_api_call_rate_limit (CdApiCall *call, const char *kind, const char *account,
                        CdApiProceedFunc proceed)
{
  RateCheck *check = g_new0 (RateCheck, 1);
  g_autofree char *account_key = cd_api_rate_limit_key (kind, account);
  g_autofree char *address_key =
      g_strdup_printf ("cd:rl:%s:address:%s", kind, call->client_address);
  g_autofree char *window = g_strdup_printf ("%u", call->api->settings.login_limit_window_s);

  check->call = call;
  check->proceed = proceed;
  check->kind = g_strdup (kind);
  cd_redis_commandv_async (call->api->redis, NULL, on_rate_limit_checked, check, "EVAL",
                           RATE_LIMIT_SCRIPT, "2", account_key, address_key, window, NULL);
}

typedef struct {
  CdApiCall *call;
  CdApiProceedFunc proceed;
  guint limit;
  char *kind;
} AddressCheck;

static void
on_address_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AddressCheck *check = user_data;
  CdApiCall *call = check->call;
  CdApiProceedFunc proceed = check->proceed;
  guint limit = check->limit;
  g_autofree char *kind = check->kind;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) reply = cd_redis_command_finish (CD_REDIS (source), result, &error);

  g_free (check);
  if (reply == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (reply->type != CD_REDIS_REPLY_INTEGER || reply->integer > limit) {
    g_set_error (&error, CD_AUTH_ERROR, CD_AUTH_ERROR_RATE_LIMITED,
                 "too many %s requests from this address; retry later", kind);
    cd_api_call_respond_error (call, error);
    return;
  }
  proceed (call);
}

/**
 * cd_api_call_rate_limit_address:
 *
 * Counts a request of @kind from the client's address; past @limit in
 * @window_s seconds the call answers 429.
 */
void
cd_api_call_rate_limit_address (CdApiCall *call, const char *kind, guint limit, guint window_s,
                                CdApiProceedFunc proceed)
{
  AddressCheck *check = g_new0 (AddressCheck, 1);
  g_autofree char *key = g_strdup_printf ("cd:rl:%s:address:%s", kind, call->client_address);
  g_autofree char *window = g_strdup_printf ("%u", window_s);

  check->call = call;
  check->proceed = proceed;
  check->limit = limit;
  check->kind = g_strdup (kind);
  cd_redis_commandv_async (call->api->redis, NULL, on_address_checked, check, "EVAL",
                           "local n = redis.call('INCR', KEYS[1]) "
                           "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
                           "return n",
                           "1", key, window, NULL);
}
