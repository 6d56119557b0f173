/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The signaling WebSocket (/api/v1/ws): visitors and agents authenticate
 * with their token, then exchange JSON messages (docs/signaling.md). */
#pragma once

#include "../http/cd-api.h"
#include "../routing/cd-geoip.h"
#include "cd-switchboard.h"

G_BEGIN_DECLS

#define CD_TYPE_SIGNAL_SERVER (cd_signal_server_get_type ())
G_DECLARE_FINAL_TYPE (CdSignalServer, cd_signal_server, CD, SIGNAL_SERVER, GObject)

typedef struct {
  guint auth_timeout_s;
  guint max_message_bytes;
  guint max_messages_per_second;
  guint keepalive_s;
  CdSwitchboardSettings calls;
  /* a header a trusted reverse proxy sets to the visitor's country
   * (ISO 3166-1 alpha-2, e.g. CF-IPCountry); NULL or "": none */
  const char *country_header;
  /* where the header says nothing: the client address's country; nullable,
   * borrowed (it outlives the server) */
  CdGeoip *geoip;
} CdSignalSettings;

CdSignalServer *cd_signal_server_new (CdApi *api, const CdSignalSettings *settings);
void cd_signal_server_attach (CdSignalServer *self, CdHttpServer *http);
guint cd_signal_server_get_session_count (CdSignalServer *self);
void cd_signal_server_recover_recordings (CdSignalServer *self);
void cd_signal_server_close_all (CdSignalServer *self);
CdSwitchboard *cd_signal_server_get_switchboard (CdSignalServer *self);

G_END_DECLS
