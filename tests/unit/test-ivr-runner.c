/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The IVR runner without media: a host that notes what it is asked to play
 * and how the flow ends, and digits and prompt ends given by the test.
 * Menus with multi-digit options and the inter-digit timeout, type-ahead
 * and barge-in, gather with its finish digit, branches on language and
 * variables, voicemail and the digit that ends it. */

#include "cd-json.h"
#include "ivr/cd-ivr-runner.h"

#include <string.h>

#define QUEUE "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab"

typedef struct {
  GString *log; /* what the host was asked, in order */
  gboolean finished;
  CdIvrOutcomeKind outcome;
  char *queue_id, *reason;
  gboolean listening;
} Host;

static void
host_play (gpointer data, const CdIvrPrompt *prompt)
{
  Host *h = data;

  g_string_append_printf (h->log, "play:%s ", prompt->text ? prompt->text : prompt->prompt_id);
}

static void
host_stop (gpointer data)
{
  g_string_append (((Host *) data)->log, "stop ");
}

static void
host_event (gpointer data, const char *type, JsonObject *detail)
{
  Host *h = data;

  if (g_str_equal (type, "ivr.digits") || g_str_equal (type, "ivr.invalid"))
    g_string_append_printf (h->log, "%s:%s ", type,
                            json_object_get_string_member_with_default (detail, "digits", ""));
  else if (!g_str_equal (type, "ivr.node") && !g_str_equal (type, "ivr.prompt"))
    g_string_append_printf (h->log, "%s ", type);
}

static void
host_finish (gpointer data, const CdIvrOutcome *outcome)
{
  Host *h = data;

  h->finished = TRUE;
  h->outcome = outcome->kind;
  h->queue_id = g_strdup (outcome->queue_id);
  h->reason = g_strdup (outcome->reason);
}

static void
host_listen (gpointer data, gboolean on)
{
  ((Host *) data)->listening = on;
}

static void
host_record (gpointer data, guint max_s, guint silence_s)
{
  g_string_append_printf (((Host *) data)->log, "record:%u:%u ", max_s, silence_s);
}

static void
host_stop_recording (gpointer data, const char *why)
{
  g_string_append_printf (((Host *) data)->log, "stop-recording:%s ", why);
}

static const CdIvrHost host_calls = { host_play,   host_stop,   host_event,         host_finish,
                                      host_listen, host_record, host_stop_recording };

static CdIvrRunner *
runner_new (const char *json, Host *h, const char *language)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) o = cd_json_parse_object (json, strlen (json), NULL, &error);
  CdIvrFlow *flow;
  CdIvrCaller caller = { NULL, language };

  g_assert_no_error (error);
  flow = cd_ivr_flow_parse (o, &error);
  g_assert_no_error (error);
  memset (h, 0, sizeof *h);
  h->log = g_string_new (NULL);
  return cd_ivr_runner_new (flow, &caller, &host_calls, h);
}

static void
host_clear (Host *h)
{
  g_string_free (h->log, TRUE);
  g_free (h->queue_id);
  g_free (h->reason);
}

/* Runs the main loop until the flow ends, for @ms at most (the runner's
 * timeouts are whole seconds: GLib may fire one up to a second late). */
static void
wait_finished (Host *h, guint ms)
{
  gint64 until = g_get_monotonic_time () + ms * 1000;

  while (!h->finished && g_get_monotonic_time () < until) {
    g_main_context_iteration (NULL, FALSE);
    g_usleep (1000);
  }
}

#define MENU                                                                                   \
  "{\"start\":\"m\",\"nodes\":["                                                               \
  "{\"id\":\"m\",\"type\":\"menu\",\"prompt\":{\"text\":\"menu\"},\"options\":{\"1\":\"one\"," \
  "\"12\":\"twelve\",\"3\":\"three\"},\"timeout_s\":1,\"inter_digit_timeout_s\":1,"            \
  "\"max_retries\":0,\"fallback\":\"bye\"},"                                                   \
  "{\"id\":\"one\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\"},"                            \
  "{\"id\":\"twelve\",\"type\":\"hangup\"},"                                                   \
  "{\"id\":\"three\",\"type\":\"hangup\"},"                                                    \
  "{\"id\":\"bye\",\"type\":\"hangup\",\"prompt\":{\"text\":\"bye\"}}]}"

/* "12" is chosen at its second digit; "1" alone after the inter-digit
 * timeout, since "12" starts with it. */
static void
test_multi_digit_options (void)
{
  Host h;
  g_autoptr (CdIvrRunner) r = runner_new (MENU, &h, NULL);

  cd_ivr_runner_start (r);
  g_assert_true (h.listening);
  cd_ivr_runner_prompt_done (r, TRUE);
  cd_ivr_runner_digit (r, '1');
  cd_ivr_runner_digit (r, '2');
  g_assert_true (h.finished);
  g_assert_cmpint (h.outcome, ==, CD_IVR_OUTCOME_HANGUP);
  g_assert_cmpstr (h.log->str, ==, "play:menu ivr.digits:12 ivr.ended ");
  g_assert_false (h.listening);
  host_clear (&h);
  g_clear_pointer (&r, cd_ivr_runner_free);

  r = runner_new (MENU, &h, NULL);
  cd_ivr_runner_start (r);
  cd_ivr_runner_prompt_done (r, TRUE);
  cd_ivr_runner_digit (r, '1');
  g_assert_false (h.finished);
  wait_finished (&h, 5000);
  g_assert_true (h.finished);
  g_assert_cmpint (h.outcome, ==, CD_IVR_OUTCOME_QUEUE);
  g_assert_cmpstr (h.queue_id, ==, QUEUE);
  host_clear (&h);
}

/* A wrong digit with no retries left: the fallback's prompt, then hangup. */
static void
test_invalid_then_fallback (void)
{
  Host h;
  g_autoptr (CdIvrRunner) r = runner_new (MENU, &h, NULL);

  cd_ivr_runner_start (r);
  cd_ivr_runner_prompt_done (r, TRUE);
  cd_ivr_runner_digit (r, '9');
  g_assert_false (h.finished);
  cd_ivr_runner_prompt_done (r, TRUE); /* the fallback's "bye" */
  g_assert_true (h.finished);
  g_assert_cmpstr (h.reason, ==, "ivr-hangup");
  g_assert_cmpstr (h.log->str, ==, "play:menu ivr.invalid:9 ivr.fallback play:bye ivr.ended ");
  host_clear (&h);
}

#define GREET_THEN_MENU                                                                         \
  "{\"start\":\"g\",\"nodes\":["                                                                \
  "{\"id\":\"g\",\"type\":\"say\",\"text\":\"hello\",\"next\":\"m\"},"                          \
  "{\"id\":\"m\",\"type\":\"menu\",\"prompt\":{\"text\":\"menu\"},\"options\":{\"2\":\"two\"}," \
  "\"timeout_s\":1,\"max_retries\":0},"                                                         \
  "{\"id\":\"two\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\"}]}"

/* A digit during the greeting stops it (barge-in) and is the menu's
 * answer: the menu's prompt is skipped. */
static void
test_type_ahead (void)
{
  Host h;
  g_autoptr (CdIvrRunner) r = runner_new (GREET_THEN_MENU, &h, NULL);

  cd_ivr_runner_start (r);
  cd_ivr_runner_digit (r, '2');
  g_assert_true (h.finished);
  g_assert_cmpint (h.outcome, ==, CD_IVR_OUTCOME_QUEUE);
  g_assert_cmpstr (h.log->str, ==, "play:hello ivr.barge_in stop ivr.digits:2 ivr.ended ");
  host_clear (&h);
}

/* Digits until the finish digit, into a variable, then a branch on it. */
static void
test_gather_and_branch (void)
{
  static const char json[] =
      "{\"start\":\"g\",\"nodes\":["
      "{\"id\":\"g\",\"type\":\"gather\",\"prompt\":{\"text\":\"your number\"},"
      "\"variable\":\"account\",\"max_digits\":8,\"next\":\"b\"},"
      "{\"id\":\"b\",\"type\":\"branch\",\"on\":\"variable\",\"variable\":\"account\","
      "\"cases\":{\"4711\":\"vip\"},\"otherwise\":\"bye\"},"
      "{\"id\":\"vip\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\",\"priority\":9},"
      "{\"id\":\"bye\",\"type\":\"hangup\"}]}";
  Host h;
  g_autoptr (CdIvrRunner) r = runner_new (json, &h, NULL);

  cd_ivr_runner_start (r);
  cd_ivr_runner_prompt_done (r, TRUE);
  for (const char *d = "4711#"; *d; d++)
    cd_ivr_runner_digit (r, *d);
  g_assert_true (h.finished);
  g_assert_cmpint (h.outcome, ==, CD_IVR_OUTCOME_QUEUE);
  g_assert_cmpstr (g_hash_table_lookup (cd_ivr_runner_get_variables (r), "account"), ==, "4711");
  g_assert_cmpstr (h.log->str, ==, "play:your number ivr.digits:4711 ivr.branch ivr.ended ");
  host_clear (&h);
}

/* A language case takes the language's regional forms. */
static void
test_branch_on_language (void)
{
  static const char json[] =
      "{\"start\":\"b\",\"nodes\":["
      "{\"id\":\"b\",\"type\":\"branch\",\"on\":\"language\",\"cases\":{\"de\":\"de\"},"
      "\"otherwise\":\"other\"},"
      "{\"id\":\"de\",\"type\":\"queue\",\"queue_id\":\"" QUEUE "\"},"
      "{\"id\":\"other\",\"type\":\"hangup\"}]}";
  const char *languages[] = { "de", "de-ch", "den", NULL };
  const CdIvrOutcomeKind expected[] = { CD_IVR_OUTCOME_QUEUE, CD_IVR_OUTCOME_QUEUE,
                                        CD_IVR_OUTCOME_HANGUP, CD_IVR_OUTCOME_HANGUP };

  for (guint i = 0; i < G_N_ELEMENTS (expected); i++) {
    Host h;
    g_autoptr (CdIvrRunner) r = runner_new (json, &h, languages[i]);

    cd_ivr_runner_start (r);
    g_assert_true (h.finished);
    g_assert_cmpint (h.outcome, ==, expected[i]);
    host_clear (&h);
  }
}

/* A voicemail after its prompt; # ends it; the flow goes on to next. */
static void
test_voicemail (void)
{
  static const char json[] =
      "{\"start\":\"v\",\"nodes\":["
      "{\"id\":\"v\",\"type\":\"voicemail\",\"prompt\":{\"text\":\"after the beep\"},"
      "\"max_s\":30,\"silence_s\":4,\"next\":\"bye\"},"
      "{\"id\":\"bye\",\"type\":\"hangup\"}]}";
  Host h;
  g_autoptr (CdIvrRunner) r = runner_new (json, &h, NULL);

  cd_ivr_runner_start (r);
  g_assert_true (h.listening);
  cd_ivr_runner_prompt_done (r, TRUE);
  cd_ivr_runner_digit (r, '5'); /* not the end */
  cd_ivr_runner_digit (r, '#');
  g_assert_false (h.finished);
  cd_ivr_runner_recorded (r);
  g_assert_true (h.finished);
  g_assert_cmpstr (h.log->str, ==,
                   "play:after the beep ivr.recording record:30:4 stop-recording:# ivr.ended ");
  host_clear (&h);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/ivr-runner/multi-digit-options", test_multi_digit_options);
  g_test_add_func ("/ivr-runner/invalid-then-fallback", test_invalid_then_fallback);
  g_test_add_func ("/ivr-runner/type-ahead", test_type_ahead);
  g_test_add_func ("/ivr-runner/gather-and-branch", test_gather_and_branch);
  g_test_add_func ("/ivr-runner/branch-on-language", test_branch_on_language);
  g_test_add_func ("/ivr-runner/voicemail", test_voicemail);
  return g_test_run ();
}
