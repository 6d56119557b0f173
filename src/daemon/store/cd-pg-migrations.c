/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Applies data/sql/NNNN_name.sql files in order. The files are read in a
 * worker thread; every statement runs on one leased connection. */

#define G_LOG_DOMAIN "calldocker-migrations"

#include "cd-pg-migrations.h"

#include <stdlib.h>
#include <string.h>

/* pg_advisory_lock key: "CDMI" */
#define MIGRATION_LOCK_KEY "1128549705"

void
cd_migration_free (CdMigration *migration)
{
  if (migration == NULL)
    return;
  g_free (migration->name);
  g_free (migration->sql);
  g_free (migration->checksum);
  g_free (migration);
}

static int
compare_versions (gconstpointer a, gconstpointer b)
{
  const CdMigration *ma = *(CdMigration *const *) a;
  const CdMigration *mb = *(CdMigration *const *) b;

  return (ma->version > mb->version) - (ma->version < mb->version);
}

/* NNNN_lowercase_words.sql */
static gboolean
parse_file_name (const char *name, guint *version)
{
  guint64 v;
  const char *p;

  if (strlen (name) < 10 || !g_str_has_suffix (name, ".sql") || name[4] != '_')
    return FALSE;
  for (int i = 0; i < 4; i++) {
    if (!g_ascii_isdigit (name[i]))
      return FALSE;
  }
  for (p = name + 5; p < name + strlen (name) - 4; p++) {
    if (!g_ascii_islower (*p) && !g_ascii_isdigit (*p) && *p != '_')
      return FALSE;
  }
  g_autofree char *digits = g_strndup (name, 4);
  if (!g_ascii_string_to_unsigned (digits, 10, 1, 9999, &v, NULL))
    return FALSE;
  *version = (guint) v;
  return TRUE;
}

/**
 * cd_migrations_load_dir:
 * @dir: a folder of NNNN_name.sql files (other files are refused)
 *
 * Blocking: call it from a worker thread.
 *
 * Returns: (transfer full) (element-type CdMigration): migrations in order
 */
GPtrArray *
cd_migrations_load_dir (const char *dir, GError **error)
{
  g_autoptr (GPtrArray) migrations =
      g_ptr_array_new_with_free_func ((GDestroyNotify) cd_migration_free);
  g_autoptr (GDir) handle = NULL;
  g_autoptr (GError) local_error = NULL;
  const char *name;

  handle = g_dir_open (dir, 0, &local_error);
  if (handle == NULL) {
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION,
                 "cannot open the migrations folder: %s", local_error->message);
    return NULL;
  }
  while ((name = g_dir_read_name (handle)) != NULL) {
    g_autoptr (CdMigration) migration = g_new0 (CdMigration, 1);
    g_autofree char *path = g_build_filename (dir, name, NULL);
    gsize length;

    if (!g_str_has_suffix (name, ".sql"))
      continue;
    if (!parse_file_name (name, &migration->version)) {
      g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION,
                   "migration file %s is not named NNNN_lowercase_name.sql", name);
      return NULL;
    }
    if (!g_file_get_contents (path, &migration->sql, &length, &local_error)) {
      g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION, "cannot read migration %s: %s",
                   name, local_error->message);
      return NULL;
    }
    if (!g_utf8_validate (migration->sql, (gssize) length, NULL) ||
        memchr (migration->sql, '\0', length) != NULL) {
      g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION,
                   "migration %s is not UTF-8 text", name);
      return NULL;
    }
    migration->name = g_strdup (name);
    migration->checksum =
        g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) migration->sql, length);
    g_ptr_array_add (migrations, g_steal_pointer (&migration));
  }
  g_ptr_array_sort (migrations, compare_versions);
  for (guint i = 1; i < migrations->len; i++) {
    CdMigration *a = g_ptr_array_index (migrations, i - 1);
    CdMigration *b = g_ptr_array_index (migrations, i);
    if (a->version == b->version) {
      g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION,
                   "migrations %s and %s have the same number", a->name, b->name);
      return NULL;
    }
  }
  return g_steal_pointer (&migrations);
}

typedef enum {
  STEP_ACQUIRE,
  STEP_NO_TIMEOUT,
  STEP_LOCK,
  STEP_CREATE_TABLE,
  STEP_READ_APPLIED,
  STEP_BEGIN,
  STEP_SCRIPT,
  STEP_RECORD,
  STEP_COMMIT,
  STEP_UNLOCK,
  STEP_DONE,
} Step;

typedef struct {
  GPtrArray *migrations;
  CdPgLease *lease;
  Step step;
  guint next; /* index of the migration to apply next */
  guint applied;
  GHashTable *recorded; /* versions the database has */
  GError *error;        /* first failure; unlock still runs */
} MigrateState;

static void
skip_recorded (MigrateState *state)
{
  while (state->next < state->migrations->len) {
    CdMigration *m = g_ptr_array_index (state->migrations, state->next);
    if (!g_hash_table_contains (state->recorded, GUINT_TO_POINTER (m->version)))
      return;
    state->next++;
  }
}

static void
migrate_state_free (MigrateState *state)
{
  g_clear_pointer (&state->migrations, g_ptr_array_unref);
  g_clear_pointer (&state->lease, cd_pg_lease_release);
  g_clear_pointer (&state->recorded, g_hash_table_unref);
  g_clear_error (&state->error);
  g_free (state);
}

static void migrate_step (GTask *task);

static void
on_statement_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  MigrateState *state = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_lease_query_finish (state->lease, result, &error);

  if (res == NULL) {
    CdMigration *m = state->next < state->migrations->len
                         ? g_ptr_array_index (state->migrations, state->next)
                         : NULL;
    if (state->step == STEP_SCRIPT || state->step == STEP_RECORD || state->step == STEP_COMMIT)
      g_prefix_error (&error, "migration %s failed: ", m ? m->name : "?");
    if (state->step == STEP_UNLOCK || error->code == CD_STORE_ERROR_UNAVAILABLE) {
      /* the session (and its lock) is gone with the connection */
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
    g_clear_error (&state->error);
    state->error = g_error_new_literal (CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION, error->message);
    state->step = STEP_UNLOCK;
    migrate_step (g_steal_pointer (&task));
    return;
  }

  switch (state->step) {
  case STEP_NO_TIMEOUT:
    state->step = STEP_LOCK;
    break;
  case STEP_LOCK:
    state->step = STEP_CREATE_TABLE;
    break;
  case STEP_CREATE_TABLE:
    state->step = STEP_READ_APPLIED;
    break;
  case STEP_READ_APPLIED: {
    int rows = PQntuples (res);
    g_autoptr (GHashTable) applied =
        g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
    for (int r = 0; r < rows; r++) {
      guint version = (guint) strtoul (PQgetvalue (res, r, 0), NULL, 10);
      g_hash_table_insert (applied, GUINT_TO_POINTER (version), g_strdup (PQgetvalue (res, r, 1)));
    }
    for (guint i = 0; i < state->migrations->len; i++) {
      CdMigration *m = g_ptr_array_index (state->migrations, i);
      const char *checksum = g_hash_table_lookup (applied, GUINT_TO_POINTER (m->version));
      if (checksum == NULL)
        continue;
      if (!g_str_equal (checksum, m->checksum)) {
        state->error = g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION,
                                    "migration %s was changed after it was applied "
                                    "(add a new migration instead)",
                                    m->name);
        state->step = STEP_UNLOCK;
        migrate_step (g_steal_pointer (&task));
        return;
      }
      g_hash_table_remove (applied, GUINT_TO_POINTER (m->version));
    }
    if (g_hash_table_size (applied) > 0) {
      GList *unknown = g_hash_table_get_keys (applied);
      state->error = g_error_new (CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION,
                                  "the database has migration %u, which this calldockerd "
                                  "does not know: it is older than the database",
                                  GPOINTER_TO_UINT (unknown->data));
      g_list_free (unknown);
      state->step = STEP_UNLOCK;
      migrate_step (g_steal_pointer (&task));
      return;
    }
    /* what is left in @applied now are exactly the recorded ones that
     * matched; mark them so only the others are applied, in order */
    for (int r = 0; r < rows; r++)
      g_hash_table_add (state->recorded,
                        GUINT_TO_POINTER ((guint) strtoul (PQgetvalue (res, r, 0), NULL, 10)));
    state->next = 0;
    skip_recorded (state);
    state->step = state->next < state->migrations->len ? STEP_BEGIN : STEP_UNLOCK;
    break;
  }
  case STEP_BEGIN:
    state->step = STEP_SCRIPT;
    break;
  case STEP_SCRIPT:
    state->step = STEP_RECORD;
    break;
  case STEP_RECORD:
    state->step = STEP_COMMIT;
    break;
  case STEP_COMMIT: {
    CdMigration *m = g_ptr_array_index (state->migrations, state->next);
    g_info ("applied migration %s", m->name);
    state->applied++;
    state->next++;
    skip_recorded (state);
    state->step = state->next < state->migrations->len ? STEP_BEGIN : STEP_UNLOCK;
    break;
  }
  case STEP_UNLOCK:
    state->step = STEP_DONE;
    break;
  case STEP_ACQUIRE:
  case STEP_DONE:
  default:
    g_assert_not_reached ();
  }
  migrate_step (g_steal_pointer (&task));
}

static void
run (GTask *task, const char *sql, const char *const *params, int n_params)
{
  MigrateState *state = g_task_get_task_data (task);

  cd_pg_lease_query_async (state->lease, sql, params, n_params, 0, g_task_get_cancellable (task),
                           on_statement_done, task);
}

static void
migrate_step (GTask *task)
{
  MigrateState *state = g_task_get_task_data (task);
  CdMigration *m = state->next < state->migrations->len
                       ? g_ptr_array_index (state->migrations, state->next)
                       : NULL;

  switch (state->step) {
  case STEP_NO_TIMEOUT:
    /* waiting for another daemon's lock or a long migration is expected */
    run (task, "SET statement_timeout = 0", NULL, 0);
    return;
  case STEP_LOCK:
    run (task, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", NULL, 0);
    return;
  case STEP_CREATE_TABLE:
    run (task,
         "CREATE TABLE IF NOT EXISTS schema_migrations ("
         " version integer PRIMARY KEY,"
         " name text NOT NULL,"
         " checksum text NOT NULL,"
         " applied_at timestamptz NOT NULL DEFAULT now())",
         NULL, 0);
    return;
  case STEP_READ_APPLIED:
    run (task, "SELECT version, checksum FROM schema_migrations ORDER BY version", NULL, 0);
    return;
  case STEP_BEGIN:
    run (task, "BEGIN", NULL, 0);
    return;
  case STEP_SCRIPT:
    cd_pg_lease_exec_script_async (state->lease, m->sql, 0, g_task_get_cancellable (task),
                                   on_statement_done, task);
    return;
  case STEP_RECORD: {
    g_autofree char *version = g_strdup_printf ("%u", m->version);
    const char *params[] = { version, m->name, m->checksum };
    run (task, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
         params, 3);
    return;
  }
  case STEP_COMMIT:
    run (task, "COMMIT", NULL, 0);
    return;
  case STEP_UNLOCK:
    /* a failed transaction must end before the unlock can run; two
     * statements need the simple protocol */
    cd_pg_lease_exec_script_async (
        state->lease,
        state->error ? "ROLLBACK; SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY
                       "); RESET statement_timeout"
                     : "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY "); RESET statement_timeout",
        0, g_task_get_cancellable (task), on_statement_done, task);
    return;
  case STEP_DONE:
    g_clear_pointer (&state->lease, cd_pg_lease_release);
    if (state->error)
      g_task_return_error (task, g_steal_pointer (&state->error));
    else
      g_task_return_boolean (task, TRUE);
    g_object_unref (task);
    return;
  case STEP_ACQUIRE:
  default:
    g_assert_not_reached ();
  }
}

static void
on_lease (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  MigrateState *state = g_task_get_task_data (task);
  GError *error = NULL;

  state->lease = cd_pg_pool_acquire_finish (CD_PG_POOL (source), result, &error);
  if (state->lease == NULL) {
    g_task_return_error (task, error);
    return;
  }
  state->step = STEP_NO_TIMEOUT;
  migrate_step (g_steal_pointer (&task));
}

static void
load_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GError *error = NULL;
  GPtrArray *migrations = cd_migrations_load_dir (task_data, &error);

  if (migrations == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, migrations, (GDestroyNotify) g_ptr_array_unref);
}

static void
on_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  MigrateState *state = g_task_get_task_data (task);
  GError *error = NULL;

  state->migrations = g_task_propagate_pointer (G_TASK (result), &error);
  if (state->migrations == NULL) {
    g_task_return_error (task, error);
    return;
  }
  GCancellable *cancellable = g_task_get_cancellable (task);
  CdPgPool *pool = g_task_get_source_object (task);
  state->step = STEP_ACQUIRE;
  cd_pg_pool_acquire_async (pool, cancellable, on_lease, g_steal_pointer (&task));
}

/**
 * cd_pg_migrate_async:
 * @dir: the migrations folder
 *
 * Applies every migration of @dir that the database has not recorded.
 */
void
cd_pg_migrate_async (CdPgPool *pool, const char *dir, GCancellable *cancellable,
                     GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (pool, cancellable, callback, user_data);
  /* no source object: the worker thread may drop its reference late */
  g_autoptr (GTask) loader = g_task_new (NULL, cancellable, on_loaded, task);

  g_task_set_source_tag (task, cd_pg_migrate_async);
  MigrateState *state = g_new0 (MigrateState, 1);

  state->recorded = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_task_set_task_data (task, state, (GDestroyNotify) migrate_state_free);
  g_task_set_source_tag (loader, load_in_thread);
  g_task_set_task_data (loader, g_strdup (dir), g_free);
  g_task_run_in_thread (loader, load_in_thread);
}

/**
 * cd_pg_migrate_finish:
 * @n_applied: (out) (optional): how many migrations this call applied
 */
gboolean
cd_pg_migrate_finish (CdPgPool *pool, GAsyncResult *result, guint *n_applied, GError **error)
{
  MigrateState *state;

  g_return_val_if_fail (g_task_is_valid (result, pool), FALSE);
  state = g_task_get_task_data (G_TASK (result));
  if (n_applied)
    *n_applied = state->applied;
  return g_task_propagate_boolean (G_TASK (result), error);
}
