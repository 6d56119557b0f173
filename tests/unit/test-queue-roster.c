/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A queue's roster: built from the store's JSON (bad shapes refused), and
 * the decision for one call with its explanation, member by member. */

#include "routing/cd-queue-roster.h"

#include "cd-json.h"
#include "cd-test-harness.h"

#include <string.h>

/* three members, out of id order on purpose; uuids shortened to letters */
#define MEMBERS                                                                               \
  "[{\"id\":\"c-carol\",\"level\":2,\"skills\":{\"billing\":5},\"languages\":[\"DE\"]},"      \
  "{\"id\":\"a-anna\",\"level\":1,\"skills\":{\"billing\":4},\"languages\":[\"de\",\"en\"]}," \
  "{\"id\":\"b-bert\",\"level\":0,\"skills\":{\"billing\":1},\"languages\":[\"de\"]},"        \
  "{\"id\":\"d-dora\",\"level\":0,\"skills\":{},\"languages\":[\"fr\"]}]"

static CdQueueRoster *
roster_of (const char *definition, const char *members, GError **error)
{
  g_autofree char *text =
      g_strdup_printf ("{\"id\":\"q-1\",\"definition\":%s,\"members\":%s}", definition, members);
  g_autoptr (JsonObject) o = cd_json_parse_object (text, strlen (text), NULL, NULL);

  g_assert_nonnull (o);
  return cd_queue_roster_new (o, error);
}

/* what the router knows: a table of (id, online, free, idle seconds, calls) */
typedef struct {
  const char *id;
  gboolean online, free, declined;
  gint64 idle_s;
  guint calls;
} Now;

static const Now *now_table;
static const gint64 NOW_US = 1000 * G_USEC_PER_SEC;

static gboolean
lookup (const char *agent_id, CdMemberNow *now, gpointer user_data)
{
  for (const Now *n = now_table; n->id; n++) {
    if (g_str_equal (n->id, agent_id)) {
      now->online = n->online;
      now->free = n->free;
      now->declined = n->declined;
      now->idle_since_us = NOW_US - n->idle_s * G_USEC_PER_SEC;
      now->calls_taken = n->calls;
      return TRUE;
    }
  }
  return FALSE;
}

/* "id:outcome id:outcome ..." in the roster's (id) order */
static char *
outcomes_of (JsonObject *explanation)
{
  JsonArray *list = json_object_get_array_member (explanation, "outcomes");
  g_autoptr (GString) s = g_string_new (NULL);

  for (guint i = 0; i < json_array_get_length (list); i++) {
    JsonObject *o = json_array_get_object_element (list, i);
    g_string_append_printf (s, "%s%s:%s", i ? " " : "",
                            json_object_get_string_member (o, "agent_id"),
                            json_object_get_string_member (o, "outcome"));
  }
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* the outcome of the @i-th member (in id order) */
static const char *
outcome (JsonObject *explanation, guint i)
{
  return json_object_get_string_member (
      json_array_get_object_element (json_object_get_array_member (explanation, "outcomes"), i),
      "outcome");
}

static void
test_skills_based_explained (void)
{
  static const Now table[] = {
    { "a-anna", TRUE, TRUE, FALSE, 30, 2 },
    { "b-bert", TRUE, TRUE, FALSE, 300, 0 },
    { "c-carol", TRUE, TRUE, FALSE, 10, 9 },
    { "d-dora", TRUE, TRUE, FALSE, 999, 0 },
    { NULL },
  };
  g_autoptr (GError) error = NULL;
  g_autoptr (CdQueueRoster) roster =
      roster_of ("{\"name\":\"Billing\",\"strategy\":\"skills-based\",\"skills\":{\"billing\":3},"
                 "\"languages\":[\"de\"]}",
                 MEMBERS, &error);
  g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
  g_autoptr (JsonObject) why = NULL;
  g_autofree char *outcomes = NULL;
  CdRuleCall call = { .language = "de" };
  guint cursor = 0;

  g_assert_no_error (error);
  g_assert_cmpuint (roster->n_members, ==, 4);
  g_assert_cmpstr (roster->members[0].id, ==, "a-anna");
  /* upper-case languages are read as lower case */
  g_assert_cmpstr (roster->members[2].attributes.languages[0], ==, "de");
  now_table = table;
  why = cd_queue_roster_decide (roster, lookup, NULL, &call, &cursor, 0, NOW_US, chosen);
  /* carol's billing 5 beats anna's 4, though anna waited longer; bert is
   * below the minimum, dora speaks no German */
  g_assert_cmpuint (chosen->len, ==, 1);
  g_assert_cmpstr (g_ptr_array_index (chosen, 0), ==, "c-carol");
  outcomes = outcomes_of (why);
  g_assert_cmpstr (outcomes, ==, "a-anna:eligible b-bert:skill c-carol:chosen d-dora:skill");
  g_assert_cmpstr (json_object_get_string_member (why, "strategy"), ==, "skills-based");
  g_assert_cmpint (json_object_get_int_member (why, "members"), ==, 4);
  g_assert_cmpint (json_object_get_int_member (why, "eligible"), ==, 2);
  {
    JsonObject *carol =
        json_array_get_object_element (json_object_get_array_member (why, "outcomes"), 2);
    g_assert_cmpint (json_object_get_int_member (carol, "skill_score"), ==, 5);
    g_assert_cmpint (json_object_get_int_member (carol, "idle_s"), ==, 10);
    g_assert_cmpint (json_object_get_int_member (carol, "level"), ==, 2);
  }
}

static void
test_offline_busy_declined (void)
{
  /* dora is unknown (never signed in), anna signed in but away, bert
   * already declined this call: only carol is left */
  static const Now table[] = {
    { "a-anna", TRUE, FALSE, FALSE, 0, 0 },
    { "b-bert", TRUE, TRUE, TRUE, 500, 0 },
    { "c-carol", TRUE, TRUE, FALSE, 5, 0 },
    { NULL },
  };
  g_autoptr (CdQueueRoster) roster = roster_of ("{\"name\":\"Any\"}", MEMBERS, NULL);
  g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
  g_autoptr (JsonObject) why = NULL;
  g_autofree char *outcomes = NULL;
  CdRuleCall call = { 0 };
  guint cursor = 0;

  now_table = table;
  why = cd_queue_roster_decide (roster, lookup, NULL, &call, &cursor, 0, NOW_US, chosen);
  outcomes = outcomes_of (why);
  g_assert_cmpstr (outcomes, ==, "a-anna:busy b-bert:declined c-carol:chosen d-dora:offline");
  g_assert_cmpstr (json_object_get_string_member (why, "strategy"), ==, "longest-idle");
}

static void
test_round_robin_walks_members (void)
{
  static const Now table[] = {
    { "a-anna", TRUE, TRUE, FALSE, 1, 0 },
    { "b-bert", TRUE, FALSE, FALSE, 1, 0 },
    { "c-carol", TRUE, TRUE, FALSE, 1, 0 },
    { "d-dora", TRUE, TRUE, FALSE, 1, 0 },
    { NULL },
  };
  g_autoptr (CdQueueRoster) roster =
      roster_of ("{\"name\":\"RR\",\"strategy\":\"round-robin\"}", MEMBERS, NULL);
  const char *expected[] = { "a-anna", "c-carol", "d-dora", "a-anna", "c-carol" };
  CdRuleCall call = { 0 };
  guint cursor = 0;

  now_table = table;
  /* bert is busy, and the walk goes round in the roster's id order */
  for (gsize k = 0; k < G_N_ELEMENTS (expected); k++) {
    g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
    g_autoptr (JsonObject) why =
        cd_queue_roster_decide (roster, lookup, NULL, &call, &cursor, 0, NOW_US, chosen);
    g_assert_cmpuint (chosen->len, ==, 1);
    g_assert_cmpstr (g_ptr_array_index (chosen, 0), ==, expected[k]);
    g_assert_cmpstr (outcome (why, 1), ==, "busy");
  }
}

static void
test_ring_all_and_nobody (void)
{
  static const Now table[] = {
    { "a-anna", TRUE, TRUE, FALSE, 1, 0 },
    { "c-carol", TRUE, TRUE, FALSE, 1, 0 },
    { NULL },
  };
  static const Now nobody[] = { { NULL } };
  g_autoptr (CdQueueRoster) roster =
      roster_of ("{\"name\":\"All\",\"strategy\":\"ring-all\"}", MEMBERS, NULL);
  g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
  g_autoptr (GPtrArray) none = g_ptr_array_new ();
  g_autoptr (JsonObject) why = NULL;
  g_autoptr (JsonObject) empty = NULL;
  g_autofree char *outcomes = NULL;
  CdRuleCall call = { 0 };
  guint cursor = 0;

  now_table = table;
  why = cd_queue_roster_decide (roster, lookup, NULL, &call, &cursor, 0, NOW_US, chosen);
  g_assert_cmpuint (chosen->len, ==, 2);
  g_assert_cmpstr (g_ptr_array_index (chosen, 0), ==, "a-anna");
  g_assert_cmpstr (g_ptr_array_index (chosen, 1), ==, "c-carol");
  now_table = nobody;
  empty = cd_queue_roster_decide (roster, lookup, NULL, &call, &cursor, 0, NOW_US, none);
  g_assert_cmpuint (none->len, ==, 0);
  outcomes = outcomes_of (empty);
  g_assert_cmpstr (outcomes, ==, "a-anna:offline b-bert:offline c-carol:offline d-dora:offline");
  g_assert_cmpint (json_array_get_length (json_object_get_array_member (empty, "chosen")), ==, 0);
}

static void
test_bad_shapes (void)
{
  const struct {
    const char *definition, *members, *error;
  } cases[] = {
    { "{\"name\":\"Q\"}", "[{\"level\":1}]", "a member needs an id" },
    { "{\"name\":\"Q\"}", "[{\"id\":\"x\",\"level\":\"high\"}]", "a member needs an id" },
    { "{\"name\":\"Q\"}", "[{\"id\":\"x\",\"level\":1,\"skills\":[1]}]", "a member needs an id" },
    { "{\"name\":\"Q\"}", "[7]", "a member needs an id" },
    { "{\"name\":\"Q\"}", "{}", "a roster needs an id" },
    { "[]", "[]", "a roster needs an id" },
    { "{\"name\":\"Q\",\"strategy\":\"loudest\"}", "[]", "strategy" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CdQueueRoster) roster = roster_of (cases[i].definition, cases[i].members, &error);

    g_assert_null (roster);
    g_assert_nonnull (error);
    if (strstr (error->message, cases[i].error) == NULL)
      g_error ("case %zu: %s", i, error->message);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/queue-roster/skills-based-explained", test_skills_based_explained);
  g_test_add_func ("/queue-roster/offline-busy-declined", test_offline_busy_declined);
  g_test_add_func ("/queue-roster/round-robin-walks-members", test_round_robin_walks_members);
  g_test_add_func ("/queue-roster/ring-all-and-nobody", test_ring_all_and_nobody);
  g_test_add_func ("/queue-roster/bad-shapes", test_bad_shapes);
  return g_test_run ();
}
