/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The embedded default: a private PostgreSQL and Redis under the state folder,
 * on unix sockets only, children of the daemon that die with it. */
#pragma once

#include <gio/gio.h>

#include "cd-config.h"
#include "cd-store-error.h"

G_BEGIN_DECLS

typedef enum {
  CD_EMBEDDED_POSTGRES,
  CD_EMBEDDED_REDIS,
} CdEmbeddedServer;

#define CD_TYPE_EMBEDDED_STORES (cd_embedded_stores_get_type ())
G_DECLARE_FINAL_TYPE (CdEmbeddedStores, cd_embedded_stores, CD, EMBEDDED_STORES, GObject)

CdEmbeddedStores *cd_embedded_stores_new (const char *state_dir, gboolean with_postgres,
                                          gboolean with_redis);
void cd_embedded_stores_set_fast_unsafe (CdEmbeddedStores *self, gboolean fast_unsafe);
gboolean cd_embedded_stores_check (CdEmbeddedStores *self, GError **error);
void cd_embedded_stores_start_async (CdEmbeddedStores *self, GCancellable *cancellable,
                                     GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_embedded_stores_start_finish (CdEmbeddedStores *self, GAsyncResult *result,
                                          GError **error);
void cd_embedded_stores_stop_async (CdEmbeddedStores *self, guint timeout_s,
                                    GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_embedded_stores_stop_finish (CdEmbeddedStores *self, GAsyncResult *result,
                                         GError **error);

char *cd_embedded_stores_get_pg_conninfo (CdEmbeddedStores *self);
CdRedisAddress *cd_embedded_stores_get_redis_address (CdEmbeddedStores *self);
GPid cd_embedded_stores_get_pid (CdEmbeddedStores *self, CdEmbeddedServer server);

G_END_DECLS
