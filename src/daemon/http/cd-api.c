/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The API context: bearer authentication, calls answered later, tokens. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../auth/cd-auth-error.h"
#include "../../common/cd-json.h"
#include "cd-http-problem.h"

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
  return cd_jwt_verify (api->keys, value + 7, g_get_real_time () / G_USEC_PER_SEC, error);
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

static void
call_free (CdApiCall *call)
{
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
cd_api_call_respond_empty (CdApiCall *call, guint status)
{
  soup_server_message_set_status (call->msg, status, NULL);
  call_free (call);
}

void
cd_api_call_respond_error (CdApiCall *call, const GError *error)
{
  if (error->domain == CD_AUTH_ERROR && error->code == CD_AUTH_ERROR_RATE_LIMITED)
    soup_message_headers_replace (soup_server_message_get_response_headers (call->msg),
                                  "Retry-After", "60");
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
  return cd_api_auth_register (api, server, error);
}
