/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Liveness, readiness (PostgreSQL answers a query, Redis answers PING, the
 * daemon's own start-up is done) and the Prometheus endpoint. */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-http-health.h"

#include "cd-http-problem.h"

struct _CdHttpHealth {
  CdMetrics *metrics;
  CdPgPool *pool;
  CdRedis *redis;
  CdReadinessFunc readiness;
  gpointer readiness_data;
};

typedef struct {
  CdPausedMessage paused;
  SoupServerMessage *msg; /* paused.msg */
  char *request_id;
  int outstanding;
  char *postgres; /* NULL: ok, else why not */
  char *redis;
  char *daemon;
} ReadyCheck;

static void
ready_check_answer (ReadyCheck *check)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonNode) body = NULL;
  gboolean ok = !check->postgres && !check->redis && !check->daemon;
  const struct {
    const char *name;
    const char *problem;
  } rows[] = {
    { "postgres", check->postgres },
    { "redis", check->redis },
    { "startup", check->daemon },
  };
  g_autoptr (GString) detail = g_string_new (NULL);

  json_builder_begin_object (b);
  if (!ok) {
    for (gsize i = 0; i < G_N_ELEMENTS (rows); i++) {
      if (rows[i].problem)
        g_string_append_printf (detail, "%s%s: %s", detail->len ? "; " : "", rows[i].name,
                                rows[i].problem);
    }
    json_builder_set_member_name (b, "type");
    json_builder_add_string_value (b, CD_PROBLEM_TYPE_PREFIX "not-ready");
    json_builder_set_member_name (b, "title");
    json_builder_add_string_value (b, "Not ready");
    json_builder_set_member_name (b, "status");
    json_builder_add_int_value (b, 503);
    json_builder_set_member_name (b, "detail");
    json_builder_add_string_value (b, detail->str);
    json_builder_set_member_name (b, "request_id");
    json_builder_add_string_value (b, check->request_id);
  } else {
    json_builder_set_member_name (b, "status");
    json_builder_add_string_value (b, "ready");
  }
  json_builder_set_member_name (b, "checks");
  json_builder_begin_object (b);
  for (gsize i = 0; i < G_N_ELEMENTS (rows); i++) {
    json_builder_set_member_name (b, rows[i].name);
    json_builder_add_string_value (b, rows[i].problem ? rows[i].problem : "ok");
  }
  json_builder_end_object (b);
  json_builder_end_object (b);
  body = json_builder_get_root (b);

  cd_http_respond_json (check->msg, ok ? 200 : 503, body);
  if (!ok)
    soup_message_headers_set_content_type (soup_server_message_get_response_headers (check->msg),
                                           "application/problem+json", NULL);
  cd_paused_message_release (&check->paused);
  g_free (check->request_id);
  g_free (check->postgres);
  g_free (check->redis);
  g_free (check->daemon);
  g_free (check);
}

static void
ready_check_done_one (ReadyCheck *check)
{
  if (--check->outstanding == 0)
    ready_check_answer (check);
}

static char *
short_reason (const GError *error)
{
  if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_TIMED_OUT))
    return g_strdup ("no answer in time");
  if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE) ||
      g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CLOSED))
    return g_strdup ("not connected");
  return g_strdup ("query failed");
}

static void
on_pg_answer (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ReadyCheck *check = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    g_info ("readiness: PostgreSQL: %s", error->message);
    check->postgres = short_reason (error);
  }
  ready_check_done_one (check);
}

static void
on_redis_answer (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ReadyCheck *check = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisReply) reply = cd_redis_command_finish (CD_REDIS (source), result, &error);

  if (reply == NULL) {
    g_info ("readiness: Redis: %s", error->message);
    check->redis = short_reason (error);
  }
  ready_check_done_one (check);
}

static void
handle_readyz (CdHttpRequest *request, gpointer user_data)
{
  CdHttpHealth *health = user_data;
  ReadyCheck *check = g_new0 (ReadyCheck, 1);

  cd_paused_message_init (&check->paused, request->msg);
  check->msg = check->paused.msg;
  check->request_id = g_strdup (request->request_id);
  check->outstanding = 1;

  if (health->readiness && !health->readiness (health->readiness_data, &check->daemon) &&
      check->daemon == NULL)
    check->daemon = g_strdup ("starting");

  if (health->pool == NULL) {
    check->postgres = g_strdup ("not configured yet");
  } else if (!cd_pg_pool_is_connected (health->pool)) {
    check->postgres = g_strdup ("not connected");
  } else {
    check->outstanding++;
    cd_pg_pool_query_async (health->pool, "SELECT 1", NULL, 0, NULL, on_pg_answer, check);
  }
  if (health->redis == NULL) {
    check->redis = g_strdup ("not configured yet");
  } else if (!cd_redis_is_connected (health->redis)) {
    check->redis = g_strdup ("not connected");
  } else {
    check->outstanding++;
    cd_redis_commandv_async (health->redis, NULL, on_redis_answer, check, "PING", NULL);
  }
  ready_check_done_one (check);
}

static void
handle_healthz (CdHttpRequest *request, gpointer user_data)
{
  g_autoptr (JsonNode) body = json_from_string ("{\"status\":\"ok\"}", NULL);

  cd_http_respond_json (request->msg, 200, body);
}

static void
handle_metrics (CdHttpRequest *request, gpointer user_data)
{
  CdHttpHealth *health = user_data;
  char *text = cd_metrics_render (health->metrics);

  soup_server_message_set_status (request->msg, 200, NULL);
  soup_server_message_set_response (request->msg, "text/plain; version=0.0.4; charset=utf-8",
                                    SOUP_MEMORY_TAKE, text, strlen (text));
}

/**
 * cd_http_health_new:
 * @pool: (nullable): PostgreSQL, once it exists
 * @redis: (nullable): Redis, once it exists
 * @readiness: (nullable): the daemon's own readiness
 */
CdHttpHealth *
cd_http_health_new (CdMetrics *metrics, CdPgPool *pool, CdRedis *redis, CdReadinessFunc readiness,
                    gpointer readiness_data)
{
  CdHttpHealth *health = g_new0 (CdHttpHealth, 1);

  health->metrics = g_object_ref (metrics);
  health->pool = pool ? g_object_ref (pool) : NULL;
  health->redis = redis ? g_object_ref (redis) : NULL;
  health->readiness = readiness;
  health->readiness_data = readiness_data;
  return health;
}

void
cd_http_health_free (CdHttpHealth *health)
{
  if (health == NULL)
    return;
  g_clear_object (&health->metrics);
  g_clear_object (&health->pool);
  g_clear_object (&health->redis);
  g_free (health);
}

gboolean
cd_http_health_register (CdHttpHealth *health, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET", "/healthz", handle_healthz, health, error) &&
         cd_http_server_add_route (server, "GET", "/readyz", handle_readyz, health, error) &&
         cd_http_server_add_route (server, "GET", "/metrics", handle_metrics, health, error);
}
