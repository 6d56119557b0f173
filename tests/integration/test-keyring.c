/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The keyring against a real server: the master key file is made once,
 * owner-only, and refused when unsafe or malformed; a company's key is made
 * once even by two daemons at once, stored wrapped, opened only with the
 * same master key, and seals a file one daemon writes and another reads. */

#include "cd-test-harness.h"
#include "store/cd-keyring.h"
#include "store/cd-pg-migrations.h"

#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

static CdTestStores *stores;
static CdPgPool *app;
static CdPgPool *owner;
static char *company_a;
static char *company_b;
static char *dir;

static CdCompanyKey *
get_key (CdKeyring *keyring, const char *company, guint32 version, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_keyring_get_async (keyring, company, version, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 30000);
  return cd_keyring_get_finish (keyring, result, error);
}

static void
test_master_made_once (void)
{
  g_autofree char *path = g_build_filename (dir, "keys", "master.key", NULL);
  guint8 first[CD_SEAL_KEY_BYTES], again[CD_SEAL_KEY_BYTES];
  g_autoptr (GError) error = NULL;
  g_autofree char *text = NULL;
  GStatBuf st;

  g_assert_true (cd_keyring_load_master (path, TRUE, first, &error));
  g_assert_no_error (error);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_assert_cmpuint (strlen (g_strstrip (text)), ==, 44); /* 32 bytes in base64 */
  g_assert_true (cd_keyring_load_master (path, TRUE, again, &error));
  g_assert_cmpmem (first, sizeof first, again, sizeof again);
}

static void
expect_master_refused (const char *content, int mode, const char *says)
{
  g_autofree char *path = g_build_filename (dir, "refused.key", NULL);
  guint8 master[CD_SEAL_KEY_BYTES];
  g_autoptr (GError) error = NULL;

  g_unlink (path);
  if (content) {
    g_assert_true (g_file_set_contents (path, content, -1, NULL));
    g_assert_cmpint (g_chmod (path, mode), ==, 0);
  }
  g_assert_false (cd_keyring_load_master (path, FALSE, master, &error));
  g_assert_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_MASTER);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, says));
}

static void
test_master_refusals (void)
{
  const char *good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";

  expect_master_refused (NULL, 0, "cannot read");
  expect_master_refused (good, 0640, "chmod 600");
  expect_master_refused (good, 0604, "chmod 600");
  expect_master_refused ("", 0600, "does not hold a master key");
  expect_master_refused ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\n", 0600, /* 30 bytes */
                         "does not hold a master key");
  expect_master_refused ("not base64 at all!\n", 0600, "does not hold a master key");
}

/* Two daemons ask for a company's first key at the same moment. */
static void
test_company_key_made_once (void)
{
  guint8 master[CD_SEAL_KEY_BYTES];
  g_autoptr (CdKeyring) one = NULL;
  g_autoptr (CdKeyring) two = NULL;
  g_autoptr (GAsyncResult) r1 = NULL;
  g_autoptr (GAsyncResult) r2 = NULL;
  g_autoptr (CdCompanyKey) k1 = NULL;
  g_autoptr (CdCompanyKey) k2 = NULL;
  g_autoptr (CdCompanyKey) cached = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) rows = NULL;
  g_autofree char *raw = NULL;
  const char *params[] = { company_a };

  memset (master, 7, sizeof master);
  one = cd_keyring_new (app, master);
  two = cd_keyring_new (app, master);
  g_assert_cmpuint (strlen (cd_keyring_get_master_id (one)), ==, 16);
  g_assert_cmpstr (cd_keyring_get_master_id (one), ==, cd_keyring_get_master_id (two));
  cd_keyring_get_async (one, company_a, 0, NULL, cd_test_capture, &r1);
  cd_keyring_get_async (two, company_a, 0, NULL, cd_test_capture, &r2);
  cd_test_wait_result (&r1, 30000);
  cd_test_wait_result (&r2, 30000);
  k1 = cd_keyring_get_finish (one, r1, &error);
  g_assert_no_error (error);
  k2 = cd_keyring_get_finish (two, r2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (k1->version, ==, 1);
  g_assert_cmpuint (k2->version, ==, 1);
  g_assert_cmpmem (k1->key, CD_SEAL_KEY_BYTES, k2->key, CD_SEAL_KEY_BYTES);
  /* one row, holding the key wrapped, not the key */
  rows = cd_test_pg_scoped (
      app, NULL, TRUE,
      "SELECT version, master_key_id, wrapped FROM company_keys WHERE company_id = $1", params, 1,
      &error);
  g_assert_no_error (error);
  g_assert_cmpint (PQntuples (rows), ==, 1);
  g_assert_cmpstr (PQgetvalue (rows, 0, 1), ==, cd_keyring_get_master_id (one));
  raw = g_base64_encode (k1->key, CD_SEAL_KEY_BYTES);
  g_assert_null (strstr (PQgetvalue (rows, 0, 2), raw));
  /* the same key asked by its version, and again from the cache */
  cached = get_key (one, company_a, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (cached->key, CD_SEAL_KEY_BYTES, k1->key, CD_SEAL_KEY_BYTES);
  {
    g_autoptr (CdCompanyKey) none = get_key (two, company_a, 2, &error);

    g_assert_null (none);
    g_assert_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_NO_KEY);
  }
  /* another company's key is its own */
  {
    g_autoptr (CdCompanyKey) kb = get_key (one, company_b, 0, NULL);

    g_assert_nonnull (kb);
    g_assert_cmpint (memcmp (kb->key, k1->key, CD_SEAL_KEY_BYTES), !=, 0);
  }
}

/* Company B's scope sees none of A's keys. */
static void
test_keys_isolated (void)
{
  g_autoptr (GError) error = NULL;
  const char *params[] = { company_a };
  g_autoptr (PGresult) rows = cd_test_pg_scoped (
      app, company_b, FALSE, "SELECT count(*) FROM company_keys WHERE company_id = $1", params, 1,
      &error);

  g_assert_no_error (error);
  g_assert_cmpstr (PQgetvalue (rows, 0, 0), ==, "0");
}

static void
test_other_master_refused (void)
{
  guint8 master[CD_SEAL_KEY_BYTES];
  g_autoptr (CdKeyring) other = NULL;
  g_autoptr (CdCompanyKey) key = NULL;
  g_autoptr (GError) error = NULL;

  memset (master, 8, sizeof master);
  other = cd_keyring_new (app, master);
  g_test_expect_message ("calldocker-store", G_LOG_LEVEL_MESSAGE, "*wrapped by master key*");
  key = get_key (other, company_a, 0, &error);
  g_test_assert_expected_messages ();
  g_assert_null (key);
  g_assert_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_WRONG_MASTER);
  g_assert_nonnull (strstr (error->message, cd_keyring_get_master_id (other)));
}

/* A wrapped key changed in the database (by someone with the owner's
 * rights: the daemon's role cannot) does not open. */
static void
test_changed_wrapped_key_refused (void)
{
  guint8 master[CD_SEAL_KEY_BYTES];
  g_autoptr (CdKeyring) keyring = NULL;
  g_autoptr (CdCompanyKey) key = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) changed = NULL;
  g_autoptr (PGresult) denied = NULL;
  const char *params[] = { company_b };

  memset (master, 7, sizeof master);
  keyring = cd_keyring_new (app, master);
  denied = cd_test_pg_scoped (app, company_b, FALSE,
                              "UPDATE company_keys SET wrapped = wrapped WHERE company_id = $1",
                              params, 1, &error);
  g_assert_null (denied);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY);
  g_clear_error (&error);
  changed =
      cd_test_pg_scoped (owner, NULL, TRUE,
                         "UPDATE company_keys SET wrapped = translate(wrapped, 'ABCabc', 'BCAbca')"
                         " WHERE company_id = $1 RETURNING 1",
                         params, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (PQntuples (changed), ==, 1);
  g_test_expect_message ("calldocker-store", G_LOG_LEVEL_MESSAGE, "*does not unwrap*");
  key = get_key (keyring, company_b, 0, &error);
  g_test_assert_expected_messages ();
  g_assert_null (key);
  g_assert_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_WRONG_MASTER);
}

/* What one daemon seals with a company's key, another opens. */
static void
test_sealed_between_daemons (void)
{
  guint8 master[CD_SEAL_KEY_BYTES];
  g_autoptr (CdKeyring) writer = NULL;
  g_autoptr (CdKeyring) reader = NULL;
  g_autoptr (CdCompanyKey) wk = NULL;
  g_autoptr (CdCompanyKey) rk = NULL;
  g_autoptr (CdSealer) sealer = NULL;
  g_autoptr (CdUnsealer) unsealer = NULL;
  guint8 sealed[2000], opened[2000];
  gsize read = 0, written = 0, plain_written = 0;
  g_autofree char *company = NULL;
  guint32 version = 0;
  const char *text = "what the visitor said";

  memset (master, 7, sizeof master);
  writer = cd_keyring_new (app, master);
  reader = cd_keyring_new (app, master);
  wk = get_key (writer, company_a, 0, NULL);
  g_assert_nonnull (wk);
  sealer = cd_sealer_new (wk->key, company_a, wk->version);
  g_assert_cmpint (g_converter_convert (G_CONVERTER (sealer), text, strlen (text), sealed,
                                        sizeof sealed, G_CONVERTER_INPUT_AT_END, &read, &written,
                                        NULL),
                   ==, G_CONVERTER_FINISHED);
  /* the reader learns whose file it is and which key from the file */
  g_assert_true (cd_seal_peek_header (sealed, written, &company, &version, NULL));
  g_assert_cmpstr (company, ==, company_a);
  rk = get_key (reader, company, version, NULL);
  g_assert_nonnull (rk);
  unsealer = cd_unsealer_new (rk->key, company, version);
  g_assert_cmpint (g_converter_convert (G_CONVERTER (unsealer), sealed, written, opened,
                                        sizeof opened, G_CONVERTER_INPUT_AT_END, &read,
                                        &plain_written, NULL),
                   ==, G_CONVERTER_FINISHED);
  g_assert_cmpmem (opened, plain_written, text, strlen (text));
}

static void
seed (void)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *sql_dir = g_build_filename (g_getenv ("CALLDOCKER_DATADIR"), "sql", NULL);
  g_autoptr (PGresult) res = NULL;

  owner = cd_pg_pool_new (stores->pg_conninfo, 1, 10000, 20, 200);
  cd_pg_pool_start (owner);
  cd_pg_migrate_async (owner, sql_dir, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 60000);
  cd_pg_migrate_finish (owner, result, NULL, &error);
  g_assert_no_error (error);

  app = cd_pg_pool_new (stores->pg_conninfo, 4, 10000, 20, 200);
  cd_pg_pool_set_role (app, "calldocker_app");
  cd_pg_pool_start (app);
  res = cd_test_pg_scoped (
      app, NULL, TRUE,
      "INSERT INTO companies (name, slug) VALUES ('Alpha', 'alpha'), ('Beta', 'beta')"
      " RETURNING id",
      NULL, 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (PQntuples (res), ==, 2);
  company_a = g_strdup (PQgetvalue (res, 0, 0));
  company_b = g_strdup (PQgetvalue (res, 1, 0));
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (sodium_init (), >=, 0);
  dir = cd_test_make_tmp_dir ("keyring-XXXXXX");
  stores = cd_test_stores_start ();
  seed ();
  g_test_add_func ("/keyring/master-made-once", test_master_made_once);
  g_test_add_func ("/keyring/master-refusals", test_master_refusals);
  g_test_add_func ("/keyring/company-key-made-once", test_company_key_made_once);
  g_test_add_func ("/keyring/keys-isolated", test_keys_isolated);
  g_test_add_func ("/keyring/other-master-refused", test_other_master_refused);
  g_test_add_func ("/keyring/changed-wrapped-key-refused", test_changed_wrapped_key_refused);
  g_test_add_func ("/keyring/sealed-between-daemons", test_sealed_between_daemons);
  status = g_test_run ();
  cd_pg_pool_close (app);
  g_clear_object (&app);
  cd_pg_pool_close (owner);
  g_clear_object (&owner);
  cd_test_stores_stop (stores);
  cd_test_remove_tree (dir);
  g_free (dir);
  g_free (company_a);
  g_free (company_b);
  return status;
}
