/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The IVR runner: a small state machine per call. Digits the visitor
 * presses while nothing waits for them are kept (type-ahead) for the next
 * menu or gather; a prompt with barge-in ends at the first digit. */

#define G_LOG_DOMAIN "calldocker-ivr"

#include "cd-ivr-runner.h"

#include <string.h>

/* nodes visited without waiting for the visitor before the flow is
 * stopped (the checks refuse loops that never wait; this is a backstop) */
#define MAX_STEPS 1000

typedef enum {
  IDLE,
  PLAYING,     /* a play or say node's prompt, a hangup's or voicemail's */
  MENU_PROMPT, /* the menu's prompt (digits may interrupt it) */
  MENU_RETRY,  /* the invalid or timeout prompt, before the menu again */
  MENU_WAIT,   /* digits, with the node's timeouts */
  GATHER_PROMPT,
  GATHER_WAIT,
  RECORDING, /* a voicemail */
  DONE,
} State;

struct _CdIvrRunner {
  CdIvrFlow *flow;
  char *country, *language;
  CdIvrHost host;
  gpointer host_data;
  int node;
  State state;
  GString *typed;     /* digits pressed and not yet used */
  GString *input;     /* the menu's or gather's digits so far */
  guint attempts;     /* the menu's retries used */
  guint timer_id;     /* the first-digit or inter-digit timeout */
  gboolean playing;   /* a prompt is playing */
  gboolean listening; /* the host listens for in-band digits */
  guint steps;        /* nodes since the visitor was last waited for */
  GHashTable *vars;
};

static void enter (CdIvrRunner *self, int node);

static JsonObject *
detail_for (CdIvrRunner *self)
{
  JsonObject *o = json_object_new ();

  if (self->node >= 0)
    json_object_set_string_member (o, "node", self->flow->nodes[self->node].id);
  return o;
}

static void
event (CdIvrRunner *self, const char *type, JsonObject *detail)
{
  self->host.event (self->host_data, type, detail);
  json_object_unref (detail);
}

static const CdIvrNode *
current (CdIvrRunner *self)
{
  return &self->flow->nodes[self->node];
}

static void
stop_prompt (CdIvrRunner *self)
{
  if (self->playing) {
    self->playing = FALSE;
    self->host.stop (self->host_data);
  }
}

static void
play (CdIvrRunner *self, const CdIvrPrompt *prompt, const char *what)
{
  JsonObject *d = detail_for (self);

  json_object_set_string_member (d, "prompt", what);
  if (prompt->prompt_id)
    json_object_set_string_member (d, "prompt_id", prompt->prompt_id);
  else
    json_object_set_string_member (d, "text", prompt->text);
  event (self, "ivr.prompt", d);
  self->playing = TRUE;
  self->host.play (self->host_data, prompt);
}

static void
listen (CdIvrRunner *self, gboolean on)
{
  if (self->listening == on)
    return;
  self->listening = on;
  if (self->host.listen)
    self->host.listen (self->host_data, on);
}

static void
finish (CdIvrRunner *self, CdIvrOutcome *outcome)
{
  JsonObject *d = detail_for (self);
  static const char *const kinds[] = { "queue", "transfer", "hangup" };

  g_clear_handle_id (&self->timer_id, g_source_remove);
  stop_prompt (self);
  listen (self, FALSE);
  self->state = DONE;
  outcome->node = self->node >= 0 ? current (self)->id : NULL;
  json_object_set_string_member (d, "outcome", kinds[outcome->kind]);
  if (outcome->queue_id)
    json_object_set_string_member (d, "queue_id", outcome->queue_id);
  if (outcome->agent_id)
    json_object_set_string_member (d, "agent_id", outcome->agent_id);
  if (outcome->reason)
    json_object_set_string_member (d, "reason", outcome->reason);
  event (self, "ivr.ended", d);
  self->host.finish (self->host_data, outcome);
}

static void
hang_up (CdIvrRunner *self, const char *reason)
{
  CdIvrOutcome o = { .kind = CD_IVR_OUTCOME_HANGUP, .reason = reason };

  finish (self, &o);
}

/* Goes on to @target, or hangs up where the flow goes nowhere. */
static void
go (CdIvrRunner *self, int target, const char *reason)
{
  if (target == CD_IVR_NO_NODE) {
    hang_up (self, reason);
    return;
  }
  enter (self, target);
}

/* ---- menus ---- */

static gboolean on_menu_timeout (gpointer user_data);

static void
arm (CdIvrRunner *self, guint seconds)
{
  g_clear_handle_id (&self->timer_id, g_source_remove);
  self->timer_id = g_timeout_add_seconds (seconds, on_menu_timeout, self);
}

/* The menu option @input is, exactly; and whether a longer one starts with it. */
static int
menu_match (const CdIvrNode *n, const char *input, gboolean *longer)
{
  int target = CD_IVR_NO_NODE;
  gsize len = strlen (input);

  *longer = FALSE;
  for (guint i = 0; i < n->n_cases; i++) {
    if (g_str_equal (n->cases[i].key, input))
      target = n->cases[i].target;
    else if (strlen (n->cases[i].key) > len && strncmp (n->cases[i].key, input, len) == 0)
      *longer = TRUE;
  }
  return target;
}

static void menu_start (CdIvrRunner *self);

/* A wrong choice or none: the node's prompt for it, then the menu again,
 * or its fallback once the retries are used up. */
static void
menu_retry (CdIvrRunner *self, gboolean timed_out)
{
  const CdIvrNode *n = current (self);
  const CdIvrPrompt *p = timed_out ? &n->timeout_prompt : &n->invalid_prompt;
  JsonObject *d = detail_for (self);

  g_clear_handle_id (&self->timer_id, g_source_remove);
  if (!timed_out)
    json_object_set_string_member (d, "digits", self->input->str);
  json_object_set_int_member (d, "attempt", self->attempts + 1);
  event (self, timed_out ? "ivr.timeout" : "ivr.invalid", d);
  g_string_truncate (self->input, 0);
  g_string_truncate (self->typed, 0);
  if (++self->attempts > n->max_retries) {
    JsonObject *f = detail_for (self);
    json_object_set_int_member (f, "attempts", self->attempts);
    event (self, "ivr.fallback", f);
    go (self, n->fallback, timed_out ? "no-input" : "invalid-input");
    return;
  }
  if (p->prompt_id || p->text) {
    self->state = MENU_RETRY;
    play (self, p, timed_out ? "timeout" : "invalid");
    return;
  }
  menu_start (self);
}

static void
menu_choose (CdIvrRunner *self, int target)
{
  JsonObject *d = detail_for (self);

  g_clear_handle_id (&self->timer_id, g_source_remove);
  json_object_set_string_member (d, "digits", self->input->str);
  event (self, "ivr.digits", d);
  g_string_truncate (self->input, 0);
  enter (self, target);
}

/* A digit for the menu waiting: chosen, invalid, or more to come. */
static void
menu_digit (CdIvrRunner *self, char digit)
{
  const CdIvrNode *n = current (self);
  gboolean longer;
  int target;

  g_string_append_c (self->input, digit);
  target = menu_match (n, self->input->str, &longer);
  if (target != CD_IVR_NO_NODE && !longer) {
    menu_choose (self, target);
    return;
  }
  if (target == CD_IVR_NO_NODE && !longer) {
    menu_retry (self, FALSE);
    return;
  }
  arm (self, n->inter_digit_timeout_s);
}

static gboolean
on_menu_timeout (gpointer user_data)
{
  CdIvrRunner *self = user_data;
  const CdIvrNode *n = current (self);

  self->timer_id = 0;
  if (self->state == MENU_WAIT) {
    gboolean longer;
    int target = self->input->len ? menu_match (n, self->input->str, &longer) : CD_IVR_NO_NODE;

    if (target != CD_IVR_NO_NODE)
      menu_choose (self, target);
    else
      menu_retry (self, self->input->len == 0);
  } else if (self->state == GATHER_WAIT) {
    JsonObject *d = detail_for (self);

    if (self->input->len == 0) {
      event (self, "ivr.timeout", d);
      go (self, n->fallback, "no-input");
      return G_SOURCE_REMOVE;
    }
    json_object_set_string_member (d, "digits", self->input->str);
    event (self, "ivr.digits", d);
    g_hash_table_replace (self->vars, g_strdup (n->variable), g_strdup (self->input->str));
    g_string_truncate (self->input, 0);
    go (self, n->next, "ivr-end");
  }
  return G_SOURCE_REMOVE;
}

/* The prompt is over (or was never): digits typed ahead count first. */
static void
wait_for_digits (CdIvrRunner *self, State state)
{
  g_autofree char *typed = g_strdup (self->typed->str);

  self->state = state;
  self->steps = 0;
  g_string_truncate (self->typed, 0);
  arm (self, current (self)->timeout_s);
  for (const char *c = typed; *c && self->state == state; c++)
    cd_ivr_runner_digit (self, *c);
}

static void
menu_start (CdIvrRunner *self)
{
  const CdIvrNode *n = current (self);

  g_string_truncate (self->input, 0);
  if (self->typed->len == 0 || !n->barge_in) {
    self->state = MENU_PROMPT;
    play (self, &n->prompt, "menu");
    return;
  }
  wait_for_digits (self, MENU_WAIT);
}

/* ---- gather ---- */

static void
gather_digit (CdIvrRunner *self, char digit)
{
  const CdIvrNode *n = current (self);
  gboolean finish_now = n->finish_on && n->finish_on[0] && digit == n->finish_on[0];

  if (!finish_now)
    g_string_append_c (self->input, digit);
  if (finish_now || self->input->len >= n->max_digits) {
    JsonObject *d = detail_for (self);

    g_clear_handle_id (&self->timer_id, g_source_remove);
    if (self->input->len == 0) {
      event (self, "ivr.timeout", d);
      go (self, n->fallback, "no-input");
      return;
    }
    json_object_set_string_member (d, "digits", self->input->str);
    event (self, "ivr.digits", d);
    g_hash_table_replace (self->vars, g_strdup (n->variable), g_strdup (self->input->str));
    g_string_truncate (self->input, 0);
    go (self, n->next, "ivr-end");
    return;
  }
  arm (self, n->inter_digit_timeout_s);
}

/* ---- nodes ---- */

static int
branch_target (CdIvrRunner *self, const CdIvrNode *n, const char **on_value)
{
  const char *value = NULL;

  switch (n->on) {
  case CD_IVR_ON_BUSINESS_HOURS: {
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    gboolean open = cd_business_hours_is_open (n->hours, now);

    *on_value = open ? "open" : "closed";
    return open ? n->next : n->otherwise;
  }
  case CD_IVR_ON_VARIABLE:
    value = g_hash_table_lookup (self->vars, n->variable);
    break;
  case CD_IVR_ON_COUNTRY:
    value = self->country;
    break;
  case CD_IVR_ON_LANGUAGE:
    value = self->language;
    break;
  default:
    break;
  }
  *on_value = value ? value : "";
  for (guint i = 0; value && i < n->n_cases; i++) {
    const char *key = n->cases[i].key;

    if (g_str_equal (key, value))
      return n->cases[i].target;
    /* a language matches its regional forms: "de" takes "de-ch" */
    if (n->on == CD_IVR_ON_LANGUAGE && g_str_has_prefix (value, key) && value[strlen (key)] == '-')
      return n->cases[i].target;
  }
  return n->otherwise;
}

static void
enter (CdIvrRunner *self, int node)
{
  const CdIvrNode *n;
  JsonObject *d;

  g_clear_handle_id (&self->timer_id, g_source_remove);
  stop_prompt (self);
  self->node = node;
  self->attempts = 0;
  n = current (self);
  if (++self->steps > MAX_STEPS) {
    g_warning ("an IVR flow went through %d nodes without waiting for the visitor", MAX_STEPS);
    hang_up (self, "ivr-loop");
    return;
  }
  d = detail_for (self);
  json_object_set_string_member (d, "type", cd_ivr_node_type_to_string (n->type));
  event (self, "ivr.node", d);
  listen (self, n->type == CD_IVR_MENU || n->type == CD_IVR_GATHER || n->type == CD_IVR_VOICEMAIL);
  switch (n->type) {
  case CD_IVR_PLAY:
  case CD_IVR_SAY:
    /* a digit typed ahead skips a prompt it may interrupt */
    if (self->typed->len > 0 && n->barge_in) {
      go (self, n->next, "ivr-end");
      return;
    }
    self->state = PLAYING;
    play (self, &n->prompt, n->type == CD_IVR_PLAY ? "play" : "say");
    return;
  case CD_IVR_MENU:
    menu_start (self);
    return;
  case CD_IVR_GATHER:
    g_string_truncate (self->input, 0);
    if (self->typed->len > 0 && n->barge_in) {
      wait_for_digits (self, GATHER_WAIT);
      return;
    }
    self->state = GATHER_PROMPT;
    play (self, &n->prompt, "gather");
    return;
  case CD_IVR_BRANCH: {
    const char *value = NULL;
    int target = branch_target (self, n, &value);
    JsonObject *b = detail_for (self);

    json_object_set_string_member (b, "value", value);
    if (target != CD_IVR_NO_NODE)
      json_object_set_string_member (b, "to", self->flow->nodes[target].id);
    event (self, "ivr.branch", b);
    go (self, target, "ivr-end");
    return;
  }
  case CD_IVR_SET:
    g_hash_table_replace (self->vars, g_strdup (n->variable), g_strdup (n->value));
    go (self, n->next, "ivr-end");
    return;
  case CD_IVR_QUEUE: {
    CdIvrOutcome o = { .kind = CD_IVR_OUTCOME_QUEUE,
                       .queue_id = n->queue_id,
                       .priority = n->priority };
    finish (self, &o);
    return;
  }
  case CD_IVR_TRANSFER: {
    CdIvrOutcome o = { .kind = CD_IVR_OUTCOME_TRANSFER,
                       .queue_id = n->queue_id,
                       .agent_id = n->agent_id };
    finish (self, &o);
    return;
  }
  case CD_IVR_VOICEMAIL:
  case CD_IVR_HANGUP:
    if (n->prompt.prompt_id || n->prompt.text) {
      self->state = PLAYING;
      play (self, &n->prompt, n->type == CD_IVR_HANGUP ? "hangup" : "voicemail");
      return;
    }
    self->state = PLAYING;
    cd_ivr_runner_prompt_done (self, TRUE);
    return;
  case CD_IVR_N_TYPES:
  default:
    hang_up (self, "ivr-error");
    return;
  }
}

/* ---- the host's calls ---- */

CdIvrRunner *
cd_ivr_runner_new (CdIvrFlow *flow, const CdIvrCaller *caller, const CdIvrHost *host,
                   gpointer host_data)
{
  CdIvrRunner *self = g_new0 (CdIvrRunner, 1);

  self->flow = flow;
  self->country = g_strdup (caller ? caller->country : NULL);
  self->language = g_strdup (caller ? caller->language : NULL);
  self->host = *host;
  self->host_data = host_data;
  self->node = -1;
  self->typed = g_string_new (NULL);
  self->input = g_string_new (NULL);
  self->vars = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return self;
}

void
cd_ivr_runner_free (CdIvrRunner *self)
{
  if (self == NULL)
    return;
  g_clear_handle_id (&self->timer_id, g_source_remove);
  cd_ivr_flow_free (self->flow);
  g_free (self->country);
  g_free (self->language);
  g_string_free (self->typed, TRUE);
  g_string_free (self->input, TRUE);
  g_hash_table_unref (self->vars);
  g_free (self);
}

void
cd_ivr_runner_start (CdIvrRunner *self)
{
  if (self->state == IDLE && self->node < 0)
    enter (self, self->flow->start);
}

void
cd_ivr_runner_prompt_done (CdIvrRunner *self, gboolean ok)
{
  const CdIvrNode *n;

  if (self->state == DONE || self->node < 0)
    return;
  self->playing = FALSE;
  n = current (self);
  switch (self->state) {
  case PLAYING:
    if (n->type == CD_IVR_HANGUP) {
      hang_up (self, "ivr-hangup");
    } else if (n->type == CD_IVR_VOICEMAIL) {
      JsonObject *d = detail_for (self);

      json_object_set_int_member (d, "max_s", n->max_s);
      json_object_set_int_member (d, "silence_s", n->silence_s);
      event (self, "ivr.recording", d);
      self->state = RECORDING;
      self->steps = 0;
      self->host.record (self->host_data, n->max_s, n->silence_s);
    } else {
      go (self, n->next, "ivr-end");
    }
    return;
  case MENU_PROMPT:
    wait_for_digits (self, MENU_WAIT);
    return;
  case MENU_RETRY:
    menu_start (self);
    return;
  case GATHER_PROMPT:
    wait_for_digits (self, GATHER_WAIT);
    return;
  case IDLE:
  case MENU_WAIT:
  case GATHER_WAIT:
  case DONE:
  default:
    return;
  }
}

void
cd_ivr_runner_digit (CdIvrRunner *self, char digit)
{
  const CdIvrNode *n;

  if (self->state == DONE || self->node < 0 || !strchr ("0123456789*#ABCD", digit) || digit == 0)
    return;
  n = current (self);
  switch (self->state) {
  case MENU_WAIT:
    menu_digit (self, digit);
    return;
  case GATHER_WAIT:
    gather_digit (self, digit);
    return;
  case MENU_PROMPT:
  case GATHER_PROMPT:
    g_string_append_c (self->typed, digit);
    if (n->barge_in) {
      JsonObject *d = detail_for (self);
      event (self, "ivr.barge_in", d);
      stop_prompt (self);
      wait_for_digits (self, self->state == MENU_PROMPT ? MENU_WAIT : GATHER_WAIT);
    }
    return;
  case PLAYING:
    g_string_append_c (self->typed, digit);
    if (n->barge_in && (n->type == CD_IVR_PLAY || n->type == CD_IVR_SAY)) {
      JsonObject *d = detail_for (self);
      event (self, "ivr.barge_in", d);
      stop_prompt (self);
      go (self, n->next, "ivr-end");
    }
    return;
  case RECORDING:
    if (digit == '#')
      self->host.stop_recording (self->host_data, "#");
    return;
  case MENU_RETRY:
    /* a digit during the retry's prompt is the menu's answer */
    g_string_append_c (self->typed, digit);
    stop_prompt (self);
    g_string_truncate (self->input, 0);
    wait_for_digits (self, MENU_WAIT);
    return;
  case IDLE:
  case DONE:
  default:
    g_string_append_c (self->typed, digit);
    return;
  }
}

void
cd_ivr_runner_recorded (CdIvrRunner *self)
{
  if (self->state != RECORDING)
    return;
  self->state = PLAYING; /* (left for the next node) */
  go (self, current (self)->next, "voicemail");
}

GHashTable *
cd_ivr_runner_get_variables (CdIvrRunner *self)
{
  return self->vars;
}
