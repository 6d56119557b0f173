/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's queues, managed by its admins (and the super admin): list,
 * create, read, replace, delete, and the queue's members with their levels.
 * Definitions are checked by CdQueueSpec (docs/routing.md). */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../../common/cd-json.h"
#include "../routing/cd-business-hours.h"
#include "../routing/cd-country-queues.h"
#include "../routing/cd-queue-roster.h"
#include "../routing/cd-queue-spec.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <string.h>

/* the definition as given, with the queue's id, members and times */
#define QUEUE_JSON                                                                         \
  "(q.definition || jsonb_build_object('id', q.id, 'company_id', q.company_id,"            \
  " 'members', coalesce((SELECT jsonb_object_agg(m.user_id, m.level) FROM queue_members m" \
  "  WHERE m.queue_id = q.id), '{}'), 'created_at', q.created_at, 'updated_at',"           \
  " q.updated_at))"

/* the top level; CdQueueSpec checks the rest */
static const CdField queue_fields[] = {
  { "name", CD_FIELD_STRING, TRUE, 1, 100 },
  { "strategy", CD_FIELD_STRING, FALSE, 1, 40 },
  { "skills", CD_FIELD_OBJECT, FALSE, 0, CD_QUEUE_MAX_SKILLS },
  { "languages", CD_FIELD_STRING_ARRAY, FALSE, 0, CD_QUEUE_MAX_LANGUAGES },
  { "rule", CD_FIELD_STRING, FALSE, 1, CD_RULE_MAX_LENGTH },
  { "business_hours", CD_FIELD_OBJECT, FALSE, 1, 3 },
  { "ring_timeout_s", CD_FIELD_INT, FALSE, 5, 300 },
  { "max_wait_s", CD_FIELD_INT, FALSE, 10, 86400 },
  { "max_length", CD_FIELD_INT, FALSE, 0, 10000 },
  { "wrap_up_s", CD_FIELD_INT, FALSE, 0, 3600 },
  { "announce_every_s", CD_FIELD_INT, FALSE, 0, 3600 },
  { "when_closed", CD_FIELD_OBJECT, FALSE, 1, 3 },
  { "when_full", CD_FIELD_OBJECT, FALSE, 1, 3 },
  { "overflow", CD_FIELD_OBJECT, FALSE, 1, 4 },
  { "record", CD_FIELD_BOOL, FALSE, 0, 0 },
};

static const CdField members_fields[] = {
  { "members", CD_FIELD_OBJECT, TRUE, 0, 1000 },
};

static CdJwtClaims *
guard (CdApi *api, CdHttpRequest *request, gboolean with_queue)
{
  return cd_api_guard_company_admin (api, request, with_queue ? "queue_id" : NULL, "no such queue");
}

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, FALSE);

  if (claims)
    cd_api_list (
        user_data, request, claims,
        "WITH page AS (SELECT q.*, " QUEUE_JSON " AS j FROM queues q WHERE q.company_id = $1"
        "  AND ($2::timestamptz IS NULL OR (q.created_at, q.id) > ($2::timestamptz, $3::uuid))"
        "  ORDER BY q.created_at, q.id LIMIT $4::int + 1)," CD_API_PAGE_OLDEST_FIRST (
            "$4") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)");
}

/* ---- create and replace ---- */

typedef struct {
  char *name;
  char *definition; /* the body, as JSON */
  char *refs;       /* the queues it moves calls to: a uuid[] literal */
} Definition;

static void
definition_free (gpointer data)
{
  Definition *d = data;

  g_free (d->name);
  g_free (d->definition);
  g_free (d->refs);
  g_free (d);
}

/* The body checked through and through; NULL after answering the problem. */
static Definition *
read_definition (CdHttpRequest *request, const char *queue_id)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body =
      cd_http_request_read_json (request, queue_fields, G_N_ELEMENTS (queue_fields), &error);
  g_autoptr (CdQueueSpec) spec = NULL;
  g_autoptr (GString) refs = g_string_new ("{");
  g_autoptr (JsonNode) node = NULL;
  const CdQueueFallback *fallbacks[3];
  Definition *d;

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return NULL;
  }
  spec = cd_queue_spec_parse (body, &error);
  if (spec == NULL) {
    g_autoptr (GError) invalid =
        g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, error->message);
    cd_http_respond_problem (request->msg, request->request_id, invalid);
    return NULL;
  }
  fallbacks[0] = &spec->when_closed;
  fallbacks[1] = &spec->when_full;
  fallbacks[2] = spec->has_overflow ? &spec->overflow : NULL;
  for (gsize i = 0; i < G_N_ELEMENTS (fallbacks); i++) {
    if (fallbacks[i] == NULL || fallbacks[i]->queue_id == NULL)
      continue;
    if (queue_id && g_ascii_strcasecmp (fallbacks[i]->queue_id, queue_id) == 0) {
      g_autoptr (GError) itself =
          g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                       "%s.queue_id: a queue cannot send its calls to itself",
                       i == 0   ? "when_closed"
                       : i == 1 ? "when_full"
                                : "overflow");
      cd_http_respond_problem (request->msg, request->request_id, itself);
      return NULL;
    }
    g_string_append_printf (refs, "%s%s", refs->len > 1 ? "," : "", fallbacks[i]->queue_id);
  }
  g_string_append_c (refs, '}');
  node = json_node_init_object (json_node_alloc (), body);
  d = g_new0 (Definition, 1);
  d->name = g_strdup (spec->name);
  d->definition = cd_json_to_string (node);
  d->refs = g_strdup (refs->str);
  return d;
}

/* (missing reference, queue JSON): the queue, or why not */
static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (cd_store_error_is_foreign_key (error)) {
      /* the queue it names was deleted while this was written */
      g_autoptr (GError) gone =
          g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                               "queue_id: a queue to send calls to was deleted meanwhile");
      cd_api_call_respond_error (call, gone);
      return;
    }
    if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT)) {
      g_autoptr (GError) conflict = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                                                         "a queue with this name exists");
      cd_api_call_respond_error (call, conflict);
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 1)) {
    g_autoptr (JsonNode) node = json_from_string (PQgetvalue (res, 0, 1), NULL);
    cd_api_call_respond_json (call, call->answer_status, node);
    return;
  }
  if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 0)) {
    g_autoptr (GError) missing = g_error_new (
        CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
        "queue_id: no queue %s in this company to send calls to", PQgetvalue (res, 0, 0));
    cd_api_call_respond_error (call, missing);
    return;
  }
  if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 3)) {
    g_autoptr (GError) circle =
        g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                     "queue_id: calls would go round in a circle: %.500s", PQgetvalue (res, 0, 3));
    cd_api_call_respond_error (call, circle);
    return;
  }
  /* a create finds no company, a replace no queue */
  error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND,
                               call->answer_status == 201 ? "no such company" : "no such queue");
  cd_api_call_respond_error (call, error);
}

static void
create_proceed (CdApiCall *call)
{
  Definition *d = call->data;
  CdPgScope scope = cd_api_scope_of (call->caller);
  const char *params[] = { g_hash_table_lookup (call->params, "id"),
                           d->name,
                           d->definition,
                           d->refs,
                           call->caller->sub,
                           call->client_address,
                           call->request_id };

  cd_pg_pool_query_scoped_async (
      call->api->pool, &scope,
      "WITH refs AS (SELECT r FROM unnest($4::uuid[]) r WHERE NOT EXISTS"
      "  (SELECT 1 FROM queues o WHERE o.id = r AND o.company_id = $1)),"
      " q AS (INSERT INTO queues (company_id, name, definition)"
      "  SELECT $1, $2, $3::jsonb WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)"
      "  AND NOT EXISTS (SELECT 1 FROM refs) RETURNING *),"
      " l AS (INSERT INTO queue_links (company_id, from_queue, to_queue)"
      "  SELECT DISTINCT q.company_id, q.id, r FROM q, unnest($4::uuid[]) r RETURNING 1),"
      " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
      "  request_id) SELECT company_id, $5::uuid, 'queue.created', name, $6, $7 FROM q"
      "  RETURNING 1)"
      " SELECT (SELECT r::text FROM refs LIMIT 1),"
      "  (SELECT (q.definition || jsonb_build_object('id', q.id, 'company_id', q.company_id,"
      "   'members', '{}'::jsonb, 'created_at', q.created_at, 'updated_at', q.updated_at))::text"
      "   FROM q), (SELECT count(*) FROM a), NULL, (SELECT count(*) FROM l)",
      params, G_N_ELEMENTS (params), NULL, on_written, call);
}

static void
handle_create (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  Definition *d;
  CdApiCall *call;

  if (claims == NULL || (d = read_definition (request, NULL)) == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->answer_status = 201;
  call->data = d;
  call->data_free = definition_free;
  cd_api_call_idempotent (call, call->caller->sub, create_proceed);
}

static void
handle_replace (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  const char *queue_id = g_hash_table_lookup (request->params, "queue_id");
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  Definition *d;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL || (d = read_definition (request, queue_id)) == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->answer_status = 200;
  call->data = d;
  call->data_free = definition_free;
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             queue_id,
                             d->name,
                             d->definition,
                             d->refs,
                             call->caller->sub,
                             call->client_address,
                             call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        /* where calls sent on from this queue can go: back here is a circle
         * (this queue's own links are the ones being replaced) */
        "WITH RECURSIVE reach (id, path) AS (SELECT r, ARRAY[$2::uuid, r]"
        "  FROM unnest($5::uuid[]) r"
        "  UNION ALL SELECT l.to_queue, reach.path || l.to_queue FROM reach"
        "  JOIN queue_links l ON l.from_queue = reach.id"
        "  WHERE l.company_id = $1 AND reach.id <> $2 AND l.to_queue <> ALL (reach.path[2:])),"
        " circle AS (SELECT path FROM reach WHERE id = $2 LIMIT 1),"
        " refs AS (SELECT r FROM unnest($5::uuid[]) r WHERE NOT EXISTS"
        "  (SELECT 1 FROM queues o WHERE o.id = r AND o.company_id = $1)),"
        " q AS (UPDATE queues SET name = $3, definition = $4::jsonb, updated_at = now()"
        "  WHERE company_id = $1 AND id = $2 AND NOT EXISTS (SELECT 1 FROM refs)"
        "  AND NOT EXISTS (SELECT 1 FROM circle) RETURNING *),"
        " ld AS (DELETE FROM queue_links WHERE from_queue IN (SELECT id FROM q)"
        "  AND to_queue <> ALL ($5::uuid[]) RETURNING 1),"
        " li AS (INSERT INTO queue_links (company_id, from_queue, to_queue)"
        "  SELECT DISTINCT q.company_id, q.id, r FROM q, unnest($5::uuid[]) r"
        "  ON CONFLICT DO NOTHING RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $6::uuid, 'queue.updated', name, $7, $8 FROM q"
        "  RETURNING 1)"
        " SELECT (SELECT r::text FROM refs LIMIT 1), (SELECT " QUEUE_JSON "::text FROM q),"
        "  (SELECT count(*) FROM a),"
        "  (SELECT string_agg(o.name, ' -> ' ORDER BY p.n) FROM circle,"
        "   unnest(circle.path) WITH ORDINALITY AS p (id, n) JOIN queues o ON o.id = p.id),"
        "  (SELECT count(*) FROM ld) + (SELECT count(*) FROM li)",
        params, G_N_ELEMENTS (params), NULL, on_written, call);
  }
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, TRUE);

  if (claims)
    cd_api_get_one (user_data, request, claims, "queue_id",
                    "SELECT " QUEUE_JSON " FROM queues q"
                    " WHERE q.company_id = $1 AND q.id = $2");
}

/* A statement answering (queue found, a reason to refuse or NULL, ...):
 * 404, the refusal, or 204. */
typedef struct {
  CdHttpError code;
  const char *before, *after; /* the detail around the reason */
  const char *missing;        /* the 404's detail */
  const char *raced; /* the 409's detail when a foreign key fails: a change raced this one */
} Refusal;

static const Refusal still_receiving = {
  CD_HTTP_ERROR_CONFLICT, "the queue still receives calls from: ", "", "no such queue",
  "the queue still receives calls from a queue or country changed meanwhile"
};
static const Refusal stranger = { CD_HTTP_ERROR_INVALID_FIELD, "members.",
                                  ": no user of this company", "no such queue",
                                  "a user or the queue was deleted meanwhile" };
static const Refusal foreign_queue = { CD_HTTP_ERROR_INVALID_FIELD, "countries.", "",
                                       "no such company",
                                       "a queue or the company was deleted meanwhile" };

static void
on_checked_change (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  const Refusal *refusal = call->data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (cd_store_error_is_foreign_key (error)) {
      g_autoptr (GError) conflict =
          g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT, refusal->raced);
      cd_api_call_respond_error (call, conflict);
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "0")) {
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, refusal->missing);
    cd_api_call_respond_error (call, error);
    return;
  }
  if (!PQgetisnull (res, 0, 1)) {
    error = g_error_new (CD_HTTP_ERROR, refusal->code, "%s%.300s%s", refusal->before,
                         PQgetvalue (res, 0, 1), refusal->after);
    cd_api_call_respond_error (call, error);
    return;
  }
  cd_api_call_respond_empty (call, 204);
}

static void
handle_delete (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->data = (gpointer) &still_receiving;
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "queue_id"), call->caller->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH target AS (SELECT id, name FROM queues WHERE company_id = $1 AND id = $2),"
        " senders AS (SELECT o.name FROM queue_links l JOIN queues o ON o.id = l.from_queue"
        "  WHERE l.company_id = $1 AND l.to_queue = $2"
        "  UNION ALL SELECT 'visitors from ' || c.country FROM country_queues c"
        "  WHERE c.company_id = $1 AND c.queue_id = $2"
        "  UNION ALL SELECT 'IVR flow ' || f.name FROM ivr_flow_queues l"
        "  JOIN ivr_flows f ON f.id = l.flow_id WHERE l.company_id = $1 AND l.queue_id = $2),"
        " d AS (DELETE FROM queues WHERE id IN (SELECT id FROM target)"
        "  AND NOT EXISTS (SELECT 1 FROM senders) RETURNING company_id, name),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $3::uuid, 'queue.deleted', name, $4, $5 FROM d"
        "  RETURNING 1)"
        " SELECT (SELECT count(*) FROM target),"
        "  (SELECT string_agg(name, ', ' ORDER BY name) FROM senders), (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_checked_change, call);
  }
}

/* ---- members ---- */

static void
handle_set_members (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (JsonNode) members_node = NULL;
  g_autoptr (JsonObject) canonical = NULL;
  g_autofree char *members = NULL;
  JsonObject *map;
  JsonObjectIter iter;
  const char *user;
  JsonNode *level;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  body = cd_http_request_read_json (request, members_fields, G_N_ELEMENTS (members_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  map = json_object_get_object_member (body, "members");
  canonical = json_object_new ();
  json_object_iter_init_ordered (&iter, map);
  while (json_object_iter_next_ordered (&iter, &user, &level)) {
    g_autofree char *id = NULL;

    if (!cd_is_uuid (user) || !JSON_NODE_HOLDS_VALUE (level) ||
        json_node_get_value_type (level) != G_TYPE_INT64 || json_node_get_int (level) < 0 ||
        json_node_get_int (level) > 10) {
      error = g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                           "members: each member is a user id (UUID) with a level from 0 to 10, "
                           "e.g. {\"members\": {\"%s\": 2}}",
                           "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab");
      cd_http_respond_problem (request->msg, request->request_id, error);
      return;
    }
    /* one spelling of each id */
    id = g_ascii_strdown (user, -1);
    if (json_object_has_member (canonical, id)) {
      error =
          g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, "members.%s: listed twice", id);
      cd_http_respond_problem (request->msg, request->request_id, error);
      return;
    }
    json_object_set_int_member (canonical, id, json_node_get_int (level));
  }
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->data = (gpointer) &stranger;
  members_node = json_node_init_object (json_node_alloc (), canonical);
  members = cd_json_to_string (members_node);
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "queue_id"),
                             members,
                             call->caller->sub,
                             call->client_address,
                             call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH q AS (SELECT id, name FROM queues WHERE company_id = $1 AND id = $2),"
        " wanted AS (SELECT key::uuid AS user_id, value::int AS level"
        "  FROM jsonb_each_text($3::jsonb)),"
        " strangers AS (SELECT w.user_id FROM wanted w WHERE NOT EXISTS"
        "  (SELECT 1 FROM users u WHERE u.id = w.user_id AND u.company_id = $1)),"
        " ok AS (SELECT 1 WHERE EXISTS (SELECT 1 FROM q) AND NOT EXISTS (SELECT 1 FROM strangers)),"
        " gone AS (DELETE FROM queue_members m WHERE m.queue_id = $2 AND EXISTS (SELECT 1 FROM ok)"
        "  AND m.user_id NOT IN (SELECT user_id FROM wanted) RETURNING 1),"
        " put AS (INSERT INTO queue_members (queue_id, company_id, user_id, level)"
        "  SELECT $2, $1, user_id, level FROM wanted WHERE EXISTS (SELECT 1 FROM ok)"
        "  ON CONFLICT (queue_id, user_id) DO UPDATE SET level = excluded.level RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT $1, $4::uuid, 'queue.members', q.name, $5, $6 FROM q, ok"
        "  RETURNING 1)"
        " SELECT (SELECT count(*) FROM q), (SELECT user_id::text FROM strangers LIMIT 1),"
        "  (SELECT count(*) FROM put) + (SELECT count(*) FROM gone) + (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_checked_change, call);
  }
}

/* ---- country queues ---- */

static const CdField countries_fields[] = {
  { "countries", CD_FIELD_OBJECT, TRUE, 0, CD_COUNTRY_QUEUES_MAX },
};

static void
handle_get_countries (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id") };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "SELECT jsonb_build_object('countries', coalesce((SELECT jsonb_object_agg(c.country,"
        "  c.queue_id ORDER BY c.country) FROM country_queues c WHERE c.company_id = $1), '{}'))"
        " FROM companies WHERE id = $1",
        params, 1, NULL, cd_api_call_on_query, call);
  }
}

/* Replaces the whole map; each queue must be the company's. */
static void
handle_set_countries (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (JsonObject) canonical = NULL;
  g_autoptr (JsonNode) map_node = NULL;
  g_autofree char *map = NULL;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  body = cd_http_request_read_json (request, countries_fields, G_N_ELEMENTS (countries_fields),
                                    &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  canonical = cd_country_queues_parse (json_object_get_object_member (body, "countries"), &error);
  if (canonical == NULL) {
    g_autoptr (GError) invalid =
        g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, error->message);
    cd_http_respond_problem (request->msg, request->request_id, invalid);
    return;
  }
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->data = (gpointer) &foreign_queue;
  map_node = json_node_init_object (json_node_alloc (), canonical);
  map = cd_json_to_string (map_node);
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"), map, call->caller->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH co AS (SELECT id FROM companies WHERE id = $1),"
        " wanted AS (SELECT key AS country, value::uuid AS queue_id"
        "  FROM jsonb_each_text($2::jsonb)),"
        " strangers AS (SELECT w.country, w.queue_id FROM wanted w WHERE NOT EXISTS"
        "  (SELECT 1 FROM queues q WHERE q.id = w.queue_id AND q.company_id = $1)),"
        " ok AS (SELECT 1 WHERE EXISTS (SELECT 1 FROM co) AND NOT EXISTS (SELECT 1 FROM "
        "strangers)),"
        " gone AS (DELETE FROM country_queues c WHERE c.company_id = $1"
        "  AND EXISTS (SELECT 1 FROM ok) AND c.country NOT IN (SELECT country FROM wanted)"
        "  RETURNING 1),"
        " put AS (INSERT INTO country_queues (company_id, country, queue_id)"
        "  SELECT $1, country, queue_id FROM wanted WHERE EXISTS (SELECT 1 FROM ok)"
        "  ON CONFLICT (company_id, country) DO UPDATE SET queue_id = excluded.queue_id"
        "  RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT $1, $3::uuid, 'company.country_queues',"
        "  (SELECT count(*) FROM wanted) || ' countries', $4, $5 FROM ok RETURNING 1)"
        " SELECT (SELECT count(*) FROM co),"
        "  (SELECT country || ': no queue ' || queue_id || ' in this company' FROM strangers"
        "   ORDER BY country LIMIT 1),"
        "  (SELECT count(*) FROM put) + (SELECT count(*) FROM gone) + (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_checked_change, call);
  }
}

/* ---- simulate ---- */

static const CdField simulate_fields[] = {
  { "language", CD_FIELD_STRING, FALSE, 2, 20 },
  { "country", CD_FIELD_STRING, FALSE, 2, 2 },
  { "priority", CD_FIELD_INT, FALSE, 0, 100 },
  { "wait_s", CD_FIELD_INT, FALSE, 0, 86400 },
};

typedef struct {
  CdApi *api;
  const char *company_id;
} MemberLookup;

static gboolean
lookup_member (const char *agent_id, CdMemberNow *now, gpointer user_data)
{
  MemberLookup *l = user_data;

  return l->api->lookup_member &&
         l->api->lookup_member (l->api->lookup_member_data, l->company_id, agent_id, now);
}

/* (roster JSON): the decision for the call the body describes */
static void
on_roster (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (CdQueueRoster) roster = NULL;
  g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
  g_autoptr (GDateTime) wall = g_date_time_new_now_utc ();
  g_autoptr (JsonNode) node = NULL;
  g_autofree char *country = NULL;
  g_autofree char *language = NULL;
  MemberLookup lookup = { call->api, g_hash_table_lookup (call->params, "id") };
  CdRuleCall rule_call = { 0 };
  JsonObject *answer;
  guint cursor = 0; /* a simulation never moves round-robin on */

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such queue");
    cd_api_call_respond_error (call, error);
    return;
  }
  roster = cd_queue_roster_parse (PQgetvalue (res, 0, 0), PQgetlength (res, 0, 0), &error);
  if (roster == NULL) {
    /* stored definitions were checked when saved: this is the daemon's fault */
    g_warning ("queue %s cannot be routed: %s",
               (const char *) g_hash_table_lookup (call->params, "queue_id"), error->message);
    error = g_error_new_literal (CD_HTTP_ERROR, CD_HTTP_ERROR_INTERNAL,
                                 "the queue's stored definition cannot be read");
    cd_api_call_respond_error (call, error);
    return;
  }
  if (json_object_has_member (call->body, "country"))
    country = g_ascii_strup (json_object_get_string_member (call->body, "country"), -1);
  if (json_object_has_member (call->body, "language"))
    language = g_ascii_strdown (json_object_get_string_member (call->body, "language"), -1);
  rule_call.country = country;
  rule_call.language = language;
  rule_call.priority = (int) json_object_get_int_member_with_default (call->body, "priority", 0);
  rule_call.wait_s = json_object_get_int_member_with_default (call->body, "wait_s", 0);
  answer = cd_queue_roster_decide (roster, lookup_member, &lookup, &rule_call, &cursor,
                                   g_random_int (), g_get_monotonic_time (), chosen);
  json_object_set_boolean_member (
      answer, "open",
      roster->spec->business_hours == NULL ||
          cd_business_hours_is_open (roster->spec->business_hours, wall));
  node = json_node_init_object (json_node_alloc (), answer);
  json_object_unref (answer);
  cd_api_call_respond_json (call, 200, node);
}

static void
handle_simulate (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  body =
      cd_http_request_read_json (request, simulate_fields, G_N_ELEMENTS (simulate_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->body = g_steal_pointer (&body);
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "queue_id"), NULL };
    cd_pg_pool_query_scoped_async (api->pool, &scope, cd_queue_roster_sql, params,
                                   G_N_ELEMENTS (params), NULL, on_roster, call);
  }
}

gboolean
cd_api_queues_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/queues", handle_list, api,
                                   error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/companies/{id}/queues", handle_create,
                                   api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/queues/{queue_id}",
                                   handle_get, api, error) &&
         cd_http_server_add_route (server, "PUT", "/api/v1/companies/{id}/queues/{queue_id}",
                                   handle_replace, api, error) &&
         cd_http_server_add_route (server, "DELETE", "/api/v1/companies/{id}/queues/{queue_id}",
                                   handle_delete, api, error) &&
         cd_http_server_add_route (server, "PUT",
                                   "/api/v1/companies/{id}/queues/{queue_id}/members",
                                   handle_set_members, api, error) &&
         cd_http_server_add_route (server, "POST",
                                   "/api/v1/companies/{id}/queues/{queue_id}/simulate",
                                   handle_simulate, api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/country-queues",
                                   handle_get_countries, api, error) &&
         cd_http_server_add_route (server, "PUT", "/api/v1/companies/{id}/country-queues",
                                   handle_set_countries, api, error);
}
