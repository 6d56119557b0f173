/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A queue's definition as the API takes it (JSON), checked field by field:
 * a refusal names the field and what it must be (docs/routing.md). */
#pragma once

#include <json-glib/json-glib.h>

#include "routing/cd-business-hours.h"
#include "routing/cd-rule.h"
#include "routing/cd-strategy.h"

G_BEGIN_DECLS

#define CD_QUEUE_SPEC_ERROR (cd_queue_spec_error_quark ())
GQuark cd_queue_spec_error_quark (void);

typedef enum {
  CD_QUEUE_SPEC_ERROR_INVALID,
} CdQueueSpecError;

#define CD_QUEUE_MAX_SKILLS    20
#define CD_QUEUE_MAX_LANGUAGES 20

typedef enum {
  CD_QUEUE_ACTION_HANGUP,    /* play the message (if any) and end the call */
  CD_QUEUE_ACTION_VOICEMAIL, /* record a voicemail */
  CD_QUEUE_ACTION_QUEUE,     /* move to another queue */
  CD_QUEUE_ACTION_PRIORITY,  /* overflow only: raise the call's priority */
} CdQueueAction;

typedef struct {
  CdQueueAction action;
  char *queue_id; /* CD_QUEUE_ACTION_QUEUE */
  char *message;  /* CD_QUEUE_ACTION_HANGUP, may be NULL */
  int raise_by;   /* CD_QUEUE_ACTION_PRIORITY */
  guint after_s;  /* overflow: after this long in the queue */
} CdQueueFallback;

typedef struct {
  char *name;
  CdStrategy strategy;
  CdRequiredSkill skills[CD_QUEUE_MAX_SKILLS]; /* names owned */
  guint n_skills;
  char *languages[CD_QUEUE_MAX_LANGUAGES + 1]; /* NULL-terminated */
  guint n_languages;
  CdRule *rule;                    /* NULL: any agent */
  CdBusinessHours *business_hours; /* NULL: always open */
  guint ring_timeout_s;
  guint max_wait_s;
  guint max_length; /* 0: no limit */
  guint wrap_up_s;
  guint announce_every_s; /* 0: never */
  CdQueueFallback when_closed, when_full;
  gboolean has_overflow;
  CdQueueFallback overflow;
  gboolean record; /* its calls recorded once an agent answers */
} CdQueueSpec;

/* Fields left out take their defaults (docs/routing.md). */
CdQueueSpec *cd_queue_spec_parse (JsonObject *object, GError **error);
void cd_queue_spec_free (CdQueueSpec *spec);
gboolean cd_language_code_is_valid (const char *code);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdQueueSpec, cd_queue_spec_free)

G_END_DECLS
