/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A real S3-compatible server for tests (tests/s3/start-s3.sh: OpenStack
 * Swift with s3api, one process, its state in one folder). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char *dir;
  char *endpoint; /* http://127.0.0.1:PORT */
  char *access_key;
  char *secret_key;
  char *region;
  char *bucket;
  guint port;
  gboolean running;
} CdTestS3;

/* Starts a server in @dir (made if need be) on @port (0: a free one) with
 * a bucket; fails the test when it cannot. */
CdTestS3 *cd_test_s3_start (const char *dir, guint port);
/* Stops it (SIGTERM), keeping its data. */
void cd_test_s3_stop (CdTestS3 *s3);
/* Starts it again on the same folder and port: the data is still there. */
void cd_test_s3_restart (CdTestS3 *s3);
/* What the bucket holds at @key, read through the daemon's own S3 client;
 * NULL when there is no such object (any other error fails the test). */
GBytes *cd_test_s3_object (CdTestS3 *s3, const char *key);
/* Stops it and removes its folder. */
void cd_test_s3_free (CdTestS3 *s3);

G_END_DECLS
