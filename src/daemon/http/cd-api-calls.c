/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's calls, read: the list (by state, agent and time, newest first)
 * and one call with its timeline. The daemon writes them (CdCallStore). */

#define G_LOG_DOMAIN "calldocker-http"

#include "cd-api.h"

#include "cd-http-problem.h"

#include <string.h>

/* What a call looks like in answers. duration_s: answered until ended. */
#define CALL_MEMBERS                                                                    \
  "'id', c.id, 'company_id', c.company_id, 'visitor_id', c.visitor_id, 'page', c.page," \
  " 'agent_id', c.agent_id, 'queue_id', c.queue_id, 'state', c.state,"                  \
  " 'created_at', c.created_at, 'answered_at', c.answered_at, 'ended_at', c.ended_at,"  \
  " 'end_reason', c.end_reason, 'quality', c.quality,"                                  \
  " 'duration_s', round(extract(epoch FROM c.ended_at - c.answered_at), 3)"
#define CALL_JSON "json_build_object(" CALL_MEMBERS ")"

/* the most events one answer carries */
#define MAX_EVENTS "1000"

typedef enum {
  PARAM_STATE,
  PARAM_UUID,
  PARAM_TIME,
  PARAM_PAGE, /* read by cd_api_page_params() */
} ParamKind;

typedef struct {
  const char *name;
  ParamKind kind;
} QueryParam;

/* The list's query parameters; any other is refused. */
static const QueryParam list_params[] = {
  { "state", PARAM_STATE }, { "agent_id", PARAM_UUID }, { "since", PARAM_TIME },
  { "until", PARAM_TIME },  { "limit", PARAM_PAGE },    { "cursor", PARAM_PAGE },
};

static const char *const call_states[] = { "new",       "ivr",   "queued", "ringing",
                                           "connected", "ended", NULL };

/* The list's query, parsed. */
typedef struct {
  const char *state;    /* borrowed from the query */
  const char *agent_id; /* borrowed */
  char *since;          /* UTC, as PostgreSQL reads it */
  char *until;
  guint limit;
  char *cursor_time;
  char *cursor_id;
} CallFilter;

static void
call_filter_clear (CallFilter *filter)
{
  g_clear_pointer (&filter->since, g_free);
  g_clear_pointer (&filter->until, g_free);
  g_clear_pointer (&filter->cursor_time, g_free);
  g_clear_pointer (&filter->cursor_id, g_free);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (CallFilter, call_filter_clear)

static gboolean
digits (const char *p, gsize n)
{
  for (gsize i = 0; i < n; i++) {
    if (!g_ascii_isdigit (p[i]))
      return FALSE;
  }
  return TRUE;
}

/* An RFC 3339 date-time (2026-01-31T09:00:00Z, 2026-01-31T10:00:00.25+01:00).
 * Returns: (transfer full) (nullable): the time in UTC with microseconds */
static char *
rfc3339_to_utc (const char *text)
{
  g_autofree char *upper = NULL;
  g_autoptr (GDateTime) t = NULL;
  g_autoptr (GDateTime) utc = NULL;
  const char *p;
  gsize n = strlen (text);

  if (n < 20 || n > 40)
    return NULL;
  upper = g_ascii_strup (text, -1);
  p = upper;
  if (!digits (p, 4) || p[4] != '-' || !digits (p + 5, 2) || p[7] != '-' || !digits (p + 8, 2) ||
      p[10] != 'T' || !digits (p + 11, 2) || p[13] != ':' || !digits (p + 14, 2) || p[16] != ':' ||
      !digits (p + 17, 2))
    return NULL;
  p += 19;
  if (*p == '.') {
    p++;
    if (!g_ascii_isdigit (*p))
      return NULL;
    while (g_ascii_isdigit (*p))
      p++;
  }
  if (!g_str_equal (p, "Z") && !((p[0] == '+' || p[0] == '-') && strlen (p) == 6 &&
                                 digits (p + 1, 2) && p[3] == ':' && digits (p + 4, 2)))
    return NULL;
  t = g_date_time_new_from_iso8601 (upper, NULL);
  if (t == NULL)
    return NULL;
  utc = g_date_time_to_utc (t);
  return g_date_time_format (utc, "%Y-%m-%dT%H:%M:%S.%fZ");
}

static gboolean
query_error (GError **error, const char *name, const char *problem)
{
  g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD, "query parameter '%s': %s", name,
               problem);
  return FALSE;
}

static const QueryParam *
find_param (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (list_params); i++) {
    if (g_str_equal (list_params[i].name, name))
      return &list_params[i];
  }
  return NULL;
}

/* Every parameter checked against list_params before the handler runs. */
static gboolean
parse_list_query (CdHttpRequest *request, CallFilter *filter, GError **error)
{
  GHashTableIter iter;
  gpointer key, value;

  if (request->query) {
    g_hash_table_iter_init (&iter, request->query);
    while (g_hash_table_iter_next (&iter, &key, &value)) {
      const QueryParam *param = find_param (key);
      const char *text = value ? value : "";
      char **time_slot;

      if (param == NULL) {
        g_autofree char *shown = g_utf8_make_valid (key, MIN (strlen (key), 40));
        g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
                     "query parameter '%s': not known here; use state, agent_id, since, until, "
                     "limit or cursor",
                     shown);
        return FALSE;
      }
      switch (param->kind) {
      case PARAM_STATE:
        if (!g_strv_contains (call_states, text))
          return query_error (error, param->name,
                              "one of new, ivr, queued, ringing, connected, ended");
        filter->state = text;
        break;
      case PARAM_UUID:
        if (!cd_is_uuid (text))
          return query_error (error, param->name, "must be a UUID");
        filter->agent_id = text;
        break;
      case PARAM_TIME:
        time_slot = g_str_equal (param->name, "since") ? &filter->since : &filter->until;
        *time_slot = rfc3339_to_utc (text);
        if (*time_slot == NULL)
          return query_error (error, param->name,
                              "must be an RFC 3339 time like 2026-01-31T09:00:00Z");
        break;
      case PARAM_PAGE:
      default:
        break;
      }
    }
  }
  /* the canonical forms compare as text */
  if (filter->since && filter->until && strcmp (filter->since, filter->until) >= 0)
    return query_error (error, "until", "must be later than 'since'");
  return cd_api_page_params (request, &filter->limit, &filter->cursor_time, &filter->cursor_id,
                             error);
}

/* Agents see the calls they were the agent of; admins their company's. */
static const char *
only_agent (const CdJwtClaims *claims)
{
  return g_str_equal (claims->role, "agent") ? claims->sub : NULL;
}

static void
handle_list (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_api_guard (api, request, CD_ROLE_ANY, "company_id", &error);
  g_auto (CallFilter) filter = { 0 };
  g_autofree char *limit_text = NULL;
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  if (!parse_list_query (request, &filter, &error)) {
    cd_http_respond_problem (request->msg, request->request_id, error);
    return;
  }
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_PAGE, 200, NULL);
  limit_text = g_strdup_printf ("%u", filter.limit);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "company_id"),
                             filter.state,
                             filter.agent_id,
                             filter.since,
                             filter.until,
                             filter.cursor_time,
                             filter.cursor_id,
                             limit_text,
                             only_agent (claims) };
    /* newest first: keyset pagination on (created_at, id) descending; one
     * more row says whether a next page exists */
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "WITH page AS (SELECT c.created_at, c.id, " CALL_JSON " AS j FROM calls c"
        "  WHERE c.company_id = $1"
        "  AND ($2::text IS NULL OR c.state = $2)"
        "  AND ($3::uuid IS NULL OR c.agent_id = $3)"
        "  AND ($4::timestamptz IS NULL OR c.created_at >= $4)"
        "  AND ($5::timestamptz IS NULL OR c.created_at < $5)"
        "  AND ($6::timestamptz IS NULL OR (c.created_at, c.id) < ($6::timestamptz, $7::uuid))"
        "  AND ($9::uuid IS NULL OR c.agent_id = $9)"
        "  ORDER BY c.created_at DESC, c.id DESC LIMIT $8::int + 1)," CD_API_PAGE_NEWEST_FIRST (
            "$8") " WHERE EXISTS (SELECT 1 FROM companies WHERE id = $1)",
        params, 9, NULL, cd_api_call_on_query, call);
  }
}

static void
handle_get (CdHttpRequest *request, gpointer user_data)
{
  CdApi *api = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = cd_api_guard (api, request, CD_ROLE_ANY, "company_id", &error);
  const char *call_id = g_hash_table_lookup (request->params, "call_id");
  CdApiCall *call;
  CdPgScope scope;

  if (claims == NULL) {
    cd_api_respond_auth_error (request, error);
    return;
  }
  if (!cd_is_uuid (call_id)) {
    cd_http_respond_error (request->msg, request->request_id, CD_HTTP_ERROR_NOT_FOUND,
                           "no such call");
    return;
  }
  scope = cd_api_scope_of (claims);
  call = cd_api_call_new (api, request);
  cd_api_call_expect (call, CD_API_ANSWER_ROW, 200, NULL);
  {
    const char *params[] = { g_hash_table_lookup (request->params, "company_id"), call_id,
                             only_agent (claims) };
    /* the timeline in the order things happened */
    cd_pg_pool_query_scoped_async (
        api->pool, &scope,
        "SELECT json_build_object(" CALL_MEMBERS ","
        "  'events', coalesce((SELECT json_agg(json_build_object('at', e.at, 'kind', e.kind,"
        "   'detail', e.detail) ORDER BY e.at, e.id) FROM (SELECT * FROM call_events e"
        "   WHERE e.call_id = c.id ORDER BY e.at, e.id LIMIT " MAX_EVENTS ") e), '[]'),"
        "  'events_truncated', (SELECT count(*) > " MAX_EVENTS " FROM (SELECT 1 FROM call_events e"
        "   WHERE e.call_id = c.id LIMIT " MAX_EVENTS " + 1) x))"
        " FROM calls c WHERE c.company_id = $1 AND c.id = $2"
        " AND ($3::uuid IS NULL OR c.agent_id = $3)",
        params, 3, NULL, cd_api_call_on_query, call);
  }
}

gboolean
cd_api_calls_register (CdApi *api, CdHttpServer *server, GError **error)
{
  return cd_http_server_add_route (server, "GET", "/api/v1/companies/{company_id}/calls",
                                   handle_list, api, error) &&
         cd_http_server_add_route (server, "GET", "/api/v1/companies/{company_id}/calls/{call_id}",
                                   handle_get, api, error);
}
