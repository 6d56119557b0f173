/* SPDX-License-Identifier: GPL-3.0-or-later */
/* One call's walk through a published IVR flow, on the main loop: it
 * plays prompts, waits for digits with the node's timeouts, retries and
 * falls back, branches and sets variables, and ends in an outcome (a
 * queue, a transfer, a voicemail or a hangup). Media and the call are the
 * host's: the runner asks it to play and stop, is told when a prompt
 * ended and which digits came, and reports what it did (docs/ivr.md). */
#pragma once

#include <json-glib/json-glib.h>

#include "cd-ivr-flow.h"

G_BEGIN_DECLS

typedef enum {
  CD_IVR_OUTCOME_QUEUE,
  CD_IVR_OUTCOME_TRANSFER,
  CD_IVR_OUTCOME_HANGUP,
} CdIvrOutcomeKind;

typedef struct {
  CdIvrOutcomeKind kind;
  const char *node;     /* the node that ended the flow */
  const char *queue_id; /* queue, transfer to a queue */
  const char *agent_id; /* transfer to an agent */
  int priority;         /* queue */
  const char *reason;   /* hangup: why (e.g. "ivr-hangup", "no-input") */
} CdIvrOutcome;

typedef struct {
  /* play @prompt to the visitor; the host then calls
   * cd_ivr_runner_prompt_done(), unless the runner stops it first */
  void (*play) (gpointer data, const CdIvrPrompt *prompt);
  void (*stop) (gpointer data);
  /* a timeline event; @detail is the host's */
  void (*event) (gpointer data, const char *type, JsonObject *detail);
  /* the flow ended; the runner does nothing more */
  void (*finish) (gpointer data, const CdIvrOutcome *outcome);
  /* whether digits are awaited (a menu, a gather or a voicemail, their
   * prompts included): the host listens for DTMF tones in the visitor's
   * audio meanwhile */
  void (*listen) (gpointer data, gboolean on);
  /* a voicemail: a beep, then the visitor recorded until @max_s, @silence_s
   * of silence or stop_recording(); the host then calls
   * cd_ivr_runner_recorded() */
  void (*record) (gpointer data, guint max_s, guint silence_s);
  void (*stop_recording) (gpointer data, const char *why);
} CdIvrHost;

typedef struct {
  const char *country;  /* nullable: the visitor's, upper case */
  const char *language; /* nullable: the visitor's, lower case */
} CdIvrCaller;

typedef struct _CdIvrRunner CdIvrRunner;

/* Takes @flow. Nothing happens before cd_ivr_runner_start(). */
CdIvrRunner *cd_ivr_runner_new (CdIvrFlow *flow, const CdIvrCaller *caller, const CdIvrHost *host,
                                gpointer host_data);
void cd_ivr_runner_free (CdIvrRunner *self);
void cd_ivr_runner_start (CdIvrRunner *self);
void cd_ivr_runner_prompt_done (CdIvrRunner *self, gboolean ok);
/* the voicemail was recorded (or could not be): the flow goes on */
void cd_ivr_runner_recorded (CdIvrRunner *self);
/* @digit: 0-9, *, #, A-D */
void cd_ivr_runner_digit (CdIvrRunner *self, char digit);
/* the variables set or gathered so far: name -> value */
GHashTable *cd_ivr_runner_get_variables (CdIvrRunner *self);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdIvrRunner, cd_ivr_runner_free)

G_END_DECLS
