/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One signaling WebSocket, shared by the signal server (which owns it) and
 * the switchboard (which routes calls between sessions). Main thread only. */
#pragma once

#include <libsoup/soup.h>
#include <json-glib/json-glib.h>

#include "../auth/cd-jwt.h"

G_BEGIN_DECLS

typedef struct _CdSignalServer CdSignalServer;

typedef struct _Session {
  CdSignalServer *server; /* unowned: sessions are closed before it goes */
  SoupWebsocketConnection *connection;
  char *id;
  char *client_address;
  char country[3];            /* upper case; "" unknown */
  const char *country_source; /* "header" (the trusted proxy's) or "geoip"; NULL: unknown */
  CdJwtClaims *claims;        /* NULL until authenticated */
  guint auth_timeout_id;
  gint64 window_start;
  guint window_messages;
  gboolean closing;
} Session;

void cd_signal_session_send (Session *s, JsonNode *message);
void cd_signal_session_send_error (Session *s, const char *code, const char *in_reply_to,
                                   const char *detail);

G_END_DECLS
