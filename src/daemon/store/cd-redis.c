/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdRedis: hiredis async contexts driven by a GSource of our own (hiredis'
 * bundled GLib adapter can touch a freed context after a failed write). */

#define G_LOG_DOMAIN "calldocker-redis"

#include "cd-redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <string.h>

enum {
  SIGNAL_MESSAGE,
  SIGNAL_SUBSCRIBED,
  N_SIGNALS,
};

static guint signals[N_SIGNALS];

/* ---- GSource for one redisAsyncContext ---- */

typedef struct {
  GSource source;
  redisAsyncContext *ac; /* NULL once hiredis has freed it */
  GPollFD poll_fd;
} RedisSource;

static void
redis_source_update (RedisSource *rs, gushort add, gushort remove)
{
  rs->poll_fd.events = (gushort) ((rs->poll_fd.events | add) & ~remove);
  g_main_context_wakeup (g_source_get_context ((GSource *) rs));
}

static void
on_ev_add_read (void *data)
{
  redis_source_update (data, G_IO_IN, 0);
}

static void
on_ev_del_read (void *data)
{
  redis_source_update (data, 0, G_IO_IN);
}

static void
on_ev_add_write (void *data)
{
  redis_source_update (data, G_IO_OUT, 0);
}

static void
on_ev_del_write (void *data)
{
  redis_source_update (data, 0, G_IO_OUT);
}

static void
on_ev_cleanup (void *data)
{
  RedisSource *rs = data;

  /* hiredis is freeing the context: never touch it again */
  rs->ac = NULL;
  rs->poll_fd.events = 0;
  g_source_destroy ((GSource *) rs);
}

static gboolean
redis_source_prepare (GSource *source, gint *timeout)
{
  *timeout = -1;
  return FALSE;
}

static gboolean
redis_source_check (GSource *source)
{
  RedisSource *rs = (RedisSource *) source;

  return rs->ac != NULL && (rs->poll_fd.revents & (rs->poll_fd.events | G_IO_HUP | G_IO_ERR));
}

static gboolean
redis_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  RedisSource *rs = (RedisSource *) source;
  gushort revents = rs->poll_fd.revents;

  rs->poll_fd.revents = 0;
  if (rs->ac != NULL && (revents & G_IO_OUT))
    redisAsyncHandleWrite (rs->ac);
  if (rs->ac != NULL && (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
    redisAsyncHandleRead (rs->ac);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs redis_source_funcs = {
  .prepare = redis_source_prepare,
  .check = redis_source_check,
  .dispatch = redis_source_dispatch,
};

static GSource *
redis_source_attach (redisAsyncContext *ac)
{
  RedisSource *rs = (RedisSource *) g_source_new (&redis_source_funcs, sizeof (RedisSource));

  rs->ac = ac;
  rs->poll_fd.fd = ac->c.fd;
  /* a non-blocking connect completes when the socket becomes writable */
  rs->poll_fd.events = G_IO_OUT;
  g_source_add_poll ((GSource *) rs, &rs->poll_fd);
  g_source_set_static_name ((GSource *) rs, "calldocker-redis-io");
  ac->ev.addRead = on_ev_add_read;
  ac->ev.delRead = on_ev_del_read;
  ac->ev.addWrite = on_ev_add_write;
  ac->ev.delWrite = on_ev_del_write;
  ac->ev.cleanup = on_ev_cleanup;
  ac->ev.data = rs;
  g_source_attach ((GSource *) rs, NULL);
  return (GSource *) rs;
}

/* ---- links and the client ---- */

typedef struct {
  CdRedis *owner; /* unowned */
  gboolean subscriber;
  redisAsyncContext *ac;
  GSource *source;
  gboolean ready;
  guint retry_id;
  guint backoff_ms;
} RedisLink;

struct _CdRedis {
  GObject parent_instance;

  CdRedisAddress *address;
  guint command_timeout_ms;
  guint reconnect_min_ms;
  guint reconnect_max_ms;
  RedisLink commands;
  RedisLink pubsub;
  GHashTable *channels; /* subscribed channel names */
  GList *pending;       /* Pending* in flight, for timeouts and close */
  gboolean started;
  gboolean closed;
  CdRedisStats stats;
};

G_DEFINE_FINAL_TYPE (CdRedis, cd_redis, G_TYPE_OBJECT)

typedef struct {
  CdRedis *owner;
  GTask *task; /* NULL once answered (timeout, close) */
  guint timeout_id;
  GList *link;
} Pending;

static void link_connect (RedisLink *link);

void
cd_redis_reply_free (CdRedisReply *reply)
{
  if (reply == NULL)
    return;
  for (gsize i = 0; i < reply->n_elements; i++)
    cd_redis_reply_free (reply->elements[i]);
  g_free (reply->elements);
  g_free (reply->str);
  g_free (reply);
}

static CdRedisReply *
reply_copy (const redisReply *r)
{
  CdRedisReply *copy = g_new0 (CdRedisReply, 1);

  switch (r->type) {
  case REDIS_REPLY_STRING:
    copy->type = CD_REDIS_REPLY_STRING;
    break;
  case REDIS_REPLY_ARRAY:
    copy->type = CD_REDIS_REPLY_ARRAY;
    break;
  case REDIS_REPLY_INTEGER:
    copy->type = CD_REDIS_REPLY_INTEGER;
    break;
  case REDIS_REPLY_STATUS:
    copy->type = CD_REDIS_REPLY_STATUS;
    break;
  case REDIS_REPLY_ERROR:
    copy->type = CD_REDIS_REPLY_ERROR;
    break;
  case REDIS_REPLY_NIL:
  default:
    copy->type = CD_REDIS_REPLY_NIL;
    break;
  }
  copy->integer = r->integer;
  if (r->str != NULL) {
    copy->str = g_malloc (r->len + 1);
    memcpy (copy->str, r->str, r->len);
    copy->str[r->len] = '\0';
    copy->len = r->len;
  }
  if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
    copy->n_elements = r->elements;
    copy->elements = g_new0 (CdRedisReply *, r->elements);
    for (gsize i = 0; i < r->elements; i++)
      copy->elements[i] = reply_copy (r->element[i]);
  }
  return copy;
}

static void
pending_finish (Pending *p)
{
  g_clear_handle_id (&p->timeout_id, g_source_remove);
  if (p->link) {
    p->owner->pending = g_list_delete_link (p->owner->pending, p->link);
    p->link = NULL;
  }
  g_clear_object (&p->task);
}

static void
on_command_reply (redisAsyncContext *ac, void *reply, void *privdata)
{
  Pending *p = privdata;
  redisReply *r = reply;

  if (p->task != NULL) {
    g_autoptr (GTask) task = g_object_ref (p->task);
    CdRedis *self = p->owner;
    pending_finish (p);
    if (r == NULL) {
      self->stats.errors++;
      g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE,
                               "Redis connection lost before the reply");
    } else if (r->type == REDIS_REPLY_ERROR) {
      self->stats.errors++;
      g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_QUERY, "Redis: %.*s",
                               (int) MIN (r->len, 200), r->str);
    } else {
      g_task_return_pointer (task, reply_copy (r), (GDestroyNotify) cd_redis_reply_free);
    }
  }
  g_free (p);
}

static gboolean
on_command_timeout (gpointer user_data)
{
  Pending *p = user_data;
  g_autoptr (GTask) task = g_object_ref (p->task);
  CdRedis *self = p->owner;

  p->timeout_id = 0;
  self->stats.timeouts++;
  pending_finish (p); /* p itself is freed when hiredis answers or drops it */
  g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT,
                           "Redis did not answer in %u ms", self->command_timeout_ms);
  /* a connection that does not answer is not trusted: start afresh */
  if (self->commands.ac != NULL) {
    g_message ("Redis command timed out; reconnecting");
    /* not Disconnect: that waits for the replies that are not coming */
    redisAsyncFree (self->commands.ac);
  }
  return G_SOURCE_REMOVE;
}

static guint
link_next_backoff (RedisLink *link)
{
  CdRedis *self = link->owner;
  guint ms = link->backoff_ms == 0 ? self->reconnect_min_ms
                                   : MIN (link->backoff_ms * 2, self->reconnect_max_ms);
  link->backoff_ms = ms;
  return ms + (guint) g_random_int_range (-(gint) ms / 5, (gint) ms / 5 + 1);
}

static gboolean
on_link_retry (gpointer user_data)
{
  RedisLink *link = user_data;

  link->retry_id = 0;
  link->owner->stats.reconnects++;
  link_connect (link);
  return G_SOURCE_REMOVE;
}

static void
link_schedule_retry (RedisLink *link)
{
  if (link->owner->closed || link->retry_id != 0)
    return;
  link->retry_id = g_timeout_add (link_next_backoff (link), on_link_retry, link);
}

static void
link_forget_context (RedisLink *link)
{
  link->ac = NULL;
  link->ready = FALSE;
  g_clear_pointer (&link->source, g_source_unref);
}

static void
on_disconnect (const redisAsyncContext *ac, int status)
{
  RedisLink *link = ac->data;
  gboolean was_ready = link->ready;

  if (status != REDIS_OK && was_ready)
    g_message ("Redis %s connection lost: %s; reconnecting",
               link->subscriber ? "pub/sub" : "command", ac->errstr[0] ? ac->errstr : "closed");
  link_forget_context (link);
  link_schedule_retry (link);
}

static void
on_connect (const redisAsyncContext *ac, int status)
{
  RedisLink *link = ac->data;

  if (status != REDIS_OK) {
    g_debug ("Redis connect failed: %s", ac->errstr);
    /* hiredis frees the context after this callback without calling
     * the disconnect callback */
    link_forget_context (link);
    link_schedule_retry (link);
  }
}

static void
on_subscription (redisAsyncContext *ac, void *reply, void *privdata)
{
  RedisLink *link = privdata;
  CdRedis *self = link->owner;
  redisReply *r = reply;

  if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
    return;
  if (r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
    return;
  if (g_str_equal (r->element[0]->str, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
    g_autoptr (GBytes) payload = g_bytes_new (r->element[2]->str, r->element[2]->len);
    g_autofree char *channel = g_strndup (r->element[1]->str, r->element[1]->len);
    self->stats.messages++;
    g_signal_emit (self, signals[SIGNAL_MESSAGE], 0, channel, payload);
  } else if (g_str_equal (r->element[0]->str, "subscribe")) {
    g_autofree char *channel = g_strndup (r->element[1]->str, r->element[1]->len);
    g_signal_emit (self, signals[SIGNAL_SUBSCRIBED], 0, channel);
  }
}

static void
link_send_subscribe (RedisLink *link, const char *channel)
{
  const char *argv[] = { "SUBSCRIBE", channel };
  const size_t lens[] = { 9, strlen (channel) };

  redisAsyncCommandArgv (link->ac, on_subscription, link, 2, argv, lens);
}

static void
on_handshake_reply (redisAsyncContext *ac, void *reply, void *privdata)
{
  RedisLink *link = privdata;
  redisReply *r = reply;

  if (r == NULL || link->ac != ac)
    return;
  if (r->type == REDIS_REPLY_ERROR) {
    g_warning ("Redis refused the connection set-up: %s", r->str);
    redisAsyncDisconnect (ac);
    return;
  }
  if (r->type == REDIS_REPLY_STATUS && g_str_equal (r->str, "PONG") && !link->ready) {
    GHashTableIter iter;
    gpointer channel;

    link->ready = TRUE;
    link->backoff_ms = 0;
    g_info ("Redis %s connection ready", link->subscriber ? "pub/sub" : "command");
    if (link->subscriber) {
      g_hash_table_iter_init (&iter, link->owner->channels);
      while (g_hash_table_iter_next (&iter, &channel, NULL))
        link_send_subscribe (link, channel);
    }
  }
}

static void
link_connect (RedisLink *link)
{
  CdRedis *self = link->owner;
  const CdRedisAddress *address = self->address;
  redisAsyncContext *ac;

  /* hiredis resolves host names with a blocking getaddrinfo(): the config
   * documents that an IP address or a unix socket is expected */
  if (address->transport == CD_REDIS_TRANSPORT_UNIX)
    ac = redisAsyncConnectUnix (address->path);
  else
    ac = redisAsyncConnect (address->host, address->port);
  if (ac == NULL) {
    link_schedule_retry (link);
    return;
  }
  if (ac->err) {
    g_debug ("Redis connect failed: %s", ac->errstr);
    redisAsyncFree (ac);
    link_schedule_retry (link);
    return;
  }
  ac->data = link;
  link->ac = ac;
  link->source = redis_source_attach (ac);
  redisAsyncSetConnectCallback (ac, on_connect);
  redisAsyncSetDisconnectCallback (ac, on_disconnect);

  if (address->password) {
    const char *argv[] = { "AUTH", address->password };
    const size_t lens[] = { 4, strlen (address->password) };
    redisAsyncCommandArgv (ac, on_handshake_reply, link, 2, argv, lens);
  }
  if (address->db != 0 && !link->subscriber) {
    g_autofree char *db = g_strdup_printf ("%u", address->db);
    const char *argv[] = { "SELECT", db };
    const size_t lens[] = { 6, strlen (db) };
    redisAsyncCommandArgv (ac, on_handshake_reply, link, 2, argv, lens);
  }
  redisAsyncCommand (ac, on_handshake_reply, link, "PING");
}

static void
link_close (RedisLink *link)
{
  g_clear_handle_id (&link->retry_id, g_source_remove);
  if (link->ac != NULL) {
    redisAsyncContext *ac = link->ac;
    /* fires on_disconnect, which forgets the context; no retry once closed */
    redisAsyncFree (ac);
  }
  link_forget_context (link);
}

static void
cd_redis_finalize (GObject *object)
{
  CdRedis *self = CD_REDIS (object);

  cd_redis_close (self);
  g_hash_table_unref (self->channels);
  cd_redis_address_free (self->address);
  G_OBJECT_CLASS (cd_redis_parent_class)->finalize (object);
}

static void
cd_redis_class_init (CdRedisClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_redis_finalize;

  /**
   * CdRedis::message:
   * @channel: the channel
   * @payload: the message
   *
   * A message arrived on a subscribed channel.
   */
  signals[SIGNAL_MESSAGE] =
      g_signal_new ("message", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_BYTES);
  /**
   * CdRedis::subscribed:
   * @channel: the channel
   *
   * The server confirmed a subscription (also after every reconnect).
   */
  signals[SIGNAL_SUBSCRIBED] =
      g_signal_new ("subscribed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                    G_TYPE_NONE, 1, G_TYPE_STRING);
}

static void
cd_redis_init (CdRedis *self)
{
  self->channels = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->commands.owner = self;
  self->pubsub.owner = self;
  self->pubsub.subscriber = TRUE;
}

/**
 * cd_redis_new:
 *
 * Returns: (transfer full): a client that connects once cd_redis_start() runs
 */
CdRedis *
cd_redis_new (const CdRedisAddress *address, guint command_timeout_ms, guint reconnect_min_ms,
              guint reconnect_max_ms)
{
  CdRedis *self = g_object_new (CD_TYPE_REDIS, NULL);

  self->address = cd_redis_address_copy (address);
  self->command_timeout_ms = MAX (command_timeout_ms, 1);
  self->reconnect_min_ms = MAX (reconnect_min_ms, 1);
  self->reconnect_max_ms = MAX (reconnect_max_ms, self->reconnect_min_ms);
  return self;
}

void
cd_redis_start (CdRedis *self)
{
  g_return_if_fail (CD_IS_REDIS (self));
  if (self->started || self->closed)
    return;
  self->started = TRUE;
  link_connect (&self->commands);
  link_connect (&self->pubsub);
}

/**
 * cd_redis_close:
 *
 * Disconnects; commands in flight fail with %CD_STORE_ERROR_CLOSED. Idempotent.
 */
void
cd_redis_close (CdRedis *self)
{
  g_return_if_fail (CD_IS_REDIS (self));
  if (self->closed)
    return;
  self->closed = TRUE;
  while (self->pending != NULL) {
    Pending *p = self->pending->data;
    g_autoptr (GTask) task = g_object_ref (p->task);
    pending_finish (p);
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED,
                             "the Redis client was closed");
  }
  link_close (&self->commands);
  link_close (&self->pubsub);
}

/**
 * cd_redis_is_connected:
 *
 * Returns: whether both connections are up and answered PING
 */
gboolean
cd_redis_is_connected (CdRedis *self)
{
  return self->commands.ready && self->pubsub.ready;
}

void
cd_redis_get_stats (CdRedis *self, CdRedisStats *stats)
{
  *stats = self->stats;
}

/**
 * cd_redis_command_async:
 * @argv: (array length=argc): the command and its arguments
 * @argv_len: (array length=argc) (nullable): their lengths; %NULL for nul-terminated
 *
 * Sends one command. Fails at once with %CD_STORE_ERROR_UNAVAILABLE while
 * disconnected, and with %CD_STORE_ERROR_TIMED_OUT past the command timeout.
 */
void
cd_redis_command_async (CdRedis *self, const char *const *argv, const gsize *argv_len, int argc,
                        GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = NULL;
  g_autofree size_t *lens = NULL;
  Pending *p;

  g_return_if_fail (CD_IS_REDIS (self));
  g_return_if_fail (argc > 0);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, cd_redis_command_async);
  if (self->closed) {
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED,
                             "the Redis client was closed");
    return;
  }
  if (!self->commands.ready) {
    self->stats.errors++;
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE,
                             "Redis is not connected");
    return;
  }
  lens = g_new (size_t, (gsize) argc);
  for (int i = 0; i < argc; i++)
    lens[i] = argv_len ? argv_len[i] : strlen (argv[i]);

  p = g_new0 (Pending, 1);
  p->owner = self;
  p->task = g_steal_pointer (&task);
  if (redisAsyncCommandArgv (self->commands.ac, on_command_reply, p, argc, (const char **) argv,
                             lens) != REDIS_OK) {
    task = g_steal_pointer (&p->task);
    g_free (p);
    self->stats.errors++;
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE,
                             "Redis did not take the command");
    return;
  }
  self->stats.commands++;
  self->pending = g_list_prepend (self->pending, p);
  p->link = self->pending;
  p->timeout_id = g_timeout_add (self->command_timeout_ms, on_command_timeout, p);
}

/**
 * cd_redis_commandv_async:
 * @first_arg: the command name, followed by its arguments and %NULL
 */
void
cd_redis_commandv_async (CdRedis *self, GCancellable *cancellable, GAsyncReadyCallback callback,
                         gpointer user_data, const char *first_arg, ...)
{
  g_autoptr (GPtrArray) args = g_ptr_array_new ();
  va_list ap;

  va_start (ap, first_arg);
  for (const char *a = first_arg; a != NULL; a = va_arg (ap, const char *))
    g_ptr_array_add (args, (gpointer) a);
  va_end (ap);
  cd_redis_command_async (self, (const char *const *) args->pdata, NULL, (int) args->len,
                          cancellable, callback, user_data);
}

/**
 * cd_redis_command_finish:
 *
 * Returns: (transfer full): the reply; Redis error replies come back as errors
 */
CdRedisReply *
cd_redis_command_finish (CdRedis *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

/**
 * cd_redis_subscribe:
 *
 * Subscribes to @channel, now if connected and again after every reconnect.
 * Messages arrive through #CdRedis::message.
 */
void
cd_redis_subscribe (CdRedis *self, const char *channel)
{
  g_return_if_fail (CD_IS_REDIS (self));
  if (!g_hash_table_add (self->channels, g_strdup (channel)))
    return;
  if (self->pubsub.ready)
    link_send_subscribe (&self->pubsub, channel);
}

void
cd_redis_unsubscribe (CdRedis *self, const char *channel)
{
  g_return_if_fail (CD_IS_REDIS (self));
  if (!g_hash_table_remove (self->channels, channel))
    return;
  if (self->pubsub.ready) {
    const char *argv[] = { "UNSUBSCRIBE", channel };
    const size_t lens[] = { 11, strlen (channel) };
    redisAsyncCommandArgv (self->pubsub.ac, NULL, NULL, 2, argv, lens);
  }
}
