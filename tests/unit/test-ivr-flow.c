/* SPDX-License-Identifier: GPL-3.0-or-later */
/* IVR flows: a full flow as parsed, and every refusal naming its node. */

#include "cd-json.h"
#include "ivr/cd-ivr-flow.h"

#include <string.h>

#define QUEUE  "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab"
#define PROMPT "0d9a8b7c-6e5f-4a3b-8c2d-1e0f9a8b7c6d"

static CdIvrFlow *
parse (const char *json, GError **error)
{
  g_autoptr (GError) parse_error = NULL;
  g_autoptr (JsonObject) o = cd_json_parse_object (json, strlen (json), NULL, &parse_error);

  g_assert_no_error (parse_error);
  return cd_ivr_flow_parse (o, error);
}

/* A greeting, a menu (1: sales, 2: a prompt then support), a fallback to
 * voicemail, out of hours a message. */
#define GOOD                                                                                   \
  "{\"start\":\"hours\",\"nodes\":["                                                           \
  "{\"id\":\"hours\",\"type\":\"branch\",\"on\":\"business_hours\",\"hours\":{\"time_zone\":"  \
  "\"Europe/Berlin\",\"weekly\":{\"mon\":[\"09:00-17:00\"]}},\"open\":\"greet\","              \
  "\"otherwise\":\"closed\"},"                                                                 \
  "{\"id\":\"greet\",\"type\":\"say\",\"text\":\"Welcome to the shop.\",\"next\":\"menu\"},"   \
  "{\"id\":\"menu\",\"type\":\"menu\",\"prompt\":{\"text\":\"Press 1 for sales, 2 for "        \
  "support.\",\"language\":\"en\"},\"options\":{\"1\":\"sales\",\"2\":\"support-intro\"},"     \
  "\"timeout_s\":4,\"max_retries\":1,\"invalid_prompt\":{\"prompt_id\":\"" PROMPT "\"},"       \
  "\"timeout_prompt\":{\"text\":\"Are you there?\"},\"fallback\":\"vm\"},"                     \
  "{\"id\":\"sales\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\",\"priority\":5},"           \
  "{\"id\":\"support-intro\",\"type\":\"play\",\"prompt_id\":\"" PROMPT "\","                  \
  "\"next\":\"support\",\"barge_in\":false},"                                                  \
  "{\"id\":\"support\",\"type\":\"transfer\",\"queue_id\":\"" QUEUE "\"},"                     \
  "{\"id\":\"vm\",\"type\":\"voicemail\",\"max_s\":60,\"silence_s\":3,\"next\":\"bye\"},"      \
  "{\"id\":\"closed\",\"type\":\"set\",\"variable\":\"reason\",\"value\":\"closed\","          \
  "\"next\":\"bye\"},"                                                                         \
  "{\"id\":\"bye\",\"type\":\"hangup\",\"prompt\":{\"text\":\"Goodbye.\",\"language\":\"en\"," \
  "\"voice\":\"f2\"}}]}"

static int
index_of (const CdIvrFlow *flow, const char *id)
{
  for (guint i = 0; i < flow->n_nodes; i++)
    if (g_str_equal (flow->nodes[i].id, id))
      return i;
  g_assert_not_reached ();
}

static void
test_full_flow (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdIvrFlow) flow = parse (GOOD, &error);
  const CdIvrNode *menu, *hours, *vm, *play;

  g_assert_no_error (error);
  g_assert_cmpuint (flow->n_nodes, ==, 9);
  g_assert_cmpint (flow->start, ==, index_of (flow, "hours"));
  hours = &flow->nodes[index_of (flow, "hours")];
  g_assert_cmpint (hours->type, ==, CD_IVR_BRANCH);
  g_assert_cmpint (hours->on, ==, CD_IVR_ON_BUSINESS_HOURS);
  g_assert_nonnull (hours->hours);
  g_assert_cmpint (hours->next, ==, index_of (flow, "greet"));
  g_assert_cmpint (hours->otherwise, ==, index_of (flow, "closed"));
  menu = &flow->nodes[index_of (flow, "menu")];
  g_assert_cmpint (menu->type, ==, CD_IVR_MENU);
  g_assert_cmpstr (menu->prompt.text, ==, "Press 1 for sales, 2 for support.");
  g_assert_cmpuint (menu->n_cases, ==, 2);
  g_assert_cmpstr (menu->cases[1].key, ==, "2");
  g_assert_cmpint (menu->cases[1].target, ==, index_of (flow, "support-intro"));
  g_assert_cmpuint (menu->timeout_s, ==, 4);
  g_assert_cmpuint (menu->inter_digit_timeout_s, ==, 2); /* the default */
  g_assert_cmpuint (menu->max_retries, ==, 1);
  g_assert_cmpstr (menu->invalid_prompt.prompt_id, ==, PROMPT);
  g_assert_cmpstr (menu->timeout_prompt.language, ==, "en"); /* the default */
  g_assert_cmpint (menu->fallback, ==, index_of (flow, "vm"));
  g_assert_true (menu->barge_in);
  play = &flow->nodes[index_of (flow, "support-intro")];
  g_assert_false (play->barge_in);
  vm = &flow->nodes[index_of (flow, "vm")];
  g_assert_cmpuint (vm->max_s, ==, 60);
  g_assert_cmpuint (vm->silence_s, ==, 3);
  g_assert_cmpint (flow->nodes[index_of (flow, "sales")].priority, ==, 5);
  g_assert_cmpstr (flow->nodes[index_of (flow, "bye")].prompt.voice, ==, "f2");
  g_assert_true (cd_ivr_node_waits_for_input (CD_IVR_MENU));
  g_assert_false (cd_ivr_node_waits_for_input (CD_IVR_SAY));
}

/* A loop is fine when it waits for the visitor: a menu that says its
 * options again after a help message. */
static void
test_loop_through_menu (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdIvrFlow) flow =
      parse ("{\"start\":\"m\",\"nodes\":[{\"id\":\"m\",\"type\":\"menu\",\"prompt\":{\"text\":"
             "\"1 or 9 for help\"},\"options\":{\"1\":\"q\",\"9\":\"help\"}},"
             "{\"id\":\"help\",\"type\":\"say\",\"text\":\"Help.\",\"next\":\"m\"},"
             "{\"id\":\"q\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\"}]}",
             &error);

  g_assert_no_error (error);
  g_assert_nonnull (flow);
}

typedef struct {
  const char *name;
  const char *json;
  const char *message; /* the refusal's start */
} Refusal;

#define ONE(node) "{\"start\":\"a\",\"nodes\":[" node "]}"
#define HANG      "{\"id\":\"z\",\"type\":\"hangup\"}"
#define TWO(node) "{\"start\":\"a\",\"nodes\":[" node "," HANG "]}"
#define MENU(extra)                                                                       \
  TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{\"text\":\"Hi\"},\"options\":{\"1\":" \
       "\"z\"}" extra "}")

static const Refusal refusals[] = {
  { "top/unknown-field", "{\"start\":\"a\",\"nodes\":[" HANG "],\"draft\":true}",
    "\"draft\" is not a field here (start, nodes)" },
  { "top/nodes-missing", "{\"start\":\"a\"}", "nodes: a list of nodes" },
  { "top/nodes-not-list", "{\"start\":\"a\",\"nodes\":{}}", "nodes: a list of nodes" },
  { "top/nodes-empty", "{\"start\":\"a\",\"nodes\":[]}", "nodes: 1 to 200 nodes" },
  { "top/start-missing", "{\"nodes\":[" HANG "]}", "start: the id of the first node" },
  { "top/start-unknown", "{\"start\":\"b\",\"nodes\":[" HANG "]}", "start: no node \"b\"" },
  { "node/not-object", "{\"start\":\"a\",\"nodes\":[7]}", "nodes[0]: an object" },
  { "node/id-missing", "{\"start\":\"a\",\"nodes\":[{\"type\":\"hangup\"}]}", "nodes[0].id: 1" },
  { "node/id-bad", "{\"start\":\"a\",\"nodes\":[{\"id\":\"a b\",\"type\":\"hangup\"}]}",
    "nodes[0].id: 1" },
  { "node/id-twice", "{\"start\":\"z\",\"nodes\":[" HANG "," HANG "]}",
    "node \"z\": a second node with this id" },
  { "node/type-missing", ONE ("{\"id\":\"a\"}"), "node \"a\": type is missing" },
  { "node/type-unknown", ONE ("{\"id\":\"a\",\"type\":\"dance\"}"),
    "node \"a\": type: \"dance\" is not a node type" },
  { "node/unknown-field", ONE ("{\"id\":\"a\",\"type\":\"hangup\",\"next\":\"a\"}"),
    "node \"a\": \"next\" is not a field here (id, type, prompt)" },
  { "play/prompt-missing", TWO ("{\"id\":\"a\",\"type\":\"play\",\"next\":\"z\"}"),
    "node \"a\": prompt_id is missing" },
  { "play/prompt-not-uuid",
    TWO ("{\"id\":\"a\",\"type\":\"play\",\"prompt_id\":\"hello.wav\",\"next\":\"z\"}"),
    "node \"a\": prompt_id: a UUID" },
  { "say/text-missing", TWO ("{\"id\":\"a\",\"type\":\"say\",\"next\":\"z\"}"),
    "node \"a\": text is missing" },
  { "say/language-bad",
    TWO ("{\"id\":\"a\",\"type\":\"say\",\"text\":\"Hi\",\"language\":\"English\",\"next\":\"z\"}"),
    "node \"a\": language: a language code" },
  { "say/next-missing", ONE ("{\"id\":\"a\",\"type\":\"say\",\"text\":\"Hi\"}"),
    "node \"a\": next is missing" },
  { "say/next-unknown", ONE ("{\"id\":\"a\",\"type\":\"say\",\"text\":\"Hi\",\"next\":\"b\"}"),
    "node \"a\": next: no node \"b\"" },
  { "menu/prompt-missing", TWO ("{\"id\":\"a\",\"type\":\"menu\",\"options\":{\"1\":\"z\"}}"),
    "node \"a\": prompt is missing" },
  { "menu/prompt-empty-object",
    TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{},\"options\":{\"1\":\"z\"}}"),
    "node \"a\": prompt: {\"prompt_id\"" },
  { "menu/prompt-text-too-long",
    TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{\"text\":\"\",\"language\":\"de\"},"
         "\"options\":{\"1\":\"z\"}}"),
    "node \"a\": prompt.text: 1 to 2000 characters" },
  { "menu/options-missing", TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{\"text\":\"Hi\"}}"),
    "node \"a\": options is missing" },
  { "menu/options-empty",
    TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{\"text\":\"Hi\"},\"options\":{}}"),
    "node \"a\": options: at least one choice" },
  { "menu/option-not-digits",
    TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{\"text\":\"Hi\"},\"options\":{\"x\":\"z\"}}"),
    "node \"a\": options.\"x\": digits" },
  { "menu/option-target-unknown",
    TWO ("{\"id\":\"a\",\"type\":\"menu\",\"prompt\":{\"text\":\"Hi\"},\"options\":{\"1\":\"q\"}}"),
    "node \"a\": options.\"1\": no node \"q\"" },
  { "menu/timeout-range", MENU (",\"timeout_s\":0"),
    "node \"a\": timeout_s: a whole number from 1 to 60" },
  { "menu/retries-range", MENU (",\"max_retries\":11"),
    "node \"a\": max_retries: a whole number from 0 to 10" },
  { "menu/barge-in-not-bool", MENU (",\"barge_in\":\"yes\""),
    "node \"a\": barge_in: true or false" },
  { "menu/fallback-unknown", MENU (",\"fallback\":\"nowhere\""),
    "node \"a\": fallback: no node \"nowhere\"" },
  { "gather/variable-bad",
    TWO ("{\"id\":\"a\",\"type\":\"gather\",\"prompt\":{\"text\":\"Your number\"},\"variable\":"
         "\"Account\",\"next\":\"z\"}"),
    "node \"a\": variable: lower case letters" },
  { "gather/finish-on-bad",
    TWO ("{\"id\":\"a\",\"type\":\"gather\",\"prompt\":{\"text\":\"Your number\"},\"variable\":"
         "\"account\",\"finish_on\":\"x\",\"next\":\"z\"}"),
    "node \"a\": finish_on: one of 0-9, * and #" },
  { "branch/on-unknown",
    TWO ("{\"id\":\"a\",\"type\":\"branch\",\"on\":\"weather\",\"otherwise\":\"z\"}"),
    "node \"a\": on: business_hours, variable, country or language" },
  { "branch/hours-missing",
    TWO ("{\"id\":\"a\",\"type\":\"branch\",\"on\":\"business_hours\",\"open\":\"z\","
         "\"otherwise\":\"z\"}"),
    "node \"a\": hours is missing" },
  { "branch/hours-bad",
    TWO ("{\"id\":\"a\",\"type\":\"branch\",\"on\":\"business_hours\",\"hours\":{\"time_zone\":"
         "\"Mars/Olympus\"},\"open\":\"z\",\"otherwise\":\"z\"}"),
    "node \"a\": hours: " },
  { "branch/country-bad",
    TWO ("{\"id\":\"a\",\"type\":\"branch\",\"on\":\"country\",\"cases\":{\"Germany\":\"z\"},"
         "\"otherwise\":\"z\"}"),
    "node \"a\": cases.\"Germany\": a two-letter country code" },
  { "branch/otherwise-missing",
    TWO ("{\"id\":\"a\",\"type\":\"branch\",\"on\":\"language\",\"cases\":{\"de\":\"z\"}}"),
    "node \"a\": otherwise is missing" },
  { "set/value-missing",
    TWO ("{\"id\":\"a\",\"type\":\"set\",\"variable\":\"vip\",\"next\":\"z\"}"),
    "node \"a\": value is missing" },
  { "queue/queue-id-missing", ONE ("{\"id\":\"a\",\"type\":\"queue\"}"),
    "node \"a\": queue_id is missing" },
  { "queue/priority-range",
    ONE ("{\"id\":\"a\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\",\"priority\":101}"),
    "node \"a\": priority: a whole number from 0 to 100" },
  { "voicemail/max-range", ONE ("{\"id\":\"a\",\"type\":\"voicemail\",\"max_s\":4}"),
    "node \"a\": max_s: a whole number from 5 to 600" },
  { "transfer/both",
    ONE ("{\"id\":\"a\",\"type\":\"transfer\",\"queue_id\":\"" QUEUE "\",\"agent_id\":\"" QUEUE
         "\"}"),
    "node \"a\": give either agent_id or queue_id" },
  { "transfer/neither", ONE ("{\"id\":\"a\",\"type\":\"transfer\"}"),
    "node \"a\": give either agent_id or queue_id" },
  { "graph/unreachable",
    "{\"start\":\"a\",\"nodes\":[{\"id\":\"a\",\"type\":\"hangup\"},{\"id\":\"lost\",\"type\":"
    "\"hangup\"}]}",
    "node \"lost\": cannot be reached from the start" },
  { "graph/loop-without-input",
    "{\"start\":\"a\",\"nodes\":[{\"id\":\"a\",\"type\":\"say\",\"text\":\"Hi\",\"next\":\"b\"},"
    "{\"id\":\"b\",\"type\":\"set\",\"variable\":\"n\",\"value\":\"1\",\"next\":\"c\"},"
    "{\"id\":\"c\",\"type\":\"branch\",\"on\":\"variable\",\"variable\":\"n\",\"cases\":{\"2\":"
    "\"d\"},\"otherwise\":\"a\"},{\"id\":\"d\",\"type\":\"hangup\"}]}",
    "node \"a\": the loop a -> b -> c -> a never waits for the visitor" },
  { "graph/self-loop",
    "{\"start\":\"a\",\"nodes\":[{\"id\":\"a\",\"type\":\"say\",\"text\":\"Hi\",\"next\":\"a\"}]}",
    "node \"a\": the loop a -> a never waits for the visitor" },
};

static void
test_refusal (gconstpointer data)
{
  const Refusal *r = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdIvrFlow) flow = parse (r->json, &error);

  g_assert_null (flow);
  g_assert_error (error, CD_IVR_FLOW_ERROR, CD_IVR_FLOW_ERROR_INVALID);
  if (!g_str_has_prefix (error->message, r->message))
    g_error ("%s: refused with \"%s\", expected \"%s...\"", r->name, error->message, r->message);
}

static void
test_too_many_nodes (void)
{
  g_autoptr (GString) json = g_string_new ("{\"start\":\"n0\",\"nodes\":[");
  g_autoptr (GError) error = NULL;
  g_autoptr (CdIvrFlow) flow = NULL;

  for (int i = 0; i <= CD_IVR_MAX_NODES; i++)
    g_string_append_printf (json, "%s{\"id\":\"n%d\",\"type\":\"hangup\"}", i ? "," : "", i);
  g_string_append (json, "]}");
  flow = parse (json->str, &error);
  g_assert_null (flow);
  g_assert_cmpstr (error->message, ==, "nodes: 1 to 200 nodes");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ivr-flow/full", test_full_flow);
  g_test_add_func ("/ivr-flow/loop-through-menu", test_loop_through_menu);
  g_test_add_func ("/ivr-flow/too-many-nodes", test_too_many_nodes);
  for (gsize i = 0; i < G_N_ELEMENTS (refusals); i++) {
    g_autofree char *path = g_strdup_printf ("/ivr-flow/refused/%s", refusals[i].name);
    g_test_add_data_func (path, &refusals[i], test_refusal);
  }
  return g_test_run ();
}
