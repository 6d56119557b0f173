/* SPDX-License-Identifier: GPL-3.0-or-later */
/* HTTP errors as application/problem+json (RFC 9457): one table maps every
 * error domain and code to a status, a stable type and a title. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

#define CD_HTTP_ERROR (cd_http_error_quark ())

typedef enum {
  CD_HTTP_ERROR_BAD_REQUEST,
  CD_HTTP_ERROR_NOT_FOUND,
  CD_HTTP_ERROR_METHOD_NOT_ALLOWED,
  CD_HTTP_ERROR_LENGTH_REQUIRED,
  CD_HTTP_ERROR_PAYLOAD_TOO_LARGE,
  CD_HTTP_ERROR_UNSUPPORTED_MEDIA_TYPE,
  CD_HTTP_ERROR_INVALID_FIELD, /* the message names the field */
  CD_HTTP_ERROR_CONFLICT,
  CD_HTTP_ERROR_UNAVAILABLE,
  CD_HTTP_ERROR_INTERNAL,
} CdHttpError;

GQuark cd_http_error_quark (void);

#define CD_PROBLEM_TYPE_PREFIX "urn:calldocker:problem:"

typedef struct {
  guint status;
  const char *slug; /* type is CD_PROBLEM_TYPE_PREFIX + slug */
  const char *title;
  gboolean expose_detail; /* the error's message is safe to show to clients */
} CdProblemInfo;

const CdProblemInfo *cd_problem_info_for_error (const GError *error);
void cd_http_respond_problem (SoupServerMessage *msg, const char *request_id, const GError *error);
void cd_http_respond_error (SoupServerMessage *msg, const char *request_id, CdHttpError code,
                            const char *format, ...) G_GNUC_PRINTF (4, 5);
void cd_http_respond_json (SoupServerMessage *msg, guint status, JsonNode *body);

G_END_DECLS
