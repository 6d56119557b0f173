/* SPDX-License-Identifier: GPL-3.0-or-later */
/* For media engineers: a live call's GStreamer pipeline as a DOT graph and
 * its legs' webrtcbin statistics. Only the daemon carrying the call knows. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "cd-http-problem.h"

#include <string.h>

/* company admins of the call's company, and the super admin */
static CdCallPipeline *
live_pipeline (CdApi *api, CdHttpRequest *request)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims =
      cd_api_guard (api, request, CD_ROLE_SUPERADMIN | CD_ROLE_COMPANY_ADMIN, "company_id", &error);
  const char *company = g_hash_table_lookup (request->params, "company_id");
  const char *call_id = g_hash_table_lookup (request->params, "call_id");
  CdCallPipeline *pipeline = NULL;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return NULL;
  }
  if (cd_is_uuid (call_id) && api->lookup_pipeline)
    pipeline = api->lookup_pipeline (api->lookup_pipeline_data, company, call_id);
  if (pipeline == NULL) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_NOT_FOUND,
                           "no such call in progress on this server (ended calls keep their "
                           "quality summary on the call)");
    return NULL;
  }
  return g_object_ref (pipeline);
}

static void
handle_pipeline (CdHttpRequest *request, gpointer user_data)
{
  g_autoptr (CdCallPipeline) pipeline = live_pipeline (user_data, request);
  g_autofree char *dot = NULL;
  SoupMessageHeaders *headers;
  gsize length;

  if (pipeline == NULL)
    return;
  dot = cd_call_pipeline_get_dot (pipeline);
  if (dot == NULL) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_NOT_FOUND,
                           "the call's pipeline has been torn down");
    return;
  }
  headers = soup_server_message_get_response_headers (request->msg);
  soup_message_headers_replace (headers, "Cache-Control", "no-store");
  soup_server_message_set_status (request->msg, 200, NULL);
  length = strlen (dot);
  soup_server_message_set_response (request->msg, "text/vnd.graphviz; charset=utf-8",
                                    SOUP_MEMORY_TAKE, g_steal_pointer (&dot), length);
}

static void
on_stats (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonNode) stats =
      cd_call_pipeline_get_stats_finish (CD_CALL_PIPELINE (source), result, &error);

  if (stats == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_api_call_respond_json (call, 200, stats);
}

static void
handle_stats (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdCallPipeline) pipeline = live_pipeline (api, request);

  if (pipeline == NULL)
    return;
  cd_call_pipeline_get_stats_async (pipeline, NULL, on_stats, cd_api_call_new (api, request));
}

gboolean
cd_api_call_media_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{company_id}/calls/{call_id}/pipeline",
                                   handle_pipeline, api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{company_id}/calls/{call_id}/stats",
                                   handle_stats, api, error);
}
