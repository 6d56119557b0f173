/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A small pool of non-blocking libpq connections driven by the main loop:
 * parameterized queries, leased connections for transactions, reconnects. */
#pragma once

#include <gio/gio.h>
#include <libpq-fe.h>

#include "cd-store-error.h"

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (PGresult, PQclear)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (PGconn, PQfinish)

#define CD_TYPE_PG_POOL (cd_pg_pool_get_type ())
G_DECLARE_FINAL_TYPE (CdPgPool, cd_pg_pool, CD, PG_POOL, GObject)

typedef struct _CdPgLease CdPgLease;

typedef struct {
  guint size;
  guint connected;
  guint leased;
  guint busy;
  guint waiting;
  guint64 reconnects;
  guint64 queries;
  guint64 query_errors;
  guint64 timeouts;
} CdPgPoolStats;

/* Whose rows a statement sees under row-level security: one company's, or
 * (platform) every company's, for the super admin and the auth code. */
typedef struct {
  const char *company_id; /* a UUID, or NULL */
  gboolean platform;
} CdPgScope;

gboolean cd_pg_is_identifier (const char *name);

CdPgPool *cd_pg_pool_new (const char *conninfo, guint size, guint query_timeout_ms,
                          guint reconnect_min_ms, guint reconnect_max_ms);
void cd_pg_pool_set_role (CdPgPool *self, const char *role);
void cd_pg_pool_start (CdPgPool *self);
void cd_pg_pool_close (CdPgPool *self);
gboolean cd_pg_pool_is_connected (CdPgPool *self);
void cd_pg_pool_get_stats (CdPgPool *self, CdPgPoolStats *stats);

void cd_pg_pool_query_async (CdPgPool *self, const char *sql, const char *const *params,
                             int n_params, GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data);
void cd_pg_pool_query_scoped_async (CdPgPool *self, const CdPgScope *scope, const char *sql,
                                    const char *const *params, int n_params,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
PGresult *cd_pg_pool_query_finish (CdPgPool *self, GAsyncResult *result, GError **error);

void cd_pg_pool_acquire_async (CdPgPool *self, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
CdPgLease *cd_pg_pool_acquire_finish (CdPgPool *self, GAsyncResult *result, GError **error);

void cd_pg_lease_query_async (CdPgLease *lease, const char *sql, const char *const *params,
                              int n_params, guint timeout_ms, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data);
void cd_pg_lease_exec_script_async (CdPgLease *lease, const char *script, guint timeout_ms,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
PGresult *cd_pg_lease_query_finish (CdPgLease *lease, GAsyncResult *result, GError **error);
CdPgPool *cd_pg_lease_get_pool (CdPgLease *lease);
void cd_pg_lease_release (CdPgLease *lease);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdPgLease, cd_pg_lease_release)

G_END_DECLS
