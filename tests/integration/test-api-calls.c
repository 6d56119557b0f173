/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The calls API against a running daemon: calls written by CdCallStore (as
 * the media code will) are listed newest first, filtered by state, agent
 * and time, paged, refused on bad filters, seen by agents only when theirs,
 * never by another company, and read one by one with their timeline. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "store/cd-call-store.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"
#define N_CALLS  12
/* 2026-03-01T10:00:00Z; call i starts i minutes later */
#define BASE_US   G_GINT64_CONSTANT (1772359200000000)
#define MINUTE_US G_GINT64_CONSTANT (60000000)

static char *state;
static CdTestDaemon *daemon_proc;
static char *company_a, *company_b;
static char *root_token, *admin_a, *admin_b, *agent1, *agent2;
static char *agent1_id, *agent2_id;
static char *calls[N_CALLS]; /* company A's */
static char *call_b;         /* company B's */

static guint
request (const char *path, const char *token, char **response)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, path + 1, NULL);
  g_autofree char *bearer = token ? g_strconcat ("Bearer ", token, NULL) : NULL;
  const char *headers[] = { "Authorization", bearer, NULL };

  return cd_test_http_request ("GET", url, NULL, NULL, 0, token ? headers : NULL, response, NULL);
}

static JsonObject *
get_json (const char *path, const char *token, guint want)
{
  g_autofree char *body = NULL;
  g_autoptr (GError) error = NULL;
  guint status = request (path, token, &body);
  JsonObject *o;

  if (status != want)
    g_error ("GET %s: answered %u, expected %u: %s", path, status, want, body ? body : "");
  o = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_assert_no_error (error);
  return o;
}

static char *
list_path (const char *company, const char *query)
{
  return g_strdup_printf ("/api/v1/companies/%s/calls%s%s", company, query ? "?" : "",
                          query ? query : "");
}

/* The ids of a page's items as call numbers ("11,10,9"), "b" for B's call. */
static char *
numbers_of (JsonObject *page)
{
  JsonArray *items = json_object_get_array_member (page, "items");
  g_autoptr (GString) out = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (items); i++) {
    const char *id = json_object_get_string_member (json_array_get_object_element (items, i), "id");
    int n = -1;
    for (int c = 0; c < N_CALLS; c++) {
      if (g_str_equal (id, calls[c]))
        n = c;
    }
    if (out->len)
      g_string_append_c (out, ',');
    if (n >= 0)
      g_string_append_printf (out, "%d", n);
    else
      g_string_append (out, g_str_equal (id, call_b) ? "b" : "?");
  }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* Lists with @query (already URL-encoded) as @token; every page, following
 * next_cursor. Returns the call numbers of all pages, pages split by '/'. */
static char *
list_all (const char *company, const char *query, const char *token)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autofree char *cursor = NULL;

  for (int pages = 0; pages < 20; pages++) {
    g_autofree char *q =
        cursor ? g_strdup_printf ("%s%scursor=%s", query ? query : "", query ? "&" : "", cursor)
               : g_strdup (query);
    g_autofree char *path = list_path (company, q);
    g_autoptr (JsonObject) page = get_json (path, token, 200);
    g_autofree char *numbers = numbers_of (page);
    JsonNode *next = json_object_get_member (page, "next_cursor");

    g_assert_nonnull (next);
    if (out->len)
      g_string_append_c (out, '/');
    g_string_append (out, numbers);
    g_clear_pointer (&cursor, g_free);
    if (JSON_NODE_HOLDS_NULL (next))
      return g_string_free (g_steal_pointer (&out), FALSE);
    cursor = g_uri_escape_string (json_node_get_string (next), NULL, TRUE);
  }
  g_error ("more than 20 pages");
}

static gint64
time_us (JsonObject *o, const char *member)
{
  g_autoptr (GDateTime) t =
      g_date_time_new_from_iso8601 (json_object_get_string_member (o, member), NULL);

  g_assert_nonnull (t);
  return g_date_time_to_unix (t) * G_USEC_PER_SEC + g_date_time_get_microsecond (t);
}

static gboolean
is_null (JsonObject *o, const char *member)
{
  g_assert_true (json_object_has_member (o, member));
  return JSON_NODE_HOLDS_NULL (json_object_get_member (o, member));
}

static void
test_list_as_admin (void)
{
  g_autofree char *path = list_path (company_a, NULL);
  g_autoptr (JsonObject) page = get_json (path, admin_a, 200);
  g_autofree char *numbers = numbers_of (page);
  JsonArray *items = json_object_get_array_member (page, "items");
  JsonObject *first = json_array_get_object_element (items, N_CALLS - 1);   /* call 0 */
  JsonObject *ringing = json_array_get_object_element (items, N_CALLS - 2); /* call 1 */
  JsonObject *talking = json_array_get_object_element (items, N_CALLS - 4); /* call 3 */
  g_autofree char *quality = cd_json_to_string (json_object_get_member (first, "quality"));

  g_assert_cmpstr (numbers, ==, "11,10,9,8,7,6,5,4,3,2,1,0");
  g_assert_true (is_null (page, "next_cursor"));

  /* every member of a call, and nothing else (no visitor address) */
  g_assert_cmpuint (json_object_get_size (first), ==, 13);
  g_assert_false (json_object_has_member (first, "visitor_address"));
  g_assert_cmpstr (json_object_get_string_member (first, "id"), ==, calls[0]);
  g_assert_cmpstr (json_object_get_string_member (first, "company_id"), ==, company_a);
  g_assert_cmpstr (json_object_get_string_member (first, "visitor_id"), ==, "visitor-0");
  g_assert_cmpstr (json_object_get_string_member (first, "page"), ==, "https://alpha.test/page-0");
  g_assert_cmpstr (json_object_get_string_member (first, "agent_id"), ==, agent1_id);
  g_assert_true (is_null (first, "queue_id"));
  g_assert_cmpstr (json_object_get_string_member (first, "state"), ==, "ended");
  g_assert_cmpint (time_us (first, "created_at"), ==, BASE_US);
  g_assert_cmpint (time_us (first, "answered_at"), ==, BASE_US + 30 * G_USEC_PER_SEC);
  g_assert_cmpint (time_us (first, "ended_at"), ==, BASE_US + 90500000);
  g_assert_cmpstr (json_object_get_string_member (first, "end_reason"), ==, "hangup");
  g_assert_cmpstr (quality, ==, "{\"mos\":4.5}");
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (first, "duration_s"), 60.5, 1e-9);

  /* never answered, not ended */
  g_assert_cmpstr (json_object_get_string_member (ringing, "state"), ==, "ringing");
  g_assert_cmpstr (json_object_get_string_member (ringing, "agent_id"), ==, agent2_id);
  g_assert_true (is_null (ringing, "answered_at"));
  g_assert_true (is_null (ringing, "ended_at"));
  g_assert_true (is_null (ringing, "end_reason"));
  g_assert_true (is_null (ringing, "quality"));
  g_assert_true (is_null (ringing, "duration_s"));
  /* answered, still talking: no duration yet */
  g_assert_cmpstr (json_object_get_string_member (talking, "state"), ==, "connected");
  g_assert_cmpint (time_us (talking, "answered_at"), ==,
                   BASE_US + 3 * MINUTE_US + 10 * G_USEC_PER_SEC);
  g_assert_true (is_null (talking, "duration_s"));

  /* the super admin sees any company's */
  {
    g_autofree char *root_a = list_all (company_a, NULL, root_token);
    g_autofree char *root_b = list_all (company_b, NULL, root_token);
    g_autofree char *admin_b_sees = list_all (company_b, NULL, admin_b);
    g_assert_cmpstr (root_a, ==, "11,10,9,8,7,6,5,4,3,2,1,0");
    g_assert_cmpstr (root_b, ==, "b");
    g_assert_cmpstr (admin_b_sees, ==, "b");
  }
}

static void
test_filters (void)
{
  g_autofree char *unknown_agent = g_uuid_string_random ();
  g_autofree char *by_unknown = g_strdup_printf ("agent_id=%s", unknown_agent);
  g_autofree char *by_agent2 = g_strdup_printf ("agent_id=%s", agent2_id);
  g_autofree char *ended_by_agent1 = g_strdup_printf ("state=ended&agent_id=%s", agent1_id);
  const struct {
    const char *query;
    const char *numbers;
  } cases[] = {
    { "state=ended", "10,8,6,4,2,0" },
    { "state=queued", "5" },
    { "state=ringing", "9,1" },
    { "state=connected", "11,7,3" },
    { "state=ivr", "" },
    { by_agent2, "10,7,4,1" },
    { by_unknown, "" },
    { ended_by_agent1, "6,0" },
    /* since: from that time on; until: up to, not including */
    { "since=2026-03-01T10:05:00Z", "11,10,9,8,7,6,5" },
    { "until=2026-03-01T10:03:00Z", "2,1,0" },
    { "since=2026-03-01T10:02:00Z&until=2026-03-01T10:04:00.000001Z", "4,3,2" },
    /* the same instants in another offset, fractions and lower case */
    { "since=2026-03-01T11:05:00%2B01:00", "11,10,9,8,7,6,5" },
    { "since=2026-03-01t10:04:59.999999z&until=2026-03-01T05:07:00-05:00", "6,5" },
    { "since=2026-03-01T10:11:00.000001Z", "" },
    { "state=ended&since=2026-03-01T10:03:00Z&until=2026-03-01T10:09:00Z", "8,6,4" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *numbers = list_all (company_a, cases[i].query, admin_a);
    g_test_message ("?%s: %s", cases[i].query, numbers);
    g_assert_cmpstr (numbers, ==, cases[i].numbers);
  }
}

static void
test_pagination (void)
{
  g_autofree char *by_five = list_all (company_a, "limit=5", admin_a);
  g_autofree char *ended_by_four = list_all (company_a, "state=ended&limit=4", admin_a);
  g_autofree char *by_one = list_all (company_a, "limit=1&since=2026-03-01T10:09:00Z", admin_a);
  g_autofree char *agent_pages = list_all (company_a, "limit=3", agent1);
  g_autofree char *exact = list_all (company_a, "limit=6&state=ended", admin_a);

  g_assert_cmpstr (by_five, ==, "11,10,9,8,7/6,5,4,3,2/1,0");
  g_assert_cmpstr (ended_by_four, ==, "10,8,6,4/2,0");
  g_assert_cmpstr (by_one, ==, "11/10/9");
  g_assert_cmpstr (agent_pages, ==, "9,6,3/0");
  /* a full last page says there is no next one */
  g_assert_cmpstr (exact, ==, "10,8,6,4,2,0");
}

static void
test_bad_filters (void)
{
  const struct {
    const char *query;
    const char *named;
  } cases[] = {
    { "state=bogus", "'state'" },
    { "state=", "'state'" },
    { "state=ENDED", "'state'" },
    { "agent_id=nope", "'agent_id'" },
    { "agent_id=00000000-0000-0000-0000-00000000000", "'agent_id'" },
    { "since=yesterday", "'since'" },
    { "since=2026-03-01", "'since'" },
    { "since=2026-03-01T10:00:00", "'since'" },        /* no offset */
    { "since=2026-03-01%2010:00:00Z", "'since'" },     /* a space */
    { "until=2026-13-01T00:00:00Z", "'until'" },       /* no such month */
    { "until=2026-03-01T10:00:00%2B1:00", "'until'" }, /* short offset */
    { "since=2026-03-01T10:05:00Z&until=2026-03-01T10:05:00Z", "'until'" },
    { "since=2026-03-01T10:06:00Z&until=2026-03-01T10:05:00Z", "'until'" },
    { "limit=0", "'limit'" },
    { "limit=101", "'limit'" },
    { "cursor=garbage", "'cursor'" },
    { "sort=asc", "'sort'" },
    { "state=ended&States=ended", "'States'" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *path = list_path (company_a, cases[i].query);
    g_autofree char *body = NULL;
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonObject) problem = NULL;
    guint status = request (path, admin_a, &body);
    const char *detail;

    g_test_message ("?%s: %u %s", cases[i].query, status, body);
    g_assert_cmpuint (status, ==, 422);
    problem = cd_json_parse_object (body, strlen (body), NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpstr (json_object_get_string_member (problem, "type"), ==,
                     "urn:calldocker:problem:invalid-field");
    g_assert_cmpint (json_object_get_int_member (problem, "status"), ==, 422);
    detail = json_object_get_string_member (problem, "detail");
    g_assert_true (g_str_has_prefix (detail, "query parameter "));
    g_assert_nonnull (strstr (detail, cases[i].named));
  }
}

static void
test_agent_sees_own (void)
{
  g_autofree char *mine = list_all (company_a, NULL, agent1);
  g_autofree char *theirs = g_strdup_printf ("agent_id=%s", agent2_id);
  g_autofree char *filtered = list_all (company_a, theirs, agent1);
  g_autofree char *agent2_sees = list_all (company_a, "state=connected", agent2);
  g_autofree char *own_call =
      g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, calls[3]);
  g_autofree char *other_call =
      g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, calls[1]);
  g_autofree char *nobodys_call =
      g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, calls[2]);
  g_autofree char *b_list = list_path (company_b, NULL);
  g_autoptr (JsonObject) own = get_json (own_call, agent1, 200);
  g_autoptr (JsonObject) other = get_json (other_call, agent1, 404);
  g_autoptr (JsonObject) nobodys = get_json (nobodys_call, agent1, 404);
  g_autoptr (JsonObject) b = get_json (b_list, agent1, 404);

  g_assert_cmpstr (mine, ==, "9,6,3,0");
  g_assert_cmpstr (filtered, ==, "");
  g_assert_cmpstr (agent2_sees, ==, "7");
  g_assert_cmpstr (json_object_get_string_member (own, "id"), ==, calls[3]);
  g_assert_cmpstr (json_object_get_string_member (other, "type"), ==,
                   "urn:calldocker:problem:not-found");
  g_assert_null (strstr (json_object_get_string_member (other, "detail"), calls[1]));
  g_assert_cmpint (json_object_get_int_member (nobodys, "status"), ==, 404);
  g_assert_cmpint (json_object_get_int_member (b, "status"), ==, 404);
}

static void
test_other_company (void)
{
  g_autofree char *a_list = list_path (company_a, NULL);
  g_autofree char *a_call = g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, calls[0]);
  g_autofree char *a_call_via_b =
      g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_b, calls[0]);
  g_autofree char *b_call_via_a =
      g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, call_b);
  g_autofree char *unknown_company = g_uuid_string_random ();
  g_autofree char *unknown_list = list_path (unknown_company, NULL);
  g_autofree char *not_uuid = g_strdup_printf ("/api/v1/companies/%s/calls/42", company_a);
  g_autofree char *unknown_call =
      g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, unknown_company);
  const struct {
    const char *path;
    const char *token;
    guint status;
  } cases[] = {
    { a_list, admin_b, 404 },
    { a_call, admin_b, 404 },
    { a_call_via_b, admin_b, 404 },
    { a_call_via_b, root_token, 404 },
    { b_call_via_a, admin_a, 404 },
    { b_call_via_a, root_token, 404 },
    { unknown_list, root_token, 404 },
    { not_uuid, admin_a, 404 },
    { unknown_call, admin_a, 404 },
    { a_list, NULL, 401 },
    { a_call, NULL, 401 },
    { a_list, "not.a.token", 401 },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *body = NULL;
    g_autoptr (JsonObject) problem = NULL;
    g_autoptr (GError) error = NULL;
    guint status = request (cases[i].path, cases[i].token, &body);

    g_test_message ("%s: %u %s", cases[i].path, status, body);
    g_assert_cmpuint (status, ==, cases[i].status);
    problem = cd_json_parse_object (body, strlen (body), NULL, &error);
    g_assert_no_error (error);
    g_assert_cmpint (json_object_get_int_member (problem, "status"), ==, cases[i].status);
    g_assert_true (g_str_has_prefix (json_object_get_string_member (problem, "type"),
                                     "urn:calldocker:problem:"));
    /* nothing of A's calls shows */
    g_assert_null (strstr (body, "visitor-"));
    g_assert_null (strstr (body, "alpha.test"));
  }
}

static void
test_detail_with_timeline (void)
{
  g_autofree char *path = g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_a, calls[0]);
  g_autoptr (JsonObject) call = get_json (path, admin_a, 200);
  g_autoptr (JsonObject) as_root = get_json (path, root_token, 200);
  JsonArray *events = json_object_get_array_member (call, "events");
  g_autofree char *agent_detail = g_strdup_printf ("{\"agent_id\":\"%s\"}", agent1_id);
  const struct {
    gint64 at_ms; /* after the call's start */
    const char *kind;
    const char *detail;
  } expected[] = {
    { 0, "state", "{\"state\":\"new\"}" },
    { 200, "media", "{\"rtt_ms\":42}" }, /* recorded last, shown in its place */
    { 500, "state", "{\"flow\":\"main\",\"state\":\"ivr\"}" },
    { 800, "dtmf", "{\"digit\":\"1\"}" },
    { 1000, "state", "{\"state\":\"queued\",\"position\":1}" },
    { 2000, "agent", agent_detail },
    { 2000, "state", "{\"state\":\"ringing\"}" },
    { 30000, "state", "{\"state\":\"connected\"}" },
    { 40000, "chat", "{\"from\":\"agent\",\"text\":\"Hello!\"}" },
    { 90500, "state", "{\"state\":\"ended\",\"reason\":\"hangup\"}" },
  };

  g_assert_cmpstr (json_object_get_string_member (call, "id"), ==, calls[0]);
  g_assert_cmpstr (json_object_get_string_member (call, "state"), ==, "ended");
  g_assert_cmpstr (json_object_get_string_member (call, "visitor_id"), ==, "visitor-0");
  g_assert_cmpfloat_with_epsilon (json_object_get_double_member (call, "duration_s"), 60.5, 1e-9);
  g_assert_false (json_object_get_boolean_member (call, "events_truncated"));
  g_assert_cmpuint (json_array_get_length (events), ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    JsonObject *e = json_array_get_object_element (events, i);
    g_autofree char *detail = cd_json_to_string (json_object_get_member (e, "detail"));

    g_assert_cmpuint (json_object_get_size (e), ==, 3);
    g_assert_cmpint (time_us (e, "at"), ==, BASE_US + expected[i].at_ms * 1000);
    g_assert_cmpstr (json_object_get_string_member (e, "kind"), ==, expected[i].kind);
    g_assert_cmpstr (detail, ==, expected[i].detail);
  }
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (as_root, "events")), ==,
                    G_N_ELEMENTS (expected));

  /* a call without events beyond its start */
  {
    g_autofree char *b_path = g_strdup_printf ("/api/v1/companies/%s/calls/%s", company_b, call_b);
    g_autoptr (JsonObject) b = get_json (b_path, admin_b, 200);
    JsonArray *b_events = json_object_get_array_member (b, "events");
    g_assert_cmpuint (json_array_get_length (b_events), ==, 1);
    g_assert_cmpstr (json_object_get_string_member (b, "state"), ==, "new");
    g_assert_true (is_null (b, "agent_id"));
    g_assert_true (is_null (b, "page"));
  }
}

/* ---- set-up: the daemon, two companies, two agents, calls ---- */

static JsonObject *
post_json (const char *path, const char *token, const char *json, guint want)
{
  g_autofree char *url = g_strconcat (daemon_proc->base_url, path + 1, NULL);
  g_autofree char *bearer = token ? g_strconcat ("Bearer ", token, NULL) : NULL;
  const char *headers[] = { "Authorization", bearer, NULL };
  g_autofree char *body = NULL;
  g_autoptr (GError) error = NULL;
  guint status = cd_test_http_request ("POST", url, "application/json", json, strlen (json),
                                       token ? headers : NULL, &body, NULL);
  JsonObject *o;

  if (status != want)
    g_error ("set-up %s: %u %s", path, status, body);
  o = cd_json_parse_object (body, strlen (body), NULL, &error);
  g_assert_no_error (error);
  return o;
}

static char *
login_token (const char *email)
{
  g_autofree char *json =
      g_strdup_printf ("{\"email\":\"%s\",\"password\":\"%s\"}", email, PASSWORD);
  g_autoptr (JsonObject) o = post_json ("/api/v1/auth/login", NULL, json, 200);

  return g_strdup (json_object_get_string_member (o, "access_token"));
}

static char *
signup (const char *name, const char *email)
{
  g_autofree char *json = g_strdup_printf ("{\"company_name\":\"%s\",\"admin_name\":\"Admin\","
                                           "\"email\":\"%s\",\"password\":\"%s\"}",
                                           name, email, PASSWORD);
  g_autoptr (JsonObject) o = post_json ("/api/v1/companies", NULL, json, 201);
  char *id =
      g_strdup (json_object_get_string_member (json_object_get_object_member (o, "company"), "id"));
  g_autofree char *approve = g_strdup_printf ("/api/v1/admin/companies/%s/approve", id);
  g_autoptr (JsonObject) approved = post_json (approve, root_token, "{}", 200);

  g_assert_cmpstr (json_object_get_string_member (approved, "status"), ==, "approved");
  return id;
}

static char *
add_agent (const char *email)
{
  g_autofree char *path = g_strdup_printf ("/api/v1/companies/%s/users", company_a);
  g_autofree char *json = g_strdup_printf ("{\"email\":\"%s\",\"display_name\":\"Agent\","
                                           "\"password\":\"" PASSWORD "\",\"role\":\"agent\"}",
                                           email);
  g_autoptr (JsonObject) o = post_json (path, admin_a, json, 201);

  return g_strdup (json_object_get_string_member (o, "id"));
}

static JsonObject *
object_from (const char *json)
{
  g_autoptr (JsonNode) node = json_from_string (json, NULL);

  return json_object_ref (json_node_get_object (node));
}

/* Writes the calls as the media code will: through CdCallStore. */
static void
record_calls (void)
{
  g_autofree char *conninfo =
      g_strdup_printf ("host=%s/postgres dbname=calldocker user=calldocker", state);
  g_autoptr (CdPgPool) pool = cd_pg_pool_new (conninfo, 2, 10000, 20, 200);
  g_autoptr (CdCallStore) store = NULL;
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  CdCallStoreStats stats;

  cd_pg_pool_set_role (pool, "calldocker_app");
  cd_pg_pool_start (pool);
  store = cd_call_store_new (pool);
  for (int i = 0; i < N_CALLS; i++) {
    gint64 t = BASE_US + i * MINUTE_US;
    g_autofree char *visitor = g_strdup_printf ("visitor-%d", i);
    g_autofree char *page = g_strdup_printf ("https://alpha.test/page-%d", i);
    const char *agent = i % 3 == 0 ? agent1_id : i % 3 == 1 ? agent2_id : NULL;
    const char *c = calls[i] = g_uuid_string_random ();

    cd_call_store_create (store, c, company_a, visitor, "192.0.2.1", page, t);
    if (i == 0) {
      g_autoptr (JsonObject) ivr = object_from ("{\"flow\":\"main\"}");
      g_autoptr (JsonObject) digit = object_from ("{\"digit\":\"1\"}");
      cd_call_store_set_state (store, c, company_a, "ivr", ivr, t + 500000);
      cd_call_store_add_event (store, c, company_a, "dtmf", digit, t + 800000);
    }
    {
      g_autoptr (JsonObject) position = object_from ("{\"position\":1}");
      cd_call_store_set_state (store, c, company_a, "queued", position, t + 1000000);
    }
    if (agent) {
      cd_call_store_set_agent (store, c, company_a, agent, t + 2000000);
      cd_call_store_set_state (store, c, company_a, "ringing", NULL, t + 2000000);
    }
    switch (i % 4) {
    case 0: {
      g_autoptr (JsonObject) quality = object_from ("{\"mos\":4.5}");
      g_autoptr (JsonObject) chat = object_from ("{\"from\":\"agent\",\"text\":\"Hello!\"}");
      cd_call_store_answered (store, c, company_a, t + 30000000);
      cd_call_store_set_state (store, c, company_a, "connected", NULL, t + 30000000);
      if (i == 0)
        cd_call_store_add_event (store, c, company_a, "chat", chat, t + 40000000);
      cd_call_store_end (store, c, company_a, "hangup", quality, t + 90500000);
      break;
    }
    case 2:
      cd_call_store_end (store, c, company_a, "abandoned", NULL, t + 45000000);
      break;
    case 3:
      cd_call_store_answered (store, c, company_a, t + 10000000);
      cd_call_store_set_state (store, c, company_a, "connected", NULL, t + 10000000);
      break;
    case 1:
    default:
      break;
    }
    if (i == 0) {
      /* late figures, stamped with when they were measured */
      g_autoptr (JsonObject) media = object_from ("{\"rtt_ms\":42}");
      cd_call_store_add_event (store, c, company_a, "media", media, t + 200000);
    }
  }
  call_b = g_uuid_string_random ();
  cd_call_store_create (store, call_b, company_b, "visitor-b", NULL, NULL, BASE_US);

  cd_call_store_flush_async (store, NULL, cd_test_capture, &result);
  cd_test_wait_result (&result, 60000);
  g_assert_true (cd_call_store_flush_finish (store, result, &error));
  cd_call_store_get_stats (store, &stats);
  g_assert_cmpuint (stats.dropped, ==, 0);
  /* every write of the table above, and B's one */
  g_assert_cmpuint (stats.written, ==, 63);
  cd_pg_pool_close (pool);
}

static void
start (void)
{
  g_autofree char *password_file = NULL;
  const char *create[] = { "--create-superadmin", "root@example.com", "--password-file", NULL,
                           NULL };
  CdTestDaemon *once;

  state = cd_test_make_tmp_dir ("cd-calls-XXXXXX");
  password_file = g_build_filename (state, "password", NULL);
  g_assert_true (g_file_set_contents (password_file, PASSWORD "\n", -1, NULL));
  create[3] = password_file;
  once = cd_test_daemon_spawn (state, create, NULL);
  cd_test_daemon_wait_exit (once, 60000);
  g_assert_cmpint (once->exit_status, ==, 0);
  cd_test_daemon_free (once);
  daemon_proc = cd_test_daemon_spawn (state, NULL, NULL);
  cd_test_daemon_wait_ready (daemon_proc, 60000);

  root_token = login_token ("root@example.com");
  company_a = signup ("Alpha", "admin@alpha.test");
  company_b = signup ("Beta", "admin@beta.test");
  admin_a = login_token ("admin@alpha.test");
  admin_b = login_token ("admin@beta.test");
  agent1_id = add_agent ("agent1@alpha.test");
  agent2_id = add_agent ("agent2@alpha.test");
  agent1 = login_token ("agent1@alpha.test");
  agent2 = login_token ("agent2@alpha.test");
  record_calls ();
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  start ();
  g_test_add_func ("/api/calls/list-as-admin", test_list_as_admin);
  g_test_add_func ("/api/calls/filters", test_filters);
  g_test_add_func ("/api/calls/pagination", test_pagination);
  g_test_add_func ("/api/calls/bad-filters", test_bad_filters);
  g_test_add_func ("/api/calls/agent-sees-own", test_agent_sees_own);
  g_test_add_func ("/api/calls/other-company", test_other_company);
  g_test_add_func ("/api/calls/detail-with-timeline", test_detail_with_timeline);
  status = g_test_run ();

  kill (g_ascii_strtoll (g_subprocess_get_identifier (daemon_proc->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (daemon_proc, 30000);
  g_assert_cmpint (daemon_proc->exit_status, ==, 0);
  cd_test_daemon_free (daemon_proc);
  cd_test_remove_tree (state);
  for (int i = 0; i < N_CALLS; i++)
    g_free (calls[i]);
  g_free (call_b);
  g_free (state);
  g_free (company_a);
  g_free (company_b);
  g_free (root_token);
  g_free (admin_a);
  g_free (admin_b);
  g_free (agent1);
  g_free (agent2);
  g_free (agent1_id);
  g_free (agent2_id);
  return status;
}
