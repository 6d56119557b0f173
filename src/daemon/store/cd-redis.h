/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A Redis client for the main loop: hiredis' async API on a GSource, one
 * connection for commands and one for pub/sub, reconnecting with backoff. */
#pragma once

#include <gio/gio.h>

#include "cd-config.h"
#include "cd-store-error.h"

G_BEGIN_DECLS

typedef enum {
  CD_REDIS_REPLY_STRING,
  CD_REDIS_REPLY_ARRAY,
  CD_REDIS_REPLY_INTEGER,
  CD_REDIS_REPLY_NIL,
  CD_REDIS_REPLY_STATUS,
  CD_REDIS_REPLY_ERROR,
} CdRedisReplyType;

typedef struct _CdRedisReply CdRedisReply;
struct _CdRedisReply {
  CdRedisReplyType type;
  gint64 integer;
  char *str; /* string, status and error replies; nul-terminated */
  gsize len;
  CdRedisReply **elements;
  gsize n_elements;
};

void cd_redis_reply_free (CdRedisReply *reply);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdRedisReply, cd_redis_reply_free)

typedef struct {
  guint64 reconnects;
  guint64 commands;
  guint64 errors;
  guint64 timeouts;
  guint64 messages;
} CdRedisStats;

#define CD_TYPE_REDIS (cd_redis_get_type ())
G_DECLARE_FINAL_TYPE (CdRedis, cd_redis, CD, REDIS, GObject)

CdRedis *cd_redis_new (const CdRedisAddress *address, guint command_timeout_ms,
                       guint reconnect_min_ms, guint reconnect_max_ms);
void cd_redis_start (CdRedis *self);
void cd_redis_close (CdRedis *self);
gboolean cd_redis_is_connected (CdRedis *self);
void cd_redis_get_stats (CdRedis *self, CdRedisStats *stats);

void cd_redis_command_async (CdRedis *self, const char *const *argv, const gsize *argv_len,
                             int argc, GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data);
void cd_redis_commandv_async (CdRedis *self, GCancellable *cancellable,
                              GAsyncReadyCallback callback, gpointer user_data,
                              const char *first_arg, ...) G_GNUC_NULL_TERMINATED;
CdRedisReply *cd_redis_command_finish (CdRedis *self, GAsyncResult *result, GError **error);

void cd_redis_subscribe (CdRedis *self, const char *channel);
void cd_redis_unsubscribe (CdRedis *self, const char *channel);

G_END_DECLS
