/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A signaling WebSocket client for the tests: every message it receives is
 * kept, in order, as a JsonObject. */
#pragma once

#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct {
  SoupSession *session;
  SoupWebsocketConnection *ws;
  GPtrArray *received; /* JsonObject* */
  gboolean closed;
  gushort close_code;
} CdTestWs;

/* Connected to @base_url's /api/v1/ws and, with a @token, authenticated. */
CdTestWs *cd_test_ws_connect (const char *base_url, const char *token);
/* The same, with extra request headers (name, value, ..., NULL). */
CdTestWs *cd_test_ws_connect_with_headers (const char *base_url, const char *token,
                                           const char *const *headers);
void cd_test_ws_send (CdTestWs *c, const char *format, ...) G_GNUC_PRINTF (2, 3);
/* The first message of @type received from index @from on, or NULL; its
 * index in @at. */
JsonObject *cd_test_ws_find (CdTestWs *c, guint from, const char *type, guint *at);
/* The first message of @type from index @from on whose string @member is
 * @value, or NULL. */
JsonObject *cd_test_ws_find_where (CdTestWs *c, guint from, const char *type, const char *member,
                                   const char *value);
/* Like cd_test_ws_find(), waiting up to 10 s; fails the test if the
 * connection closes first. */
JsonObject *cd_test_ws_wait (CdTestWs *c, guint from, const char *type, guint *at);
/* An agent's session (@token) with its presence set to @status. */
CdTestWs *cd_test_ws_agent_online (const char *base_url, const char *token, const char *status);

/* Closes the connection (unless the server did) and frees. */
void cd_test_ws_free (CdTestWs *c);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdTestWs, cd_test_ws_free)

G_END_DECLS
