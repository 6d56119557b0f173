/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Agent presence and reservations: one Redis hash per agent
 * (cd:agent:{COMPANY:AGENT}: state, reason, call, daemon, missed, until) and
 * one reservation key with a lease (cd:reservation:{COMPANY:AGENT} = call id),
 * changed only by the Lua scripts below, each atomic on the server. */

#define G_LOG_DOMAIN "calldocker-routing"

#include "routing/cd-presence.h"

#include <string.h>

struct _CdPresence {
  GObject parent_instance;
  CdRedis *redis;
  char *daemon_id;
  guint lease_ms;
};

G_DEFINE_FINAL_TYPE (CdPresence, cd_presence, G_TYPE_OBJECT)

static const char *const state_names[] = {
  [CD_AGENT_OFFLINE] = "offline",   [CD_AGENT_AVAILABLE] = "available",
  [CD_AGENT_RESERVED] = "reserved", [CD_AGENT_ON_CALL] = "on_call",
  [CD_AGENT_WRAP_UP] = "wrap_up",   [CD_AGENT_AWAY] = "away",
};

const char *
cd_agent_state_to_string (CdAgentState state)
{
  g_return_val_if_fail (state < G_N_ELEMENTS (state_names), NULL);
  return state_names[state];
}

gboolean
cd_agent_state_from_string (const char *text, CdAgentState *state)
{
  for (gsize i = 0; i < G_N_ELEMENTS (state_names); i++)
    if (g_strcmp0 (text, state_names[i]) == 0) {
      *state = (CdAgentState) i;
      return TRUE;
    }
  return FALSE;
}

void
cd_agent_presence_free (CdAgentPresence *presence)
{
  if (presence == NULL)
    return;
  g_free (presence->reason);
  g_free (presence->call_id);
  g_free (presence->daemon);
  g_free (presence);
}

/* ---- the scripts: KEYS[1] the agent's hash, KEYS[2] its reservation,
 * KEYS[3] the daemons the agent is signed in to (a sorted set, each
 * daemon scored with when its word runs out, Redis time in ms) ---- */

/* The state as it stands: a reservation or call whose lease lapsed, and a
 * wrap-up past its end, read (and are stored) as available. */
#define CURRENT                                                                        \
  "local function current(a, r)\n"                                                     \
  "  local st = redis.call('HGET', a, 'state') or 'offline'\n"                         \
  "  if (st == 'reserved' or st == 'on_call') and redis.call('EXISTS', r) == 0 then\n" \
  "    local c = redis.call('HGET', a, 'call') or ''\n"                                \
  "    redis.call('HSET', a, 'state', 'available', 'reason', 'lease-expired',\n"       \
  "               'call', '', 'daemon', '', 'lapsed', c)\n"                            \
  "    st = 'available'\n"                                                             \
  "  elseif st == 'wrap_up' then\n"                                                    \
  "    local t = redis.call('TIME')\n"                                                 \
  "    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"        \
  "    local untl = tonumber(redis.call('HGET', a, 'until') or '0')\n"                 \
  "    if untl > 0 and now >= untl then\n"                                             \
  "      redis.call('HSET', a, 'state', 'available', 'reason', '', 'until', 0)\n"      \
  "      st = 'available'\n"                                                           \
  "    end\n"                                                                          \
  "  end\n"                                                                            \
  "  return st\n"                                                                      \
  "end\n"

/* The lease of @call lapsed and nothing has happened to the agent since:
 * either nobody looked yet, or it was read as available (lease-expired)
 * and not taken. Its holder may still answer or release it late. */
#define LAPSED                                                                             \
  "local function lapsed(a, r, call)\n"                                                    \
  "  if redis.call('EXISTS', r) == 1 then return false end\n"                              \
  "  local v = redis.call('HMGET', a, 'state', 'call', 'reason', 'lapsed')\n"              \
  "  if (v[1] == 'reserved' or v[1] == 'on_call') and v[2] == call then return true end\n" \
  "  return v[1] == 'available' and v[3] == 'lease-expired' and v[4] == call\n"            \
  "end\n"

/* ARGV: state, reason */
static const char set_script[] =
    CURRENT "local st = current(KEYS[1], KEYS[2])\n"
            "if st == 'reserved' or st == 'on_call' then return 0 end\n"
            "redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'call', '',\n"
            "           'daemon', '', 'until', 0, 'lapsed', '')\n"
            "if ARGV[1] == 'available' then redis.call('HSET', KEYS[1], 'missed', 0) end\n"
            "return 1\n";

/* ARGV: call, daemon, lease ms */
static const char reserve_script[] =
    CURRENT "if current(KEYS[1], KEYS[2]) ~= 'available' then return 0 end\n"
            "if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then return 0 end\n"
            "redis.call('HSET', KEYS[1], 'state', 'reserved', 'reason', '', 'call', ARGV[1],\n"
            "           'daemon', ARGV[2], 'lapsed', '')\n"
            "return 1\n";

/* ARGV: call, lease ms, state (reserved, on_call), daemon. A holder that
 * stalled past its lease takes the agent back if nothing else happened to
 * them meanwhile: the agent is still ringing or talking here. A holder
 * whose answer was lost (Redis unreachable for that moment) stores it. */
static const char renew_script[] =
    LAPSED "if redis.call('GET', KEYS[2]) == ARGV[1] then\n"
           "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
           "  if ARGV[3] == 'on_call' and redis.call('HGET', KEYS[1], 'state') ~= 'on_call' then\n"
           "    redis.call('HSET', KEYS[1], 'state', 'on_call', 'missed', 0, 'reason', '',\n"
           "               'call', ARGV[1], 'daemon', ARGV[4], 'lapsed', '')\n"
           "  end\n"
           "  return 1\n"
           "end\n"
           "if not lapsed(KEYS[1], KEYS[2], ARGV[1]) or\n"
           "   not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
           "  return 0\n"
           "end\n"
           "redis.call('HSET', KEYS[1], 'state', ARGV[3], 'reason', '', 'call', ARGV[1],\n"
           "           'daemon', ARGV[4], 'lapsed', '')\n"
           "return 1\n";

/* ARGV: call, lease ms, daemon. An answer after the lease lapsed takes
 * the agent back if nothing else did meanwhile. */
static const char answer_script[] =
    LAPSED "if redis.call('GET', KEYS[2]) == ARGV[1] then\n"
           "  redis.call('PEXPIRE', KEYS[2], ARGV[2])\n"
           "elseif not lapsed(KEYS[1], KEYS[2], ARGV[1]) or\n"
           "       not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
           "  return 0\n"
           "end\n"
           "redis.call('HSET', KEYS[1], 'state', 'on_call', 'missed', 0, 'reason', '',\n"
           "           'call', ARGV[1], 'daemon', ARGV[3], 'lapsed', '')\n"
           "return 1\n";

/* ARGV: call, next state, wrap-up ms, missed (0/1), max missed. A release
 * after the lease lapsed still counts the miss and starts the wrap-up, if
 * nothing else happened to the agent meanwhile. */
static const char release_script[] = LAPSED
    "if redis.call('GET', KEYS[2]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "elseif not lapsed(KEYS[1], KEYS[2], ARGV[1]) then\n"
    "  return 0\n"
    "end\n"
    "local nxt, reason, untl = ARGV[2], '', 0\n"
    "if ARGV[4] == '1' then\n"
    "  local m = redis.call('HINCRBY', KEYS[1], 'missed', 1)\n"
    "  local max = tonumber(ARGV[5])\n"
    "  if max > 0 and m >= max then nxt = 'away'; reason = 'missed' end\n"
    "end\n"
    "if nxt == 'wrap_up' then\n"
    "  local t = redis.call('TIME')\n"
    "  untl = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[3])\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'state', nxt, 'reason', reason, 'call', '', 'daemon', '',\n"
    "           'until', untl, 'lapsed', '')\n"
    "return 1\n";

/* ARGV: daemon, lease ms */
static const char sign_in_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[2])\n"
    "return 1\n";

/* ARGV: daemon. The agent's last daemon signs them out: offline, unless a
 * call holds them (its release decides). */
static const char sign_out_script[] =
    CURRENT "local t = redis.call('TIME')\n"
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
            "redis.call('ZREM', KEYS[3], ARGV[1])\n"
            "redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)\n"
            "if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end\n"
            "local st = current(KEYS[1], KEYS[2])\n"
            "if st == 'reserved' or st == 'on_call' or st == 'offline' then return 0 end\n"
            "redis.call('HSET', KEYS[1], 'state', 'offline', 'reason', '', 'call', '',\n"
            "           'daemon', '', 'until', 0, 'lapsed', '')\n"
            "return 1\n";

static const char get_script[] =
    CURRENT "local st = current(KEYS[1], KEYS[2])\n"
            "local v = redis.call('HMGET', KEYS[1], 'reason', 'call', 'daemon', 'missed')\n"
            "return {st, v[1] or '', v[2] or '', v[3] or '', v[4] or '0'}\n";

/* ---- running them ---- */

static void
on_script_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  GError *error = NULL;
  CdRedisReply *reply = cd_redis_command_finish (CD_REDIS (source), result, &error);

  if (reply == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, reply, (GDestroyNotify) cd_redis_reply_free);
}

/* EVAL @script on the agent's two keys with the NULL-terminated args. */
static void
run (CdPresence *self, const char *script, const char *company_id, const char *agent_id,
     gpointer source_tag, GAsyncReadyCallback callback, gpointer user_data, ...)
{
  GTask *task = g_task_new (self, NULL, callback, user_data);
  g_autofree char *agent_key = g_strdup_printf ("cd:agent:%s:%s", company_id, agent_id);
  g_autofree char *reservation_key = g_strdup_printf ("cd:reservation:%s:%s", company_id, agent_id);
  g_autofree char *daemons_key = g_strdup_printf ("cd:agent-daemons:%s:%s", company_id, agent_id);
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  const char *arg;
  va_list args;

  g_task_set_source_tag (task, source_tag);
  g_ptr_array_add (argv, (gpointer) "EVAL");
  g_ptr_array_add (argv, (gpointer) script);
  g_ptr_array_add (argv, (gpointer) "3");
  g_ptr_array_add (argv, agent_key);
  g_ptr_array_add (argv, reservation_key);
  g_ptr_array_add (argv, daemons_key);
  va_start (args, user_data);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  cd_redis_command_async (self->redis, (const char *const *) argv->pdata, NULL, (int) argv->len,
                          NULL, on_script_done, task);
}

/* The integer a script answered: 1 TRUE, 0 FALSE. */
static gboolean
finish_boolean (CdPresence *self, GAsyncResult *result, GError **error)
{
  g_autoptr (CdRedisReply) reply = g_task_propagate_pointer (G_TASK (result), error);

  if (reply == NULL)
    return FALSE;
  if (reply->type == CD_REDIS_REPLY_ERROR || reply->type != CD_REDIS_REPLY_INTEGER) {
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY, "presence script: %s",
                 reply->type == CD_REDIS_REPLY_ERROR ? reply->str : "not an integer");
    return FALSE;
  }
  return reply->integer == 1;
}

void
cd_presence_set_async (CdPresence *self, const char *company_id, const char *agent_id,
                       CdAgentState state, const char *reason, GAsyncReadyCallback callback,
                       gpointer user_data)
{
  g_return_if_fail (state == CD_AGENT_AVAILABLE || state == CD_AGENT_AWAY ||
                    state == CD_AGENT_OFFLINE);
  run (self, set_script, company_id, agent_id, cd_presence_set_async, callback, user_data,
       state_names[state], reason ? reason : "", NULL);
}

gboolean
cd_presence_set_finish (CdPresence *self, GAsyncResult *result, GError **error)
{
  return finish_boolean (self, result, error);
}

void
cd_presence_reserve_async (CdPresence *self, const char *company_id, const char *agent_id,
                           const char *call_id, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autofree char *lease = g_strdup_printf ("%u", self->lease_ms);

  run (self, reserve_script, company_id, agent_id, cd_presence_reserve_async, callback, user_data,
       call_id, self->daemon_id, lease, NULL);
}

gboolean
cd_presence_reserve_finish (CdPresence *self, GAsyncResult *result, GError **error)
{
  return finish_boolean (self, result, error);
}

void
cd_presence_renew_async (CdPresence *self, const char *company_id, const char *agent_id,
                         const char *call_id, gboolean answered, GAsyncReadyCallback callback,
                         gpointer user_data)
{
  g_autofree char *lease = g_strdup_printf ("%u", self->lease_ms);

  run (self, renew_script, company_id, agent_id, cd_presence_renew_async, callback, user_data,
       call_id, lease, state_names[answered ? CD_AGENT_ON_CALL : CD_AGENT_RESERVED],
       self->daemon_id, NULL);
}

void
cd_presence_answer_async (CdPresence *self, const char *company_id, const char *agent_id,
                          const char *call_id, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autofree char *lease = g_strdup_printf ("%u", self->lease_ms);

  run (self, answer_script, company_id, agent_id, cd_presence_answer_async, callback, user_data,
       call_id, lease, self->daemon_id, NULL);
}

void
cd_presence_release_async (CdPresence *self, const char *company_id, const char *agent_id,
                           const char *call_id, CdAgentState next, guint wrap_up_ms,
                           gboolean missed, guint max_missed, GAsyncReadyCallback callback,
                           gpointer user_data)
{
  g_autofree char *wrap_up = g_strdup_printf ("%u", wrap_up_ms);
  g_autofree char *max = g_strdup_printf ("%u", max_missed);

  g_return_if_fail (next == CD_AGENT_AVAILABLE || next == CD_AGENT_AWAY ||
                    next == CD_AGENT_WRAP_UP);
  run (self, release_script, company_id, agent_id, cd_presence_release_async, callback, user_data,
       call_id, state_names[next], wrap_up, missed ? "1" : "0", max, NULL);
}

gboolean
cd_presence_change_finish (CdPresence *self, GAsyncResult *result, GError **error)
{
  return finish_boolean (self, result, error);
}

void
cd_presence_sign_in_async (CdPresence *self, const char *company_id, const char *agent_id,
                           GAsyncReadyCallback callback, gpointer user_data)
{
  g_autofree char *lease = g_strdup_printf ("%u", self->lease_ms);

  run (self, sign_in_script, company_id, agent_id, cd_presence_sign_in_async, callback, user_data,
       self->daemon_id, lease, NULL);
}

void
cd_presence_sign_out_async (CdPresence *self, const char *company_id, const char *agent_id,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  run (self, sign_out_script, company_id, agent_id, cd_presence_sign_out_async, callback, user_data,
       self->daemon_id, NULL);
}

void
cd_presence_get_async (CdPresence *self, const char *company_id, const char *agent_id,
                       GAsyncReadyCallback callback, gpointer user_data)
{
  run (self, get_script, company_id, agent_id, cd_presence_get_async, callback, user_data, NULL);
}

CdAgentPresence *
cd_presence_get_finish (CdPresence *self, GAsyncResult *result, GError **error)
{
  g_autoptr (CdRedisReply) reply = g_task_propagate_pointer (G_TASK (result), error);
  CdAgentPresence *p;

  if (reply == NULL)
    return NULL;
  if (reply->type != CD_REDIS_REPLY_ARRAY || reply->n_elements != 5) {
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY, "presence script: %s",
                 reply->type == CD_REDIS_REPLY_ERROR ? reply->str : "an unexpected reply");
    return NULL;
  }
  for (gsize i = 0; i < 5; i++)
    if (reply->elements[i]->type != CD_REDIS_REPLY_STRING) {
      g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_QUERY,
                   "presence script: an unexpected reply");
      return NULL;
    }
  p = g_new0 (CdAgentPresence, 1);
  if (!cd_agent_state_from_string (reply->elements[0]->str, &p->state))
    p->state = CD_AGENT_OFFLINE;
  p->reason = g_strdup (reply->elements[1]->str);
  p->call_id = g_strdup (reply->elements[2]->str);
  p->daemon = g_strdup (reply->elements[3]->str);
  p->missed = (guint) g_ascii_strtoull (reply->elements[4]->str, NULL, 10);
  return p;
}

static void
cd_presence_finalize (GObject *object)
{
  CdPresence *self = CD_PRESENCE (object);

  g_clear_object (&self->redis);
  g_free (self->daemon_id);
  G_OBJECT_CLASS (cd_presence_parent_class)->finalize (object);
}

static void
cd_presence_class_init (CdPresenceClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_presence_finalize;
}

static void
cd_presence_init (CdPresence *self)
{
}

CdPresence *
cd_presence_new (CdRedis *redis, const char *daemon_id, guint lease_ms)
{
  CdPresence *self = g_object_new (CD_TYPE_PRESENCE, NULL);

  self->redis = g_object_ref (redis);
  self->daemon_id = g_strdup (daemon_id);
  self->lease_ms = lease_ms;
  return self;
}
