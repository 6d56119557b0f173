/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The migration runner: numbered SQL files applied in order, each in its own
 * transaction, under an advisory lock so concurrent daemons apply each once. */
#pragma once

#include "cd-pg-pool.h"

G_BEGIN_DECLS

typedef struct {
  guint version;
  char *name; /* file name, e.g. 0001_init.sql */
  char *sql;
  char *checksum; /* SHA-256 of the file, hex */
} CdMigration;

void cd_migration_free (CdMigration *migration);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdMigration, cd_migration_free)

GPtrArray *cd_migrations_load_dir (const char *dir, GError **error);

void cd_pg_migrate_async (CdPgPool *pool, const char *dir, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_pg_migrate_finish (CdPgPool *pool, GAsyncResult *result, guint *n_applied,
                               GError **error);

G_END_DECLS
