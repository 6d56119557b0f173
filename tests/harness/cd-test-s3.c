/* SPDX-License-Identifier: GPL-3.0-or-later */

#include "cd-test-s3.h"

#include "cd-test-harness.h"
#include "store/cd-s3.h"

#include <string.h>

static void
run_script (const char *script, const char *dir, const char *port, char **out)
{
  g_autofree char *path = g_test_build_filename (G_TEST_DIST, "s3", script, NULL);
  const char *argv[] = { "/bin/bash", path, dir, port, NULL };
  g_autofree char *err = NULL;
  g_autoptr (GError) error = NULL;
  int status = 0;

  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, &err, &status,
                     &error))
    g_error ("cannot run %s: %s", path, error->message);
  if (!g_spawn_check_wait_status (status, &error))
    g_error ("%s %s failed (%s): %s", script, dir, error->message, err);
}

static char *
value_of (const char *env, const char *name)
{
  g_auto (GStrv) lines = g_strsplit (env, "\n", -1);
  gsize n = strlen (name);

  for (gsize i = 0; lines[i]; i++)
    if (strncmp (lines[i], name, n) == 0 && lines[i][n] == '=')
      return g_strdup (lines[i] + n + 1);
  g_error ("start-s3.sh said no %s", name);
}

CdTestS3 *
cd_test_s3_start (const char *dir, guint port)
{
  CdTestS3 *s3 = g_new0 (CdTestS3, 1);
  g_autofree char *out = NULL;
  g_autofree char *p = g_strdup_printf ("%u", port);
  g_autofree char *got_port = NULL;

  s3->dir = g_strdup (dir);
  run_script ("start-s3.sh", dir, p, &out);
  s3->endpoint = value_of (out, "S3_ENDPOINT");
  s3->access_key = value_of (out, "S3_ACCESS_KEY");
  s3->secret_key = value_of (out, "S3_SECRET_KEY");
  s3->region = value_of (out, "S3_REGION");
  s3->bucket = value_of (out, "S3_BUCKET");
  got_port = value_of (out, "S3_PORT");
  s3->port = (guint) g_ascii_strtoull (got_port, NULL, 10);
  s3->running = TRUE;
  return s3;
}

void
cd_test_s3_stop (CdTestS3 *s3)
{
  if (!s3->running)
    return;
  run_script ("stop-s3.sh", s3->dir, NULL, NULL);
  s3->running = FALSE;
}

void
cd_test_s3_restart (CdTestS3 *s3)
{
  g_autofree char *out = NULL;
  g_autofree char *p = g_strdup_printf ("%u", s3->port);

  g_assert_false (s3->running);
  run_script ("start-s3.sh", s3->dir, p, &out);
  s3->running = TRUE;
}

GBytes *
cd_test_s3_object (CdTestS3 *s3, const char *key)
{
  CdS3Config config = { s3->endpoint,   s3->bucket,           s3->region, s3->access_key,
                        s3->secret_key, CD_S3_MIN_PART_BYTES, 10 };
  g_autoptr (GError) error = NULL;
  g_autoptr (CdS3) client = cd_s3_new (&config, &error);
  g_autoptr (GAsyncResult) result = NULL;
  GBytes *got;

  g_assert_no_error (error);
  cd_s3_get_async (client, key, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 20000);
  got = cd_s3_get_finish (client, result, &error);
  if (got == NULL)
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  return got;
}

void
cd_test_s3_free (CdTestS3 *s3)
{
  if (s3 == NULL)
    return;
  cd_test_s3_stop (s3);
  cd_test_remove_tree (s3->dir);
  g_free (s3->dir);
  g_free (s3->endpoint);
  g_free (s3->access_key);
  g_free (s3->secret_key);
  g_free (s3->region);
  g_free (s3->bucket);
  g_free (s3);
}
