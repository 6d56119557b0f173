/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The blob store's S3 backend against a real S3-compatible server (Swift
 * with s3api, tests/s3): a small file goes up whole and a large one in
 * parts, both read back the same from the bucket; the spool keeps what
 * it must; an endpoint that is down gets the file once it is back, also
 * after the daemon restarted meanwhile; a wrong key is retried and said;
 * deleting removes it everywhere; bad settings are refused. */

#include "cd-test-harness.h"
#include "cd-test-s3.h"
#include "events/cd-metrics.h"
#include "store/cd-blob-store.h"
#include "store/cd-s3.h"
#include "store/cd-sigv4.h"

#include <glib/gstdio.h>
#include <string.h>

static CdTestS3 *server;
static char *dir;

static CdS3 *
client (const char *secret)
{
  g_autoptr (GError) error = NULL;
  CdS3Config config = {
    .endpoint = server->endpoint,
    .bucket = server->bucket,
    .region = server->region,
    .access_key = server->access_key,
    .secret_key = secret ? secret : server->secret_key,
    .part_bytes = CD_S3_MIN_PART_BYTES,
    .timeout_s = 10,
  };
  CdS3 *s3 = cd_s3_new (&config, &error);

  g_assert_no_error (error);
  return s3;
}

static GBytes *
random_bytes (gsize n)
{
  guint8 *p = g_malloc (n);

  for (gsize i = 0; i < n; i++)
    p[i] = (guint8) g_random_int ();
  return g_bytes_new_take (p, n);
}

/* Writes @data where @store spools @key, and commits it. */
static void
put (CdBlobStore *store, const char *key, GBytes *data, CdBlobCommitFlags flags)
{
  g_autofree char *path = cd_blob_store_local_path (store, key);
  g_autofree char *folder = g_path_get_dirname (path);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0700), ==, 0);
  g_assert_true (g_file_set_contents (path, g_bytes_get_data (data, NULL),
                                      (gssize) g_bytes_get_size (data), NULL));
  cd_blob_store_commit_async (store, key, flags, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  g_assert_true (cd_blob_store_commit_finish (store, result, &error));
  g_assert_no_error (error);
}

/* What the bucket holds at @key, straight from S3 (NULL: nothing). */
static GBytes *
in_bucket (const char *key)
{
  return cd_test_s3_object (server, key);
}

/* The object's ETag, asked with curl's own SigV4 (a second signer): an
 * object uploaded in N parts has one ending in -N. */
static char *
etag_of (const char *key)
{
  g_autofree char *url = g_strdup_printf ("%s/%s/%s", server->endpoint, server->bucket, key);
  g_autofree char *sigv4 = g_strdup_printf ("aws:amz:%s:s3", server->region);
  g_autofree char *user = g_strdup_printf ("%s:%s", server->access_key, server->secret_key);
  const char *argv[] = { "curl",        "-sS", "-I",
                         "--aws-sigv4", sigv4, "--user",
                         user,          "-H",  "x-amz-content-sha256: " CD_SIGV4_EMPTY_SHA256,
                         url,           NULL };
  g_autofree char *out = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) lines = NULL;
  int status = 0;

  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out,
                               NULL, &status, &error));
  g_assert_no_error (error);
  lines = g_strsplit (out, "\r\n", -1);
  for (gsize i = 0; lines[i]; i++)
    if (g_ascii_strncasecmp (lines[i], "etag:", 5) == 0)
      return g_strstrip (g_strdup (lines[i] + 5));
  g_error ("no ETag for %s in: %s", key, out);
}

static GBytes *
read_back (CdBlobStore *store, const char *key, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_blob_store_read_async (store, key, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 20000);
  return cd_blob_store_read_finish (store, result, error);
}

static gboolean
spooled (CdBlobStore *store, const char *key)
{
  g_autofree char *path = cd_blob_store_local_path (store, key);

  return g_file_test (path, G_FILE_TEST_EXISTS);
}

static guint
outbox_entries (const char *spool)
{
  g_autofree char *path = g_build_filename (spool, "_outbox", NULL);
  g_autoptr (GDir) d = g_dir_open (path, 0, NULL);
  guint n = 0;

  while (d && g_dir_read_name (d))
    n++;
  return n;
}

static void
test_small_and_multipart (void)
{
  g_autofree char *spool = g_build_filename (dir, "spool-a", NULL);
  g_autoptr (CdS3) s3 = client (NULL);
  g_autoptr (CdBlobStore) store = cd_blob_store_new_s3 (spool, s3, 2);
  g_autoptr (CdMetrics) metrics = cd_metrics_new ();
  /* 2.4 parts: three parts, the last short */
  g_autoptr (GBytes) large = random_bytes (CD_S3_MIN_PART_BYTES * 2 + CD_S3_MIN_PART_BYTES / 2);
  g_autoptr (GBytes) small = random_bytes (1000);
  g_autoptr (GBytes) prompt = random_bytes (5000);
  g_autoptr (GBytes) got_large = NULL, got_small = NULL, got_prompt = NULL, via_store = NULL;
  g_autoptr (GError) error = NULL;

  cd_blob_store_set_metrics (store, metrics);
  put (store, "recordings/c1/small.sealed", small, CD_BLOB_COMMIT_DEFAULT);
  put (store, "recordings/c1/large.sealed", large, CD_BLOB_COMMIT_DEFAULT);
  put (store, "prompts/c1/p.ogg", prompt, CD_BLOB_COMMIT_KEEP_LOCAL);
  g_assert_cmpuint (cd_blob_store_uploads_pending (store), >=, 1);
  WAIT_UNTIL (cd_blob_store_uploads_pending (store) == 0, 60000);
  g_assert_cmpfloat (cd_metrics_get (metrics, "calldocker_blob_uploads_total", "result=\"ok\""), ==,
                     3);
  /* the bucket holds each, byte for byte */
  got_small = in_bucket ("recordings/c1/small.sealed");
  got_large = in_bucket ("recordings/c1/large.sealed");
  got_prompt = in_bucket ("prompts/c1/p.ogg");
  g_assert_nonnull (got_small);
  g_assert_true (g_bytes_equal (got_small, small));
  g_assert_nonnull (got_large);
  g_assert_cmpuint (g_bytes_get_size (got_large), ==, g_bytes_get_size (large));
  g_assert_true (g_bytes_equal (got_large, large));
  g_assert_true (g_bytes_equal (got_prompt, prompt));
  {
    g_autofree char *multipart = etag_of ("recordings/c1/large.sealed");
    g_autofree char *whole = etag_of ("recordings/c1/small.sealed");

    g_test_message ("ETags: %s (large), %s (small)", multipart, whole);
    g_assert_true (g_str_has_suffix (multipart, "-3\""));
    g_assert_null (strchr (whole, '-'));
  }
  /* recordings leave the spool, a prompt stays; the outbox is empty */
  WAIT_UNTIL (!spooled (store, "recordings/c1/large.sealed") && outbox_entries (spool) == 0, 10000);
  g_assert_false (spooled (store, "recordings/c1/small.sealed"));
  g_assert_true (spooled (store, "prompts/c1/p.ogg"));
  /* read through the store: from the bucket now */
  via_store = read_back (store, "recordings/c1/large.sealed", &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (via_store, large));
}

static void
test_down_then_back (void)
{
  g_autofree char *spool = g_build_filename (dir, "spool-b", NULL);
  g_autoptr (CdS3) s3 = client (NULL);
  g_autoptr (CdBlobStore) store = cd_blob_store_new_s3 (spool, s3, 2);
  g_autoptr (CdBlobStore) again = NULL;
  g_autoptr (CdMetrics) metrics = cd_metrics_new ();
  g_autoptr (GBytes) first = random_bytes (3000);
  g_autoptr (GBytes) second = random_bytes (4000);
  g_autoptr (GBytes) got = NULL, read = NULL;
  g_autoptr (GError) error = NULL;

  cd_blob_store_set_metrics (store, metrics);
  cd_test_s3_stop (server);
  put (store, "voicemails/c1/first.sealed", first, CD_BLOB_COMMIT_DEFAULT);
  /* it fails, is counted and retried; the file waits in the spool, and is
   * read from there meanwhile */
  WAIT_UNTIL (cd_metrics_get (metrics, "calldocker_blob_uploads_total", "result=\"failed\"") >= 2,
              20000);
  g_assert_cmpuint (cd_blob_store_uploads_pending (store), ==, 1);
  g_assert_cmpfloat (cd_metrics_get (metrics, "calldocker_blob_uploads_pending", NULL), ==, 1);
  g_assert_true (spooled (store, "voicemails/c1/first.sealed"));
  read = read_back (store, "voicemails/c1/first.sealed", &error);
  g_assert_no_error (error);
  g_assert_true (g_bytes_equal (read, first));

  /* the daemon stops while S3 is down: the next one (a new store on the
   * same spool) uploads what the outbox holds */
  put (store, "voicemails/c1/second.sealed", second, CD_BLOB_COMMIT_DEFAULT);
  g_assert_cmpuint (outbox_entries (spool), ==, 2);
  g_clear_object (&store);
  again = cd_blob_store_new_s3 (spool, s3, 2);
  WAIT_UNTIL (cd_blob_store_uploads_pending (again) == 2, 10000);

  cd_test_s3_restart (server);
  WAIT_UNTIL (cd_blob_store_uploads_pending (again) == 0, 30000);
  got = in_bucket ("voicemails/c1/first.sealed");
  g_assert_nonnull (got);
  g_assert_true (g_bytes_equal (got, first));
  g_clear_pointer (&got, g_bytes_unref);
  got = in_bucket ("voicemails/c1/second.sealed");
  g_assert_nonnull (got);
  g_assert_true (g_bytes_equal (got, second));
  WAIT_UNTIL (outbox_entries (spool) == 0 && !spooled (again, "voicemails/c1/first.sealed"), 10000);
}

static void
test_wrong_secret_retried (void)
{
  g_autofree char *spool = g_build_filename (dir, "spool-c", NULL);
  g_autoptr (CdS3) wrong = client ("not-the-secret");
  g_autoptr (CdBlobStore) store = cd_blob_store_new_s3 (spool, wrong, 1);
  g_autoptr (CdMetrics) metrics = cd_metrics_new ();
  g_autoptr (GBytes) data = random_bytes (100);
  g_autoptr (GBytes) got = NULL;

  cd_blob_store_set_metrics (store, metrics);
  g_test_expect_message (
      "calldocker-store", G_LOG_LEVEL_MESSAGE,
      "*uploading recordings/c1/refused.sealed to http://127.0.0.1:*failed (1 in "
      "a row), retrying in 1 s: S3 PUT recordings/c1/refused.sealed: HTTP 40*");
  put (store, "recordings/c1/refused.sealed", data, CD_BLOB_COMMIT_DEFAULT);
  WAIT_UNTIL (cd_metrics_get (metrics, "calldocker_blob_uploads_total", "result=\"failed\"") >= 1,
              20000);
  g_test_assert_expected_messages ();
  /* never given up: still waiting, still in the spool, not in the bucket */
  g_assert_cmpuint (cd_blob_store_uploads_pending (store), ==, 1);
  g_assert_true (spooled (store, "recordings/c1/refused.sealed"));
  got = in_bucket ("recordings/c1/refused.sealed");
  g_assert_null (got);
}

static void
test_delete_everywhere (void)
{
  g_autofree char *spool = g_build_filename (dir, "spool-d", NULL);
  g_autoptr (CdS3) s3 = client (NULL);
  g_autoptr (CdBlobStore) store = cd_blob_store_new_s3 (spool, s3, 2);
  g_autoptr (GBytes) data = random_bytes (2000);
  g_autoptr (GBytes) got = NULL, after = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  put (store, "prompts/c1/gone.ogg", data, CD_BLOB_COMMIT_KEEP_LOCAL);
  WAIT_UNTIL (cd_blob_store_uploads_pending (store) == 0, 30000);
  got = in_bucket ("prompts/c1/gone.ogg");
  g_assert_nonnull (got);
  cd_blob_store_delete_async (store, "prompts/c1/gone.ogg", NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 20000);
  g_assert_true (cd_blob_store_delete_finish (store, result, &error));
  g_assert_no_error (error);
  g_assert_false (spooled (store, "prompts/c1/gone.ogg"));
  g_assert_null (in_bucket ("prompts/c1/gone.ogg"));
  after = read_back (store, "prompts/c1/gone.ogg", &error);
  g_assert_null (after);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);
  g_clear_object (&result);
  /* deleting what is not there succeeds */
  cd_blob_store_delete_async (store, "prompts/c1/gone.ogg", NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 20000);
  g_assert_true (cd_blob_store_delete_finish (store, result, &error));
}

/* Deleted while it uploads (in parts, so it takes a while): the delete
 * waits for the upload, and nothing is left in the bucket after. */
static void
test_delete_while_uploading (void)
{
  g_autofree char *spool = g_build_filename (dir, "spool-e", NULL);
  g_autoptr (CdS3) s3 = client (NULL);
  g_autoptr (CdBlobStore) store = cd_blob_store_new_s3 (spool, s3, 2);
  g_autoptr (GBytes) data = random_bytes (CD_S3_MIN_PART_BYTES * 3);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  put (store, "recordings/c1/short-lived.sealed", data, CD_BLOB_COMMIT_DEFAULT);
  WAIT_UNTIL (cd_blob_store_uploads_pending (store) == 1, 5000);
  cd_blob_store_delete_async (store, "recordings/c1/short-lived.sealed", NULL, cd_test_capture,
                              &result);
  cd_test_wait_result (&result, 60000);
  g_assert_true (cd_blob_store_delete_finish (store, result, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (cd_blob_store_uploads_pending (store), ==, 0);
  g_assert_null (in_bucket ("recordings/c1/short-lived.sealed"));
  g_assert_false (spooled (store, "recordings/c1/short-lived.sealed"));
  g_assert_cmpuint (outbox_entries (spool), ==, 0);
}

static void
test_bad_settings (void)
{
  const struct {
    const char *endpoint;
    const char *bucket;
    const char *access_key;
    gsize part;
    const char *says;
  } cases[] = {
    { "ftp://127.0.0.1:9", "bucket", "k", CD_S3_MIN_PART_BYTES, "s3_endpoint" },
    { "not a url", "bucket", "k", CD_S3_MIN_PART_BYTES, "s3_endpoint" },
    { "http://127.0.0.1:9/some/path", "bucket", "k", CD_S3_MIN_PART_BYTES, "without a path" },
    { "http://user@127.0.0.1:9", "bucket", "k", CD_S3_MIN_PART_BYTES, "s3_endpoint" },
    { "http://127.0.0.1:9", "Bucket", "k", CD_S3_MIN_PART_BYTES, "s3_bucket" },
    { "http://127.0.0.1:9", "ab", "k", CD_S3_MIN_PART_BYTES, "s3_bucket" },
    { "http://127.0.0.1:9", "-bucket", "k", CD_S3_MIN_PART_BYTES, "s3_bucket" },
    { "http://127.0.0.1:9", "bucket", "", CD_S3_MIN_PART_BYTES, "s3_access_key" },
    { "http://127.0.0.1:9", "bucket", "a key", CD_S3_MIN_PART_BYTES, "s3_access_key" },
    { "http://127.0.0.1:9", "bucket", "k", 1024 * 1024, "s3_part_bytes" },
    { "http://AKIAX:hunter2@127.0.0.1:9", "bucket", "k", CD_S3_MIN_PART_BYTES, "without a path" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    CdS3Config config = { cases[i].endpoint, cases[i].bucket, "us-east-1", cases[i].access_key,
                          "secret",          cases[i].part,   10 };
    g_autoptr (GError) error = NULL;
    g_autoptr (CdS3) s3 = cd_s3_new (&config, &error);

    g_assert_null (s3);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    /* never a secret said */
    g_assert_null (strstr (error->message, "hunter2"));
    if (!strstr (error->message, cases[i].says))
      g_error ("case %" G_GSIZE_FORMAT ": \"%s\" does not say %s", i, error->message,
               cases[i].says);
  }
}

static void
test_keys_of_the_store_refused (void)
{
  g_assert_true (cd_blob_key_is_valid ("recordings/c1/r.sealed"));
  g_assert_false (cd_blob_key_is_valid ("_outbox/abc"));
  g_assert_false (cd_blob_key_is_valid ("../etc/passwd"));
  g_assert_false (cd_blob_key_is_valid ("a//b"));
  g_assert_false (cd_blob_key_is_valid ("A/b"));
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  dir = cd_test_make_tmp_dir ("cd-blob-s3-XXXXXX");
  {
    g_autofree char *server_dir = g_build_filename (dir, "s3", NULL);

    server = cd_test_s3_start (server_dir, 0);
  }
  g_test_add_func ("/blob-s3/small-and-multipart", test_small_and_multipart);
  g_test_add_func ("/blob-s3/down-then-back", test_down_then_back);
  g_test_add_func ("/blob-s3/wrong-secret-retried", test_wrong_secret_retried);
  g_test_add_func ("/blob-s3/delete-everywhere", test_delete_everywhere);
  g_test_add_func ("/blob-s3/delete-while-uploading", test_delete_while_uploading);
  g_test_add_func ("/blob-s3/bad-settings", test_bad_settings);
  g_test_add_func ("/blob-s3/store-keys-refused", test_keys_of_the_store_refused);
  status = g_test_run ();
  cd_test_s3_free (server);
  cd_test_remove_tree (dir);
  g_free (dir);
  return status;
}
