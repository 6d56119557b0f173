/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Seeds the demo once per state folder; later starts only read back the
 * logins file. Passwords are random: a demo left running is not open. */

#define G_LOG_DOMAIN "calldocker"

#include "cd-demo-seed.h"

#include "auth/cd-jwt.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>

#define N_ACCOUNTS 4

static const struct {
  const char *label;
  const char *email;
} accounts[N_ACCOUNTS] = {
  { "super admin  ", "root@calldocker.demo" },
  { "company admin", "admin@demo.calldocker.demo" },
  { "agent        ", "alice@demo.calldocker.demo" },
  { "agent        ", "bob@demo.calldocker.demo" },
};

typedef struct {
  CdPgPool *pool;
  char *path;
  char *passwords[N_ACCOUNTS];
  char *hashes[N_ACCOUNTS];
  int pending;
  GError *error;
} Seed;

static void
seed_free (Seed *seed)
{
  g_clear_object (&seed->pool);
  g_free (seed->path);
  for (int i = 0; i < N_ACCOUNTS; i++) {
    g_free (seed->passwords[i]);
    g_free (seed->hashes[i]);
  }
  g_clear_error (&seed->error);
  g_free (seed);
}

static char *
logins_text (Seed *seed, const char *company_id)
{
  GString *text = g_string_new (NULL);

  g_string_append_printf (text, "Demo logins (company \"Demo Company\", slug demo, id %s):\n",
                          company_id);

  for (int i = 0; i < N_ACCOUNTS; i++)
    g_string_append_printf (text, "  %s  %-28s  %s\n", accounts[i].label, accounts[i].email,
                            seed->passwords[i]);
  return g_string_free (text, FALSE);
}

static void
on_seeded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  Seed *seed = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autofree char *text = NULL;

  if (res == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (!g_str_equal (PQgetvalue (res, 0, 0), "1") || !g_str_equal (PQgetvalue (res, 0, 1), "3")) {
    /* the accounts exist, their passwords are not these: printing them would lie */
    g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_EXISTS,
                             "the demo accounts exist already, but %s (their passwords) is "
                             "missing: remove the state folder to start the demo afresh",
                             seed->path);
    return;
  }
  text = logins_text (seed, PQgetvalue (res, 0, 3));
  if (!g_file_set_contents_full (seed->path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0600,
                                 &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_task_return_pointer (task, g_steal_pointer (&text), g_free);
}

typedef struct {
  GTask *task;
  int index;
} HashJob;

static void
on_hashed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  HashJob *job = user_data;
  g_autoptr (GTask) task = job->task;
  Seed *seed = g_task_get_task_data (task);
  int index = job->index;
  GError *error = NULL;
  CdPgScope scope = { NULL, TRUE };

  g_free (job);
  seed->hashes[index] = cd_password_hash_finish (result, &error);
  if (error && !seed->error)
    seed->error = error;
  else
    g_clear_error (&error);
  if (--seed->pending > 0)
    return;
  if (seed->error) {
    g_task_return_error (task, g_steal_pointer (&seed->error));
    return;
  }
  {
    const char *params[] = {
      accounts[0].email, seed->hashes[0], accounts[1].email, seed->hashes[1],
      accounts[2].email, seed->hashes[2], accounts[3].email, seed->hashes[3]
    };
    cd_pg_pool_query_scoped_async (
        seed->pool, &scope,
        "WITH sa AS (INSERT INTO users (email, password_hash, role, display_name)"
        "  VALUES ($1, $2, 'superadmin', 'Demo super admin')"
        "  ON CONFLICT ((lower(email))) DO NOTHING RETURNING id),"
        " c AS (INSERT INTO companies (name, slug, status, allowed_origins, settings)"
        "  VALUES ('Demo Company', 'demo', 'approved',"
        "   ARRAY['http://127.0.0.1:8080', 'http://localhost:8080'], '{\"time_zone\":\"UTC\"}')"
        "  ON CONFLICT (slug) DO NOTHING RETURNING id),"
        " u AS (INSERT INTO users (company_id, email, password_hash, role, display_name, skills,"
        "  languages) SELECT c.id, v.email, v.hash, v.role, v.name, v.skills::jsonb, v.langs"
        "  FROM c, (VALUES ($3, $4, 'company_admin', 'Demo Admin', '{}', ARRAY['en']),"
        "   ($5, $6, 'agent', 'Alice Agent', '{\"billing\":8,\"support\":6}', ARRAY['en','de']),"
        "   ($7, $8, 'agent', 'Bob Agent', '{\"sales\":7}', ARRAY['en','fr']))"
        "   AS v (email, hash, role, name, skills, langs) RETURNING 1)"
        " , a AS (INSERT INTO audit_log (action, target, client_address)"
        "  SELECT 'demo.seeded', 'demo', 'run-demo' FROM u LIMIT 1 RETURNING 1)"
        " SELECT (SELECT count(*) FROM sa), (SELECT count(*) FROM u), (SELECT count(*) FROM a),"
        "  (SELECT id FROM c)",
        params, 8, NULL, on_seeded, g_steal_pointer (&task));
  }
}

/**
 * cd_demo_seed_async:
 *
 * Creates the demo accounts unless STATE/demo-logins.txt says they exist.
 * Completes with the logins as text.
 */
void
cd_demo_seed_async (CdPgPool *pool, CdPasswordPolicy *passwords, const char *state_dir,
                    GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (pool, NULL, callback, user_data);
  Seed *seed = g_new0 (Seed, 1);
  g_autofree char *existing = NULL;

  g_task_set_source_tag (task, cd_demo_seed_async);
  g_task_set_task_data (task, seed, (GDestroyNotify) seed_free);
  seed->pool = g_object_ref (pool);
  seed->path = g_build_filename (state_dir, "demo-logins.txt", NULL);
  if (g_file_get_contents (seed->path, &existing, NULL, NULL)) {
    g_task_return_pointer (task, g_steal_pointer (&existing), g_free);
    return;
  }
  seed->pending = N_ACCOUNTS;
  for (int i = 0; i < N_ACCOUNTS; i++) {
    guint8 random[12];
    HashJob *job = g_new0 (HashJob, 1);
    job->task = g_object_ref (task);
    job->index = i;
    randombytes_buf (random, sizeof random);
    seed->passwords[i] = cd_base64url_encode (random, sizeof random);
    cd_password_hash_async (passwords, seed->passwords[i], NULL, on_hashed, job);
  }
}

char *
cd_demo_seed_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
