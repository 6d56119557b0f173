/* SPDX-License-Identifier: GPL-3.0-or-later */
/* GET /healthz, /readyz and /metrics. */
#pragma once

#include "../store/cd-pg-pool.h"
#include "../store/cd-redis.h"
#include "cd-http-server.h"

G_BEGIN_DECLS

/* Returns FALSE and a reason while something of the caller's is not ready. */
typedef gboolean (*CdReadinessFunc) (gpointer user_data, char **reason);

typedef struct _CdHttpHealth CdHttpHealth;

CdHttpHealth *cd_http_health_new (CdMetrics *metrics, CdPgPool *pool, CdRedis *redis,
                                  CdReadinessFunc readiness, gpointer readiness_data);
void cd_http_health_free (CdHttpHealth *health);
gboolean cd_http_health_register (CdHttpHealth *health, CdHttpServer *server, GError **error);

G_END_DECLS
