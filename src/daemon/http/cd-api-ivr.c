/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's IVR flows, managed by its admins (and the super admin): list,
 * create, read, edit (a draft), publish (a new numbered version, live for
 * new calls), the versions, delete; and which flow each widget entry point
 * starts in. Definitions are checked by CdIvrFlow, the queues, agents and
 * prompts they name by the statement that stores them (docs/ivr.md). */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "../../common/cd-json.h"
#include "../ivr/cd-ivr-flow.h"
#include "cd-http-fields.h"
#include "cd-http-problem.h"

#include <string.h>

/* a flow without its definitions, and with them */
#define FLOW_SUMMARY                                                                          \
  "jsonb_build_object('id', f.id, 'company_id', f.company_id, 'name', f.name,"                \
  " 'has_draft', f.draft IS NOT NULL, 'draft_updated_at', f.draft_updated_at,"                \
  " 'live_version', f.live_version, 'entry_points', coalesce((SELECT jsonb_agg(e.name ORDER " \
  " BY e.name) FROM ivr_entry_points e WHERE e.flow_id = f.id), '[]'),"                       \
  " 'created_at', f.created_at, 'updated_at', f.updated_at)"
#define FLOW_JSON                                                                          \
  "(" FLOW_SUMMARY " || jsonb_build_object('draft', f.draft, 'live',"                      \
  " (SELECT v.definition FROM ivr_flow_versions v WHERE v.flow_id = f.id"                  \
  "  AND v.version = f.live_version), 'versions', (SELECT count(*) FROM ivr_flow_versions" \
  "  v WHERE v.flow_id = f.id)))"

/* The first of the references in parameter @refs (cd_ivr_flow_references)
 * that is not the company's ($1): (node, field, kind, id), in node order. */
#define MISSING(refs)                                                                           \
  "missing AS (SELECT r->>'node' AS node, r->>'field' AS field, r->>'kind' AS kind,"            \
  " r->>'id' AS id FROM jsonb_array_elements(" refs "::jsonb) WITH ORDINALITY AS e (r, n)"      \
  " WHERE NOT CASE r->>'kind'"                                                                  \
  "  WHEN 'queue' THEN EXISTS (SELECT 1 FROM queues q WHERE q.id = (r->>'id')::uuid"            \
  "   AND q.company_id = $1)"                                                                   \
  "  WHEN 'agent' THEN EXISTS (SELECT 1 FROM users u WHERE u.id = (r->>'id')::uuid"             \
  "   AND u.company_id = $1 AND u.active AND u.role IN ('agent', 'company_admin'))"             \
  "  ELSE EXISTS (SELECT 1 FROM prompts p WHERE p.id = (r->>'id')::uuid AND p.company_id = $1)" \
  " END ORDER BY n LIMIT 1)"
/* ... and the refusal it makes, as text (NULL if none) */
#define MISSING_TEXT                                                                       \
  "(SELECT 'node \"' || node || '\": ' || field || ': no ' || CASE kind WHEN 'agent' THEN" \
  " 'active agent' ELSE kind END || ' ' || id || ' in this company' FROM missing)"

static const CdField flow_fields[] = {
  { "name", CD_FIELD_STRING, TRUE, 1, 100 },
  { "flow", CD_FIELD_OBJECT, TRUE, 1, 2 },
};

static const CdField entry_points_fields[] = {
  { "entry_points", CD_FIELD_OBJECT, TRUE, 0, 100 },
};

static CdJwtClaims *
guard (CdApi *api, CdHttpRequest *request, gboolean with_flow)
{
  return cd_api_guard_company_admin (api, request, with_flow ? "flow_id" : NULL,
                                     "no such IVR flow");
}

/* ---- list and read ---- */

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, FALSE);

  if (claims)
    cd_api_list (user_data, request, claims,
                 "WITH page AS (SELECT f.created_at, f.id, " FLOW_SUMMARY " AS j FROM ivr_flows f"
                 "  WHERE f.company_id = $1 AND ($2::timestamptz IS NULL"
                 "  OR (f.created_at, f.id) > ($2::timestamptz, $3::uuid))"
                 "  ORDER BY f.created_at, f.id LIMIT $4::int + 1)," CD_API_PAGE_OLDEST_FIRST (
                     "$4") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)");
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdJwtClaims *claims = guard (user_data, request, TRUE);

  if (claims)
    cd_api_get_one (user_data, request, claims, "flow_id",
                    "SELECT " FLOW_JSON " FROM ivr_flows f"
                    " WHERE f.company_id = $1 AND f.id = $2");
}

static void
handle_versions (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "flow_id") };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "SELECT jsonb_build_object('live_version', f.live_version, 'items',"
        " coalesce((SELECT jsonb_agg(jsonb_build_object('version', v.version, 'published_at',"
        "  v.published_at, 'published_by', v.published_by) ORDER BY v.version DESC)"
        "  FROM ivr_flow_versions v WHERE v.flow_id = f.id), '[]'))"
        " FROM ivr_flows f WHERE f.company_id = $1 AND f.id = $2",
        params, 2, NULL, cd_api_call_on_query, call);
  }
}

static void
handle_version (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  const char *version = g_hash_table_lookup (request->params, "version");
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  guint64 number = 0;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  if (!g_ascii_string_to_unsigned (version, 10, 1, G_MAXINT32, &number, NULL)) {
    g_autoptr (GError) error = g_error_new_literal (
        CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND, "no such version (versions are numbered from 1)");
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  {
    g_autofree char *text = g_strdup_printf ("%" G_GUINT64_FORMAT, number);
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "flow_id"), text };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "SELECT jsonb_build_object('flow_id', v.flow_id, 'version', v.version, 'live',"
        " v.version IS NOT DISTINCT FROM f.live_version, 'flow', v.definition, 'published_at',"
        " v.published_at, 'published_by', v.published_by)"
        " FROM ivr_flow_versions v JOIN ivr_flows f ON f.id = v.flow_id"
        " WHERE f.company_id = $1 AND v.flow_id = $2 AND v.version = $3::int",
        params, 3, NULL, cd_api_call_on_query, call);
  }
}

/* ---- create and edit ---- */

typedef struct {
  char *name;
  char *definition; /* the flow, as JSON */
  char *refs;       /* cd_ivr_flow_references */
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

/* The flow checked through and through; NULL after answering the problem. */
static Definition *
read_definition (CdHttpRequest *request)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body =
      cd_http_request_read_json (request, flow_fields, G_N_ELEMENTS (flow_fields), &error);
  g_autoptr (CdIvrFlow) flow = NULL;
  JsonObject *object;
  Definition *d;

  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return NULL;
  }
  object = json_object_get_object_member (body, "flow");
  flow = cd_ivr_flow_parse (object, &error);
  if (flow == NULL) {
    g_autoptr (GError) invalid =
        g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, "flow: %s", error->message);
    cd_http_respond_problem (request->msg, request->request_id, invalid);
    return NULL;
  }
  d = g_new0 (Definition, 1);
  d->name = g_strdup (json_object_get_string_member (body, "name"));
  {
    g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), object);
    d->definition = cd_json_to_string (node);
  }
  d->refs = cd_ivr_flow_references (flow);
  return d;
}

/* (missing reference, flow JSON): the flow, or why not */
static void
on_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT)) {
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                   "an IVR flow with this name exists");
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 0)) {
    g_autofree char *detail = g_strdup_printf ("flow: %.500s", PQgetvalue (res, 0, 0));
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_INVALID_FIELD, detail);
    return;
  }
  if (PQntuples (res) == 1 && !PQgetisnull (res, 0, 1)) {
    g_autoptr (JsonNode) node = json_from_string (PQgetvalue (res, 0, 1), NULL);
    cd_api_call_respond_json (call, call->answer_status, node);
    return;
  }
  /* a create finds no company, an edit no flow */
  cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND,
                               call->answer_status == 201 ? "no such company" : "no such IVR flow");
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
      "WITH " MISSING (
          "$4") ","
                " f AS (INSERT INTO ivr_flows (company_id, name, draft, draft_updated_at)"
                "  SELECT $1, $2, $3::jsonb, now() WHERE EXISTS (SELECT 1 FROM companies WHERE id "
                "= $1)"
                "  AND NOT EXISTS (SELECT 1 FROM missing) RETURNING *),"
                " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, "
                "client_address,"
                "  request_id) SELECT company_id, $5::uuid, 'ivr_flow.created', name, $6, $7 FROM f"
                "  RETURNING 1)"
                " SELECT " MISSING_TEXT ", (SELECT (" FLOW_SUMMARY " || jsonb_build_object('draft',"
                "  f.draft, 'live', NULL, 'versions', 0))::text FROM f), (SELECT count(*) FROM a)",
      params, G_N_ELEMENTS (params), NULL, on_written, call);
}

static void
handle_create (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  Definition *d;
  CdApiCall *call;

  if (claims == NULL || (d = read_definition (request)) == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->answer_status = 201;
  call->data = d;
  call->data_free = definition_free;
  cd_api_call_idempotent (call, call->caller->sub, create_proceed);
}

/* An edit: the name, and the draft (the live version is untouched). */
static void
handle_replace (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  Definition *d;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL || (d = read_definition (request)) == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  call->answer_status = 200;
  call->data = d;
  call->data_free = definition_free;
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "flow_id"),
                             d->name,
                             d->definition,
                             d->refs,
                             call->caller->sub,
                             call->client_address,
                             call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH " MISSING ("$5") ","
                               " f AS (UPDATE ivr_flows SET name = $3, draft = $4::jsonb, "
                               "draft_updated_at = now(),"
                               "  updated_at = now() WHERE company_id = $1 AND id = $2"
                               "  AND NOT EXISTS (SELECT 1 FROM missing) RETURNING *),"
                               " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, "
                               "target, client_address,"
                               "  request_id) SELECT company_id, $6::uuid, 'ivr_flow.edited', "
                               "name, $7, $8 FROM f"
                               "  RETURNING 1)"
                               " SELECT " MISSING_TEXT ", (SELECT " FLOW_JSON "::text FROM f),"
                               "  (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_written, call);
  }
}

/* ---- publish ---- */

/* (flow found, its draft): checks the draft again (the queues, agents and
 * prompts it names may have gone since it was saved) and makes it the next
 * version, live from now on, unless the draft changed meanwhile. */
static void
on_published (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (cd_store_error_is_foreign_key (error)) {
      cd_api_call_respond_problem (
          call, CD_HTTP_ERROR_CONFLICT,
          "a queue or prompt the flow uses was deleted meanwhile; publish again");
      return;
    }
    if (g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT)) {
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                   "the flow was published meanwhile");
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "0")) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such IVR flow");
    return;
  }
  if (!PQgetisnull (res, 0, 1)) {
    g_autofree char *detail = g_strdup_printf ("flow: %.500s", PQgetvalue (res, 0, 1));
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_INVALID_FIELD, detail);
    return;
  }
  if (PQgetisnull (res, 0, 2)) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                 "the draft changed while it was being published; publish again");
    return;
  }
  {
    g_autoptr (JsonNode) node = json_from_string (PQgetvalue (res, 0, 2), NULL);
    cd_api_call_respond_json (call, 200, node);
  }
}

static void
on_draft_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (JsonObject) object = NULL;
  g_autoptr (CdIvrFlow) flow = NULL;
  g_autofree char *refs = NULL;
  CdPgScope scope;

  if (res == NULL) {
    cd_api_call_respond_error (call, error);
    return;
  }
  if (PQntuples (res) == 0) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such IVR flow");
    return;
  }
  if (PQgetisnull (res, 0, 0)) {
    cd_api_call_respond_problem (
        call, CD_HTTP_ERROR_CONFLICT,
        "nothing to publish: the flow has no draft (its last edit is live already)");
    return;
  }
  object = cd_json_parse_object (PQgetvalue (res, 0, 0), PQgetlength (res, 0, 0), NULL, &error);
  flow = object ? cd_ivr_flow_parse (object, &error) : NULL;
  if (flow == NULL) {
    /* stored drafts were checked when saved: a stricter daemon refuses it now */
    g_autofree char *detail =
        g_strdup_printf ("flow: %s (edit the draft, then publish)", error->message);
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_INVALID_FIELD, detail);
    return;
  }
  refs = cd_ivr_flow_references (flow);
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (call->params, "id"),
                             g_hash_table_lookup (call->params, "flow_id"),
                             PQgetvalue (res, 0, 0),
                             refs,
                             call->caller->sub,
                             call->client_address,
                             call->request_id };
    cd_pg_pool_query_scoped_async (
        call->api->pool, &scope,
        "WITH " MISSING (
            "$4") ","
                  " cur AS (SELECT * FROM ivr_flows WHERE company_id = $1 AND id = $2),"
                  " ok AS (SELECT * FROM cur WHERE draft = $3::jsonb AND NOT EXISTS (SELECT 1 FROM "
                  "missing)),"
                  " v AS (INSERT INTO ivr_flow_versions (flow_id, company_id, version, definition,"
                  "  published_by) SELECT ok.id, $1, coalesce((SELECT max(version) FROM "
                  "ivr_flow_versions"
                  "  WHERE flow_id = $2), 0) + 1, ok.draft, $5::uuid FROM ok RETURNING version),"
                  " f AS (UPDATE ivr_flows SET live_version = v.version, draft = NULL,"
                  "  draft_updated_at = NULL, updated_at = now() FROM v WHERE ivr_flows.id = $2"
                  "  AND ivr_flows.draft = $3::jsonb RETURNING ivr_flows.*),"
                  " refs AS (SELECT DISTINCT r->>'kind' AS kind, (r->>'id')::uuid AS id"
                  "  FROM jsonb_array_elements($4::jsonb) r WHERE EXISTS (SELECT 1 FROM v)),"
                  " qd AS (DELETE FROM ivr_flow_queues WHERE flow_id = $2 AND EXISTS (SELECT 1 "
                  "FROM v)"
                  "  AND queue_id NOT IN (SELECT id FROM refs WHERE kind = 'queue') RETURNING 1),"
                  " qi AS (INSERT INTO ivr_flow_queues (flow_id, company_id, queue_id)"
                  "  SELECT $2, $1, id FROM refs WHERE kind = 'queue' ON CONFLICT DO NOTHING "
                  "RETURNING 1),"
                  " pd AS (DELETE FROM ivr_flow_prompts WHERE flow_id = $2 AND EXISTS (SELECT 1 "
                  "FROM v)"
                  "  AND prompt_id NOT IN (SELECT id FROM refs WHERE kind = 'prompt') RETURNING 1),"
                  " pi AS (INSERT INTO ivr_flow_prompts (flow_id, company_id, prompt_id)"
                  "  SELECT $2, $1, id FROM refs WHERE kind = 'prompt' ON CONFLICT DO NOTHING"
                  "  RETURNING 1),"
                  " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, "
                  "client_address,"
                  "  request_id) SELECT company_id, $5::uuid, 'ivr_flow.published', name || ' v' ||"
                  "  live_version, $6, $7 FROM f RETURNING 1)"
                  " SELECT (SELECT count(*) FROM cur), " MISSING_TEXT ","
                  "  (SELECT (" FLOW_SUMMARY
                  " || jsonb_build_object('draft', NULL, 'live', $3::jsonb,"
                  "   'versions', f.live_version))::text FROM f),"
                  "  (SELECT count(*) FROM a) + (SELECT count(*) FROM qd) + (SELECT count(*) FROM "
                  "qi)"
                  "  + (SELECT count(*) FROM pd) + (SELECT count(*) FROM pi)",
        params, G_N_ELEMENTS (params), NULL, on_published, call);
  }
}

static void
handle_publish (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (CdJwtClaims) claims = guard (api, request, TRUE);
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "flow_id") };
    cd_pg_pool_query_scoped_async (api->pool, &scope,
                                   "SELECT draft FROM ivr_flows WHERE company_id = $1 AND id = $2",
                                   params, 2, NULL, on_draft_loaded, call);
  }
}

/* ---- delete ---- */

static void
on_deleted (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (cd_store_error_is_foreign_key (error)) {
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                   "a widget entry point was pointed at the flow meanwhile");
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "0")) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such IVR flow");
    return;
  }
  if (!PQgetisnull (res, 0, 1)) {
    g_autofree char *detail = g_strdup_printf (
        "widget calls start in this flow (entry points: %.300s); point them at another flow first",
        PQgetvalue (res, 0, 1));
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT, detail);
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
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"),
                             g_hash_table_lookup (request->params, "flow_id"), call->caller->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH target AS (SELECT id, name FROM ivr_flows WHERE company_id = $1 AND id = $2),"
        " used AS (SELECT name FROM ivr_entry_points WHERE company_id = $1 AND flow_id = $2),"
        " d AS (DELETE FROM ivr_flows WHERE id IN (SELECT id FROM target)"
        "  AND NOT EXISTS (SELECT 1 FROM used) RETURNING company_id, name),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT company_id, $3::uuid, 'ivr_flow.deleted', name, $4, $5 FROM d"
        "  RETURNING 1)"
        " SELECT (SELECT count(*) FROM target),"
        "  (SELECT string_agg(name, ', ' ORDER BY name) FROM used), (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_deleted, call);
  }
}

/* ---- entry points ---- */

static void
handle_get_entry_points (CdHttpRequest *request, gpointer user_data)
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
        "SELECT jsonb_build_object('entry_points', coalesce((SELECT jsonb_object_agg(e.name,"
        "  e.flow_id ORDER BY e.name) FROM ivr_entry_points e WHERE e.company_id = $1), '{}'))"
        " FROM companies WHERE id = $1",
        params, 1, NULL, cd_api_call_on_query, call);
  }
}

static gboolean
entry_point_name_is_valid (const char *name)
{
  gsize n = strlen (name);

  if (n < 1 || n > 40 || !(g_ascii_islower (name[0]) || g_ascii_isdigit (name[0])))
    return FALSE;
  for (gsize i = 1; i < n; i++)
    if (!(g_ascii_islower (name[i]) || g_ascii_isdigit (name[i]) || name[i] == '_' ||
          name[i] == '-'))
      return FALSE;
  return TRUE;
}

static void
on_entry_points_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  CdApiCall *call = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    if (cd_store_error_is_foreign_key (error)) {
      cd_api_call_respond_problem (call, CD_HTTP_ERROR_CONFLICT,
                                   "a flow named here was deleted meanwhile");
      return;
    }
    cd_api_call_respond_error (call, error);
    return;
  }
  if (g_str_equal (PQgetvalue (res, 0, 0), "0")) {
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_NOT_FOUND, "no such company");
    return;
  }
  if (!PQgetisnull (res, 0, 1)) {
    g_autofree char *detail = g_strdup_printf ("entry_points.%.300s", PQgetvalue (res, 0, 1));
    cd_api_call_respond_problem (call, CD_HTTP_ERROR_INVALID_FIELD, detail);
    return;
  }
  cd_api_call_respond_empty (call, 204);
}

/* Replaces the whole map; each flow must be the company's and published. */
static void
handle_set_entry_points (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) body = NULL;
  g_autoptr (JsonObject) canonical = json_object_new ();
  g_autoptr (JsonNode) map_node = NULL;
  g_autofree char *map = NULL;
  g_autoptr (CdJwtClaims) claims = guard (api, request, FALSE);
  JsonObjectIter iter;
  const char *name;
  JsonNode *value;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL)
    return;
  body = cd_http_request_read_json (request, entry_points_fields,
                                    G_N_ELEMENTS (entry_points_fields), &error);
  if (body == NULL) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  json_object_iter_init_ordered (&iter, json_object_get_object_member (body, "entry_points"));
  while (json_object_iter_next_ordered (&iter, &name, &value)) {
    const char *flow_id =
        JSON_NODE_HOLDS_VALUE (value) && json_node_get_value_type (value) == G_TYPE_STRING
            ? json_node_get_string (value)
            : NULL;

    if (!entry_point_name_is_valid (name)) {
      error = g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                           "entry_points: \"%.60s\" is not an entry point name (1 to 40 "
                           "lower-case letters, digits, _ or -, e.g. \"default\")",
                           name);
      cd_http_respond_problem (request->msg, request->request_id, error);
      return;
    }
    if (flow_id == NULL || !cd_is_uuid (flow_id)) {
      error = g_error_new (CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                           "entry_points.%s: an IVR flow's id (UUID)", name);
      cd_http_respond_problem (request->msg, request->request_id, error);
      return;
    }
    json_object_set_string_member (canonical, name, flow_id);
  }
  call = cd_api_call_start (api, request, g_steal_pointer (&claims));
  map_node = json_node_init_object (json_node_alloc (), canonical);
  map = cd_json_to_string (map_node);
  scope = cd_api_scope_of (call->caller);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "id"), map, call->caller->sub,
                             call->client_address, call->request_id };
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH co AS (SELECT id FROM companies WHERE id = $1),"
        " wanted AS (SELECT key AS name, value::uuid AS flow_id FROM jsonb_each_text($2::jsonb)),"
        " bad AS (SELECT w.name, w.flow_id, f.id AS found FROM wanted w LEFT JOIN ivr_flows f"
        "  ON f.id = w.flow_id AND f.company_id = $1 WHERE f.id IS NULL OR f.live_version IS NULL"
        "  ORDER BY w.name LIMIT 1),"
        " ok AS (SELECT 1 WHERE EXISTS (SELECT 1 FROM co) AND NOT EXISTS (SELECT 1 FROM bad)),"
        " gone AS (DELETE FROM ivr_entry_points e WHERE e.company_id = $1"
        "  AND EXISTS (SELECT 1 FROM ok) AND e.name NOT IN (SELECT name FROM wanted)"
        "  RETURNING 1),"
        " put AS (INSERT INTO ivr_entry_points (company_id, name, flow_id)"
        "  SELECT $1, name, flow_id FROM wanted WHERE EXISTS (SELECT 1 FROM ok)"
        "  ON CONFLICT (company_id, name) DO UPDATE SET flow_id = excluded.flow_id RETURNING 1),"
        " a AS (INSERT INTO audit_log (company_id, actor_user_id, action, target, client_address,"
        "  request_id) SELECT $1, $3::uuid, 'company.ivr_entry_points',"
        "  (SELECT count(*) FROM wanted) || ' entry points', $4, $5 FROM ok RETURNING 1)"
        " SELECT (SELECT count(*) FROM co),"
        "  (SELECT name || ': ' || CASE WHEN found IS NULL THEN 'no IVR flow ' || flow_id ||"
        "   ' in this company' ELSE 'the flow is not published yet (publish it first)' END"
        "   FROM bad),"
        "  (SELECT count(*) FROM put) + (SELECT count(*) FROM gone) + (SELECT count(*) FROM a)",
        params, G_N_ELEMENTS (params), NULL, on_entry_points_set, call);
  }
}

gboolean
cd_api_ivr_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/ivr-flows", handle_list,
                                   api, error) &&
         cd_http_server_add_route (server, "POST", "/api/v1/companies/{id}/ivr-flows",
                                   handle_create, api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/ivr-flows/{flow_id}",
                                   handle_get, api, error) &&
         cd_http_server_add_route (server, "PUT", "/api/v1/companies/{id}/ivr-flows/{flow_id}",
                                   handle_replace, api, error) &&
         cd_http_server_add_route (server, "DELETE", "/api/v1/companies/{id}/ivr-flows/{flow_id}",
                                   handle_delete, api, error) &&
         cd_http_server_add_route (server, "POST",
                                   "/api/v1/companies/{id}/ivr-flows/{flow_id}/publish",
                                   handle_publish, api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{id}/ivr-flows/{flow_id}/versions",
                                   handle_versions, api, error) &&
         cd_http_server_add_route (server, "GET",
                                   "/api/v1/companies/{id}/ivr-flows/{flow_id}/versions/{version}",
                                   handle_version, api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{id}/ivr-entry-points",
                                   handle_get_entry_points, api, error) &&
         cd_http_server_add_route (server, "PUT", "/api/v1/companies/{id}/ivr-entry-points",
                                   handle_set_entry_points, api, error);
}
