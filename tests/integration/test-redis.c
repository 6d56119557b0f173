/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The Redis client against a real server: commands, binary values, error
 * replies, pub/sub, and a server killed mid-use. */

#include "cd-test-harness.h"
#include "store/cd-redis.h"

#include <signal.h>
#include <string.h>

static CdTestStores *stores;

static CdRedis *
new_client (void)
{
  CdRedis *redis = cd_redis_new (stores->redis_address, 1000, 20, 200);

  cd_redis_start (redis);
  WAIT_UNTIL (cd_redis_is_connected (redis), 10000);
  return redis;
}

static CdRedisReply *
command (CdRedis *redis, const char *const *argv, const gsize *lens, int argc, GError **error)
{
  g_autoptr (GAsyncResult) result = NULL;

  cd_redis_command_async (redis, argv, lens, argc, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  return cd_redis_command_finish (redis, result, error);
}

static void
test_commands (void)
{
  g_autoptr (CdRedis) redis = new_client ();
  g_autoptr (GError) error = NULL;
  const char binary[] = { 'a', '\0', 'b', '\n', '\xff' };
  const char *set[] = { "SET", "t:bin", binary };
  const gsize set_lens[] = { 3, 5, sizeof binary };
  const char *get[] = { "GET", "t:bin" };
  const char *incr[] = { "INCRBY", "t:n", "5" };
  const char *missing[] = { "GET", "t:none" };
  g_autoptr (CdRedisReply) r1 = command (redis, set, set_lens, 3, &error);
  g_autoptr (CdRedisReply) r2 = NULL;
  g_autoptr (CdRedisReply) r3 = NULL;
  g_autoptr (CdRedisReply) r4 = NULL;

  g_assert_no_error (error);
  g_assert_cmpint (r1->type, ==, CD_REDIS_REPLY_STATUS);
  g_assert_cmpstr (r1->str, ==, "OK");
  r2 = command (redis, get, NULL, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r2->type, ==, CD_REDIS_REPLY_STRING);
  g_assert_cmpmem (r2->str, r2->len, binary, sizeof binary);
  r3 = command (redis, incr, NULL, 3, &error);
  g_assert_cmpint (r3->type, ==, CD_REDIS_REPLY_INTEGER);
  g_assert_cmpint (r3->integer, ==, 5);
  r4 = command (redis, missing, NULL, 2, &error);
  g_assert_cmpint (r4->type, ==, CD_REDIS_REPLY_NIL);
  cd_redis_close (redis);
}

static void
test_error_reply (void)
{
  g_autoptr (CdRedis) redis = new_client ();
  g_autoptr (GError) error = NULL;
  const char *bad[] = { "NOSUCHCOMMAND", "x" };
  const char *ok[] = { "PING" };
  g_autoptr (CdRedisReply) r = command (redis, bad, NULL, 2, &error);
  g_autoptr (CdRedisReply) r2 = NULL;

  g_assert_null (r);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY);
  g_assert_nonnull (strstr (error->message, "unknown command"));
  g_clear_error (&error);
  r2 = command (redis, ok, NULL, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (r2->str, ==, "PONG");
  cd_redis_close (redis);
}

static void
test_array_reply (void)
{
  g_autoptr (CdRedis) redis = new_client ();
  g_autoptr (GError) error = NULL;
  const char *del[] = { "DEL", "t:list" };
  const char *push[] = { "RPUSH", "t:list", "a", "b", "c" };
  const char *range[] = { "LRANGE", "t:list", "0", "-1" };
  g_autoptr (CdRedisReply) r0 = command (redis, del, NULL, 2, &error);
  g_autoptr (CdRedisReply) r1 = NULL;
  g_autoptr (CdRedisReply) r2 = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (r0);
  r1 = command (redis, push, NULL, 5, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r1->integer, ==, 3);
  r2 = command (redis, range, NULL, 4, &error);
  g_assert_no_error (error);
  g_assert_cmpint (r2->type, ==, CD_REDIS_REPLY_ARRAY);
  g_assert_cmpuint (r2->n_elements, ==, 3);
  g_assert_cmpstr (r2->elements[2]->str, ==, "c");
  cd_redis_close (redis);
}

typedef struct {
  GPtrArray *messages;
  int subscribed;
} Inbox;

static void
on_message (CdRedis *redis, const char *channel, GBytes *payload, gpointer user_data)
{
  Inbox *inbox = user_data;

  g_ptr_array_add (inbox->messages,
                   g_strdup_printf ("%s:%.*s", channel, (int) g_bytes_get_size (payload),
                                    (const char *) g_bytes_get_data (payload, NULL)));
}

static void
on_subscribed (CdRedis *redis, const char *channel, gpointer user_data)
{
  ((Inbox *) user_data)->subscribed++;
}

static void
publish (CdRedis *redis, const char *channel, const char *text)
{
  g_autoptr (GError) error = NULL;
  const char *argv[] = { "PUBLISH", channel, text };
  g_autoptr (CdRedisReply) r = command (redis, argv, NULL, 3, &error);

  g_assert_no_error (error);
  g_assert_cmpint (r->integer, ==, 1); /* one subscriber got it */
}

static void
test_pubsub_and_restart (void)
{
  g_autoptr (CdRedis) redis = new_client ();
  g_autoptr (GError) error = NULL;
  Inbox inbox = { g_ptr_array_new_with_free_func (g_free), 0 };
  CdRedisStats before, after;
  const char *ping[] = { "PING" };
  g_autoptr (CdRedisReply) while_down = NULL;

  g_signal_connect (redis, "message", G_CALLBACK (on_message), &inbox);
  g_signal_connect (redis, "subscribed", G_CALLBACK (on_subscribed), &inbox);
  cd_redis_subscribe (redis, "t:events");
  WAIT_UNTIL (inbox.subscribed == 1, 5000);
  publish (redis, "t:events", "one");
  WAIT_UNTIL (inbox.messages->len == 1, 5000);
  g_assert_cmpstr (g_ptr_array_index (inbox.messages, 0), ==, "t:events:one");

  cd_redis_get_stats (redis, &before);
  cd_test_stores_kill_server (stores, CD_EMBEDDED_REDIS, SIGKILL);
  WAIT_UNTIL (!cd_redis_is_connected (redis), 10000);
  /* while it is down, commands fail at once with a clear error */
  while_down = command (redis, ping, NULL, 1, &error);
  if (while_down == NULL)
    g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE);
  g_clear_error (&error);

  /* the supervisor restarts it, the client reconnects and subscribes again */
  WAIT_UNTIL (cd_redis_is_connected (redis), 30000);
  WAIT_UNTIL (inbox.subscribed == 2, 10000);
  publish (redis, "t:events", "two");
  WAIT_UNTIL (inbox.messages->len == 2, 5000);
  g_assert_cmpstr (g_ptr_array_index (inbox.messages, 1), ==, "t:events:two");
  cd_redis_get_stats (redis, &after);
  g_assert_cmpuint (after.reconnects, >, before.reconnects);

  cd_redis_unsubscribe (redis, "t:events");
  cd_redis_close (redis);
  g_ptr_array_unref (inbox.messages);
}

static void
test_unreachable (void)
{
  g_autofree char *dir = cd_test_make_tmp_dir ("cd-nords-XXXXXX");
  g_autofree char *path = g_build_filename (dir, "none.sock", NULL);
  CdRedisAddress address = { CD_REDIS_TRANSPORT_UNIX, NULL, 0, path, NULL, 0 };
  g_autoptr (CdRedis) redis = cd_redis_new (&address, 500, 20, 100);
  g_autoptr (GError) error = NULL;
  const char *ping[] = { "PING" };
  g_autoptr (CdRedisReply) r = NULL;
  CdRedisStats stats;

  cd_redis_start (redis);
  cd_test_sleep (300);
  r = command (redis, ping, NULL, 1, &error);
  g_assert_null (r);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE);
  cd_redis_get_stats (redis, &stats);
  g_assert_cmpuint (stats.reconnects, >, 0);
  cd_redis_close (redis);
  cd_test_remove_tree (dir);
}

static void
test_close_fails_commands (void)
{
  g_autoptr (CdRedis) redis = new_client ();
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) r = NULL;
  const char *block[] = { "BLPOP", "t:never", "5" };

  cd_redis_command_async (redis, block, NULL, 3, NULL, cd_test_capture, &result);
  cd_redis_close (redis);
  cd_test_wait_result (&result, 5000);
  r = cd_redis_command_finish (redis, result, &error);
  g_assert_null (r);
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED);
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
  g_test_add_func ("/store/redis/commands", test_commands);
  g_test_add_func ("/store/redis/error-reply", test_error_reply);
  g_test_add_func ("/store/redis/array-reply", test_array_reply);
  g_test_add_func ("/store/redis/unreachable-fails-clearly", test_unreachable);
  g_test_add_func ("/store/redis/close-fails-commands", test_close_fails_commands);
  g_test_add_func ("/store/redis/pubsub-and-restart", test_pubsub_and_restart);
  status = g_test_run ();
  cd_test_stores_stop (stores);
  return status;
}
