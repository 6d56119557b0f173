/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Maps GErrors to problem+json responses. Messages of store and internal
 * errors are logged with the request id and never sent to clients. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-http-problem.h"

#include "../../common/cd-json.h"
#include "../auth/cd-auth-error.h"
#include "../store/cd-store-error.h"

G_DEFINE_QUARK (calldocker_http_error, cd_http_error)

typedef struct {
  GQuark (*domain) (void);
  int code; /* -1: any code of the domain */
  CdProblemInfo info;
} ProblemRow;

static const ProblemRow problem_table[] = {
  { cd_http_error_quark,
    CD_HTTP_ERROR_BAD_REQUEST,
    { 400, "bad-request", "The request is malformed", TRUE } },
  { cd_http_error_quark, CD_HTTP_ERROR_NOT_FOUND, { 404, "not-found", "No such resource", TRUE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_METHOD_NOT_ALLOWED,
    { 405, "method-not-allowed", "Method not allowed on this resource", TRUE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_LENGTH_REQUIRED,
    { 411, "length-required", "A request body needs a Content-Length", TRUE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_PAYLOAD_TOO_LARGE,
    { 413, "payload-too-large", "The request body is too large", TRUE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_UNSUPPORTED_MEDIA_TYPE,
    { 415, "unsupported-media-type", "The request body must be JSON", TRUE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_UNAVAILABLE,
    { 503, "unavailable", "The service is not ready", TRUE } },
  { cd_http_error_quark, CD_HTTP_ERROR_INTERNAL, { 500, "internal", "Internal error", FALSE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_CONFLICT,
    { 409, "conflict", "The request conflicts with existing data", TRUE } },
  { cd_http_error_quark,
    CD_HTTP_ERROR_INVALID_FIELD,
    { 422, "invalid-field", "A field of the request is invalid", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_TOKEN_MISSING,
    { 401, "unauthorized", "Authentication is required", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_TOKEN_INVALID,
    { 401, "unauthorized", "Authentication is required", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_TOKEN_EXPIRED,
    { 401, "token-expired", "The access token expired; refresh it", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_BAD_CREDENTIALS,
    { 401, "invalid-credentials", "Wrong email or password", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_WEAK_PASSWORD,
    { 422, "weak-password", "The password is too weak", TRUE } },
  { cd_auth_error_quark, CD_AUTH_ERROR_FORBIDDEN, { 403, "forbidden", "Not allowed", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_RATE_LIMITED,
    { 429, "rate-limited", "Too many attempts; retry later", TRUE } },
  { cd_auth_error_quark,
    CD_AUTH_ERROR_ACCOUNT_DISABLED,
    { 403, "account-disabled", "The account or its company cannot be used", TRUE } },
  { cd_json_error_quark,
    CD_JSON_ERROR_TOO_LARGE,
    { 413, "payload-too-large", "The request body is too large", TRUE } },
  { cd_json_error_quark, -1, { 400, "invalid-json", "The request body is not valid JSON", TRUE } },
  { cd_store_error_quark,
    CD_STORE_ERROR_UNAVAILABLE,
    { 503, "store-unavailable", "A data store is unavailable; retry later", FALSE } },
  { cd_store_error_quark,
    CD_STORE_ERROR_TIMED_OUT,
    { 503, "store-timeout", "A data store did not answer in time; retry later", FALSE } },
  { cd_store_error_quark,
    CD_STORE_ERROR_CONSTRAINT,
    { 409, "conflict", "The request conflicts with existing data", FALSE } },
};

static const CdProblemInfo internal_problem = { 500, "internal", "Internal error", FALSE };

/**
 * cd_problem_info_for_error:
 *
 * Returns: (transfer none): how @error is shown to clients
 */
const CdProblemInfo *
cd_problem_info_for_error (const GError *error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (problem_table); i++) {
    const ProblemRow *row = &problem_table[i];
    if (error->domain == row->domain () && (row->code == -1 || row->code == error->code))
      return &row->info;
  }
  return &internal_problem;
}

void
cd_http_respond_json (SoupServerMessage *msg, guint status, JsonNode *body)
{
  g_autofree char *text = cd_json_to_string (body);
  gsize length = strlen (text);

  soup_server_message_set_status (msg, status, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE,
                                    g_steal_pointer (&text), length);
}

/**
 * cd_http_respond_problem:
 * @request_id: (nullable): echoed as `request_id` so users can quote it
 */
void
cd_http_respond_problem (SoupServerMessage *msg, const char *request_id, const GError *error)
{
  const CdProblemInfo *info = cd_problem_info_for_error (error);
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) body = NULL;
  g_autofree char *type = g_strconcat (CD_PROBLEM_TYPE_PREFIX, info->slug, NULL);
  g_autofree char *text = NULL;
  gsize length;

  if (!info->expose_detail)
    g_log_structured (G_LOG_DOMAIN, info->status >= 500 ? G_LOG_LEVEL_WARNING : G_LOG_LEVEL_INFO,
                      "REQUEST_ID", request_id ? request_id : "-", "MESSAGE", "%s: %s", info->slug,
                      error->message);

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "type");
  json_builder_add_string_value (builder, type);
  json_builder_set_member_name (builder, "title");
  json_builder_add_string_value (builder, info->title);
  json_builder_set_member_name (builder, "status");
  json_builder_add_int_value (builder, info->status);
  json_builder_set_member_name (builder, "detail");
  json_builder_add_string_value (builder, info->expose_detail ? error->message : info->title);
  if (request_id) {
    json_builder_set_member_name (builder, "request_id");
    json_builder_add_string_value (builder, request_id);
  }
  json_builder_end_object (builder);
  body = json_builder_get_root (builder);
  text = cd_json_to_string (body);
  length = strlen (text);

  soup_server_message_set_status (msg, info->status, NULL);
  soup_server_message_set_response (msg, "application/problem+json", SOUP_MEMORY_TAKE,
                                    g_steal_pointer (&text), length);
}

void
cd_http_respond_error (SoupServerMessage *msg, const char *request_id, CdHttpError code,
                       const char *format, ...)
{
  g_autoptr (GError) error = NULL;
  va_list ap;

  va_start (ap, format);
  error = g_error_new_valist (CD_HTTP_ERROR, code, format, ap);
  va_end (ap);
  cd_http_respond_problem (msg, request_id, error);
}
