/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The migration runner on a real server: fresh, re-run, two runners at once,
 * a failing file, changed and unknown migrations, the project's own files. */

#include "cd-test-harness.h"
#include "store/cd-pg-migrations.h"

#include <glib/gstdio.h>
#include <string.h>

static CdTestStores *stores;
static guint db_counter;

typedef struct {
  char *dbname;
  char *conninfo;
  char *dir;
  CdPgPool *pool;
} Fixture;

static PGresult *
query (CdPgPool *pool, const char *sql, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_pg_pool_query_async (pool, sql, NULL, 0, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_pg_pool_query_finish (pool, result, error);
}

static CdPgPool *
pool_connect (const char *conninfo)
{
  CdPgPool *pool = cd_pg_pool_new (conninfo, 2, 10000, 20, 200);

  cd_pg_pool_start (pool);
  WAIT_UNTIL (cd_pg_pool_is_connected (pool), 10000);
  return pool;
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (CdPgPool) admin = pool_connect (stores->pg_conninfo);
  g_autoptr (GError) error = NULL;
  g_autofree char *create = NULL;
  g_autoptr (PGresult) res = NULL;

  f->dbname = g_strdup_printf ("mig_%u", ++db_counter);
  create = g_strdup_printf ("CREATE DATABASE %s", f->dbname);
  res = query (admin, create, &error);
  g_assert_no_error (error);
  cd_pg_pool_close (admin);
  f->conninfo = g_strdup_printf ("%s dbname=%s", stores->pg_conninfo, f->dbname);
  f->dir = cd_test_make_tmp_dir ("cd-mig-XXXXXX");
  f->pool = pool_connect (f->conninfo);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  cd_pg_pool_close (f->pool);
  g_assert_finalize_object (f->pool);
  cd_test_remove_tree (f->dir);
  g_free (f->dir);
  g_free (f->conninfo);
  g_free (f->dbname);
}

static void
write_file (Fixture *f, const char *name, const char *sql)
{
  g_autofree char *path = g_build_filename (f->dir, name, NULL);
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, sql, -1, &error);
  g_assert_no_error (error);
}

static gboolean
migrate (CdPgPool *pool, const char *dir, guint *applied, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_pg_migrate_async (pool, dir, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 60000);
  return cd_pg_migrate_finish (pool, result, applied, error);
}

static char *
scalar (CdPgPool *pool, const char *sql)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = query (pool, sql, &error);

  g_assert_no_error (error);
  return g_strdup (PQgetvalue (res, 0, 0));
}

static void
write_three (Fixture *f)
{
  write_file (f, "0001_people.sql",
              "CREATE TABLE people (id int PRIMARY KEY, name text);\n"
              "INSERT INTO people VALUES (1, 'Ada');");
  write_file (f, "0002_slow.sql", "SELECT pg_sleep(0.3); ALTER TABLE people ADD COLUMN age int;");
  write_file (f, "0010_index.sql", "CREATE INDEX people_name ON people (name);");
  write_file (f, "README", "not a migration: ignored");
}

static void
test_fresh_then_rerun (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *rows = NULL;
  g_autofree char *versions = NULL;
  guint applied = 99;

  write_three (f);
  g_assert_true (migrate (f->pool, f->dir, &applied, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (applied, ==, 3);
  rows = scalar (f->pool, "SELECT count(*) FROM people WHERE age IS NULL");
  g_assert_cmpstr (rows, ==, "1");
  versions = scalar (f->pool, "SELECT string_agg(version::text, ',' ORDER BY version) "
                              "FROM schema_migrations");
  g_assert_cmpstr (versions, ==, "1,2,10");

  g_assert_true (migrate (f->pool, f->dir, &applied, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (applied, ==, 0);
}

typedef struct {
  int done;
  guint applied;
  gboolean ok;
} RunnerResult;

static void
on_runner_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  RunnerResult *r = user_data;
  g_autoptr (GError) error = NULL;

  r->ok = cd_pg_migrate_finish (CD_PG_POOL (source), result, &r->applied, &error);
  g_assert_no_error (error);
  r->done = 1;
}

static void
test_two_runners_at_once (Fixture *f, gconstpointer data)
{
  g_autoptr (CdPgPool) other = pool_connect (f->conninfo);
  RunnerResult a = { 0 }, b = { 0 };
  g_autofree char *rows = NULL;

  write_three (f);
  cd_pg_migrate_async (f->pool, f->dir, NULL, on_runner_done, &a);
  cd_pg_migrate_async (other, f->dir, NULL, on_runner_done, &b);
  WAIT_UNTIL (a.done && b.done, 60000);
  g_assert_true (a.ok && b.ok);
  /* each migration applied exactly once, by one of them */
  g_assert_cmpuint (a.applied + b.applied, ==, 3);
  g_assert_true (a.applied == 0 || b.applied == 0);
  rows = scalar (f->pool, "SELECT count(*) FROM schema_migrations");
  g_assert_cmpstr (rows, ==, "3");
  cd_pg_pool_close (other);
}

static void
test_failing_migration_rolls_back (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *tables = NULL;
  g_autofree char *rows = NULL;
  guint applied = 0;

  write_file (f, "0001_ok.sql", "CREATE TABLE good (id int);");
  write_file (f, "0002_bad.sql", "CREATE TABLE half (id int); INSERT INTO nosuch VALUES (1);");
  g_assert_false (migrate (f->pool, f->dir, &applied, &error));
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION);
  g_assert_nonnull (strstr (error->message, "0002_bad.sql"));
  g_assert_cmpuint (applied, ==, 1);
  tables = scalar (f->pool, "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                            "WHERE tablename IN ('good', 'half')");
  g_assert_cmpstr (tables, ==, "good");
  g_clear_error (&error);

  /* fixed: the lock was released and the rest applies */
  write_file (f, "0002_bad.sql", "CREATE TABLE half (id int);");
  g_assert_true (migrate (f->pool, f->dir, &applied, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (applied, ==, 1);
  rows = scalar (f->pool, "SELECT count(*) FROM schema_migrations");
  g_assert_cmpstr (rows, ==, "2");
}

static void
test_changed_migration_refused (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  guint applied = 0;

  write_file (f, "0001_a.sql", "CREATE TABLE a (id int);");
  g_assert_true (migrate (f->pool, f->dir, &applied, &error));
  write_file (f, "0001_a.sql", "CREATE TABLE a (id bigint);");
  g_assert_false (migrate (f->pool, f->dir, &applied, &error));
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION);
  g_assert_nonnull (strstr (error->message, "0001_a.sql was changed"));
}

static void
test_unknown_migration_refused (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = NULL;
  guint applied = 0;

  write_file (f, "0001_a.sql", "CREATE TABLE a (id int);");
  write_file (f, "0002_b.sql", "CREATE TABLE b (id int);");
  g_assert_true (migrate (f->pool, f->dir, &applied, &error));
  /* an older calldockerd, which does not know 0002 */
  path = g_build_filename (f->dir, "0002_b.sql", NULL);
  g_assert_cmpint (g_unlink (path), ==, 0);
  g_assert_false (migrate (f->pool, f->dir, &applied, &error));
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION);
  g_assert_nonnull (strstr (error->message, "migration 2"));
}

static void
test_bad_names_refused (Fixture *f, gconstpointer data)
{
  static const char *bad[] = { "1_short.sql", "0001-dash.sql", "0001_Upper.sql", "abcd_x.sql" };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *path = g_build_filename (f->dir, bad[i], NULL);
    guint applied = 0;
    write_file (f, bad[i], "SELECT 1;");
    g_assert_false (migrate (f->pool, f->dir, &applied, &error));
    g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION);
    g_assert_nonnull (strstr (error->message, bad[i]));
    g_unlink (path);
  }
}

static void
test_duplicate_numbers_refused (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  guint applied = 0;

  write_file (f, "0003_a.sql", "SELECT 1;");
  write_file (f, "0003_b.sql", "SELECT 1;");
  g_assert_false (migrate (f->pool, f->dir, &applied, &error));
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_MIGRATION);
  g_assert_nonnull (strstr (error->message, "same number"));
}

static void
test_project_migrations_apply (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_build_filename (g_getenv ("CALLDOCKER_DATADIR"), "sql", NULL);
  g_autoptr (GPtrArray) files = cd_migrations_load_dir (dir, &error);
  guint applied = 0;

  g_assert_no_error (error);
  g_assert_cmpuint (files->len, >, 0);
  g_assert_true (migrate (f->pool, dir, &applied, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (applied, ==, files->len);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
  ADD ("/store/migrations/fresh-then-rerun", test_fresh_then_rerun);
  ADD ("/store/migrations/two-runners-at-once", test_two_runners_at_once);
  ADD ("/store/migrations/failing-migration-rolls-back", test_failing_migration_rolls_back);
  ADD ("/store/migrations/changed-migration-refused", test_changed_migration_refused);
  ADD ("/store/migrations/unknown-migration-refused", test_unknown_migration_refused);
  ADD ("/store/migrations/bad-names-refused", test_bad_names_refused);
  ADD ("/store/migrations/duplicate-numbers-refused", test_duplicate_numbers_refused);
  ADD ("/store/migrations/project-migrations-apply", test_project_migrations_apply);
#undef ADD
  status = g_test_run ();
  cd_test_stores_stop (stores);
  return status;
}
