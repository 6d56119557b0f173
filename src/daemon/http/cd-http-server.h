/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The HTTP front: a libsoup server with request ids, body limits, one log
 * line and metrics per request, and problem+json errors. */
#pragma once

#include <libsoup/soup.h>

#include "../events/cd-metrics.h"
#include "cd-http-router.h"

G_BEGIN_DECLS

#define CD_TYPE_HTTP_SERVER (cd_http_server_get_type ())
G_DECLARE_FINAL_TYPE (CdHttpServer, cd_http_server, CD, HTTP_SERVER, GObject)

/* A message answered later: paused now, and safe to answer even when the
 * client or the server's shutdown has dropped the connection meanwhile. */
typedef struct {
  SoupServerMessage *msg;
  gboolean gone;
  gulong finished_id;
  gulong disconnected_id;
} CdPausedMessage;

void cd_paused_message_init (CdPausedMessage *paused, SoupServerMessage *msg);
gboolean cd_paused_message_is_gone (CdPausedMessage *paused);
void cd_paused_message_release (CdPausedMessage *paused);

CdHttpServer *cd_http_server_new (CdMetrics *metrics, guint64 max_body_bytes);
gboolean cd_http_server_add_route (CdHttpServer *self, const char *method, const char *pattern,
                                   CdHttpHandler handler, gpointer user_data, GError **error);
gboolean cd_http_server_listen (CdHttpServer *self, const char *host, guint port, GError **error);
GSList *cd_http_server_get_uris (CdHttpServer *self);
guint cd_http_server_get_in_flight (CdHttpServer *self);
void cd_http_server_stop (CdHttpServer *self);
GStrv cd_http_server_list_routes (CdHttpServer *self);
void cd_http_server_set_body_limit (CdHttpServer *self, const char *method, const char *pattern,
                                    guint64 max_bytes);
void cd_http_server_add_websocket (CdHttpServer *self, const char *path,
                                   SoupServerWebsocketCallback callback, gpointer user_data);
gboolean cd_http_server_is_stopped (CdHttpServer *self);

G_END_DECLS
