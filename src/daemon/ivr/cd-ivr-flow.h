/* SPDX-License-Identifier: GPL-3.0-or-later */
/* An IVR flow as the API takes it (JSON): a graph of nodes checked when it
 * is saved. A refusal names the node and the reason (docs/ivr.md). */
#pragma once

#include <json-glib/json-glib.h>

#include "routing/cd-business-hours.h"

G_BEGIN_DECLS

#define CD_IVR_FLOW_ERROR (cd_ivr_flow_error_quark ())
GQuark cd_ivr_flow_error_quark (void);

typedef enum {
  CD_IVR_FLOW_ERROR_INVALID,
} CdIvrFlowError;

#define CD_IVR_MAX_NODES  200
#define CD_IVR_MAX_CASES  32
#define CD_IVR_MAX_TEXT   2000
#define CD_IVR_MAX_DIGITS 32
#define CD_IVR_NO_NODE    (-1)

typedef enum {
  CD_IVR_PLAY,      /* a stored prompt */
  CD_IVR_SAY,       /* text to speech */
  CD_IVR_MENU,      /* a prompt, then a choice by digits */
  CD_IVR_GATHER,    /* a prompt, then digits into a variable */
  CD_IVR_BRANCH,    /* on business hours, a variable, the country or the language */
  CD_IVR_SET,       /* a variable */
  CD_IVR_QUEUE,     /* enters a queue: the flow ends */
  CD_IVR_VOICEMAIL, /* records the visitor */
  CD_IVR_TRANSFER,  /* to an agent or a queue: the flow ends */
  CD_IVR_HANGUP,    /* ends the call */
  CD_IVR_N_TYPES,
} CdIvrNodeType;

typedef enum {
  CD_IVR_ON_BUSINESS_HOURS,
  CD_IVR_ON_VARIABLE,
  CD_IVR_ON_COUNTRY,
  CD_IVR_ON_LANGUAGE,
} CdIvrBranchOn;

/* What is played: a stored prompt, or text spoken in a language. */
typedef struct {
  char *prompt_id; /* or */
  char *text;
  char *language; /* with text: "en" unless given */
  char *voice;    /* nullable */
} CdIvrPrompt;

typedef struct {
  char *key; /* digits, a variable's value, a country (upper case), a language */
  int target;
} CdIvrCase;

typedef struct {
  char *id;
  CdIvrNodeType type;
  CdIvrPrompt prompt; /* play, say, menu, gather; optional for voicemail and hangup */
  CdIvrPrompt invalid_prompt, timeout_prompt; /* menu, optional */
  int next;                                   /* CD_IVR_NO_NODE: none */
  int fallback;     /* menu: retries used up; gather: nothing entered (none: hang up) */
  int otherwise;    /* branch: no case matched, or closed */
  CdIvrCase *cases; /* menu options, branch cases */
  guint n_cases;
  CdIvrBranchOn on;
  CdBusinessHours *hours; /* branch on business hours */
  char *variable;         /* gather, set, branch on a variable */
  char *value;            /* set */
  char *queue_id;         /* queue, transfer */
  char *agent_id;         /* transfer */
  char *finish_on;        /* gather: the digit that ends it, "#" unless given */
  guint timeout_s, inter_digit_timeout_s, max_retries, max_digits;
  guint max_s, silence_s; /* voicemail */
  int priority;           /* queue */
  gboolean barge_in;      /* digits interrupt the prompt */
} CdIvrNode;

typedef struct {
  CdIvrNode *nodes;
  guint n_nodes;
  int start;
} CdIvrFlow;

CdIvrFlow *cd_ivr_flow_parse (JsonObject *object, GError **error);
void cd_ivr_flow_free (CdIvrFlow *flow);
const char *cd_ivr_node_type_to_string (CdIvrNodeType type);
gboolean cd_ivr_node_waits_for_input (CdIvrNodeType type);
/* the nodes @node may go on to, in @out (at most CD_IVR_MAX_CASES + 3) */
guint cd_ivr_node_successors (const CdIvrNode *node, int *out);

/* What @flow names outside itself, for the store to check: a JSON array of
 * {"node", "field", "kind" (queue, agent, prompt), "id"}, in node order. */
char *cd_ivr_flow_references (const CdIvrFlow *flow);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdIvrFlow, cd_ivr_flow_free)

G_END_DECLS
