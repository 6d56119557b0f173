/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdSwitchboard: call messages from the signaling sessions, the calls' state
 * machine (queued, ringing, connected, ended) and the agents on this daemon. */

#define G_LOG_DOMAIN "calldocker-calls"

#include "cd-switchboard.h"

#include "cd-call-recorder.h"

#include "../../common/cd-json.h"
#include "../http/cd-http-fields.h"
#include "../ivr/cd-ivr-runner.h"
#include "../ivr/cd-tts-cache.h"
#include "../routing/cd-business-hours.h"
#include "../routing/cd-presence.h"
#include "../routing/cd-queue-roster.h"
#include "../store/cd-call-store.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

typedef enum {
  CALL_QUEUED,
  CALL_RINGING,
  CALL_CONNECTING, /* an agent accepted; their media is being set up */
  CALL_CONNECTED,
  CALL_ENDED,
  CALL_IVR, /* the company's IVR has it, before any queue */
} CallState;

static const char *state_names[] = {
  "queued", "ringing", "connecting", "connected", "ended", "ivr"
};

typedef enum {
  MONITOR_NONE,
  MONITOR_LISTEN,  /* the supervisor hears both parties; nobody hears them */
  MONITOR_WHISPER, /* and the agent hears the supervisor */
  MONITOR_BARGE,   /* everyone hears everyone */
} CdMonitorMode;

static const char *monitor_names[] = { "none", "listen", "whisper", "barge" };

typedef struct _Agent Agent;
typedef struct _Call Call;

struct _Agent {
  CdSwitchboard *board; /* unowned */
  char *user_id;
  char *company_id;
  GPtrArray *sessions; /* Session*, unowned: the server tells us when they close */
  gboolean available;
  gint64 idle_since_us;
  guint calls_taken; /* accepted since the agent signed in here */
  guint missed;      /* offers let ring out in a row */
  guint wrap_up_id;  /* while in wrap-up after a call: its end */
  Call *call;        /* being reserved for, offered or on it; unowned */
  /* the agent's reservation in Redis (CdPresence) for @call */
  gboolean reserving;   /* asked for, no answer yet */
  gboolean reserved;    /* this daemon holds it (renewed until released) */
  gint64 held_until_us; /* another daemon holds the agent: not asked again before */
};

struct _Call {
  CdSwitchboard *board; /* unowned */
  char *id;
  char *company_id;
  char *visitor_id;
  char *page;
  CallState state;
  Session *visitor; /* nullable while the WebSocket is away */
  Session *agent_session;
  Agent *agent;         /* offered to or talking with; unowned */
  GHashTable *declined; /* user id -> gint64* until when (monotonic µs) it is not
                           offered to them again: they rejected or missed it */
  guint ring_id, wait_id, visitor_grace_id, agent_grace_id;
  guint reoffer_id; /* routes it again when a decline runs out */
  CdCallPipeline *pipeline;
  gboolean leg_connected[CD_LEG_COUNT];
  gint64 created_us;
  gint64 accepted_us;
  gint64 dtmf_window_us;
  guint dtmf_in_window;
  /* its queue: NULL while it is looked up, and for a company without queues */
  char *queue_id;
  char *language;    /* the visitor's, lower case; may be NULL */
  char *country;     /* the visitor's, from the trusted proxy header; may be NULL */
  gboolean routable; /* the queue is known (or there is none) */
  guint ring_timeout_s;
  int priority;      /* raised by a queue's overflow */
  gint64 entered_us; /* when it entered its queue (monotonic) */
  guint overflow_id; /* the queue's overflow, while it waits */
  guint announce_id; /* the queue's announcements, while it waits */
  guint hops;        /* queues it was sent on to */
  /* ring-all: the other agents it rings besides @agent (Agent*, unowned) */
  GPtrArray *also_ringing;
  guint reserving;     /* reservations asked for it and not answered yet */
  GHashTable *held;    /* agent ids another daemon held while it waited */
  gboolean answered;   /* both parties were connected once */
  CdLegRole agent_leg; /* the media slot of the call's agent */
  /* a blind transfer to an agent: offered to them alone, first */
  char *transfer_to;
  gboolean transfer_checking; /* a transfer to a queue: the queue is being looked up */
  /* a warm transfer: the agent consults @consult while the visitor holds */
  Agent *consult;           /* unowned */
  Session *consult_session; /* once they accepted */
  guint consult_ring_id;
  /* a supervisor listening in */
  Session *supervisor;
  char *supervisor_id;
  CdMonitorMode monitor;
  /* the IVR, from the call's start until its flow ends */
  CdIvrRunner *ivr;
  guint ivr_prompt;  /* the pipeline's id of the prompt playing */
  guint ivr_play;    /* counts plays and stops: a late rendering is dropped */
  guint ivr_done_id; /* acts on the flow's end, once the runner returned */
  CdIvrOutcome ivr_outcome;
  char *ivr_queue_id, *ivr_agent_id, *ivr_reason;
  struct _Voicemail *vm; /* a voicemail being recorded for the IVR */
};

/* A call sent on from queue to queue more often than this ends. */
#define MAX_QUEUE_HOPS 5

/* A queue as this daemon last read it, and where round-robin stands. */
typedef struct {
  char *company_id;
  CdQueueRoster *roster;
  gint64 loaded_us;
  guint cursor;
  double handle_avg_s; /* recent calls' handle time, a moving average */
  guint handled;
} QueueEntry;

/* How much the latest handle time counts in the average. */
#define HANDLE_TIME_WEIGHT 0.2

/* A queue read from the store is used this long before it is read again. */
#define ROSTER_TTL_US (5 * G_USEC_PER_SEC)

/* All of it belongs to the main thread. */
struct _CdSwitchboard {
  GObject parent_instance;

  CdApi *api; /* borrowed */
  CdSwitchboardSettings settings;
  GHashTable *calls;  /* id -> Call* (owned) */
  GHashTable *agents; /* user id -> Agent* (owned) */
  GHashTable *queues; /* queue id -> QueueEntry* (owned) */
  CdPresence *presence;
  guint renew_id;          /* renews the reservations this daemon holds */
  guint retry_id;          /* routes again once held agents may be free */
  GHashTable *supervising; /* user id -> calls they supervise here (GUINT) */
  CdTtsCache *tts;         /* nullable: no blob store */
  CdCallRecorder *recorder;
  GHashTable *retry_companies; /* company ids to route then */
};

G_DEFINE_FINAL_TYPE (CdSwitchboard, cd_switchboard, G_TYPE_OBJECT)

#define MAX_DTMF_PER_SECOND 10

/* ---- messages ---- */

static JsonBuilder *
begin (const char *type, const char *call_id)
{
  JsonBuilder *b = json_builder_new ();

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "type");
  json_builder_add_string_value (b, type);
  if (call_id) {
    json_builder_set_member_name (b, "call_id");
    json_builder_add_string_value (b, call_id);
  }
  return b;
}

static void
send_to (Session *s, JsonBuilder *message)
{
  g_autoptr (JsonBuilder) b = message;
  g_autoptr (JsonNode) node = NULL;

  if (s == NULL)
    return;
  json_builder_end_object (b);
  node = json_builder_get_root (b);
  cd_signal_session_send (s, node);
}

static void
add_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

static JsonObject *
detail_new (const char *key, const char *value, ...)
{
  JsonObject *o = json_object_new ();
  va_list args;

  va_start (args, value);
  while (key != NULL) {
    json_object_set_string_member (o, key, value);
    key = va_arg (args, const char *);
    if (key)
      value = va_arg (args, const char *);
  }
  va_end (args);
  return o;
}

static gint64
now_us (void)
{
  return g_get_real_time ();
}

static void
add_event (Call *call, const char *kind, JsonObject *detail)
{
  cd_call_store_add_event (call->board->api->calls, call->id, call->company_id, kind, detail,
                           now_us ());
  if (detail)
    json_object_unref (detail);
}

/* A transfer's @event (requested, completed, cancelled, failed) counted. */
static void
count_transfer (CdSwitchboard *self, gboolean warm, const char *event)
{
  g_autofree char *labels = NULL;

  if (self->settings.metrics == NULL)
    return;
  labels = g_strdup_printf ("mode=\"%s\",event=\"%s\"", warm ? "warm" : "blind", event);
  cd_metrics_add (self->settings.metrics, "calldocker_transfers_total", labels, 1);
}

/* ---- agents ---- */

static void
agent_free (gpointer data)
{
  Agent *a = data;

  g_clear_handle_id (&a->wrap_up_id, g_source_remove);
  g_ptr_array_unref (a->sessions);
  g_free (a->user_id);
  g_free (a->company_id);
  g_free (a);
}

static Agent *
agent_get (CdSwitchboard *self, Session *s)
{
  Agent *a = g_hash_table_lookup (self->agents, s->claims->sub);

  if (a == NULL) {
    a = g_new0 (Agent, 1);
    a->board = self;
    a->user_id = g_strdup (s->claims->sub);
    a->company_id = g_strdup (s->claims->company);
    a->sessions = g_ptr_array_new ();
    a->idle_since_us = g_get_monotonic_time ();
    g_hash_table_insert (self->agents, a->user_id, a);
  }
  return a;
}

static void
agent_send_all (Agent *a, JsonBuilder *message)
{
  g_autoptr (JsonBuilder) b = message;
  g_autoptr (JsonNode) node = NULL;

  json_builder_end_object (b);
  node = json_builder_get_root (b);
  for (guint i = 0; i < a->sessions->len; i++)
    cd_signal_session_send (g_ptr_array_index (a->sessions, i), node);
}

/* Tells every session of the agent its presence: @status, and @reason or
 * the wrap-up's @seconds when not NULL or 0. */
static void
agent_send_presence (Agent *a, const char *status, const char *reason, guint seconds)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();

  json_builder_begin_object (b);
  add_string (b, "type", "presence");
  add_string (b, "status", status);
  if (reason)
    add_string (b, "reason", reason);
  if (seconds) {
    json_builder_set_member_name (b, "seconds");
    json_builder_add_int_value (b, seconds);
  }
  agent_send_all (a, g_steal_pointer (&b));
}

/* Free to be offered a call: signed in here, available, not ringing or on
 * a call, not in wrap-up, not held by another daemon lately. */
static gboolean
agent_is_free (const Agent *a)
{
  return a->sessions->len > 0 && a->available && a->call == NULL && !a->reserving &&
         a->wrap_up_id == 0 && a->held_until_us <= g_get_monotonic_time () &&
         !g_hash_table_contains (a->board->supervising, a->user_id);
}

/* A company admin listening in takes no calls meanwhile. */
static void
supervising_changed (CdSwitchboard *self, const char *user_id, int by)
{
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (self->supervising, user_id));

  if (by < 0 && n <= 1)
    g_hash_table_remove (self->supervising, user_id);
  else
    g_hash_table_insert (self->supervising, g_strdup (user_id), GUINT_TO_POINTER (n + by));
}

static void
agent_maybe_forget (CdSwitchboard *self, Agent *a)
{
  if (a->sessions->len == 0 && a->call == NULL && !a->reserving)
    g_hash_table_remove (self->agents, a->user_id);
}

/* ---- shared presence: the agent's state and reservation in Redis ---- */

static void
on_presence_changed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *what = user_data;
  g_autoptr (GError) error = NULL;

  if (!cd_presence_change_finish (CD_PRESENCE (source), result, &error)) {
    if (error)
      g_message ("%s: %s", what, error->message);
    else
      g_message ("%s: the reservation was no longer this daemon's", what);
  }
}

/* What the agent is once a call no longer holds them. */
static CdAgentState
agent_resting_state (const Agent *a)
{
  return a->available ? CD_AGENT_AVAILABLE : CD_AGENT_AWAY;
}

/* @a no longer rings for, or talks on, @call: its reservation ends with
 * @next (wrap-up for @wrap_up_s), counting a miss when @missed. */
static void
agent_unbind (Agent *a, Call *call, CdAgentState next, guint wrap_up_s, gboolean missed)
{
  CdSwitchboard *self = a->board;

  if (a->call != call)
    return;
  a->call = NULL;
  if (!a->reserved)
    return;
  a->reserved = FALSE;
  cd_presence_release_async (
      self->presence, a->company_id, a->user_id, call->id,
      wrap_up_s && next == CD_AGENT_AVAILABLE ? CD_AGENT_WRAP_UP : next, wrap_up_s * 1000, missed,
      self->settings.max_missed_offers, on_presence_changed,
      g_strdup_printf ("agent %s: releasing the reservation for call %s", a->user_id, call->id));
}

typedef struct {
  CdSwitchboard *self; /* a reference */
  char *agent_id, *call_id;
} Renewal;

static void drop_ringing (Call *call, Agent *a, const char *why);
static void route (CdSwitchboard *self, const char *company_id);

/* A renewal refused: the lease lapsed (this daemon stalled) and another
 * call took the agent meanwhile, or the agent changed their state. An
 * offer still ringing is withdrawn; a call in progress goes on. */
static void
on_lease_renewed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Renewal *r = user_data;
  CdSwitchboard *self = r->self;
  g_autoptr (GError) error = NULL;
  Agent *a;
  Call *call;

  if (cd_presence_change_finish (CD_PRESENCE (source), result, &error) || error) {
    if (error)
      g_message ("agent %s: cannot renew the lease for call %s: %s", r->agent_id, r->call_id,
                 error->message);
    goto out;
  }
  a = self->agents ? g_hash_table_lookup (self->agents, r->agent_id) : NULL;
  call = self->calls ? g_hash_table_lookup (self->calls, r->call_id) : NULL;
  if (a && call && a->call == call && a->reserved && call->state == CALL_RINGING) {
    g_autofree char *company = g_strdup (call->company_id);

    g_message ("agent %s: the lease for call %s was lost after it lapsed (another call took "
               "them meanwhile): the offer is withdrawn",
               r->agent_id, r->call_id);
    a->reserved = FALSE; /* no longer this daemon's to release */
    drop_ringing (call, a, "reserved-elsewhere");
    route (self, company);
  } else {
    g_message ("agent %s: the lease for call %s was lost after it lapsed (another call took "
               "them, or they changed their state, meanwhile)",
               r->agent_id, r->call_id);
  }
out:
  g_object_unref (r->self);
  g_free (r->agent_id);
  g_free (r->call_id);
  g_free (r);
}

static gboolean
on_renew_leases (gpointer user_data)
{
  CdSwitchboard *self = user_data;
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->agents);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    Agent *a = value;
    /* this daemon's word that the agent is signed in to it */
    if (a->sessions->len > 0)
      cd_presence_sign_in_async (
          self->presence, a->company_id, a->user_id, on_presence_changed,
          g_strdup_printf ("agent %s: renewing this daemon's sign-in", a->user_id));
    if (a->reserved && a->call) {
      Renewal *r = g_new0 (Renewal, 1);

      r->self = g_object_ref (self);
      r->agent_id = g_strdup (a->user_id);
      r->call_id = g_strdup (a->call->id);
      cd_presence_renew_async (self->presence, a->company_id, a->user_id, a->call->id,
                               (a->call->agent == a && a->call->state >= CALL_CONNECTING) ||
                                   (a->call->consult == a && a->call->consult_session),
                               on_lease_renewed, r);
    }
  }
  return G_SOURCE_CONTINUE;
}

static void route (CdSwitchboard *self, const char *company_id);

static void retry_later (CdSwitchboard *self, const char *company_id);

/* Whether a call of @company_id waits here for an agent. */
static gboolean
company_waits (CdSwitchboard *self, const char *company_id)
{
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    const Call *call = value;
    if (call->state == CALL_QUEUED && g_str_equal (call->company_id, company_id))
      return TRUE;
  }
  return FALSE;
}

static gboolean
on_retry_route (gpointer user_data)
{
  CdSwitchboard *self = user_data;
  g_autoptr (GList) companies = NULL;

  self->retry_id = 0;
  companies = g_hash_table_get_keys (self->retry_companies);
  g_hash_table_steal_all (self->retry_companies);
  for (GList *l = companies; l; l = l->next) {
    g_autofree char *company = l->data;
    GHashTableIter iter;
    gpointer value;

    route (self, company);
    /* an agent held past this retry is asked at the next one; and while
     * calls wait, they are routed again at each retry all the same: an
     * agent another daemon left behind (its lease lapsed, nothing
     * announces that) is found without waiting for an event */
    if (company_waits (self, company)) {
      retry_later (self, company);
      continue;
    }
    g_hash_table_iter_init (&iter, self->agents);
    while (g_hash_table_iter_next (&iter, NULL, &value)) {
      Agent *a = value;
      if (g_str_equal (a->company_id, company) && a->held_until_us > g_get_monotonic_time ()) {
        retry_later (self, company);
        break;
      }
    }
  }
  return G_SOURCE_REMOVE;
}

/* How long an agent another daemon holds is left alone before asking
 * again: the waiting calls are routed again then, and every as long
 * since, while any waits. */
#define HELD_RETRY_MS 2000

static void
retry_later (CdSwitchboard *self, const char *company_id)
{
  g_hash_table_add (self->retry_companies, g_strdup (company_id));
  if (self->retry_id == 0)
    self->retry_id = g_timeout_add (HELD_RETRY_MS, on_retry_route, self);
}

/* ---- calls ---- */

static void route (CdSwitchboard *self, const char *company_id);
static void end_call (Call *call, const char *reason, const char *detail);

static void ring_consult (Call *call, Agent *a);
static void consult_ends (Call *call, const char *why, const char *state);

static void queue_voicemail (Call *call, const char *why);
static void maybe_record (Call *call);

/* The switchboard and a call's id, for a reply that may come after the
 * call is gone. */
typedef struct {
  CdSwitchboard *self;
  char *call_id;
} CallRef;

static CallRef *
call_ref_new (Call *call)
{
  CallRef *ref = g_new0 (CallRef, 1);

  ref->self = g_object_ref (call->board);
  ref->call_id = g_strdup (call->id);
  return ref;
}

static void
call_ref_free (CallRef *ref)
{
  g_object_unref (ref->self);
  g_free (ref->call_id);
  g_free (ref);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CallRef, call_ref_free)

/* A voicemail: the beep, then the visitor recorded into the blob store. */
typedef struct _Voicemail {
  CdSwitchboard *self; /* a reference: the recording may outlive the call */
  char *id, *key, *path;
  char *call_id, *company_id, *visitor_id, *page, *country, *language;
  char *why;        /* what ended it */
  GBytes *seal_key; /* the company's, once had */
  guint32 key_version;
  guint beep;
  gboolean dir_ready, key_ready, beep_done, recording;
  gboolean beeped; /* the beep was asked for (once the visitor's media is there) */
  guint max_s, silence_s;
  guint max_id;
  guint silent_ticks; /* 100 ms level reports in a row below VOICEMAIL_SILENCE_DB */
} Voicemail;

/* Quieter than this (dBFS, RMS over 100 ms) is silence. */
#define VOICEMAIL_SILENCE_DB (-45.0)

static void
voicemail_free (gpointer data)
{
  Voicemail *vm = data;

  g_clear_handle_id (&vm->max_id, g_source_remove);
  g_object_unref (vm->self);
  g_free (vm->id);
  g_free (vm->key);
  g_free (vm->path);
  g_free (vm->call_id);
  g_free (vm->company_id);
  g_free (vm->visitor_id);
  g_free (vm->page);
  g_free (vm->country);
  g_free (vm->language);
  g_free (vm->why);
  g_clear_pointer (&vm->seal_key, g_bytes_unref);
  g_free (vm);
}

static void voicemail_stop (Call *call, const char *why);

static void
call_free (gpointer data)
{
  Call *call = data;

  g_clear_handle_id (&call->ring_id, g_source_remove);
  g_clear_handle_id (&call->wait_id, g_source_remove);
  g_clear_handle_id (&call->overflow_id, g_source_remove);
  g_clear_handle_id (&call->announce_id, g_source_remove);
  g_clear_handle_id (&call->visitor_grace_id, g_source_remove);
  g_clear_handle_id (&call->agent_grace_id, g_source_remove);
  g_clear_handle_id (&call->reoffer_id, g_source_remove);
  g_clear_handle_id (&call->consult_ring_id, g_source_remove);
  g_free (call->transfer_to);
  g_free (call->supervisor_id);
  g_clear_handle_id (&call->ivr_done_id, g_source_remove);
  g_clear_pointer (&call->vm, voicemail_free);
  g_clear_pointer (&call->ivr, cd_ivr_runner_free);
  g_free (call->ivr_queue_id);
  g_free (call->ivr_agent_id);
  g_free (call->ivr_reason);
  if (call->pipeline) {
    g_signal_handlers_disconnect_by_data (call->pipeline, call);
    cd_call_pipeline_stop (call->pipeline);
    g_clear_object (&call->pipeline);
  }
  g_hash_table_unref (call->declined);
  g_hash_table_unref (call->held);
  g_ptr_array_unref (call->also_ringing);
  g_free (call->id);
  g_free (call->company_id);
  g_free (call->visitor_id);
  g_free (call->page);
  g_free (call->queue_id);
  g_free (call->language);
  g_free (call->country);
  g_free (call);
}

static void
queue_entry_free (gpointer data)
{
  QueueEntry *e = data;

  cd_queue_roster_free (e->roster);
  g_free (e->company_id);
  g_free (e);
}

static JsonBuilder *
ended_message (Call *call, const char *reason)
{
  JsonBuilder *b = begin ("call.state", call->id);

  add_string (b, "state", "ended");
  add_string (b, "reason", reason);
  return b;
}

static CdWaiting
waiting_of (Call *call)
{
  return (CdWaiting){ call->priority, call->created_us, call };
}

/* Whether @a is served before @b: higher effective priority, then older. */
static gboolean
served_before (Call *a, Call *b, gint64 now)
{
  CdWaiting x = waiting_of (a), y = waiting_of (b);

  return cd_waiting_before (&x, &y, now);
}

/* The call's place among those waiting in its queue on this daemon (a
 * company without queues: among its waiting calls), 1 being next; and in
 * @expected_s, when known, the expected wait: position times the queue's
 * recent handle time, shared among its members signed in and available. */
static guint
queue_position (Call *call, guint *expected_s)
{
  CdSwitchboard *self = call->board;
  QueueEntry *e = call->queue_id ? g_hash_table_lookup (self->queues, call->queue_id) : NULL;
  gint64 now = g_get_monotonic_time ();
  GHashTableIter iter;
  gpointer value;
  guint position = 1;
  guint staffed = 0;

  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    Call *other = value;
    if (other != call && other->state == CALL_QUEUED &&
        g_str_equal (other->company_id, call->company_id) &&
        g_strcmp0 (other->queue_id, call->queue_id) == 0 && served_before (other, call, now))
      position++;
  }
  *expected_s = 0;
  if (e == NULL || e->handled == 0)
    return position;
  for (guint i = 0; i < e->roster->n_members; i++) {
    Agent *a = g_hash_table_lookup (self->agents, e->roster->members[i].id);
    if (a && a->sessions->len > 0 && a->available)
      staffed++;
  }
  if (staffed > 0)
    *expected_s = (guint) MAX (1.0, ceil (position * e->handle_avg_s / staffed));
  return position;
}

static void
send_state (Call *call, Session *to, const char *reason, const char *detail)
{
  g_autoptr (JsonBuilder) b = begin ("call.state", call->id);

  add_string (b, "state", state_names[call->state]);
  if (call->state == CALL_QUEUED) {
    guint expected_s = 0;
    guint position = queue_position (call, &expected_s);

    json_builder_set_member_name (b, "position");
    json_builder_add_int_value (b, position);
    if (expected_s) {
      json_builder_set_member_name (b, "expected_wait_s");
      json_builder_add_int_value (b, expected_s);
    }
  }
  if (reason)
    add_string (b, "reason", reason);
  if (detail)
    add_string (b, "detail", detail);
  send_to (to, g_steal_pointer (&b));
}

static void
set_state (Call *call, CallState state, JsonObject *detail)
{
  if (call->state == state) {
    if (detail)
      json_object_unref (detail);
    return;
  }
  call->state = state;
  /* connecting is ringing to the visitor and in the database */
  if (state != CALL_CONNECTING)
    cd_call_store_set_state (call->board->api->calls, call->id, call->company_id,
                             state_names[state], detail, now_us ());
  if (detail)
    json_object_unref (detail);
  if (state != CALL_CONNECTING)
    send_state (call, call->visitor, NULL, NULL);
}

/* The call's agent is free of it; its reservation ends with what the
 * agent is now, or wrap-up for @wrap_up_s, counting a miss if @missed. */
static void
release_agent (Call *call, guint wrap_up_s, gboolean missed)
{
  Agent *a = call->agent;

  if (a == NULL)
    return;
  call->agent = NULL;
  if (a->call == call) {
    agent_unbind (a, call, agent_resting_state (a), wrap_up_s, missed);
    a->idle_since_us = g_get_monotonic_time ();
  }
  agent_maybe_forget (call->board, a);
}

/* The other agents a ring-all call rang stop ringing, told @why. */
static void
release_also_ringing (Call *call, const char *why)
{
  while (call->also_ringing->len > 0) {
    Agent *a = g_ptr_array_steal_index (call->also_ringing, call->also_ringing->len - 1);

    agent_send_all (a, ended_message (call, why));
    agent_unbind (a, call, agent_resting_state (a), 0, FALSE);
    agent_maybe_forget (call->board, a);
  }
}

static gboolean
on_wrap_up_over (gpointer user_data)
{
  Agent *a = user_data;
  CdSwitchboard *self = a->board;
  g_autofree char *company = g_strdup (a->company_id);

  a->wrap_up_id = 0;
  a->idle_since_us = g_get_monotonic_time ();
  agent_send_presence (a, a->available ? "available" : "away", NULL, 0);
  agent_maybe_forget (self, a);
  route (self, company);
  return G_SOURCE_REMOVE;
}

/* After a call the agent took, the queue's wrap-up time: no offers until
 * it ends, or until the agent sets a presence. */
static void
start_wrap_up (Agent *a, Call *call)
{
  QueueEntry *e = call->queue_id ? g_hash_table_lookup (call->board->queues, call->queue_id) : NULL;
  guint seconds = e ? e->roster->spec->wrap_up_s : 0;

  if (seconds == 0 || a->sessions->len == 0)
    return;
  g_clear_handle_id (&a->wrap_up_id, g_source_remove);
  a->wrap_up_id = g_timeout_add_seconds (seconds, on_wrap_up_over, a);
  agent_send_presence (a, "wrap_up", NULL, seconds);
}

static void
end_call (Call *call, const char *reason, const char *detail)
{
  CdSwitchboard *self = call->board;
  g_autoptr (JsonObject) quality = NULL;
  g_autofree char *company = NULL;
  Agent *talked =
      call->agent_session && call->agent && call->agent->call == call ? call->agent : NULL;

  if (call->state == CALL_ENDED)
    return;
  /* what the visitor said before hanging up is a voicemail all the same */
  if (call->vm)
    voicemail_stop (call, "hangup");
  /* the recording's file is finished before the pipeline stops */
  if (cd_call_recorder_is_recording (self->recorder, call->id))
    cd_call_recorder_stop (self->recorder, call->id, NULL);
  g_info ("call %s ended: %s%s%s", call->id, reason, detail ? ": " : "", detail ? detail : "");
  call->state = CALL_ENDED;
  if (self->settings.metrics) {
    g_autofree char *labels = g_strdup_printf ("reason=\"%s\"", reason);
    cd_metrics_add (self->settings.metrics, "calldocker_calls_ended_total", labels, 1);
  }
  if (call->pipeline)
    quality = cd_call_pipeline_get_quality (call->pipeline);
  cd_call_store_end (self->api->calls, call->id, call->company_id, reason,
                     quality && json_object_get_size (quality) ? quality : NULL, now_us ());
  send_state (call, call->visitor, reason, detail);
  if (call->agent_session)
    send_state (call, call->agent_session, reason, detail);
  else if (call->agent && call->agent->call == call)
    /* offered only: every session of the agent heard of it */
    agent_send_all (call->agent, ended_message (call, reason));
  if (call->supervisor) {
    send_state (call, call->supervisor, reason, detail);
    call->supervisor = NULL;
    supervising_changed (self, call->supervisor_id, -1);
  }
  if (call->consult) {
    Agent *t = call->consult;

    if (call->consult_session)
      send_state (call, call->consult_session, reason, detail);
    else
      agent_send_all (t, ended_message (call, reason));
    call->consult = NULL;
    agent_unbind (t, call, agent_resting_state (t), 0, FALSE);
    t->idle_since_us = g_get_monotonic_time ();
  }
  release_also_ringing (call, reason);
  company = g_strdup (call->company_id);
  if (call->accepted_us && call->queue_id) {
    QueueEntry *e = g_hash_table_lookup (self->queues, call->queue_id);
    double handle_s = (g_get_monotonic_time () - call->accepted_us) / (double) G_USEC_PER_SEC;

    if (e) {
      e->handle_avg_s = e->handled
                            ? e->handle_avg_s + HANDLE_TIME_WEIGHT * (handle_s - e->handle_avg_s)
                            : handle_s;
      e->handled++;
    }
  }
  if (talked)
    start_wrap_up (talked, call);
  {
    QueueEntry *e = call->queue_id ? g_hash_table_lookup (self->queues, call->queue_id) : NULL;
    GHashTableIter iter;
    gpointer value;

    release_agent (call, talked && e ? e->roster->spec->wrap_up_s : 0, FALSE);
    /* a reservation still being asked for is released when it comes */
    g_hash_table_iter_init (&iter, self->agents);
    while (g_hash_table_iter_next (&iter, NULL, &value))
      if (((Agent *) value)->call == call)
        ((Agent *) value)->call = NULL;
  }
  g_hash_table_remove (self->calls, call->id);
  route (self, company);
}

static gboolean apply_fallback (Call *call, const CdQueueFallback *fallback, const char *reason);

static QueueEntry *
queue_of (Call *call)
{
  return call->queue_id ? g_hash_table_lookup (call->board->queues, call->queue_id) : NULL;
}

/* Waited the longest it may: the queue's when_full applies (no queue:
 * the call ends). */
static gboolean
on_wait_timeout (gpointer user_data)
{
  Call *call = user_data;
  QueueEntry *e = queue_of (call);

  call->wait_id = 0;
  if (call->state == CALL_IVR) {
    end_call (call, "ivr-timeout", "the call stayed in the IVR longer than calls.max_wait_s");
    return G_SOURCE_REMOVE;
  }
  if (e && e->roster->spec->when_full.action != CD_QUEUE_ACTION_HANGUP) {
    apply_fallback (call, &e->roster->spec->when_full, "no-agent");
    return G_SOURCE_REMOVE;
  }
  end_call (call, "no-agent",
            e && e->roster->spec->when_full.message ? e->roster->spec->when_full.message
                                                    : "no agent took the call in time");
  return G_SOURCE_REMOVE;
}

/* Whether @agent_id declined @call lately (it is not offered to them then). */
static gboolean
declined_now (Call *call, const char *agent_id)
{
  const gint64 *until = g_hash_table_lookup (call->declined, agent_id);

  return until && *until > g_get_monotonic_time ();
}

static gboolean on_reoffer (gpointer user_data);

/* Routes @call again when its earliest decline runs out, if it still waits. */
static void
arm_reoffer (Call *call)
{
  GHashTableIter iter;
  gpointer value;
  gint64 now = g_get_monotonic_time (), first = G_MAXINT64;

  g_clear_handle_id (&call->reoffer_id, g_source_remove);
  g_hash_table_iter_init (&iter, call->declined);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    if (*(gint64 *) value > now)
      first = MIN (first, *(gint64 *) value);
  if (first != G_MAXINT64)
    call->reoffer_id = g_timeout_add ((guint) ((first - now) / 1000 + 1), on_reoffer, call);
}

static gboolean
on_reoffer (gpointer user_data)
{
  Call *call = user_data;
  g_autofree char *company = g_strdup (call->company_id);
  CdSwitchboard *self = call->board;
  g_autofree char *id = g_strdup (call->id);

  call->reoffer_id = 0;
  route (self, company);
  /* (routing may have ended the call) */
  call = g_hash_table_lookup (self->calls, id);
  if (call && call->state == CALL_QUEUED)
    arm_reoffer (call);
  return G_SOURCE_REMOVE;
}

/* @a rejected or missed @call (or left while it rang): not offered it
 * again for a while. */
static void
decline (Call *call, Agent *a, const char *why)
{
  gint64 *until = g_new (gint64, 1);

  *until = g_get_monotonic_time () + call->board->settings.reoffer_after_s * G_USEC_PER_SEC;
  g_hash_table_replace (call->declined, g_strdup (a->user_id), until);
  add_event (call, "agent.declined", detail_new ("agent_id", a->user_id, "reason", why, NULL));
  if (g_strcmp0 (call->transfer_to, a->user_id) == 0) {
    /* the call waits for the others from now on */
    add_event (call, "transfer.failed", detail_new ("agent_id", a->user_id, "reason", why, NULL));
    count_transfer (call->board, FALSE, "failed");
    g_clear_pointer (&call->transfer_to, g_free);
  }
  if (call->reoffer_id == 0)
    arm_reoffer (call);
}

static void
unoffer (Call *call, const char *why)
{
  Agent *a = call->agent;

  g_clear_handle_id (&call->ring_id, g_source_remove);
  if (a == NULL)
    return;
  decline (call, a, why);
  agent_send_all (a, ended_message (call, why));
  release_agent (call, 0, g_str_equal (why, "missed"));
  set_state (call, CALL_QUEUED, NULL);
}

/* @a no longer rings for @call (@why: rejected, missed, disconnected). The
 * call rings on with the other agents of a ring-all offer, or goes back to
 * the queue. May forget @a. */
static void
drop_ringing (Call *call, Agent *a, const char *why)
{
  if (a == call->agent && call->also_ringing->len == 0) {
    unoffer (call, why);
    return;
  }
  if (a != call->agent && !g_ptr_array_remove (call->also_ringing, a))
    return;
  decline (call, a, why);
  agent_send_all (a, ended_message (call, why));
  if (a == call->agent)
    call->agent = g_ptr_array_steal_index (call->also_ringing, 0);
  agent_unbind (a, call, agent_resting_state (a), 0, g_str_equal (why, "missed"));
  agent_maybe_forget (call->board, a);
}

static gboolean
on_ring_timeout (gpointer user_data)
{
  Call *call = user_data;
  g_autofree char *company = g_strdup (call->company_id);

  g_autoptr (GPtrArray) missed = g_ptr_array_new_with_free_func (g_free);
  CdSwitchboard *self = call->board;
  guint max = self->settings.max_missed_offers;

  call->ring_id = 0;
  if (call->agent)
    g_ptr_array_add (missed, g_strdup (call->agent->user_id));
  for (guint i = 0; i < call->also_ringing->len; i++)
    g_ptr_array_add (missed,
                     g_strdup (((Agent *) g_ptr_array_index (call->also_ringing, i))->user_id));
  while (call->also_ringing->len > 0)
    drop_ringing (call, g_ptr_array_index (call->also_ringing, 0), "missed");
  unoffer (call, "missed");
  for (guint i = 0; i < missed->len; i++) {
    /* (unoffer may have forgotten an agent with no session left) */
    Agent *a = g_hash_table_lookup (self->agents, g_ptr_array_index (missed, i));

    if (a && ++a->missed >= max && max > 0 && a->available) {
      g_autofree char *count = g_strdup_printf ("%u", a->missed);

      a->available = FALSE;
      g_info ("agent %s let %u offers in a row ring out: away", a->user_id, a->missed);
      add_event (call, "agent.away",
                 detail_new ("agent_id", a->user_id, "reason", "missed", "missed", count, NULL));
      agent_send_presence (a, "away", "missed", 0);
    }
  }
  route (self, company);
  return G_SOURCE_REMOVE;
}

static JsonBuilder *
offer_message (Call *call)
{
  JsonBuilder *b = begin ("call.offer", call->id);

  add_string (b, "visitor_id", call->visitor_id);
  add_string (b, "page", call->page);
  json_builder_set_member_name (b, "ring_timeout_s");
  json_builder_add_int_value (b, call->ring_timeout_s);
  if (call->queue_id)
    add_string (b, "queue_id", call->queue_id);
  return b;
}

/* @a, reserved for @call, is offered it. */
static void
ring (Call *call, Agent *a)
{
  a->call = call;
  call->agent = a;
  agent_send_all (a, offer_message (call));
  add_event (call, "agent.offered", detail_new ("agent_id", a->user_id, NULL));
  set_state (call, CALL_RINGING, NULL);
  call->ring_id = g_timeout_add_seconds (call->ring_timeout_s, on_ring_timeout, call);
}

/* Ring-all: @a rings too, on the same timer; the first to accept takes it. */
static void
ring_also (Call *call, Agent *a)
{
  a->call = call;
  g_ptr_array_add (call->also_ringing, a);
  agent_send_all (a, offer_message (call));
  add_event (call, "agent.offered", detail_new ("agent_id", a->user_id, NULL));
}

typedef struct {
  CdSwitchboard *self; /* a reference */
  char *company_id;
  char *call_id;
  char *agent_id;
  guint hops; /* the call's when asked: it went on to another queue if they differ */
} Reservation;

static void
reservation_free (Reservation *r)
{
  g_object_unref (r->self);
  g_free (r->company_id);
  g_free (r->call_id);
  g_free (r->agent_id);
  g_free (r);
}

static void
on_reserved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Reservation *r = user_data;
  CdSwitchboard *self = r->self;
  g_autoptr (GError) error = NULL;
  gboolean won = cd_presence_reserve_finish (CD_PRESENCE (source), result, &error);
  Call *call = self->calls ? g_hash_table_lookup (self->calls, r->call_id) : NULL;
  Agent *a = self->agents ? g_hash_table_lookup (self->agents, r->agent_id) : NULL;

  if (error)
    g_message ("agent %s: cannot reserve them for call %s: %s", r->agent_id, r->call_id,
               error->message);
  if (self->calls == NULL) {
    reservation_free (r);
    return; /* shutting down: the lease ends it */
  }
  if (call && call->reserving > 0)
    call->reserving--;
  if (a)
    a->reserving = FALSE;
  if (call && a && call->consult == a && a->call == call) {
    /* a warm transfer's target */
    if (won) {
      a->reserved = TRUE;
      if (a->sessions->len > 0 && call->state == CALL_CONNECTED) {
        ring_consult (call, a);
        reservation_free (r);
        return;
      }
    }
    consult_ends (call,
                  error ? "presence-unavailable"
                  : won ? "disconnected"
                        : "reserved-elsewhere",
                  "failed");
    if (!won && error)
      cd_presence_release_async (
          self->presence, r->company_id, r->agent_id, r->call_id, agent_resting_state (a), 0, FALSE,
          0, on_presence_changed,
          g_strdup_printf ("agent %s: releasing a reservation that may have been won",
                           r->agent_id));
    reservation_free (r);
    return;
  }
  if (call == NULL || a == NULL || a->call != call || call->hops != r->hops ||
      (call->state != CALL_QUEUED && call->state != CALL_RINGING) || a->sessions->len == 0 ||
      !a->available) {
    /* the call ended, was taken or went on to another queue, or the agent
     * left or went away meanwhile */
    if (won || error)
      cd_presence_release_async (
          self->presence, r->company_id, r->agent_id, r->call_id,
          a ? agent_resting_state (a) : CD_AGENT_AVAILABLE, 0, FALSE, 0, on_presence_changed,
          g_strdup_printf ("agent %s: releasing an unused reservation", r->agent_id));
    if (a && call && a->call == call)
      a->call = NULL;
    if (a)
      agent_maybe_forget (self, a);
    route (self, r->company_id);
    reservation_free (r);
    return;
  }
  if (!won) {
    /* another daemon holds the agent (or Redis cannot say): the call
     * tries the others now and this agent again a little later. After an
     * error the script may still have run: what it may have won is
     * released (a release changes nothing unless this call holds the agent) */
    if (error)
      cd_presence_release_async (
          self->presence, r->company_id, r->agent_id, r->call_id, agent_resting_state (a), 0, FALSE,
          0, on_presence_changed,
          g_strdup_printf ("agent %s: releasing a reservation that may have been won",
                           r->agent_id));
    a->call = NULL;
    a->held_until_us = g_get_monotonic_time () + HELD_RETRY_MS * 1000;
    if (!g_hash_table_contains (call->held, a->user_id)) {
      g_hash_table_add (call->held, g_strdup (a->user_id));
      add_event (call, "agent.held",
                 detail_new ("agent_id", a->user_id, "reason",
                             error ? "presence-unavailable" : "reserved-elsewhere", NULL));
    }
    retry_later (self, r->company_id);
    route (self, r->company_id);
    reservation_free (r);
    return;
  }
  a->reserved = TRUE;
  if (call->state == CALL_QUEUED && call->agent == NULL)
    ring (call, a);
  else
    ring_also (call, a);
  reservation_free (r);
}

/* Reserves @a for @call in Redis: the offer rings once that is won. The
 * agent is taken here meanwhile, and the call is not routed again. */
static void
offer (Call *call, Agent *a)
{
  CdSwitchboard *self = call->board;
  Reservation *r = g_new0 (Reservation, 1);

  r->self = g_object_ref (self);
  r->company_id = g_strdup (call->company_id);
  r->call_id = g_strdup (call->id);
  r->agent_id = g_strdup (a->user_id);
  r->hops = call->hops;
  a->call = call;
  a->reserving = TRUE;
  call->reserving++;
  if (self->presence == NULL) {
    /* no Redis (a daemon that only lists its routes): nothing to share */
    call->reserving--;
    a->reserving = FALSE;
    reservation_free (r);
    if (call->consult == a)
      ring_consult (call, a);
    else
      ring (call, a);
    return;
  }
  cd_presence_reserve_async (self->presence, a->company_id, a->user_id, call->id, on_reserved, r);
}

typedef struct {
  CdSwitchboard *self;
  const char *company_id;
  Call *call;
} MemberLookup;

static gboolean
lookup_agent (const char *agent_id, CdMemberNow *now, gpointer user_data)
{
  MemberLookup *l = user_data;

  if (!cd_switchboard_member_now (l->self, l->company_id, agent_id, now))
    return FALSE;
  now->declined = l->call && declined_now (l->call, agent_id);
  return TRUE;
}

/* The queue's strategy picks among its members; the decision and why go
 * on the call's timeline. */
static void
route_queued (CdSwitchboard *self, Call *call)
{
  QueueEntry *e = g_hash_table_lookup (self->queues, call->queue_id);
  MemberLookup lookup = { self, call->company_id, call };
  CdRuleCall rule_call = { .language = call->language,
                           .country = call->country,
                           .priority = call->priority,
                           .wait_s =
                               (g_get_monotonic_time () - call->created_us) / G_USEC_PER_SEC };
  g_autoptr (GPtrArray) chosen = g_ptr_array_new ();
  JsonObject *why;
  Agent *agent;

  if (e == NULL)
    return;
  why = cd_queue_roster_decide (e->roster, lookup_agent, &lookup, &rule_call, &e->cursor,
                                g_random_int (), g_get_monotonic_time (), chosen);
  if (chosen->len == 0) {
    json_object_unref (why);
    return;
  }
  agent = g_hash_table_lookup (self->agents, g_ptr_array_index (chosen, 0));
  if (agent == NULL) {
    json_object_unref (why);
    return;
  }
  /* what the rule read of the call */
  {
    JsonObject *about = json_object_new ();

    json_object_set_string_member (about, "language", call->language ? call->language : "");
    json_object_set_string_member (about, "country", call->country ? call->country : "");
    json_object_set_int_member (about, "priority", call->priority);
    json_object_set_int_member (about, "wait_s", rule_call.wait_s);
    json_object_set_object_member (why, "call", about);
  }
  add_event (call, "routing.decision", why);
  offer (call, agent);
  /* ring-all: every eligible member rings at once */
  for (guint i = 1; i < chosen->len; i++) {
    Agent *also = g_hash_table_lookup (self->agents, g_ptr_array_index (chosen, i));
    if (also && agent_is_free (also))
      offer (call, also);
  }
}

/* Oldest waiting call first: to its queue's choice, or (a company without
 * queues) to the longest-idle available agent. */
static void
route (CdSwitchboard *self, const char *company_id)
{
  g_autoptr (GPtrArray) waiting = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    Call *call = value;
    if (call->state == CALL_QUEUED && call->routable && call->reserving == 0 &&
        g_str_equal (call->company_id, company_id))
      g_ptr_array_add (waiting, call);
  }
  /* highest priority (aged by waiting) first, then the oldest */
  {
    g_autofree CdWaiting *order = g_new (CdWaiting, MAX (waiting->len, 1));

    for (guint i = 0; i < waiting->len; i++) {
      Call *call = g_ptr_array_index (waiting, i);
      order[i] = waiting_of (call);
    }
    cd_waiting_sort (order, waiting->len, g_get_monotonic_time ());
    for (guint i = 0; i < waiting->len; i++)
      g_ptr_array_index (waiting, i) = (gpointer) order[i].data;
  }
  for (guint i = 0; i < waiting->len; i++) {
    Call *call = g_ptr_array_index (waiting, i);
    Agent *best = NULL;

    if (call->transfer_to) {
      Agent *t = g_hash_table_lookup (self->agents, call->transfer_to);

      if (t && agent_is_free (t)) {
        offer (call, t);
        continue;
      }
      add_event (call, "transfer.failed",
                 detail_new ("agent_id", call->transfer_to, "reason", "busy", NULL));
      count_transfer (self, FALSE, "failed");
      g_clear_pointer (&call->transfer_to, g_free);
    }
    if (call->queue_id) {
      route_queued (self, call);
      continue;
    }
    g_hash_table_iter_init (&iter, self->agents);
    while (g_hash_table_iter_next (&iter, NULL, &value)) {
      Agent *a = value;
      if (!agent_is_free (a) || !g_str_equal (a->company_id, company_id) ||
          declined_now (call, a->user_id))
        continue;
      if (best == NULL || a->idle_since_us < best->idle_since_us)
        best = a;
    }
    if (best == NULL)
      continue;
    offer (call, best);
  }
  /* positions moved: tell those still waiting */
  for (guint i = 0; i < waiting->len; i++) {
    Call *call = g_ptr_array_index (waiting, i);
    if (call->state == CALL_QUEUED)
      send_state (call, call->visitor, NULL, NULL);
  }
}

/* ---- queues ---- */

typedef struct {
  CdSwitchboard *self; /* a reference */
  char *call_id;
  char *requested; /* the queue the visitor asked for, or NULL */
} QueueLoad;

static void
queue_load_free (QueueLoad *load)
{
  g_object_unref (load->self);
  g_free (load->call_id);
  g_free (load->requested);
  g_free (load);
}

static void load_queue (CdSwitchboard *self, Call *call, const char *requested);

/* Sends the call on to @queue_id (asked for by @why). */
static void
move_to_queue (Call *call, const char *queue_id, const char *why)
{
  g_autofree char *target = g_strdup (queue_id);

  if (++call->hops > MAX_QUEUE_HOPS) {
    end_call (call, "queue-loop", "the call was sent on from queue to queue too often");
    return;
  }
  add_event (call, "queue.moved",
             detail_new ("from", call->queue_id, "to", target, "why", why, NULL));
  g_clear_handle_id (&call->overflow_id, g_source_remove);
  g_clear_handle_id (&call->announce_id, g_source_remove);
  g_clear_pointer (&call->queue_id, g_free);
  call->routable = FALSE;
  load_queue (call->board, call, target);
}

/* What a queue does with a call when closed, full or past its waiting
 * time; @reason ends the call. FALSE when the call is no longer waiting
 * here (it ended, or went on to another queue). */
static gboolean
apply_fallback (Call *call, const CdQueueFallback *fallback, const char *reason)
{
  switch (fallback->action) {
  case CD_QUEUE_ACTION_QUEUE:
    move_to_queue (call, fallback->queue_id, reason);
    return FALSE;
  case CD_QUEUE_ACTION_VOICEMAIL:
    queue_voicemail (call, reason);
    return FALSE;
  case CD_QUEUE_ACTION_HANGUP:
  case CD_QUEUE_ACTION_PRIORITY:
  default:
    end_call (call, reason, fallback->message);
    return FALSE;
  }
}

static guint
waiting_in (CdSwitchboard *self, const char *queue_id, Call *besides)
{
  GHashTableIter iter;
  gpointer value;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    Call *other = value;
    if (other != besides && other->state == CALL_QUEUED && other->routable &&
        g_strcmp0 (other->queue_id, queue_id) == 0)
      n++;
  }
  return n;
}

/* The queue's announcement: the visitor hears its position and expected
 * wait again. */
static gboolean
on_announce (gpointer user_data)
{
  Call *call = user_data;

  if (call->state == CALL_QUEUED && call->visitor)
    send_state (call, call->visitor, NULL, NULL);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_overflow (gpointer user_data)
{
  Call *call = user_data;
  QueueEntry *e = queue_of (call);
  const CdQueueFallback *overflow = e ? &e->roster->spec->overflow : NULL;
  g_autofree char *company = g_strdup (call->company_id);

  call->overflow_id = 0;
  /* an offer ringing now goes on; the overflow is for calls still waiting */
  if (overflow == NULL || call->state != CALL_QUEUED)
    return G_SOURCE_REMOVE;
  if (overflow->action == CD_QUEUE_ACTION_QUEUE) {
    move_to_queue (call, overflow->queue_id, "overflow");
  } else {
    g_autofree char *priority = NULL;

    call->priority += overflow->raise_by;
    priority = g_strdup_printf ("%d", call->priority);
    add_event (call, "queue.overflow",
               detail_new ("action", "priority", "priority", priority, NULL));
    route (call->board, company);
  }
  return G_SOURCE_REMOVE;
}

/* The call waits in @e's queue from now on, unless the queue is closed or
 * full: FALSE when it does not wait here (it ended or went on). */
static gboolean
enter_queue (Call *call, QueueEntry *e, const char *by)
{
  const CdQueueSpec *spec = e->roster->spec;
  g_autoptr (GDateTime) wall = g_date_time_new_now_utc ();

  call->queue_id = g_strdup (e->roster->queue_id);
  call->ring_timeout_s = spec->ring_timeout_s;
  call->entered_us = g_get_monotonic_time ();
  g_clear_handle_id (&call->wait_id, g_source_remove);
  call->wait_id = g_timeout_add_seconds (spec->max_wait_s, on_wait_timeout, call);
  cd_call_store_set_queue (call->board->api->calls, call->id, call->company_id, call->queue_id,
                           spec->name, by, now_us ());
  if (spec->business_hours && !cd_business_hours_is_open (spec->business_hours, wall))
    return apply_fallback (call, &spec->when_closed, "queue-closed");
  if (spec->max_length > 0 && waiting_in (call->board, call->queue_id, call) >= spec->max_length)
    return apply_fallback (call, &spec->when_full, "queue-full");
  if (spec->has_overflow)
    call->overflow_id = g_timeout_add_seconds (spec->overflow.after_s, on_overflow, call);
  g_clear_handle_id (&call->announce_id, g_source_remove);
  if (spec->announce_every_s)
    call->announce_id = g_timeout_add_seconds (spec->announce_every_s, on_announce, call);
  return TRUE;
}

static void
become_routable (Call *call)
{
  g_autofree char *company = g_strdup (call->company_id);

  call->routable = TRUE;
  route (call->board, company);
}

/* @roster, just read, is the queue's from now on. */
static QueueEntry *
cache_roster (CdSwitchboard *self, const char *company_id, CdQueueRoster *roster)
{
  QueueEntry *e = g_hash_table_lookup (self->queues, roster->queue_id);

  if (e == NULL) {
    e = g_new0 (QueueEntry, 1);
    e->company_id = g_strdup (company_id);
    g_hash_table_insert (self->queues, g_strdup (roster->queue_id), e);
  }
  cd_queue_roster_free (e->roster);
  e->roster = roster;
  e->loaded_us = g_get_monotonic_time ();
  return e;
}

static void
on_queue_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  QueueLoad *load = user_data;
  CdSwitchboard *self = load->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  Call *call = self->calls ? g_hash_table_lookup (self->calls, load->call_id) : NULL;
  CdQueueRoster *roster;
  QueueEntry *e;

  if (call == NULL || call->state == CALL_ENDED) {
    queue_load_free (load);
    return;
  }
  if (res == NULL) {
    /* the call goes on without its queue rather than not at all */
    g_message ("call %s: cannot read its queue: %s", call->id, error->message);
    add_event (call, "routing.fallback",
               detail_new ("reason", "the queue could not be read", NULL));
    become_routable (call);
    queue_load_free (load);
    return;
  }
  if (PQntuples (res) == 0) {
    if (load->requested) {
      g_autofree char *detail = g_strdup_printf ("no queue %s in this company", load->requested);
      end_call (call, "no-such-queue", detail);
    } else {
      become_routable (call); /* the company has no queues */
    }
    queue_load_free (load);
    return;
  }
  roster = cd_queue_roster_parse (PQgetvalue (res, 0, 0), PQgetlength (res, 0, 0), &error);
  if (roster == NULL) {
    g_warning ("call %s: its queue's stored definition cannot be read: %s", call->id,
               error->message);
    add_event (call, "routing.fallback",
               detail_new ("reason", "the queue's definition could not be read", NULL));
    become_routable (call);
    queue_load_free (load);
    return;
  }
  e = cache_roster (self, call->company_id, roster);
  if (enter_queue (call, e,
                   load->requested                             ? (call->hops ? "moved" : "visitor")
                   : g_str_equal (PQgetvalue (res, 0, 1), "t") ? "country"
                                                               : "first"))
    become_routable (call);
  queue_load_free (load);
}

/* Finds the call's queue: @requested, or the one the company maps the
 * visitor's country to, or the company's first; none for a company
 * without queues. A queue read less than ROSTER_TTL_US ago is used
 * as it is. */
static void
load_queue (CdSwitchboard *self, Call *call, const char *requested)
{
  QueueLoad *load;
  QueueEntry *e = requested ? g_hash_table_lookup (self->queues, requested) : NULL;
  CdPgScope scope = { .company_id = call->company_id };

  /* (queue ids are unique, but a visitor may name another company's) */
  if (e && g_str_equal (e->company_id, call->company_id) &&
      g_get_monotonic_time () - e->loaded_us < ROSTER_TTL_US) {
    if (enter_queue (call, e, call->hops ? "moved" : "visitor"))
      become_routable (call);
    return;
  }
  load = g_new0 (QueueLoad, 1);
  load->self = g_object_ref (self);
  load->call_id = g_strdup (call->id);
  load->requested = g_strdup (requested);
  {
    const char *params[] = { call->company_id, requested, call->country };
    cd_pg_pool_query_scoped_async (self->api->pool, &scope, cd_queue_roster_sql, params,
                                   G_N_ELEMENTS (params), NULL, on_queue_loaded, load);
  }
}

/* ---- media ---- */

static CdLegRole
other_agent_leg (Call *call)
{
  return call->agent_leg == CD_LEG_AGENT ? CD_LEG_AGENT_2 : CD_LEG_AGENT;
}

static Session *
leg_session (Call *call, CdLegRole leg)
{
  if (leg == CD_LEG_VISITOR)
    return call->visitor;
  if (leg == CD_LEG_SUPERVISOR)
    return call->supervisor;
  if (leg == call->agent_leg)
    return call->agent_session;
  return call->consult_session;
}

/* Who hears whom: the visitor and the agent each other, the visitor the
 * hold tone while nobody talks with them (queued again, or while the
 * agent consults a transfer's target), a supervisor both parties, and
 * the parties the supervisor as the mode says. */
static void
apply_call_hearing (Call *call)
{
  CdCallPipeline *p = call->pipeline;
  guint v = CD_LEG_BIT (CD_LEG_VISITOR), a = CD_LEG_BIT (call->agent_leg);
  guint t = CD_LEG_BIT (other_agent_leg (call)), s = CD_LEG_BIT (CD_LEG_SUPERVISOR);
  gboolean supervised = call->supervisor != NULL;

  if (p == NULL)
    return;
  if (call->consult) {
    cd_call_pipeline_set_hearing (p, CD_LEG_VISITOR, 0);
    cd_call_pipeline_set_hearing (p, call->agent_leg, t);
    cd_call_pipeline_set_hearing (p, other_agent_leg (call), a);
    return;
  }
  cd_call_pipeline_set_hearing (p, CD_LEG_VISITOR,
                                call->state == CALL_CONNECTED
                                    ? a | (supervised && call->monitor == MONITOR_BARGE ? s : 0)
                                    : 0);
  cd_call_pipeline_set_hearing (p, call->agent_leg,
                                v | (supervised && call->monitor >= MONITOR_WHISPER ? s : 0));
  cd_call_pipeline_set_hearing (p, CD_LEG_SUPERVISOR, supervised ? v | a : 0);
}

/* A call.state of @state to @to, for the parties the call's own state
 * does not describe (a transfer's target, a supervisor, the visitor on
 * hold). */
static void
send_named_state (Call *call, Session *to, const char *state, const char *reason)
{
  g_autoptr (JsonBuilder) b = begin ("call.state", call->id);

  add_string (b, "state", state);
  if (reason)
    add_string (b, "reason", reason);
  send_to (to, g_steal_pointer (&b));
}

/* How the agent's warm transfer goes: to the agent who asked. */
static void
transfer_state (Call *call, const char *state, const char *reason)
{
  g_autoptr (JsonBuilder) b = begin ("call.transfer.state", call->id);

  add_string (b, "state", state);
  if (call->consult)
    add_string (b, "agent_id", call->consult->user_id);
  if (reason)
    add_string (b, "reason", reason);
  send_to (call->agent_session, g_steal_pointer (&b));
}

static void
on_pipeline_answer (CdCallPipeline *pipeline, int leg, const char *sdp, gpointer user_data)
{
  Call *call = user_data;
  g_autoptr (JsonBuilder) b = begin ("sdp.answer", call->id);

  add_string (b, "sdp", sdp);
  send_to (leg_session (call, leg), g_steal_pointer (&b));
}

static void
on_pipeline_candidate (CdCallPipeline *pipeline, int leg, guint mline, const char *candidate,
                       gpointer user_data)
{
  Call *call = user_data;
  g_autoptr (JsonBuilder) b = begin ("ice.candidate", call->id);

  add_string (b, "candidate", candidate);
  json_builder_set_member_name (b, "sdp_mline_index");
  json_builder_add_int_value (b, mline);
  send_to (leg_session (call, leg), g_steal_pointer (&b));
}

/* ---- the IVR ---- */

/* A flow that hangs up after a prompt lets it reach the visitor first. */
#define IVR_HANGUP_TAIL_MS 600

static void
ivr_prompt_failed (Call *call, const char *why)
{
  add_event (call, "ivr.prompt_failed", detail_new ("detail", why, NULL));
  if (call->ivr)
    cd_ivr_runner_prompt_done (call->ivr, FALSE);
}

typedef struct {
  CdSwitchboard *self;
  char *call_id;
  guint play;
} SpeechWait;

static gboolean
on_ivr_prompt_missing (gpointer user_data)
{
  SpeechWait *w = user_data;
  Call *call = w->self->calls ? g_hash_table_lookup (w->self->calls, w->call_id) : NULL;

  if (call && call->ivr && call->ivr_play == w->play)
    ivr_prompt_failed (call, "the visitor's media is not there to play the prompt to");
  return G_SOURCE_REMOVE;
}

static void
speech_wait_free (gpointer data)
{
  SpeechWait *w = data;

  g_object_unref (w->self);
  g_free (w->call_id);
  g_free (w);
}

static SpeechWait *
speech_wait_new (Call *call)
{
  SpeechWait *w = g_new0 (SpeechWait, 1);

  w->self = g_object_ref (call->board);
  w->call_id = g_strdup (call->id);
  w->play = call->ivr_play;
  return w;
}

/* Plays the file at @path to the visitor; a failure is told to the runner
 * from the main loop, never from inside its own call. */
static void
ivr_play_file (Call *call, const char *path)
{
  call->ivr_prompt = call->pipeline ? cd_call_pipeline_play_prompt (call->pipeline, path) : 0;
  if (call->ivr_prompt == 0)
    g_idle_add_full (G_PRIORITY_DEFAULT, on_ivr_prompt_missing, speech_wait_new (call),
                     speech_wait_free);
}

static void
on_speech_ready (GObject *source, GAsyncResult *result, gpointer user_data)
{
  SpeechWait *w = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *path = cd_tts_cache_get_finish (CD_TTS_CACHE (source), result, &error);
  Call *call = w->self->calls ? g_hash_table_lookup (w->self->calls, w->call_id) : NULL;

  /* the call ended, or the runner went on, meanwhile */
  if (call && call->ivr && call->ivr_play == w->play) {
    if (path)
      ivr_play_file (call, path);
    else
      ivr_prompt_failed (call, error->message);
  }
  speech_wait_free (w);
}

static void
ivr_host_play (gpointer data, const CdIvrPrompt *prompt)
{
  Call *call = data;

  call->ivr_play++;
  call->ivr_prompt = 0;
  if (prompt->prompt_id) {
    g_autofree char *key =
        g_strdup_printf ("prompts/%s/%s.ogg", call->company_id, prompt->prompt_id);
    g_autofree char *path =
        call->board->api->blobs ? cd_blob_store_local_path (call->board->api->blobs, key) : NULL;
    if (path) {
      ivr_play_file (call, path);
      return;
    }
  } else if (call->board->tts) {
    cd_tts_cache_get_async (call->board->tts, prompt->text, prompt->language, prompt->voice,
                            on_speech_ready, speech_wait_new (call));
    return;
  }
  g_idle_add_full (G_PRIORITY_DEFAULT, on_ivr_prompt_missing, speech_wait_new (call),
                   speech_wait_free);
}

static void
ivr_host_stop (gpointer data)
{
  Call *call = data;

  call->ivr_play++;
  call->ivr_prompt = 0;
  if (call->pipeline)
    cd_call_pipeline_stop_prompt (call->pipeline);
}

static void
ivr_host_event (gpointer data, const char *type, JsonObject *detail)
{
  add_event (data, type, json_object_ref (detail));
}

static void load_queue (CdSwitchboard *self, Call *call, const char *requested);

/* The flow ended: the call goes where it said. */
static gboolean
on_ivr_done (gpointer user_data)
{
  Call *call = user_data;
  CdSwitchboard *self = call->board;
  const CdIvrOutcome *o = &call->ivr_outcome;
  g_autofree char *queue_id = g_steal_pointer (&call->ivr_queue_id);

  call->ivr_done_id = 0;
  g_clear_pointer (&call->ivr, cd_ivr_runner_free);
  if (call->pipeline) {
    cd_call_pipeline_set_inband_dtmf (call->pipeline, FALSE);
    cd_call_pipeline_set_ivr (call->pipeline, FALSE);
  }
  switch (o->kind) {
  case CD_IVR_OUTCOME_HANGUP:
    end_call (call, call->ivr_reason ? call->ivr_reason : "ivr-hangup", "the IVR ended the call");
    return G_SOURCE_REMOVE;
  case CD_IVR_OUTCOME_TRANSFER:
    if (call->ivr_agent_id)
      call->transfer_to = g_steal_pointer (&call->ivr_agent_id);
    break;
  case CD_IVR_OUTCOME_QUEUE:
  default:
    call->priority = o->priority;
    break;
  }
  /* waiting for an agent from now on */
  g_clear_handle_id (&call->wait_id, g_source_remove);
  call->wait_id = g_timeout_add_seconds (self->settings.max_wait_s, on_wait_timeout, call);
  set_state (call, CALL_QUEUED, NULL);
  load_queue (self, call, queue_id);
  return G_SOURCE_REMOVE;
}

static void
ivr_host_finish (gpointer data, const CdIvrOutcome *outcome)
{
  Call *call = data;

  /* (the runner is still on the stack: it goes from the main loop) */
  call->ivr_outcome = *outcome;
  call->ivr_outcome.node = NULL;
  call->ivr_queue_id = g_strdup (outcome->queue_id);
  call->ivr_agent_id = g_strdup (outcome->agent_id);
  call->ivr_reason = g_strdup (outcome->reason);
  call->ivr_outcome.queue_id = call->ivr_outcome.agent_id = call->ivr_outcome.reason = NULL;
  /* a goodbye's last words are still on their way to the visitor */
  if (call->ivr_done_id == 0)
    call->ivr_done_id = outcome->kind == CD_IVR_OUTCOME_HANGUP
                            ? g_timeout_add (IVR_HANGUP_TAIL_MS, on_ivr_done, call)
                            : g_idle_add (on_ivr_done, call);
}

/* ---- voicemail ---- */

typedef struct {
  CdBlobStore *blobs;
  char *key;
} StoredFile;

static void
stored_file_free (StoredFile *f)
{
  g_object_unref (f->blobs);
  g_free (f->key);
  g_free (f);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (StoredFile, stored_file_free)

/* Its row written: the file goes to the blob store (after, so the row is
 * there to say when it got there). */
static void
on_voicemail_stored (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (StoredFile) f = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);

  if (res == NULL) {
    g_warning ("voicemail %s could not be stored: %s", f->key, error->message);
    return;
  }
  cd_blob_store_commit (f->blobs, f->key, CD_BLOB_COMMIT_DEFAULT);
}

static void
on_voicemail_recorded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Voicemail *vm = user_data;
  CdSwitchboard *self = vm->self;
  g_autoptr (GError) error = NULL;
  guint ms = 0;
  guint64 bytes = 0;
  gboolean ok = cd_call_pipeline_stop_recording_finish (CD_CALL_PIPELINE (source), result, &ms,
                                                        &bytes, &error);
  Call *call = self->calls ? g_hash_table_lookup (self->calls, vm->call_id) : NULL;
  JsonObject *detail;

  if (!ok || ms == 0) {
    g_message ("call %s: the voicemail was not kept: %s", vm->call_id,
               ok ? "nothing was recorded" : error->message);
    cd_call_store_add_event (
        self->api->calls, vm->call_id, vm->company_id, "voicemail.failed",
        detail_new ("reason", ok ? "nothing was recorded" : error->message, NULL), now_us ());
  } else {
    g_autofree char *duration = g_strdup_printf ("%u", ms);
    g_autofree char *size = g_strdup_printf ("%" G_GUINT64_FORMAT, bytes);
    CdPgScope scope = { .company_id = vm->company_id };
    g_autofree char *key_version = g_strdup_printf ("%u", vm->key_version);
    StoredFile *stored = g_new0 (StoredFile, 1);
    const char *params[] = { vm->id,   vm->company_id, vm->call_id,  vm->visitor_id,
                             vm->page, vm->country,    vm->language, vm->key,
                             duration, size,           vm->why,      key_version };

    stored->blobs = g_object_ref (self->api->blobs);
    stored->key = g_strdup (vm->key);
    cd_pg_pool_query_scoped_async (
        self->api->pool, &scope,
        "INSERT INTO voicemails (id, company_id, call_id, visitor_id, page, country, language,"
        " storage_key, duration_ms, size_bytes, ended_by, key_version) VALUES ($1, $2, $3, $4,"
        " $5, $6, $7, $8, $9::int, $10::bigint, $11, $12::int)",
        params, G_N_ELEMENTS (params), NULL, on_voicemail_stored, stored);
    detail = detail_new ("voicemail_id", vm->id, "ended_by", vm->why, NULL);
    json_object_set_int_member (detail, "duration_ms", ms);
    cd_call_store_add_event (self->api->calls, vm->call_id, vm->company_id, "voicemail.recorded",
                             detail, now_us ());
    json_object_unref (detail);
  }
  /* the flow goes on, if the call does; a queue's voicemail ends it */
  if (call && call->ivr)
    cd_ivr_runner_recorded (call->ivr);
  else if (call && call->state != CALL_ENDED)
    end_call (call, "voicemail", NULL);
  voicemail_free (vm);
}

/* Ends the recording (@why: silence, #, max-length, hangup); the file is
 * stored once whole, also when the call ends meanwhile. */
static void
voicemail_stop (Call *call, const char *why)
{
  Voicemail *vm = g_steal_pointer (&call->vm);

  if (vm == NULL)
    return;
  g_clear_handle_id (&vm->max_id, g_source_remove);
  if (!vm->recording || call->pipeline == NULL) {
    /* it ended before the beep did: nothing was recorded */
    voicemail_free (vm);
    if (call->ivr && call->state != CALL_ENDED)
      cd_ivr_runner_recorded (call->ivr);
    else if (call->state != CALL_ENDED)
      end_call (call, "voicemail", "nothing was recorded");
    return;
  }
  g_free (vm->why);
  vm->why = g_strdup (why);
  cd_call_pipeline_stop_recording_async (call->pipeline, on_voicemail_recorded, vm);
}

static gboolean
on_voicemail_max (gpointer user_data)
{
  Call *call = user_data;

  call->vm->max_id = 0;
  voicemail_stop (call, "max-length");
  return G_SOURCE_REMOVE;
}

/* Recording starts once the beep is over and the folder is there. */
static void
voicemail_maybe_start (Call *call)
{
  Voicemail *vm = call->vm;

  if (vm == NULL || vm->recording || !vm->dir_ready || !vm->key_ready || !vm->beep_done)
    return;
  if (call->pipeline == NULL ||
      !cd_call_pipeline_start_recording (call->pipeline, vm->path, vm->seal_key, vm->company_id,
                                         vm->key_version)) {
    add_event (call, "voicemail.failed",
               detail_new ("reason", "the visitor's media is not there to record", NULL));
    voicemail_stop (call, "hangup");
    return;
  }
  vm->recording = TRUE;
  add_event (call, "voicemail.started", detail_new ("voicemail_id", vm->id, NULL));
  vm->max_id = g_timeout_add_seconds (vm->max_s, on_voicemail_max, call);
}

static void
on_voicemail_dir (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *call_id = user_data;
  CdSwitchboard *self = CD_SWITCHBOARD (source);
  g_autoptr (GError) error = NULL;
  Call *call = self->calls ? g_hash_table_lookup (self->calls, call_id) : NULL;
  gboolean ok = g_task_propagate_boolean (G_TASK (result), &error);

  if (call == NULL || call->vm == NULL)
    return;
  if (!ok) {
    g_warning ("call %s: no folder for its voicemail: %s", call_id, error->message);
    add_event (call, "voicemail.failed", detail_new ("reason", error->message, NULL));
    voicemail_stop (call, "hangup");
    return;
  }
  call->vm->dir_ready = TRUE;
  voicemail_maybe_start (call);
}

static void
on_voicemail_key (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CallRef) ref = user_data;
  CdSwitchboard *self = ref->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (CdCompanyKey) key = cd_keyring_get_finish (CD_KEYRING (source), result, &error);
  Call *call = self->calls ? g_hash_table_lookup (self->calls, ref->call_id) : NULL;

  if (call == NULL || call->vm == NULL)
    return;
  if (key == NULL) {
    g_autofree char *reason = g_strdup_printf ("no key to seal it: %s", error->message);

    g_message ("call %s: the voicemail cannot be recorded: %s", call->id, reason);
    add_event (call, "voicemail.failed", detail_new ("reason", reason, NULL));
    voicemail_stop (call, "hangup");
    return;
  }
  call->vm->seal_key = cd_company_key_dup_bytes (key);
  call->vm->key_version = key->version;
  call->vm->key_ready = TRUE;
  voicemail_maybe_start (call);
}

static void
make_dir_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  if (g_mkdir_with_parents (task_data, 0700) != 0) {
    int saved = errno;
    g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved), "cannot make %s: %s",
                             (const char *) task_data, g_strerror (saved));
    return;
  }
  g_task_return_boolean (task, TRUE);
}

/* No blob store (a daemon that only lists its routes): the flow goes on. */
static gboolean
on_voicemail_unavailable (gpointer user_data)
{
  SpeechWait *w = user_data;
  Call *call = w->self->calls ? g_hash_table_lookup (w->self->calls, w->call_id) : NULL;

  if (call && call->state != CALL_ENDED) {
    add_event (call, "voicemail.failed", detail_new ("reason", "no blob store", NULL));
    if (call->ivr)
      cd_ivr_runner_recorded (call->ivr);
    else
      end_call (call, "voicemail", "nothing was recorded");
  }
  return G_SOURCE_REMOVE;
}

static void
voicemail_beep (Call *call)
{
  Voicemail *vm = call->vm;

  vm->beeped = TRUE;
  vm->beep = call->pipeline ? cd_call_pipeline_play_beep (call->pipeline) : 0;
  vm->beep_done = vm->beep == 0;
  voicemail_maybe_start (call);
}

static void
ivr_host_record (gpointer data, guint max_s, guint silence_s)
{
  Call *call = data;
  CdSwitchboard *self = call->board;
  Voicemail *vm;

  if (self->api->blobs == NULL || self->api->keyring == NULL || call->vm) {
    g_idle_add_full (G_PRIORITY_DEFAULT, on_voicemail_unavailable, speech_wait_new (call),
                     speech_wait_free);
    return;
  }
  vm = g_new0 (Voicemail, 1);
  vm->self = g_object_ref (self);
  vm->id = g_uuid_string_random ();
  vm->key = g_strdup_printf ("voicemails/%s/%s.sealed", call->company_id, vm->id);
  vm->path = cd_blob_store_local_path (self->api->blobs, vm->key);
  vm->call_id = g_strdup (call->id);
  vm->company_id = g_strdup (call->company_id);
  vm->visitor_id = g_strdup (call->visitor_id);
  vm->page = g_strdup (call->page);
  vm->country = g_strdup (call->country);
  vm->language = g_strdup (call->language);
  vm->why = g_strdup ("hangup");
  vm->max_s = max_s;
  vm->silence_s = silence_s;
  call->vm = vm;
  {
    g_autoptr (GTask) task = g_task_new (self, NULL, on_voicemail_dir, g_strdup (call->id));
    g_task_set_task_data (task, g_path_get_dirname (vm->path), g_free);
    g_task_run_in_thread (task, make_dir_thread);
  }
  /* sealed with the company's newest key, like a recording */
  cd_keyring_get_async (self->api->keyring, call->company_id, 0, NULL, on_voicemail_key,
                        call_ref_new (call));
  /* the beep once the visitor can hear it */
  if (call->leg_connected[CD_LEG_VISITOR])
    voicemail_beep (call);
}

/* A queue closed or full whose fallback is voicemail: the visitor leaves
 * one (up to 120 s, ending after 5 s of silence), then the call ends. */
static void
queue_voicemail (Call *call, const char *why)
{
  call->routable = FALSE;
  g_clear_handle_id (&call->wait_id, g_source_remove);
  g_clear_handle_id (&call->overflow_id, g_source_remove);
  g_clear_handle_id (&call->announce_id, g_source_remove);
  add_event (call, "queue.voicemail", detail_new ("reason", why, NULL));
  if (call->pipeline)
    cd_call_pipeline_set_ivr (call->pipeline, TRUE);
  ivr_host_record (call, 120, 5);
}

static void
ivr_host_stop_recording (gpointer data, const char *why)
{
  voicemail_stop (data, why);
}

static void
on_pipeline_recording_level (CdCallPipeline *pipeline, double rms_db, gpointer user_data)
{
  Call *call = user_data;
  Voicemail *vm = call->vm;

  if (vm == NULL || !vm->recording)
    return;
  vm->silent_ticks = rms_db < VOICEMAIL_SILENCE_DB ? vm->silent_ticks + 1 : 0;
  if (vm->silent_ticks >= vm->silence_s * 10)
    voicemail_stop (call, "silence");
}

static void
ivr_host_listen (gpointer data, gboolean on)
{
  Call *call = data;

  if (call->pipeline)
    cd_call_pipeline_set_inband_dtmf (call->pipeline, on);
}

static const CdIvrHost ivr_host = { ivr_host_play,          ivr_host_stop,   ivr_host_event,
                                    ivr_host_finish,        ivr_host_listen, ivr_host_record,
                                    ivr_host_stop_recording };

/* Digits the visitor pressed, for the IVR if it has the call. */
static void
ivr_digits (Call *call, const char *digits)
{
  for (const char *d = digits; *d && call->ivr && call->ivr_done_id == 0; d++)
    cd_ivr_runner_digit (call->ivr, *d);
}

static void
on_pipeline_inband_dtmf (CdCallPipeline *pipeline, int leg, const char *digit, gpointer user_data)
{
  Call *call = user_data;

  if (leg != CD_LEG_VISITOR || call->ivr == NULL)
    return;
  add_event (call, "dtmf", detail_new ("digits", digit, "source", "inband", NULL));
  ivr_digits (call, digit);
}

static void
on_pipeline_prompt_done (CdCallPipeline *pipeline, guint id, gboolean ok, const char *detail,
                         gpointer user_data)
{
  Call *call = user_data;

  if (call->vm && id == call->vm->beep) {
    call->vm->beep_done = TRUE;
    voicemail_maybe_start (call);
    return;
  }
  if (call->ivr == NULL || id != call->ivr_prompt)
    return;
  call->ivr_prompt = 0;
  if (!ok) {
    ivr_prompt_failed (call, detail ? detail : "the prompt could not be played");
    return;
  }
  cd_ivr_runner_prompt_done (call->ivr, TRUE);
}

typedef struct {
  CdSwitchboard *self;
  char *call_id;
  char *queue_id;
} FlowLoad;

static void
flow_load_free (FlowLoad *l)
{
  g_object_unref (l->self);
  g_free (l->call_id);
  g_free (l->queue_id);
  g_free (l);
}

/* (flow id, version, definition): the company's IVR for this entry point,
 * or none; a call without one waits for an agent at once. */
static void
on_flow_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  FlowLoad *l = user_data;
  CdSwitchboard *self = l->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  Call *call = self->calls ? g_hash_table_lookup (self->calls, l->call_id) : NULL;
  g_autoptr (JsonObject) definition = NULL;
  CdIvrFlow *flow = NULL;

  if (call == NULL || call->state != CALL_QUEUED) {
    flow_load_free (l);
    return;
  }
  if (res == NULL) {
    g_message ("call %s: cannot read its IVR flow: %s", call->id, error->message);
    add_event (call, "ivr.skipped", detail_new ("reason", "the flow could not be read", NULL));
  } else if (PQntuples (res) == 1) {
    definition =
        cd_json_parse_object (PQgetvalue (res, 0, 2), PQgetlength (res, 0, 2), NULL, &error);
    flow = definition ? cd_ivr_flow_parse (definition, &error) : NULL;
    if (flow == NULL) {
      g_warning ("call %s: its IVR flow cannot be read: %s", call->id, error->message);
      add_event (call, "ivr.skipped",
                 detail_new ("reason", "the flow's stored definition cannot be read", NULL));
    }
  }
  if (flow == NULL) {
    send_state (call, call->visitor, NULL, NULL);
    load_queue (self, call, l->queue_id);
    flow_load_free (l);
    return;
  }
  {
    CdIvrCaller caller = { call->country, call->language };

    call->ivr = cd_ivr_runner_new (flow, &caller, &ivr_host, call);
  }
  /* the queue's waiting time starts once the flow ends */
  g_clear_handle_id (&call->wait_id, g_source_remove);
  call->wait_id = g_timeout_add_seconds (self->settings.max_wait_s, on_wait_timeout, call);
  add_event (
      call, "ivr.started",
      detail_new ("flow_id", PQgetvalue (res, 0, 0), "version", PQgetvalue (res, 0, 1), NULL));
  set_state (call, CALL_IVR, NULL);
  if (call->pipeline)
    cd_call_pipeline_set_ivr (call->pipeline, TRUE);
  if (call->leg_connected[CD_LEG_VISITOR])
    cd_ivr_runner_start (call->ivr);
  flow_load_free (l);
}

/* The flow the company's widget calls start in, if it has one. */
static void
load_flow (CdSwitchboard *self, Call *call, const char *entry)
{
  FlowLoad *l = g_new0 (FlowLoad, 1);
  CdPgScope scope = { .company_id = call->company_id };
  const char *params[] = { call->company_id, entry };

  l->self = g_object_ref (self);
  l->call_id = g_strdup (call->id);
  cd_pg_pool_query_scoped_async (
      self->api->pool, &scope,
      "SELECT f.id, f.live_version, v.definition FROM ivr_entry_points e"
      " JOIN ivr_flows f ON f.id = e.flow_id"
      " JOIN ivr_flow_versions v ON v.flow_id = f.id AND v.version = f.live_version"
      " WHERE e.company_id = $1 AND e.name = $2",
      params, 2, NULL, on_flow_loaded, l);
}

static void
on_pipeline_leg_connected (CdCallPipeline *pipeline, int leg, gpointer user_data)
{
  Call *call = user_data;

  call->leg_connected[leg] = TRUE;
  add_event (call, "media",
             detail_new ("leg", cd_leg_role_to_string (leg), "event", "connected", NULL));
  if (leg == CD_LEG_SUPERVISOR) {
    send_named_state (call, call->supervisor, "connected", NULL);
    return;
  }
  if (leg == CD_LEG_VISITOR && call->vm && !call->vm->beeped) {
    voicemail_beep (call);
    return;
  }
  if (leg == CD_LEG_VISITOR && call->ivr) {
    /* the flow starts once the visitor can hear it */
    cd_ivr_runner_start (call->ivr);
    return;
  }
  if (call->consult_session && leg == (int) other_agent_leg (call)) {
    send_named_state (call, call->consult_session, "connected", NULL);
    transfer_state (call, "connected", NULL);
    return;
  }
  if (call->state == CALL_CONNECTING && call->leg_connected[CD_LEG_VISITOR] &&
      call->leg_connected[call->agent_leg]) {
    if (!call->answered) {
      call->answered = TRUE;
      cd_call_store_answered (call->board->api->calls, call->id, call->company_id, now_us ());
      if (call->board->settings.metrics)
        cd_metrics_observe (call->board->settings.metrics, "calldocker_call_setup_seconds", NULL,
                            (g_get_monotonic_time () - call->accepted_us) / 1e6);
    }
    set_state (call, CALL_CONNECTED, NULL);
    apply_call_hearing (call);
    send_state (call, call->agent_session, NULL, NULL);
    /* recorded already (a transfer): the recording follows the new agent */
    if (call->pipeline && cd_call_pipeline_is_call_recorded (call->pipeline))
      cd_call_pipeline_record_agent_leg (call->pipeline, call->agent_leg);
    else
      maybe_record (call);
  }
}

static void
on_record_setting (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CallRef) ref = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  Call *call = ref->self->calls ? g_hash_table_lookup (ref->self->calls, ref->call_id) : NULL;
  g_autoptr (GError) start_error = NULL;

  if (call == NULL || call->state != CALL_CONNECTED || call->pipeline == NULL)
    return;
  if (res == NULL) {
    g_message ("call %s: whether to record it cannot be known: %s", call->id, error->message);
    add_event (call, "recording.failed",
               detail_new ("reason", "the company's recording setting cannot be read", NULL));
    return;
  }
  if (PQntuples (res) == 0 || !g_str_equal (PQgetvalue (res, 0, 0), "t") ||
      cd_call_pipeline_is_call_recorded (call->pipeline))
    return;
  if (!cd_call_recorder_start (ref->self->recorder, call->pipeline, call->company_id, call->id,
                               call->agent ? call->agent->user_id : NULL, &start_error))
    g_message ("call %s: not recorded: %s", call->id, start_error->message);
}

/* Connected to an agent: recorded from here when its queue records its
 * calls, or the company every call (settings.record_calls). */
static void
maybe_record (Call *call)
{
  CdPgScope scope = { .company_id = call->company_id };
  const char *params[] = { call->company_id };
  QueueEntry *e = queue_of (call);

  if (call->board->recorder == NULL || call->board->api->pool == NULL)
    return;
  if (e && e->roster->spec->record) {
    g_autoptr (GError) error = NULL;

    if (call->pipeline && !cd_call_pipeline_is_call_recorded (call->pipeline) &&
        !cd_call_recorder_start (call->board->recorder, call->pipeline, call->company_id, call->id,
                                 call->agent ? call->agent->user_id : NULL, &error))
      g_message ("call %s: not recorded: %s", call->id, error->message);
    return;
  }
  cd_pg_pool_query_scoped_async (call->board->api->pool, &scope,
                                 "SELECT coalesce((settings->>'record_calls')::boolean, false)"
                                 " FROM companies WHERE id = $1",
                                 params, 1, NULL, on_record_setting, call_ref_new (call));
}

static void
relay_dtmf (Call *call, const char *digits, const char *source)
{
  g_autoptr (JsonBuilder) b = begin ("dtmf", call->id);

  add_string (b, "digits", digits);
  add_string (b, "source", source);
  send_to (call->agent_session, g_steal_pointer (&b));
}

static void
on_pipeline_dtmf (CdCallPipeline *pipeline, int leg, const char *digit, guint duration_ms,
                  gpointer user_data)
{
  Call *call = user_data;
  JsonObject *detail;

  if (leg != CD_LEG_VISITOR)
    return;
  detail = detail_new ("digits", digit, "source", "rtp", NULL);
  json_object_set_int_member (detail, "duration_ms", duration_ms);
  add_event (call, "dtmf", detail);
  relay_dtmf (call, digit, "rtp");
  ivr_digits (call, digit);
}

static void
on_pipeline_failed (CdCallPipeline *pipeline, const char *reason, const char *detail,
                    gpointer user_data)
{
  end_call (user_data, reason, detail);
}

static void supervisor_leaves (Call *call, const char *reason);

/* A party's media failed: a supervisor or a warm transfer's target leaves,
 * the call goes on; the visitor's or the agent's ends the call. */
static void
on_pipeline_leg_failed (CdCallPipeline *pipeline, int leg, const char *reason, const char *detail,
                        gpointer user_data)
{
  Call *call = user_data;

  add_event (
      call, "media",
      detail_new ("leg", cd_leg_role_to_string (leg), "event", reason, "detail", detail, NULL));
  if (leg == CD_LEG_SUPERVISOR) {
    if (call->supervisor)
      supervisor_leaves (call, reason);
    else
      cd_call_pipeline_remove_leg (pipeline, leg);
  } else if (leg != CD_LEG_VISITOR && leg != (int) call->agent_leg) {
    if (call->consult)
      consult_ends (call, reason, "failed");
    else
      cd_call_pipeline_remove_leg (pipeline, leg);
  } else {
    end_call (call, reason, detail);
  }
}

static void on_pipeline_prompt_done (CdCallPipeline *pipeline, guint id, gboolean ok,
                                     const char *detail, gpointer user_data);
static void on_pipeline_inband_dtmf (CdCallPipeline *pipeline, int leg, const char *digit,
                                     gpointer user_data);
static void on_pipeline_recording_level (CdCallPipeline *pipeline, double rms_db,
                                         gpointer user_data);

static CdCallPipeline *
call_pipeline (Call *call)
{
  if (call->pipeline == NULL) {
    call->pipeline = cd_call_pipeline_new (call->id, &call->board->settings.media);
    g_signal_connect (call->pipeline, "answer", G_CALLBACK (on_pipeline_answer), call);
    g_signal_connect (call->pipeline, "local-candidate", G_CALLBACK (on_pipeline_candidate), call);
    g_signal_connect (call->pipeline, "leg-connected", G_CALLBACK (on_pipeline_leg_connected),
                      call);
    g_signal_connect (call->pipeline, "dtmf", G_CALLBACK (on_pipeline_dtmf), call);
    g_signal_connect (call->pipeline, "failed", G_CALLBACK (on_pipeline_failed), call);
    g_signal_connect (call->pipeline, "leg-failed", G_CALLBACK (on_pipeline_leg_failed), call);
    g_signal_connect (call->pipeline, "prompt-done", G_CALLBACK (on_pipeline_prompt_done), call);
    g_signal_connect (call->pipeline, "inband-dtmf", G_CALLBACK (on_pipeline_inband_dtmf), call);
    g_signal_connect (call->pipeline, "recording-level", G_CALLBACK (on_pipeline_recording_level),
                      call);
    if (call->ivr || call->vm)
      cd_call_pipeline_set_ivr (call->pipeline, TRUE);
  }
  return call->pipeline;
}

/* ---- handlers ---- */

static gboolean
is_agent (Session *s)
{
  return g_str_equal (s->claims->role, "agent") || g_str_equal (s->claims->role, "company_admin");
}

static gboolean
is_visitor (Session *s)
{
  return g_str_equal (s->claims->role, "visitor");
}

/* The call the message names, if this session is a party of it. Another
 * company's call, or one the sender is not on, is "not-found" alike. */
static Call *
find_call (CdSwitchboard *self, Session *s, JsonObject *message, const char *type, CdLegRole *leg)
{
  const char *id = json_object_get_string_member (message, "call_id");
  Call *call = g_hash_table_lookup (self->calls, id);

  if (call != NULL && g_str_equal (call->company_id, s->claims->company)) {
    if (call->visitor == s) {
      *leg = CD_LEG_VISITOR;
      return call;
    }
    if (call->agent_session == s) {
      *leg = call->agent_leg;
      return call;
    }
    if (call->consult_session == s) {
      *leg = other_agent_leg (call);
      return call;
    }
    if (call->supervisor == s) {
      *leg = CD_LEG_SUPERVISOR;
      return call;
    }
  }
  cd_signal_session_send_error (s, "not-found", type, "no such call on this session");
  return NULL;
}

static gboolean
validate (Session *s, JsonObject *message, const char *type, const CdField *fields, gsize n)
{
  g_autoptr (GError) error = NULL;

  if (cd_fields_validate (message, fields, n, &error))
    return TRUE;
  cd_signal_session_send_error (s, "invalid-field", type, error->message);
  return FALSE;
}

static void
handle_call_start (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },       { "page", CD_FIELD_STRING, FALSE, 0, 2000 },
    { "queue_id", CD_FIELD_STRING, FALSE, 36, 36 }, { "language", CD_FIELD_STRING, FALSE, 2, 20 },
    { "entry", CD_FIELD_STRING, FALSE, 1, 40 },
  };
  g_autofree char *queue_id = NULL;
  GHashTableIter iter;
  gpointer value;
  Call *call;
  g_autoptr (JsonBuilder) b = NULL;

  if (!is_visitor (s)) {
    cd_signal_session_send_error (s, "forbidden", "call.start", "only visitors start calls");
    return;
  }
  if (!validate (s, message, "call.start", fields, G_N_ELEMENTS (fields)))
    return;
  if (json_object_has_member (message, "queue_id")) {
    queue_id = g_ascii_strdown (json_object_get_string_member (message, "queue_id"), -1);
    if (!cd_is_uuid (queue_id)) {
      cd_signal_session_send_error (s, "invalid-field", "call.start",
                                    "queue_id: not a queue id (a UUID)");
      return;
    }
  }
  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value)) {
    Call *other = value;
    if (g_str_equal (other->visitor_id, s->claims->sub)) {
      g_autofree char *detail = g_strdup_printf ("call %s is in progress", other->id);
      cd_signal_session_send_error (s, "out-of-order", "call.start", detail);
      return;
    }
  }
  if (g_hash_table_size (self->calls) >= self->settings.max_calls) {
    cd_signal_session_send_error (s, "busy", "call.start",
                                  "this server carries as many calls as it may; try again soon");
    return;
  }
  call = g_new0 (Call, 1);
  call->agent_leg = CD_LEG_AGENT;
  call->board = self;
  call->id = g_uuid_string_random ();
  call->company_id = g_strdup (s->claims->company);
  call->visitor_id = g_strdup (s->claims->sub);
  call->page = json_object_has_member (message, "page")
                   ? g_strdup (json_object_get_string_member (message, "page"))
                   : NULL;
  call->visitor = s;
  call->declined = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  call->held = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  call->also_ringing = g_ptr_array_new ();
  call->created_us = g_get_monotonic_time ();
  call->state = CALL_QUEUED;
  call->ring_timeout_s = self->settings.ring_timeout_s;
  if (json_object_has_member (message, "language"))
    call->language = g_ascii_strdown (json_object_get_string_member (message, "language"), -1);
  if (s->country[0])
    call->country = g_strdup (s->country);
  g_hash_table_insert (self->calls, call->id, call);
  cd_call_store_create (self->api->calls, call->id, call->company_id, call->visitor_id,
                        s->client_address, call->page, now_us ());
  cd_call_store_set_state (self->api->calls, call->id, call->company_id, "queued", NULL, now_us ());
  if (call->country)
    add_event (call, "visitor.country",
               detail_new ("country", call->country, "source", s->country_source, NULL));
  call->wait_id = g_timeout_add_seconds (self->settings.max_wait_s, on_wait_timeout, call);
  b = begin ("call.created", call->id);
  send_to (s, g_steal_pointer (&b));
  /* a call for a queue the visitor named goes there; the others through
   * the company's IVR for the widget's entry point, if it has one */
  if (queue_id == NULL && self->api->pool) {
    load_flow (self, call,
               json_object_get_string_member_with_default (message, "entry", "default"));
    return;
  }
  send_state (call, s, NULL, NULL);
  load_queue (self, call, queue_id);
}

static void
handle_offer (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
    { "sdp", CD_FIELD_TEXT, TRUE, 1, 32768 },
  };
  g_autoptr (GError) error = NULL;
  CdLegRole leg;
  Call *call;

  if (!validate (s, message, "sdp.offer", fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, "sdp.offer", &leg)))
    return;
  if (leg == call->agent_leg && call->state != CALL_CONNECTING && call->state != CALL_CONNECTED) {
    cd_signal_session_send_error (s, "out-of-order", "sdp.offer", "accept the call first");
    return;
  }
  if (!cd_sdp_check_offer (json_object_get_string_member (message, "sdp"),
                           self->settings.media.max_sdp_bytes, &error) ||
      !cd_call_pipeline_handle_offer (call_pipeline (call), leg,
                                      json_object_get_string_member (message, "sdp"), &error)) {
    cd_signal_session_send_error (
        s, error->code == CD_MEDIA_ERROR_BUSY ? "out-of-order" : "invalid-sdp", "sdp.offer",
        error->message);
    return;
  }
}

static void
handle_candidate (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
    { "candidate", CD_FIELD_STRING, TRUE, 0, 1024 },
    { "sdp_mline_index", CD_FIELD_INT, TRUE, 0, 65535 },
    { "sdp_mid", CD_FIELD_STRING, FALSE, 0, 64 },
  };
  g_autoptr (GError) error = NULL;
  const char *candidate;
  CdLegRole leg;
  Call *call;

  if (!validate (s, message, "ice.candidate", fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, "ice.candidate", &leg)))
    return;
  candidate = json_object_get_string_member (message, "candidate");
  if (candidate[0] == '\0')
    return; /* the end of candidates */
  if (call->pipeline == NULL || !cd_call_pipeline_has_leg (call->pipeline, leg)) {
    cd_signal_session_send_error (s, "out-of-order", "ice.candidate",
                                  "send the offer before its candidates");
    return;
  }
  if (!cd_call_pipeline_add_candidate (call->pipeline, leg,
                                       json_object_get_int_member (message, "sdp_mline_index"),
                                       candidate, &error))
    cd_signal_session_send_error (s, "invalid-candidate", "ice.candidate", error->message);
}

static void
handle_dtmf (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
    { "digits", CD_FIELD_STRING, TRUE, 1, 16 },
  };
  const char *digits;
  gint64 now = g_get_monotonic_time ();
  CdLegRole leg;
  Call *call;

  if (!validate (s, message, "dtmf", fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, "dtmf", &leg)))
    return;
  if (leg != CD_LEG_VISITOR) {
    cd_signal_session_send_error (s, "forbidden", "dtmf", "only the visitor sends DTMF");
    return;
  }
  digits = json_object_get_string_member (message, "digits");
  if (strspn (digits, "0123456789*#ABCD") != strlen (digits)) {
    cd_signal_session_send_error (s, "invalid-field", "dtmf",
                                  "field 'digits': only 0-9, *, # and A-D");
    return;
  }
  if (now - call->dtmf_window_us > G_USEC_PER_SEC) {
    call->dtmf_window_us = now;
    call->dtmf_in_window = 0;
  }
  if (call->dtmf_in_window + strlen (digits) > MAX_DTMF_PER_SECOND) {
    cd_signal_session_send_error (s, "rate-limited", "dtmf",
                                  "more than 10 digits in a second; these were dropped");
    return;
  }
  call->dtmf_in_window += strlen (digits);
  add_event (call, "dtmf", detail_new ("digits", digits, "source", "signaling", NULL));
  relay_dtmf (call, digits, "signaling");
  ivr_digits (call, digits);
}

static void
handle_chat (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
    { "text", CD_FIELD_STRING, TRUE, 1, 2000 },
  };
  g_autoptr (JsonBuilder) b = NULL;
  g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
  g_autofree char *at = g_date_time_format_iso8601 (now);
  const char *from;
  CdLegRole leg;
  Call *call;

  if (!validate (s, message, "chat", fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, "chat", &leg)))
    return;
  if (leg != CD_LEG_VISITOR && call->agent_session != s) {
    cd_signal_session_send_error (s, "forbidden", "chat",
                                  "only the visitor and the call's agent chat");
    return;
  }
  from = leg == CD_LEG_VISITOR ? "visitor" : "agent";
  add_event (
      call, "chat",
      detail_new ("from", from, "text", json_object_get_string_member (message, "text"), NULL));
  b = begin ("chat", call->id);
  add_string (b, "from", from);
  add_string (b, "text", json_object_get_string_member (message, "text"));
  add_string (b, "at", at);
  send_to (leg == CD_LEG_VISITOR ? call->agent_session : call->visitor, g_steal_pointer (&b));
}

static void consult_completes (Call *call);

static void
handle_hangup (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
  };
  CdLegRole leg;
  Call *call;

  if (!validate (s, message, "hangup", fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, "hangup", &leg)))
    return;
  if (leg == CD_LEG_SUPERVISOR) {
    supervisor_leaves (call, "left");
    return;
  }
  if (call->consult_session == s) {
    consult_ends (call, "target-hangup", "failed");
    return;
  }
  /* the agent hangs up on a consulted target: the target takes the call */
  if (leg != CD_LEG_VISITOR && call->consult && call->leg_connected[other_agent_leg (call)]) {
    consult_completes (call);
    return;
  }
  end_call (call, leg == CD_LEG_VISITOR ? "visitor-hangup" : "agent-hangup", NULL);
}

/* The offered agent's answer: call.accept or call.reject. */
static void
handle_answer (CdSwitchboard *self, Session *s, JsonObject *message, const char *type)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
  };
  Call *call;
  Agent *a;
  g_autofree char *company = NULL;
  gboolean released;

  if (!is_agent (s)) {
    cd_signal_session_send_error (s, "forbidden", type, "only agents answer calls");
    return;
  }
  if (!validate (s, message, type, fields, G_N_ELEMENTS (fields)))
    return;
  call = g_hash_table_lookup (self->calls, json_object_get_string_member (message, "call_id"));
  a = g_hash_table_lookup (self->agents, s->claims->sub);
  if (call && a && call->consult == a && g_str_equal (call->company_id, s->claims->company)) {
    /* a warm transfer's target */
    if (call->consult_session || call->consult_ring_id == 0) {
      cd_signal_session_send_error (s, "out-of-order", type, "the call is not ringing");
      return;
    }
    if (g_str_equal (type, "call.reject")) {
      consult_ends (call, "rejected", "failed");
      return;
    }
    g_clear_handle_id (&call->consult_ring_id, g_source_remove);
    call->consult_session = s;
    a->missed = 0;
    if (self->presence)
      cd_presence_answer_async (
          self->presence, a->company_id, a->user_id, call->id, on_presence_changed,
          g_strdup_printf ("agent %s: answering call %s", a->user_id, call->id));
    transfer_state (call, "accepted", NULL);
    send_named_state (call, s, "connecting", NULL);
    for (guint i = 0; i < a->sessions->len; i++) {
      Session *other = g_ptr_array_index (a->sessions, i);
      if (other != s)
        send_to (other, ended_message (call, "answered-elsewhere"));
    }
    return;
  }
  if (call == NULL || a == NULL ||
      (call->agent != a && !g_ptr_array_find (call->also_ringing, a, NULL)) ||
      !g_str_equal (call->company_id, s->claims->company)) {
    cd_signal_session_send_error (s, "not-found", type, "no such call offered to you");
    return;
  }
  if (call->state != CALL_RINGING) {
    cd_signal_session_send_error (s, "out-of-order", type, "the call is not ringing");
    return;
  }
  company = g_strdup (call->company_id);
  if (g_str_equal (type, "call.reject")) {
    drop_ringing (call, a, "rejected");
    route (self, company);
    return;
  }
  if (call->agent != a) {
    /* ring-all: the one who accepts becomes the call's agent */
    g_ptr_array_remove (call->also_ringing, a);
    g_ptr_array_add (call->also_ringing, call->agent);
    call->agent = a;
  }
  released = call->also_ringing->len > 0;
  release_also_ringing (call, "answered-elsewhere");
  g_clear_handle_id (&call->ring_id, g_source_remove);
  g_clear_handle_id (&call->wait_id, g_source_remove);
  g_clear_handle_id (&call->overflow_id, g_source_remove);
  g_clear_handle_id (&call->announce_id, g_source_remove);
  g_clear_handle_id (&call->reoffer_id, g_source_remove);
  call->agent_session = s;
  g_clear_pointer (&call->transfer_to, g_free);
  /* the slot free of an earlier agent's media (a transfer) */
  call->agent_leg = call->pipeline && cd_call_pipeline_has_leg (call->pipeline, CD_LEG_AGENT)
                        ? CD_LEG_AGENT_2
                        : CD_LEG_AGENT;
  call->accepted_us = g_get_monotonic_time ();
  call->agent->calls_taken++;
  call->agent->missed = 0;
  if (self->presence)
    cd_presence_answer_async (
        self->presence, a->company_id, a->user_id, call->id, on_presence_changed,
        g_strdup_printf ("agent %s: answering call %s", a->user_id, call->id));
  cd_call_store_set_agent (self->api->calls, call->id, call->company_id, a->user_id, now_us ());
  set_state (call, CALL_CONNECTING, NULL);
  apply_call_hearing (call);
  send_state (call, s, NULL, NULL);
  /* the agent's other sessions stop ringing */
  for (guint i = 0; i < a->sessions->len; i++) {
    Session *other = g_ptr_array_index (a->sessions, i);
    if (other != s) {
      send_to (other, ended_message (call, "answered-elsewhere"));
    }
  }
  /* the others a ring-all call rang are free for the next call */
  if (released)
    route (self, company);
}

static gboolean
on_grace_over (Call *call, CdLegRole leg)
{
  g_autofree char *detail =
      g_strdup_printf ("the %s's connection did not come back within %u s",
                       cd_leg_role_to_string (leg), call->board->settings.resume_grace_s);

  if (leg == CD_LEG_VISITOR)
    call->visitor_grace_id = 0;
  else
    call->agent_grace_id = 0;
  end_call (call, "signaling-lost", detail);
  return G_SOURCE_REMOVE;
}

static gboolean
on_visitor_grace_over (gpointer user_data)
{
  return on_grace_over (user_data, CD_LEG_VISITOR);
}

static gboolean
on_agent_grace_over (gpointer user_data)
{
  return on_grace_over (user_data, CD_LEG_AGENT);
}

static void
handle_resume (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
  };
  g_autoptr (JsonBuilder) b = NULL;
  Call *call;
  CdLegRole leg;

  if (!validate (s, message, "call.resume", fields, G_N_ELEMENTS (fields)))
    return;
  call = g_hash_table_lookup (self->calls, json_object_get_string_member (message, "call_id"));
  if (call == NULL || !g_str_equal (call->company_id, s->claims->company)) {
    cd_signal_session_send_error (s, "not-found", "call.resume", "no such call to resume");
    return;
  }
  if (is_visitor (s) && g_str_equal (call->visitor_id, s->claims->sub)) {
    leg = CD_LEG_VISITOR;
    call->visitor = s;
    g_clear_handle_id (&call->visitor_grace_id, g_source_remove);
  } else if (is_agent (s) && call->agent && call->agent_session != NULL &&
             g_str_equal (call->agent->user_id, s->claims->sub)) {
    leg = CD_LEG_AGENT;
    call->agent_session = s;
    g_clear_handle_id (&call->agent_grace_id, g_source_remove);
  } else if (is_agent (s) && call->agent && call->agent_grace_id != 0 &&
             g_str_equal (call->agent->user_id, s->claims->sub)) {
    leg = CD_LEG_AGENT;
    call->agent_session = s;
    g_clear_handle_id (&call->agent_grace_id, g_source_remove);
  } else {
    cd_signal_session_send_error (s, "not-found", "call.resume", "no such call to resume");
    return;
  }
  add_event (call, "party.resumed", detail_new ("party", cd_leg_role_to_string (leg), NULL));
  b = begin ("call.resumed", call->id);
  add_string (b, "state", state_names[call->state]);
  add_string (b, "party", cd_leg_role_to_string (leg));
  send_to (s, g_steal_pointer (&b));
}

/* ---- transfers and supervision ---- */

/* The supervisor leaves the call (told @reason, unless NULL). */
static void
supervisor_leaves (Call *call, const char *reason)
{
  Session *s = call->supervisor;

  if (s == NULL)
    return;
  if (reason)
    send_to (s, ended_message (call, reason));
  call->supervisor = NULL;
  call->monitor = MONITOR_NONE;
  call->leg_connected[CD_LEG_SUPERVISOR] = FALSE;
  if (call->pipeline)
    cd_call_pipeline_remove_leg (call->pipeline, CD_LEG_SUPERVISOR);
  add_event (call, "supervisor.left", detail_new ("supervisor_id", call->supervisor_id, NULL));
  supervising_changed (call->board, call->supervisor_id, -1);
  g_clear_pointer (&call->supervisor_id, g_free);
  apply_call_hearing (call);
  /* free for calls again */
  route (call->board, call->company_id);
}

/* The call's agent leaves it, told @reason, while the call goes on: their
 * media leg goes, their reservation ends (in wrap-up after the queue's
 * time) and the visitor waits again, hearing the hold tone. */
static void
agent_leaves (Call *call, const char *reason)
{
  CdSwitchboard *self = call->board;
  Agent *a = call->agent;
  QueueEntry *e = queue_of (call);

  supervisor_leaves (call, reason);
  g_clear_pointer (&call->transfer_to, g_free);
  if (call->agent_session)
    send_to (call->agent_session, ended_message (call, reason));
  g_clear_handle_id (&call->agent_grace_id, g_source_remove);
  if (call->pipeline)
    cd_call_pipeline_remove_leg (call->pipeline, call->agent_leg);
  call->leg_connected[call->agent_leg] = FALSE;
  call->agent_session = NULL;
  call->agent = NULL;
  if (a && a->call == call) {
    agent_unbind (a, call, agent_resting_state (a), e ? e->roster->spec->wrap_up_s : 0, FALSE);
    start_wrap_up (a, call);
    a->idle_since_us = g_get_monotonic_time ();
  }
  if (a) {
    /* not offered straight back to the one who passed it on */
    decline (call, a, reason);
    agent_maybe_forget (self, a);
  }
  set_state (call, CALL_QUEUED, NULL);
  apply_call_hearing (call);
  /* it waits no longer than a new call would */
  g_clear_handle_id (&call->wait_id, g_source_remove);
  call->wait_id = g_timeout_add_seconds (
      e ? e->roster->spec->max_wait_s : self->settings.max_wait_s, on_wait_timeout, call);
}

/* The warm transfer's target rings: accepted, they talk with the agent
 * while the visitor holds. */
static gboolean on_consult_ring_timeout (gpointer user_data);

static void
ring_consult (Call *call, Agent *a)
{
  JsonBuilder *b = offer_message (call);

  a->call = call;
  add_string (b, "transfer_from", call->agent ? call->agent->user_id : "");
  agent_send_all (a, b);
  add_event (call, "agent.offered", detail_new ("agent_id", a->user_id, "transfer", "warm", NULL));
  transfer_state (call, "ringing", NULL);
  call->consult_ring_id =
      g_timeout_add_seconds (call->ring_timeout_s, on_consult_ring_timeout, call);
}

/* The warm transfer ends without the target taking the call: they
 * rejected or missed it, hung up, or the agent cancelled (@why); the
 * agent and the visitor talk again. */
static void
consult_ends (Call *call, const char *why, const char *state)
{
  CdSwitchboard *self = call->board;
  Agent *t = call->consult;
  g_autofree char *company = g_strdup (call->company_id);

  if (t == NULL)
    return;
  g_clear_handle_id (&call->consult_ring_id, g_source_remove);
  transfer_state (call, state, why);
  if (call->consult_session) {
    send_to (call->consult_session,
             ended_message (call, g_str_equal (state, "cancelled") ? "transfer-cancelled" : why));
    if (call->pipeline)
      cd_call_pipeline_remove_leg (call->pipeline, other_agent_leg (call));
    call->leg_connected[other_agent_leg (call)] = FALSE;
  } else {
    agent_send_all (t, ended_message (call, why));
  }
  add_event (call, g_str_equal (state, "cancelled") ? "transfer.cancelled" : "transfer.failed",
             detail_new ("agent_id", t->user_id, "reason", why, NULL));
  count_transfer (self, TRUE, state);
  call->consult = NULL;
  call->consult_session = NULL;
  agent_unbind (t, call, agent_resting_state (t), 0, g_str_equal (why, "missed"));
  t->idle_since_us = g_get_monotonic_time ();
  agent_maybe_forget (self, t);
  apply_call_hearing (call);
  send_named_state (call, call->visitor, "connected", NULL);
  route (self, company);
}

static gboolean
on_consult_ring_timeout (gpointer user_data)
{
  Call *call = user_data;

  call->consult_ring_id = 0;
  consult_ends (call, "missed", "failed");
  return G_SOURCE_REMOVE;
}

/* The agent hands the call to the target they consulted, and leaves. */
static void
consult_completes (Call *call)
{
  CdSwitchboard *self = call->board;
  Agent *a = call->agent;
  QueueEntry *e = queue_of (call);
  CdLegRole old = call->agent_leg;
  g_autofree char *company = g_strdup (call->company_id);

  transfer_state (call, "completed", NULL);
  add_event (call, "transfer.completed",
             detail_new ("from", a ? a->user_id : NULL, "to", call->consult->user_id, NULL));
  count_transfer (self, TRUE, "completed");
  if (call->agent_session)
    send_to (call->agent_session, ended_message (call, "transferred"));
  g_clear_handle_id (&call->agent_grace_id, g_source_remove);
  if (call->pipeline)
    cd_call_pipeline_remove_leg (call->pipeline, old);
  call->leg_connected[old] = FALSE;
  call->agent = call->consult;
  call->agent_session = call->consult_session;
  call->agent_leg = other_agent_leg (call);
  call->consult = NULL;
  call->consult_session = NULL;
  if (a && a->call == call) {
    agent_unbind (a, call, agent_resting_state (a), e ? e->roster->spec->wrap_up_s : 0, FALSE);
    start_wrap_up (a, call);
    a->idle_since_us = g_get_monotonic_time ();
  }
  if (a)
    agent_maybe_forget (self, a);
  cd_call_store_set_agent (self->api->calls, call->id, call->company_id, call->agent->user_id,
                           now_us ());
  call->agent->calls_taken++;
  apply_call_hearing (call);
  if (call->pipeline)
    cd_call_pipeline_record_agent_leg (call->pipeline, call->agent_leg);
  send_named_state (call, call->visitor, "connected", NULL);
  /* the target now has the call */
  send_named_state (call, call->agent_session, "connected", "transfer-completed");
  route (self, company);
}

typedef struct {
  CdSwitchboard *self; /* a reference */
  char *call_id;
  char *queue_id;
  char *agent_id; /* who asked */
} QueueCheck;

static void
queue_check_free (QueueCheck *c)
{
  g_object_unref (c->self);
  g_free (c->call_id);
  g_free (c->queue_id);
  g_free (c->agent_id);
  g_free (c);
}

static void
on_transfer_queue_checked (GObject *source, GAsyncResult *result, gpointer user_data)
{
  QueueCheck *c = user_data;
  CdSwitchboard *self = c->self;
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  Call *call = self->calls ? g_hash_table_lookup (self->calls, c->call_id) : NULL;

  if (call == NULL || !call->transfer_checking) {
    queue_check_free (c);
    return;
  }
  call->transfer_checking = FALSE;
  if (call->state != CALL_CONNECTED || call->agent == NULL ||
      !g_str_equal (call->agent->user_id, c->agent_id) || call->consult) {
    queue_check_free (c);
    return; /* the call moved on meanwhile */
  }
  if (res == NULL) {
    g_autofree char *detail = g_strdup_printf ("the queue could not be read: %s", error->message);
    cd_signal_session_send_error (call->agent_session, "unavailable", "call.transfer", detail);
  } else if (PQntuples (res) == 0) {
    g_autofree char *detail = g_strdup_printf ("no queue %s in this company", c->queue_id);
    cd_signal_session_send_error (call->agent_session, "not-found", "call.transfer", detail);
  } else if (call->hops + 1 > MAX_QUEUE_HOPS) {
    cd_signal_session_send_error (call->agent_session, "unavailable", "call.transfer",
                                  "the call was sent on from queue to queue too often already");
  } else {
    CdQueueRoster *roster =
        cd_queue_roster_parse (PQgetvalue (res, 0, 0), PQgetlength (res, 0, 0), &error);

    if (roster == NULL) {
      g_autofree char *detail =
          g_strdup_printf ("the queue's stored definition cannot be read: %s", error->message);
      cd_signal_session_send_error (call->agent_session, "unavailable", "call.transfer", detail);
      queue_check_free (c);
      return;
    }
    /* what was just read serves the move (no second look that could differ) */
    cache_roster (self, call->company_id, roster);
    add_event (call, "transfer.requested",
               detail_new ("from", c->agent_id, "queue_id", c->queue_id, "mode", "blind", NULL));
    count_transfer (self, FALSE, "requested");
    agent_leaves (call, "transferred");
    move_to_queue (call, c->queue_id, "transfer");
  }
  queue_check_free (c);
}

/* call.transfer: the call's agent sends it to another agent or a queue,
 * blind (they leave at once) or warm (to an agent, consulted first). */
static void
handle_transfer (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },   { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
    { "mode", CD_FIELD_STRING, TRUE, 1, 10 },   { "agent_id", CD_FIELD_UUID, FALSE, 0, 0 },
    { "queue_id", CD_FIELD_UUID, FALSE, 0, 0 },
  };
  const char *mode, *agent_id, *queue_id;
  gboolean warm;
  CdLegRole leg;
  Call *call;
  Agent *t;

  if (!validate (s, message, "call.transfer", fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, "call.transfer", &leg)))
    return;
  mode = json_object_get_string_member (message, "mode");
  agent_id = json_object_get_string_member_with_default (message, "agent_id", NULL);
  queue_id = json_object_get_string_member_with_default (message, "queue_id", NULL);
  if (call->agent_session != s) {
    cd_signal_session_send_error (s, "forbidden", "call.transfer",
                                  "only the call's agent transfers it");
    return;
  }
  if (!g_str_equal (mode, "blind") && !g_str_equal (mode, "warm")) {
    cd_signal_session_send_error (s, "invalid-field", "call.transfer",
                                  "field 'mode': blind or warm");
    return;
  }
  warm = g_str_equal (mode, "warm");
  if ((agent_id == NULL) == (queue_id == NULL)) {
    cd_signal_session_send_error (s, "invalid-field", "call.transfer",
                                  "give either agent_id or queue_id");
    return;
  }
  if (warm && queue_id) {
    cd_signal_session_send_error (s, "invalid-field", "call.transfer",
                                  "a warm transfer goes to an agent (agent_id)");
    return;
  }
  if (call->state != CALL_CONNECTED || call->consult || call->transfer_checking) {
    cd_signal_session_send_error (s, "out-of-order", "call.transfer",
                                  call->state != CALL_CONNECTED
                                      ? "the call is not connected"
                                      : "a transfer of this call is in progress");
    return;
  }
  if (queue_id) {
    QueueCheck *c = g_new0 (QueueCheck, 1);
    CdPgScope scope = { .company_id = call->company_id };
    const char *params[] = { call->company_id, queue_id, NULL };

    c->self = g_object_ref (self);
    c->call_id = g_strdup (call->id);
    c->queue_id = g_strdup (queue_id);
    c->agent_id = g_strdup (call->agent->user_id);
    call->transfer_checking = TRUE;
    cd_pg_pool_query_scoped_async (self->api->pool, &scope, cd_queue_roster_sql, params,
                                   G_N_ELEMENTS (params), NULL, on_transfer_queue_checked, c);
    return;
  }
  if (g_str_equal (agent_id, s->claims->sub)) {
    cd_signal_session_send_error (s, "invalid-field", "call.transfer",
                                  "field 'agent_id': that is you");
    return;
  }
  t = g_hash_table_lookup (self->agents, agent_id);
  if (t == NULL || !g_str_equal (t->company_id, call->company_id) || !agent_is_free (t)) {
    g_autofree char *detail = g_strdup_printf (
        "agent %s is not signed in to this server and free for a call: pick an available "
        "agent, or transfer to a queue",
        agent_id);
    cd_signal_session_send_error (s, "unavailable", "call.transfer", detail);
    return;
  }
  add_event (call, "transfer.requested",
             detail_new ("from", s->claims->sub, "agent_id", agent_id, "mode", mode, NULL));
  count_transfer (self, warm, "requested");
  if (!warm) {
    g_autofree char *company = g_strdup (call->company_id);

    agent_leaves (call, "transferred");
    g_free (call->transfer_to);
    call->transfer_to = g_strdup (agent_id);
    route (self, company);
    return;
  }
  supervisor_leaves (call, "transferred");
  call->consult = t;
  apply_call_hearing (call);
  send_named_state (call, call->visitor, "held", NULL);
  offer (call, t);
}

/* call.transfer.complete and call.transfer.cancel: the agent's word on
 * the warm transfer they started. */
static void
handle_transfer_end (CdSwitchboard *self, Session *s, JsonObject *message, const char *type)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
  };
  CdLegRole leg;
  Call *call;

  if (!validate (s, message, type, fields, G_N_ELEMENTS (fields)) ||
      !(call = find_call (self, s, message, type, &leg)))
    return;
  if (call->agent_session != s) {
    cd_signal_session_send_error (s, "forbidden", type, "only the call's agent ends its transfer");
    return;
  }
  if (call->consult == NULL) {
    cd_signal_session_send_error (s, "out-of-order", type, "no warm transfer is in progress");
    return;
  }
  if (g_str_equal (type, "call.transfer.cancel")) {
    consult_ends (call, "cancelled", "cancelled");
    return;
  }
  if (!call->leg_connected[other_agent_leg (call)]) {
    cd_signal_session_send_error (s, "out-of-order", type,
                                  "the transfer's target is not connected yet: wait for "
                                  "call.transfer.state connected, or cancel");
    return;
  }
  consult_completes (call);
}

/* call.monitor: a company admin listens in on a connected call, and may
 * whisper to the agent or barge in. Sent again, it changes the mode. */
static void
handle_monitor (CdSwitchboard *self, Session *s, JsonObject *message)
{
  static const CdField fields[] = {
    { "type", CD_FIELD_STRING, TRUE, 1, 40 },
    { "call_id", CD_FIELD_UUID, TRUE, 0, 0 },
    { "mode", CD_FIELD_STRING, TRUE, 1, 10 },
  };
  const char *mode;
  CdMonitorMode m = MONITOR_NONE;
  g_autoptr (JsonBuilder) b = NULL;
  gboolean joining;
  Call *call;

  if (!validate (s, message, "call.monitor", fields, G_N_ELEMENTS (fields)))
    return;
  if (!g_str_equal (s->claims->role, "company_admin")) {
    cd_signal_session_send_error (s, "forbidden", "call.monitor",
                                  "only company admins supervise calls");
    return;
  }
  mode = json_object_get_string_member (message, "mode");
  for (guint i = MONITOR_LISTEN; i <= MONITOR_BARGE; i++)
    if (g_str_equal (mode, monitor_names[i]))
      m = i;
  if (m == MONITOR_NONE) {
    cd_signal_session_send_error (s, "invalid-field", "call.monitor",
                                  "field 'mode': listen, whisper or barge");
    return;
  }
  call = g_hash_table_lookup (self->calls, json_object_get_string_member (message, "call_id"));
  if (call == NULL || !g_str_equal (call->company_id, s->claims->company)) {
    cd_signal_session_send_error (s, "not-found", "call.monitor", "no such call");
    return;
  }
  if (call->agent_session == s || call->consult_session == s ||
      (call->agent && g_str_equal (call->agent->user_id, s->claims->sub))) {
    cd_signal_session_send_error (s, "forbidden", "call.monitor", "you are an agent of this call");
    return;
  }
  if (call->supervisor && call->supervisor != s) {
    cd_signal_session_send_error (s, "busy", "call.monitor", "another supervisor is on this call");
    return;
  }
  if (call->state != CALL_CONNECTED || call->consult || call->transfer_checking) {
    cd_signal_session_send_error (s, "out-of-order", "call.monitor",
                                  "only a connected call with no transfer in progress can be "
                                  "supervised: try again once it is connected");
    return;
  }
  joining = call->supervisor == NULL;
  call->supervisor = s;
  call->monitor = m;
  if (joining) {
    g_free (call->supervisor_id);
    call->supervisor_id = g_strdup (s->claims->sub);
    supervising_changed (self, call->supervisor_id, 1);
  }
  add_event (call, joining ? "supervisor.joined" : "supervisor.mode",
             detail_new ("supervisor_id", call->supervisor_id, "mode", mode, NULL));
  if (self->settings.metrics) {
    g_autofree char *labels = g_strdup_printf ("mode=\"%s\"", mode);
    cd_metrics_add (self->settings.metrics, "calldocker_supervisor_modes_total", labels, 1);
  }
  apply_call_hearing (call);
  b = begin ("call.monitoring", call->id);
  add_string (b, "mode", mode);
  send_to (s, g_steal_pointer (&b));
}

/* ---- public ---- */

static void
cd_switchboard_dispose (GObject *object)
{
  CdSwitchboard *self = CD_SWITCHBOARD (object);

  g_clear_pointer (&self->calls, g_hash_table_unref);
  g_clear_pointer (&self->agents, g_hash_table_unref);
  g_clear_pointer (&self->queues, g_hash_table_unref);
  g_clear_handle_id (&self->renew_id, g_source_remove);
  g_clear_handle_id (&self->retry_id, g_source_remove);
  g_clear_pointer (&self->retry_companies, g_hash_table_unref);
  g_clear_pointer (&self->supervising, g_hash_table_unref);
  g_clear_object (&self->presence);
  g_clear_object (&self->tts);
  g_clear_object (&self->recorder);
  G_OBJECT_CLASS (cd_switchboard_parent_class)->dispose (object);
}

static void
cd_switchboard_finalize (GObject *object)
{
  CdSwitchboard *self = CD_SWITCHBOARD (object);

  g_strfreev (self->settings.media.local_addresses);
  G_OBJECT_CLASS (cd_switchboard_parent_class)->finalize (object);
}

static void
cd_switchboard_class_init (CdSwitchboardClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = cd_switchboard_dispose;
  G_OBJECT_CLASS (klass)->finalize = cd_switchboard_finalize;
}

static void
cd_switchboard_init (CdSwitchboard *self)
{
  self->calls = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, call_free);
  self->agents = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, agent_free);
  self->queues = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, queue_entry_free);
  self->retry_companies = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->supervising = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}

CdSwitchboard *
cd_switchboard_new (CdApi *api, const CdSwitchboardSettings *settings)
{
  CdSwitchboard *self = g_object_new (CD_TYPE_SWITCHBOARD, NULL);

  self->api = api;
  self->settings = *settings;
  self->settings.media.local_addresses = g_strdupv (settings->media.local_addresses);
  if (self->settings.reservation_lease_ms == 0)
    self->settings.reservation_lease_ms = 15000;
  if (self->settings.reoffer_after_s == 0)
    self->settings.reoffer_after_s = 30;
  {
    /* names this daemon in the reservations it holds */
    g_autofree char *uuid = g_uuid_string_random ();
    g_autofree char *daemon_id =
        g_strdup_printf ("%s/%d/%.8s", g_get_host_name (), (int) getpid (), uuid);

    if (api->redis)
      self->presence = cd_presence_new (api->redis, daemon_id, self->settings.reservation_lease_ms);
    self->recorder = cd_call_recorder_new (api, daemon_id, settings->metrics);
  }
  if (api->blobs)
    self->tts = cd_tts_cache_new (api->blobs, api->settings.max_prompt_ms, settings->metrics);
  /* renewed three times per lease: one lost renewal loses nothing */
  self->renew_id =
      g_timeout_add (MAX (self->settings.reservation_lease_ms / 3, 100), on_renew_leases, self);
  return self;
}

void
cd_switchboard_session_authenticated (CdSwitchboard *self, Session *session)
{
  Agent *a;

  if (!is_agent (session))
    return;
  a = agent_get (self, session);
  g_ptr_array_add (a->sessions, session);
  if (a->sessions->len == 1 && self->presence)
    cd_presence_sign_in_async (self->presence, a->company_id, a->user_id, on_presence_changed,
                               g_strdup_printf ("agent %s: signing in", a->user_id));
}

static void
on_signed_out (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *agent_id = user_data;
  g_autoptr (GError) error = NULL;

  if (cd_presence_change_finish (CD_PRESENCE (source), result, &error))
    g_info ("agent %s: signed out of every daemon: offline", agent_id);
  else if (error)
    g_message ("agent %s: cannot sign them out: %s", agent_id, error->message);
}

static void
on_presence_set (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autofree char *what = user_data;
  g_autoptr (GError) error = NULL;

  /* FALSE: a call holds the agent; its release sets the state */
  if (!cd_presence_set_finish (CD_PRESENCE (source), result, &error) && error)
    g_message ("%s: %s", what, error->message);
}

void
cd_switchboard_set_presence (CdSwitchboard *self, Session *session, const char *status)
{
  Agent *a = agent_get (self, session);
  gboolean available = g_str_equal (status, "available");

  if (available && (!a->available || a->wrap_up_id))
    a->idle_since_us = g_get_monotonic_time ();
  a->available = available;
  /* the agent's own word ends wrap-up and forgives missed offers; while a
   * call holds the agent, Redis keeps that state (the release applies it) */
  g_clear_handle_id (&a->wrap_up_id, g_source_remove);
  a->missed = 0;
  if (self->presence)
    cd_presence_set_async (self->presence, a->company_id, a->user_id,
                           available ? CD_AGENT_AVAILABLE : CD_AGENT_AWAY, NULL, on_presence_set,
                           g_strdup_printf ("agent %s: storing the presence", a->user_id));
  if (available)
    route (self, a->company_id);
}

void
cd_switchboard_session_closed (CdSwitchboard *self, Session *session)
{
  g_autoptr (GPtrArray) calls = g_ptr_array_new ();
  g_autofree char *agent_id = NULL;
  GHashTableIter iter;
  gpointer value;
  Agent *a = NULL;
  Call *ringing = NULL, *consulted = NULL;

  if (session->claims == NULL)
    return;
  g_hash_table_iter_init (&iter, self->calls);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_ptr_array_add (calls, value);
  if (is_agent (session)) {
    a = g_hash_table_lookup (self->agents, session->claims->sub);
    if (a) {
      g_ptr_array_remove (a->sessions, session);
      agent_id = g_strdup (a->user_id);
      /* its last session here: offline, if no other daemon has one */
      if (a->sessions->len == 0 && self->presence)
        cd_presence_sign_out_async (self->presence, a->company_id, a->user_id, on_signed_out,
                                    g_strdup (a->user_id));
      /* its last session gone: the call ringing it goes back to the queue */
      if (a->sessions->len == 0 && a->call && a->call->state == CALL_RINGING &&
          (a->call->agent == a || g_ptr_array_find (a->call->also_ringing, a, NULL)))
        ringing = a->call;
      /* a warm transfer ringing it fails */
      if (a->sessions->len == 0 && a->call && a->call->consult == a &&
          a->call->consult_session == NULL)
        consulted = a->call;
    }
  }
  for (guint i = 0; i < calls->len; i++) {
    Call *call = g_ptr_array_index (calls, i);
    guint grace = self->settings.resume_grace_s;

    if (call->visitor == session) {
      call->visitor = NULL;
      add_event (call, "party.disconnected", detail_new ("party", "visitor", NULL));
      call->visitor_grace_id = g_timeout_add_seconds (grace, on_visitor_grace_over, call);
    } else if (call->agent_session == session) {
      call->agent_session = NULL;
      add_event (call, "party.disconnected", detail_new ("party", "agent", NULL));
      call->agent_grace_id = g_timeout_add_seconds (grace, on_agent_grace_over, call);
    } else if (call->consult_session == session) {
      consult_ends (call, "disconnected", "failed");
    } else if (call->supervisor == session) {
      supervisor_leaves (call, NULL);
    }
  }
  if (consulted)
    consult_ends (consulted, "disconnected", "failed");
  if (ringing) {
    g_autofree char *company = g_strdup (ringing->company_id);

    /* this may forget the agent: @a is not used after it */
    drop_ringing (ringing, a, "disconnected");
    route (self, company);
  }
  a = agent_id ? g_hash_table_lookup (self->agents, agent_id) : NULL;
  if (a)
    agent_maybe_forget (self, a);
}

gboolean
cd_switchboard_handle (CdSwitchboard *self, Session *s, const char *type, JsonObject *message)
{
  if (g_str_equal (type, "call.start"))
    handle_call_start (self, s, message);
  else if (g_str_equal (type, "sdp.offer"))
    handle_offer (self, s, message);
  else if (g_str_equal (type, "ice.candidate"))
    handle_candidate (self, s, message);
  else if (g_str_equal (type, "dtmf"))
    handle_dtmf (self, s, message);
  else if (g_str_equal (type, "chat"))
    handle_chat (self, s, message);
  else if (g_str_equal (type, "hangup"))
    handle_hangup (self, s, message);
  else if (g_str_equal (type, "call.accept") || g_str_equal (type, "call.reject"))
    handle_answer (self, s, message, type);
  else if (g_str_equal (type, "call.resume"))
    handle_resume (self, s, message);
  else if (g_str_equal (type, "call.transfer"))
    handle_transfer (self, s, message);
  else if (g_str_equal (type, "call.transfer.complete") ||
           g_str_equal (type, "call.transfer.cancel"))
    handle_transfer_end (self, s, message, type);
  else if (g_str_equal (type, "call.monitor"))
    handle_monitor (self, s, message);
  else
    return FALSE;
  return TRUE;
}

gboolean
cd_switchboard_member_now (CdSwitchboard *self, const char *company_id, const char *agent_id,
                           CdMemberNow *now)
{
  g_autofree char *id = g_ascii_strdown (agent_id, -1);
  Agent *a = g_hash_table_lookup (self->agents, id);

  if (a == NULL || !g_str_equal (a->company_id, company_id))
    return FALSE;
  now->online = a->sessions->len > 0;
  now->free = agent_is_free (a);
  now->declined = FALSE;
  now->idle_since_us = a->idle_since_us;
  now->calls_taken = a->calls_taken;
  return TRUE;
}

CdCallPipeline *
cd_switchboard_lookup_pipeline (CdSwitchboard *self, const char *company_id, const char *call_id)
{
  Call *call = g_hash_table_lookup (self->calls, call_id);

  if (call == NULL || !g_str_equal (call->company_id, company_id))
    return NULL;
  return call->pipeline;
}

void
cd_switchboard_recover_recordings (CdSwitchboard *self)
{
  cd_call_recorder_recover (self->recorder);
}

gboolean
cd_switchboard_control_recording (CdSwitchboard *self, const char *company_id, const char *call_id,
                                  const char *action, const char *only_agent, GError **error)
{
  Call *call = g_hash_table_lookup (self->calls, call_id);

  if (call == NULL || !g_str_equal (call->company_id, company_id) || call->state == CALL_ENDED ||
      (only_agent && (call->agent == NULL || !g_str_equal (call->agent->user_id, only_agent)))) {
    g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_NOT_FOUND,
                         "no such call in progress on this server");
    return FALSE;
  }
  if (g_str_equal (action, "start")) {
    if (call->pipeline == NULL) {
      g_set_error_literal (error, CD_HTTP_ERROR, CD_HTTP_ERROR_CONFLICT,
                           "the call has no media yet: start recording once it is connected");
      return FALSE;
    }
    return cd_call_recorder_start (self->recorder, call->pipeline, call->company_id, call->id,
                                   call->agent ? call->agent->user_id : NULL, error);
  }
  if (g_str_equal (action, "pause") || g_str_equal (action, "resume"))
    return cd_call_recorder_pause (self->recorder, call->id, g_str_equal (action, "pause"), error);
  if (g_str_equal (action, "stop"))
    return cd_call_recorder_stop (self->recorder, call->id, error);
  g_set_error (error, CD_HTTP_ERROR, CD_HTTP_ERROR_INVALID_FIELD,
               "action: \"%s\" is none of start, pause, resume, stop", action);
  return FALSE;
}

guint
cd_switchboard_get_call_count (CdSwitchboard *self)
{
  return g_hash_table_size (self->calls);
}

void
cd_switchboard_end_all (CdSwitchboard *self, const char *reason)
{
  g_autoptr (GList) calls = g_hash_table_get_values (self->calls);

  for (GList *l = calls; l; l = l->next)
    end_call (l->data, reason, "the server is shutting down");
}
