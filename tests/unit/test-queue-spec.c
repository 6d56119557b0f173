/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A queue's definition: the defaults, a full one, and every refusal with
 * the field it names. */

#include "cd-json.h"
#include "routing/cd-queue-spec.h"

#include <string.h>

#define OTHER_QUEUE "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab"

static CdQueueSpec *
parse (const char *json, GError **error)
{
  g_autoptr (JsonObject) o = cd_json_parse_object (json, strlen (json), NULL, NULL);

  g_assert_nonnull (o);
  return cd_queue_spec_parse (o, error);
}

static void
test_defaults (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdQueueSpec) q = parse ("{\"name\":\"Support\"}", &error);

  g_assert_no_error (error);
  g_assert_cmpstr (q->name, ==, "Support");
  g_assert_cmpint (q->strategy, ==, CD_STRATEGY_LONGEST_IDLE);
  g_assert_cmpuint (q->n_skills, ==, 0);
  g_assert_cmpuint (q->n_languages, ==, 0);
  g_assert_null (q->rule);
  g_assert_null (q->business_hours);
  g_assert_cmpuint (q->ring_timeout_s, ==, 20);
  g_assert_cmpuint (q->max_wait_s, ==, 900);
  g_assert_cmpuint (q->max_length, ==, 0);
  g_assert_cmpuint (q->wrap_up_s, ==, 0);
  g_assert_cmpuint (q->announce_every_s, ==, 60);
  g_assert_cmpint (q->when_closed.action, ==, CD_QUEUE_ACTION_HANGUP);
  g_assert_cmpint (q->when_full.action, ==, CD_QUEUE_ACTION_HANGUP);
  g_assert_false (q->has_overflow);
  g_assert_false (q->record);
}

static void
test_full (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdQueueSpec) q = parse (
      "{\"name\":\"Billing DE\",\"strategy\":\"skills-based\",\"skills\":{\"billing\":3,"
      "\"first-line\":0},\"languages\":[\"de\",\"pt-br\"],\"rule\":\"call.wait_s > 60 or level >= "
      "2\",\"business_hours\":{\"time_zone\":\"Europe/"
      "Berlin\",\"weekly\":{\"mon\":[\"09:00-17:00\"]"
      "}},\"ring_timeout_s\":15,\"max_wait_s\":600,\"max_length\":25,\"wrap_up_s\":30,"
      "\"announce_every_s\":45,\"when_closed\":{\"action\":\"voicemail\"},\"when_full\":{"
      "\"action\":"
      "\"hangup\",\"message\":\"Please call again later.\"},\"overflow\":{\"after_s\":120,"
      "\"action\":\"queue\",\"queue_id\":\"" OTHER_QUEUE "\"},\"record\":true}",
      &error);
  g_autoptr (CdQueueSpec) raise =
      parse ("{\"name\":\"Q\",\"overflow\":{\"after_s\":60,\"action\":\"priority\",\"raise_by\":3},"
             "\"when_closed\":{\"action\":\"queue\",\"queue_id\":\"" OTHER_QUEUE "\"}}",
             &error);
  const CdRuleCall call = { "DE", "de", 0, 90 };
  const CdRuleAgent agent = { NULL, 0, NULL, 0, 0 };
  g_autoptr (GDateTime) monday_ten = g_date_time_new_from_iso8601 ("2026-11-30T09:00:00Z", NULL);

  g_assert_no_error (error);
  g_assert_cmpint (q->strategy, ==, CD_STRATEGY_SKILLS);
  g_assert_cmpuint (q->n_skills, ==, 2);
  g_assert_cmpstr (q->skills[0].name, ==, "billing");
  g_assert_cmpint (q->skills[0].min_level, ==, 3);
  g_assert_cmpstr (q->skills[1].name, ==, "first-line");
  g_assert_cmpuint (q->n_languages, ==, 2);
  g_assert_cmpstr (q->languages[1], ==, "pt-br");
  g_assert_null (q->languages[2]);
  g_assert_true (cd_rule_matches (q->rule, &agent, &call));
  g_assert_true (cd_business_hours_is_open (q->business_hours, monday_ten));
  g_assert_cmpuint (q->ring_timeout_s, ==, 15);
  g_assert_cmpuint (q->max_wait_s, ==, 600);
  g_assert_cmpuint (q->max_length, ==, 25);
  g_assert_cmpuint (q->wrap_up_s, ==, 30);
  g_assert_true (q->record);
  g_assert_cmpuint (q->announce_every_s, ==, 45);
  g_assert_cmpint (q->when_closed.action, ==, CD_QUEUE_ACTION_VOICEMAIL);
  g_assert_cmpint (q->when_full.action, ==, CD_QUEUE_ACTION_HANGUP);
  g_assert_cmpstr (q->when_full.message, ==, "Please call again later.");
  g_assert_true (q->has_overflow);
  g_assert_cmpint (q->overflow.action, ==, CD_QUEUE_ACTION_QUEUE);
  g_assert_cmpuint (q->overflow.after_s, ==, 120);
  g_assert_cmpstr (q->overflow.queue_id, ==, OTHER_QUEUE);

  g_assert_cmpint (raise->overflow.action, ==, CD_QUEUE_ACTION_PRIORITY);
  g_assert_cmpint (raise->overflow.raise_by, ==, 3);
  g_assert_cmpint (raise->when_closed.action, ==, CD_QUEUE_ACTION_QUEUE);
  g_assert_cmpstr (raise->when_closed.queue_id, ==, OTHER_QUEUE);
}

static void
test_refused (void)
{
  static const struct {
    const char *json, *message;
  } bad[] = {
    { "{}", "name: required, 1 to 100 characters" },
    { "{\"name\":\"\"}", "name: required, 1 to 100 characters" },
    { "{\"name\":7}", "name: required, 1 to 100 characters" },
    { "{\"name\":\"Q\",\"colour\":\"red\"}",
      "\"colour\" is not a field (name, strategy, skills, languages, rule, business_hours, "
      "ring_timeout_s, max_wait_s, max_length, wrap_up_s, announce_every_s, when_closed, "
      "when_full, overflow, record)" },
    { "{\"name\":\"Q\",\"strategy\":\"longest_idle\"}",
      "strategy: one of ring-all, round-robin, longest-idle, fewest-calls, random, skills-based" },
    { "{\"name\":\"Q\",\"strategy\":\"skills-based\"}",
      "skills: the skills-based strategy needs at least one required skill" },
    { "{\"name\":\"Q\",\"skills\":[\"billing\"]}",
      "skills: an object of skill names and minimum levels, e.g. {\"billing\": 3}" },
    { "{\"name\":\"Q\",\"skills\":{\"bil ling\":3}}",
      "skills: \"bil ling\" is not a skill name (letters, digits, _ and -, at most 40)" },
    { "{\"name\":\"Q\",\"skills\":{\"billing\":11}}",
      "skills.billing: a minimum level from 0 to 10" },
    { "{\"name\":\"Q\",\"skills\":{\"billing\":\"3\"}}",
      "skills.billing: a minimum level from 0 to 10" },
    { "{\"name\":\"Q\",\"languages\":\"de\"}",
      "languages: a list of language codes, e.g. [\"de\", \"en\"]" },
    { "{\"name\":\"Q\",\"languages\":[\"de\",\"DE\"]}",
      "languages[1]: a lower-case language code such as \"de\" or \"pt-br\"" },
    { "{\"name\":\"Q\",\"languages\":[\"deutsch\"]}",
      "languages[0]: a lower-case language code such as \"de\" or \"pt-br\"" },
    { "{\"name\":\"Q\",\"rule\":3}", "rule: a routing rule (text), e.g. \"skills.billing >= 3\"" },
    { "{\"name\":\"Q\",\"rule\":\"skills.billing >=\"}",
      "rule: at 18: expected a value (a number, a string, true, false, a name or '('), not the "
      "end of the rule" },
    { "{\"name\":\"Q\",\"business_hours\":\"9-5\"}",
      "business_hours: an object with time_zone, weekly and holidays" },
    { "{\"name\":\"Q\",\"business_hours\":{\"time_zone\":\"Mars/Olympus\"}}",
      "business_hours.time_zone: \"Mars/Olympus\" is not a known time zone" },
    { "{\"name\":\"Q\",\"business_hours\":{\"time_zone\":\"UTC\",\"open\":1}}",
      "business_hours: \"open\" is not a field of business hours (time_zone, weekly, holidays)" },
    { "{\"name\":\"Q\",\"ring_timeout_s\":4}", "ring_timeout_s: a whole number from 5 to 300" },
    { "{\"name\":\"Q\",\"ring_timeout_s\":20.5}", "ring_timeout_s: a whole number from 5 to 300" },
    { "{\"name\":\"Q\",\"max_wait_s\":100000}", "max_wait_s: a whole number from 10 to 86400" },
    { "{\"name\":\"Q\",\"max_length\":-1}", "max_length: a whole number from 0 to 10000" },
    { "{\"name\":\"Q\",\"wrap_up_s\":true}", "wrap_up_s: a whole number from 0 to 3600" },
    { "{\"name\":\"Q\",\"announce_every_s\":5}", "announce_every_s: 0 (never) or from 15 to 3600" },
    { "{\"name\":\"Q\",\"record\":\"yes\"}",
      "record: true (its calls are recorded once answered) or false" },
    { "{\"name\":\"Q\",\"record\":1}",
      "record: true (its calls are recorded once answered) or false" },
    { "{\"name\":\"Q\",\"when_closed\":\"voicemail\"}", "when_closed: an object with an action" },
    { "{\"name\":\"Q\",\"when_closed\":{\"action\":\"transfer\"}}",
      "when_closed.action: \"hangup\", \"voicemail\" or \"queue\", not \"transfer\"" },
    { "{\"name\":\"Q\",\"when_full\":{\"action\":\"queue\"}}",
      "when_full.queue_id: the id (UUID) of the queue to move the call to" },
    { "{\"name\":\"Q\",\"when_full\":{\"action\":\"voicemail\",\"queue_id\":\"" OTHER_QUEUE "\"}}",
      "when_full.queue_id: only with the action \"queue\"" },
    { "{\"name\":\"Q\",\"when_full\":{\"action\":\"voicemail\",\"message\":\"bye\"}}",
      "when_full.message: only with the action \"hangup\"" },
    { "{\"name\":\"Q\",\"when_full\":{\"action\":\"hangup\",\"message\":\"\"}}",
      "when_full.message: text of 1 to 500 characters" },
    { "{\"name\":\"Q\",\"when_full\":{\"action\":\"hangup\",\"after_s\":3}}",
      "when_full: \"after_s\" is not a field (action, queue_id, message)" },
    { "{\"name\":\"Q\",\"overflow\":{\"action\":\"voicemail\",\"after_s\":3}}",
      "overflow.action: \"queue\" or \"priority\", not \"voicemail\"" },
    { "{\"name\":\"Q\",\"overflow\":{\"action\":\"priority\",\"raise_by\":2}}",
      "overflow.after_s: required, seconds in the queue before it applies" },
    { "{\"name\":\"Q\",\"overflow\":{\"action\":\"priority\",\"after_s\":30}}",
      "overflow.raise_by: required with the action \"priority\"" },
    { "{\"name\":\"Q\",\"overflow\":{\"action\":\"priority\",\"after_s\":30,\"raise_by\":0}}",
      "overflow.raise_by: a whole number from 1 to 100" },
    { "{\"name\":\"Q\",\"overflow\":{\"action\":\"queue\",\"after_s\":0,\"queue_id\":\"" OTHER_QUEUE
      "\"}}",
      "overflow.after_s: a whole number from 1 to 86400" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CdQueueSpec) q = parse (bad[i].json, &error);

    g_test_message ("%s", bad[i].json);
    g_assert_null (q);
    g_assert_error (error, CD_QUEUE_SPEC_ERROR, CD_QUEUE_SPEC_ERROR_INVALID);
    g_assert_cmpstr (error->message, ==, bad[i].message);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/queue-spec/defaults", test_defaults);
  g_test_add_func ("/queue-spec/full", test_full);
  g_test_add_func ("/queue-spec/refused", test_refused);
  return g_test_run ();
}
