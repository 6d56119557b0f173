/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Calls and their timelines, written behind: callers on the main thread
 * record what happened and move on; the store writes it to PostgreSQL. */
#pragma once

#include <json-glib/json-glib.h>

#include "cd-pg-pool.h"

G_BEGIN_DECLS

#define CD_TYPE_CALL_STORE (cd_call_store_get_type ())
G_DECLARE_FINAL_TYPE (CdCallStore, cd_call_store, CD, CALL_STORE, GObject)

typedef struct {
  guint pending;   /* writes queued, running or waiting to be retried */
  guint64 written; /* writes the database took */
  guint64 retried; /* attempts that failed and were tried again */
  guint64 dropped; /* writes given up: refused, retried too long, or too many queued */
} CdCallStoreStats;

CdCallStore *cd_call_store_new (CdPgPool *pool);
void cd_call_store_set_retry_limits (CdCallStore *self, guint min_ms, guint max_ms,
                                     guint give_up_ms);

/* all times are g_get_real_time () microseconds taken when the thing happened */
void cd_call_store_create (CdCallStore *self, const char *call_id, const char *company_id,
                           const char *visitor_id, const char *visitor_address, const char *page,
                           gint64 at_us);
void cd_call_store_set_state (CdCallStore *self, const char *call_id, const char *company_id,
                              const char *state, JsonObject *detail, gint64 at_us);
void cd_call_store_set_agent (CdCallStore *self, const char *call_id, const char *company_id,
                              const char *agent_id, gint64 at_us);
/* @by: why this queue: "visitor" (named in call.start), "country" (the
 * company's country queues), "first" (the company's first), "moved" (a
 * queue's fallback or overflow sent it) */
void cd_call_store_set_queue (CdCallStore *self, const char *call_id, const char *company_id,
                              const char *queue_id, const char *name, const char *by, gint64 at_us);
void cd_call_store_answered (CdCallStore *self, const char *call_id, const char *company_id,
                             gint64 at_us);
void cd_call_store_add_event (CdCallStore *self, const char *call_id, const char *company_id,
                              const char *kind, JsonObject *detail, gint64 at_us);
void cd_call_store_end (CdCallStore *self, const char *call_id, const char *company_id,
                        const char *reason, JsonObject *quality, gint64 at_us);

void cd_call_store_flush_async (CdCallStore *self, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_call_store_flush_finish (CdCallStore *self, GAsyncResult *result, GError **error);
guint cd_call_store_get_pending (CdCallStore *self);
void cd_call_store_get_stats (CdCallStore *self, CdCallStoreStats *stats);

G_END_DECLS
