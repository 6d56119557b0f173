/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Agent presence and reservations against a real Redis: the state machine,
 * leases that lapse when their daemon is gone, wrap-up that ends by itself,
 * missed offers, and two daemons racing for the same agents. */

#include "cd-test-harness.h"
#include "routing/cd-presence.h"

#include <string.h>

#define COMPANY "6f1c1f0e-5a4b-4c3d-9e8f-000000000001"

static CdTestStores *stores;

static CdRedis *
new_client (void)
{
  CdRedis *redis = cd_redis_new (stores->redis_address, 2000, 20, 200);

  cd_redis_start (redis);
  WAIT_UNTIL (cd_redis_is_connected (redis), 10000);
  return redis;
}

static CdPresence *
new_presence (const char *daemon_id, guint lease_ms)
{
  g_autoptr (CdRedis) redis = new_client ();

  return cd_presence_new (redis, daemon_id, lease_ms);
}

static char *
agent_name (const char *test, guint i)
{
  return g_strdup_printf ("%s-%u", test, i);
}

static gboolean
set (CdPresence *p, const char *agent, CdAgentState state, const char *reason)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  gboolean done;

  cd_presence_set_async (p, COMPANY, agent, state, reason, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  done = cd_presence_set_finish (p, result, &error);
  g_assert_no_error (error);
  return done;
}

static gboolean
reserve (CdPresence *p, const char *agent, const char *call)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  gboolean done;

  cd_presence_reserve_async (p, COMPANY, agent, call, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  done = cd_presence_reserve_finish (p, result, &error);
  g_assert_no_error (error);
  return done;
}

/* RENEW: while ringing; RENEW_TALKING: once answered */
typedef enum { RENEW, RENEW_TALKING, ANSWER } Step;

static gboolean
step (CdPresence *p, Step what, const char *agent, const char *call)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  gboolean done;

  if (what == RENEW || what == RENEW_TALKING)
    cd_presence_renew_async (p, COMPANY, agent, call, what == RENEW_TALKING, cd_test_capture,
                             &result);
  else
    cd_presence_answer_async (p, COMPANY, agent, call, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  done = cd_presence_change_finish (p, result, &error);
  g_assert_no_error (error);
  return done;
}

static gboolean
release (CdPresence *p, const char *agent, const char *call, CdAgentState next, guint wrap_up_ms,
         gboolean missed, guint max_missed)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  gboolean done;

  cd_presence_release_async (p, COMPANY, agent, call, next, wrap_up_ms, missed, max_missed,
                             cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  done = cd_presence_change_finish (p, result, &error);
  g_assert_no_error (error);
  return done;
}

static CdAgentPresence *
get (CdPresence *p, const char *agent)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  CdAgentPresence *presence;

  cd_presence_get_async (p, COMPANY, agent, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  presence = cd_presence_get_finish (p, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (presence);
  return presence;
}

/* "state reason call daemon missed", empty fields as "-" */
static char *
describe (CdPresence *p, const char *agent)
{
  g_autoptr (CdAgentPresence) a = get (p, agent);

  return g_strdup_printf ("%s %s %s %s %u", cd_agent_state_to_string (a->state),
                          *a->reason ? a->reason : "-", *a->call_id ? a->call_id : "-",
                          *a->daemon ? a->daemon : "-", a->missed);
}

#define ASSERT_PRESENCE(p, agent, expected)          \
  G_STMT_START                                       \
  {                                                  \
    g_autofree char *_now = describe ((p), (agent)); \
    g_assert_cmpstr (_now, ==, (expected));          \
  }                                                  \
  G_STMT_END

static void
test_state_machine (void)
{
  g_autoptr (CdPresence) d1 = new_presence ("d1", 10000);
  const char *agent = "ann";

  ASSERT_PRESENCE (d1, agent, "offline - - - 0");
  /* offline and away cannot be reserved */
  g_assert_false (reserve (d1, agent, "call-a"));
  g_assert_true (set (d1, agent, CD_AGENT_AWAY, "lunch"));
  ASSERT_PRESENCE (d1, agent, "away lunch - - 0");
  g_assert_false (reserve (d1, agent, "call-a"));

  g_assert_true (set (d1, agent, CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (d1, agent, "call-a"));
  ASSERT_PRESENCE (d1, agent, "reserved - call-a d1 0");
  /* one call at a time; the agent cannot slip away while it rings */
  g_assert_false (reserve (d1, agent, "call-b"));
  g_assert_false (set (d1, agent, CD_AGENT_AWAY, "coffee"));
  /* only the holder changes the reservation */
  g_assert_false (step (d1, ANSWER, agent, "call-b"));
  g_assert_false (release (d1, agent, "call-b", CD_AGENT_AVAILABLE, 0, FALSE, 0));
  g_assert_true (step (d1, ANSWER, agent, "call-a"));
  ASSERT_PRESENCE (d1, agent, "on_call - call-a d1 0");
  g_assert_false (set (d1, agent, CD_AGENT_OFFLINE, NULL));

  /* wrap-up ends by itself after its time */
  g_assert_true (release (d1, agent, "call-a", CD_AGENT_WRAP_UP, 400, FALSE, 0));
  ASSERT_PRESENCE (d1, agent, "wrap_up - - - 0");
  g_assert_false (reserve (d1, agent, "call-c"));
  cd_test_sleep (600);
  ASSERT_PRESENCE (d1, agent, "available - - - 0");
  g_assert_true (reserve (d1, agent, "call-c"));
  /* or by the agent */
  g_assert_true (step (d1, ANSWER, agent, "call-c"));
  g_assert_true (release (d1, agent, "call-c", CD_AGENT_WRAP_UP, 60000, FALSE, 0));
  g_assert_true (set (d1, agent, CD_AGENT_AVAILABLE, NULL));
  ASSERT_PRESENCE (d1, agent, "available - - - 0");
  /* a released reservation is gone: releasing again does nothing */
  g_assert_false (release (d1, agent, "call-c", CD_AGENT_AVAILABLE, 0, FALSE, 0));
}

static void
test_missed_offers (void)
{
  g_autoptr (CdPresence) d1 = new_presence ("d1", 10000);
  const char *agent = "bob";

  g_assert_true (set (d1, agent, CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (d1, agent, "call-1"));
  g_assert_true (release (d1, agent, "call-1", CD_AGENT_AVAILABLE, 0, TRUE, 3));
  ASSERT_PRESENCE (d1, agent, "available - - - 1");
  g_assert_true (reserve (d1, agent, "call-2"));
  g_assert_true (release (d1, agent, "call-2", CD_AGENT_AVAILABLE, 0, TRUE, 3));
  ASSERT_PRESENCE (d1, agent, "available - - - 2");
  /* an answered call clears the count */
  g_assert_true (reserve (d1, agent, "call-3"));
  g_assert_true (step (d1, ANSWER, agent, "call-3"));
  g_assert_true (release (d1, agent, "call-3", CD_AGENT_AVAILABLE, 0, FALSE, 3));
  ASSERT_PRESENCE (d1, agent, "available - - - 0");
  /* three in a row: away, reason missed */
  for (int i = 0; i < 3; i++) {
    g_autofree char *call = g_strdup_printf ("call-m%d", i);
    g_assert_true (reserve (d1, agent, call));
    g_assert_true (release (d1, agent, call, CD_AGENT_AVAILABLE, 0, TRUE, 3));
  }
  ASSERT_PRESENCE (d1, agent, "away missed - - 3");
  g_assert_false (reserve (d1, agent, "call-4"));
  /* coming back clears it */
  g_assert_true (set (d1, agent, CD_AGENT_AVAILABLE, NULL));
  ASSERT_PRESENCE (d1, agent, "available - - - 0");
}

/* A daemon that stops renewing (it died) loses its reservations and calls
 * once the lease lapses; another daemon then finds the agent available. */
static void
test_lease_lapses (void)
{
  g_autoptr (CdPresence) dead = new_presence ("dead", 300);
  g_autoptr (CdPresence) alive = new_presence ("alive", 300);

  g_assert_true (set (alive, "cid", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (set (alive, "dee", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (set (alive, "eve", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (dead, "cid", "ringing"));
  g_assert_true (reserve (dead, "dee", "talking"));
  g_assert_true (step (dead, ANSWER, "dee", "talking"));
  g_assert_true (reserve (alive, "eve", "kept"));
  g_clear_object (&dead);

  /* the living daemon renews its own */
  for (int i = 0; i < 6; i++) {
    cd_test_sleep (100);
    g_assert_true (step (alive, RENEW, "eve", "kept"));
  }
  ASSERT_PRESENCE (alive, "cid", "available lease-expired - - 0");
  ASSERT_PRESENCE (alive, "dee", "available lease-expired - - 0");
  ASSERT_PRESENCE (alive, "eve", "reserved - kept alive 0");
  g_assert_true (reserve (alive, "cid", "next"));
  /* a lapsed lease taken by another call is not renewed by its old holder */
  g_assert_false (step (alive, RENEW, "cid", "ringing"));
  ASSERT_PRESENCE (alive, "cid", "reserved - next alive 0");
}

/* A holder that stalled past its lease (its renewals late) and comes back
 * before anything else happened to the agent takes them back, ringing or
 * on the call, whether or not someone read the agent meanwhile: otherwise
 * an agent still talking through it would be offered another call. */
static void
test_renew_after_stall (void)
{
  g_autoptr (CdPresence) stalled = new_presence ("stalled", 200);
  g_autoptr (CdPresence) other = new_presence ("other", 10000);

  g_assert_true (set (stalled, "gil", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (set (stalled, "hal", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (stalled, "gil", "talking"));
  g_assert_true (step (stalled, ANSWER, "gil", "talking"));
  g_assert_true (reserve (stalled, "hal", "ringing"));
  cd_test_sleep (400);
  /* gil was read meanwhile (as available), hal was not */
  ASSERT_PRESENCE (other, "gil", "available lease-expired - - 0");
  g_assert_true (step (stalled, RENEW_TALKING, "gil", "talking"));
  g_assert_true (step (stalled, RENEW, "hal", "ringing"));
  ASSERT_PRESENCE (other, "gil", "on_call - talking stalled 0");
  ASSERT_PRESENCE (other, "hal", "reserved - ringing stalled 0");
  /* taken back, not lent: another daemon cannot reserve them */
  g_assert_false (reserve (other, "gil", "second"));
  g_assert_false (reserve (other, "hal", "second"));

  /* an answer that never reached Redis: the next renewal stores it */
  g_assert_true (set (other, "ivy", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (other, "ivy", "answered"));
  g_assert_true (step (other, RENEW, "ivy", "answered"));
  ASSERT_PRESENCE (other, "ivy", "reserved - answered other 0");
  g_assert_true (step (other, RENEW_TALKING, "ivy", "answered"));
  ASSERT_PRESENCE (other, "ivy", "on_call - answered other 0");

  /* once another call took the agent, the stalled holder does not */
  cd_test_sleep (400);
  g_assert_true (reserve (other, "gil", "second"));
  g_assert_false (step (stalled, RENEW_TALKING, "gil", "talking"));
  ASSERT_PRESENCE (other, "gil", "reserved - second other 0");
  /* nor once the agent changed their state by hand */
  g_assert_true (set (other, "hal", CD_AGENT_AWAY, "lunch"));
  g_assert_false (step (stalled, RENEW, "hal", "ringing"));
  ASSERT_PRESENCE (other, "hal", "away lunch - - 0");
}

/* The holder stalled past its lease but comes back before anything else
 * happened to the agent: a late answer or release still counts (the miss,
 * the wrap-up), whether or not someone read the agent meanwhile. Once the
 * agent was taken by another call or changed by hand, it does not. */
static void
test_late_after_lapse (void)
{
  g_autoptr (CdPresence) d1 = new_presence ("d1", 200);
  g_autoptr (CdPresence) d2 = new_presence ("d2", 10000);

  /* a miss reported late, nobody looked meanwhile */
  g_assert_true (set (d1, "fay", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (d1, "fay", "call-1"));
  cd_test_sleep (400);
  g_assert_true (release (d1, "fay", "call-1", CD_AGENT_AVAILABLE, 0, TRUE, 2));
  ASSERT_PRESENCE (d2, "fay", "available - - - 1");
  /* a second one, read as lapsed before the late release: away, missed */
  g_assert_true (reserve (d1, "fay", "call-2"));
  cd_test_sleep (400);
  ASSERT_PRESENCE (d2, "fay", "available lease-expired - - 1");
  g_assert_true (release (d1, "fay", "call-2", CD_AGENT_AVAILABLE, 0, TRUE, 2));
  ASSERT_PRESENCE (d2, "fay", "away missed - - 2");

  /* an answer after the lapse takes the agent back; the wrap-up follows */
  g_assert_true (set (d1, "gus", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (d1, "gus", "call-3"));
  cd_test_sleep (400);
  ASSERT_PRESENCE (d2, "gus", "available lease-expired - - 0");
  g_assert_true (step (d1, ANSWER, "gus", "call-3"));
  ASSERT_PRESENCE (d2, "gus", "on_call - call-3 d1 0");
  /* the answer took a new lease: a second daemon cannot reserve the agent */
  g_assert_false (reserve (d2, "gus", "call-x"));
  cd_test_sleep (400);
  g_assert_true (release (d1, "gus", "call-3", CD_AGENT_WRAP_UP, 60000, FALSE, 0));
  ASSERT_PRESENCE (d2, "gus", "wrap_up - - - 0");

  /* taken by another call meanwhile: the late holder changes nothing */
  g_assert_true (set (d1, "hal", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (d1, "hal", "call-4"));
  cd_test_sleep (400);
  g_assert_true (reserve (d2, "hal", "call-5"));
  g_assert_false (step (d1, ANSWER, "hal", "call-4"));
  g_assert_false (release (d1, "hal", "call-4", CD_AGENT_AWAY, 0, TRUE, 1));
  ASSERT_PRESENCE (d2, "hal", "reserved - call-5 d2 0");
  /* set by hand meanwhile: the same */
  g_assert_true (release (d2, "hal", "call-5", CD_AGENT_AVAILABLE, 0, FALSE, 0));
  g_assert_true (reserve (d1, "hal", "call-6"));
  cd_test_sleep (400);
  g_assert_true (set (d2, "hal", CD_AGENT_AWAY, "lunch"));
  g_assert_false (step (d1, ANSWER, "hal", "call-6"));
  g_assert_false (release (d1, "hal", "call-6", CD_AGENT_AVAILABLE, 0, TRUE, 1));
  ASSERT_PRESENCE (d2, "hal", "away lunch - - 0");
}

typedef struct {
  CdPresence *presence;
  char *agent;
  char *call;
  gboolean won;
  gboolean done;
} Race;

static void
on_raced (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Race *r = user_data;
  g_autoptr (GError) error = NULL;

  r->won = cd_presence_reserve_finish (CD_PRESENCE (source), result, &error);
  g_assert_no_error (error);
  r->done = TRUE;
}

/* 200 calls at once, from two daemons on their own connections, for 20
 * agents: each agent is reserved exactly once. */
static void
test_two_daemons_race (void)
{
  enum { AGENTS = 20, CALLS = 200 };
  g_autoptr (CdPresence) d1 = new_presence ("d1", 10000);
  g_autoptr (CdPresence) d2 = new_presence ("d2", 10000);
  Race races[CALLS];
  guint wins[AGENTS] = { 0 };
  guint total = 0;

  for (guint a = 0; a < AGENTS; a++) {
    g_autofree char *agent = agent_name ("race", a);
    g_assert_true (set (d1, agent, CD_AGENT_AVAILABLE, NULL));
  }
  for (guint i = 0; i < CALLS; i++) {
    races[i] = (Race){ i % 2 ? d2 : d1, agent_name ("race", (i / 2) % AGENTS),
                       g_strdup_printf ("call-%u", i), FALSE, FALSE };
    cd_presence_reserve_async (races[i].presence, COMPANY, races[i].agent, races[i].call, on_raced,
                               &races[i]);
  }
  for (guint i = 0; i < CALLS; i++)
    WAIT_UNTIL (races[i].done, 20000);
  for (guint i = 0; i < CALLS; i++) {
    if (races[i].won) {
      g_autoptr (CdAgentPresence) p = get (d1, races[i].agent);
      wins[(i / 2) % AGENTS]++;
      total++;
      g_assert_cmpint (p->state, ==, CD_AGENT_RESERVED);
      g_assert_cmpstr (p->call_id, ==, races[i].call);
      g_assert_cmpstr (p->daemon, ==, i % 2 ? "d2" : "d1");
    }
    g_free (races[i].agent);
    g_free (races[i].call);
  }
  for (guint a = 0; a < AGENTS; a++)
    g_assert_cmpuint (wins[a], ==, 1);
  g_assert_cmpuint (total, ==, AGENTS);
}

static void
test_redis_down (void)
{
  CdRedisAddress nowhere = { CD_REDIS_TRANSPORT_UNIX, NULL, 0, "/nonexistent/redis.sock", NULL, 0 };
  g_autoptr (CdRedis) redis = cd_redis_new (&nowhere, 300, 20, 100);
  g_autoptr (CdPresence) p = cd_presence_new (redis, "d1", 1000);
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;

  cd_redis_start (redis);
  cd_presence_reserve_async (p, COMPANY, "ann", "call", cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  g_assert_false (cd_presence_reserve_finish (p, result, &error));
  g_assert_error (error, CD_STORE_ERROR, CD_STORE_ERROR_UNAVAILABLE);
  cd_redis_close (redis);
}

static gboolean
sign (CdPresence *p, gboolean in, const char *agent)
{
  g_autoptr (GAsyncResult) result = NULL;
  g_autoptr (GError) error = NULL;
  gboolean done;

  if (in)
    cd_presence_sign_in_async (p, COMPANY, agent, cd_test_capture, &result);
  else
    cd_presence_sign_out_async (p, COMPANY, agent, cd_test_capture, &result);
  cd_test_wait_result (&result, 10000);
  done = cd_presence_change_finish (p, result, &error);
  g_assert_no_error (error);
  return done;
}

/* An agent signed in to two daemons stays as they were when one signs
 * them out, and is offline once the last does; a call holding them keeps
 * them (its release decides); a dead daemon's word lapses with its lease. */
static void
test_sign_out (void)
{
  g_autoptr (CdPresence) d1 = new_presence ("d1", 10000);
  g_autoptr (CdPresence) d2 = new_presence ("d2", 10000);
  g_autoptr (CdPresence) dead = new_presence ("dead", 200);

  g_assert_true (sign (d1, TRUE, "ida"));
  g_assert_true (sign (d2, TRUE, "ida"));
  g_assert_true (set (d1, "ida", CD_AGENT_AWAY, "lunch"));
  g_assert_false (sign (d1, FALSE, "ida"));
  ASSERT_PRESENCE (d1, "ida", "away lunch - - 0");
  g_assert_true (sign (d2, FALSE, "ida"));
  ASSERT_PRESENCE (d1, "ida", "offline - - - 0");
  /* once offline, nothing more to do */
  g_assert_false (sign (d2, FALSE, "ida"));

  /* on a call when the last session closes: the call decides */
  g_assert_true (sign (d1, TRUE, "jan"));
  g_assert_true (set (d1, "jan", CD_AGENT_AVAILABLE, NULL));
  g_assert_true (reserve (d1, "jan", "talking"));
  g_assert_true (step (d1, ANSWER, "jan", "talking"));
  g_assert_false (sign (d1, FALSE, "jan"));
  ASSERT_PRESENCE (d1, "jan", "on_call - talking d1 0");
  g_assert_true (release (d1, "jan", "talking", CD_AGENT_AVAILABLE, 0, FALSE, 3));
  ASSERT_PRESENCE (d1, "jan", "available - - - 0");

  /* a daemon that died said the agent was signed in to it, one lease ago */
  g_assert_true (sign (dead, TRUE, "kim"));
  g_assert_true (sign (d1, TRUE, "kim"));
  g_assert_true (set (d1, "kim", CD_AGENT_AVAILABLE, NULL));
  cd_test_sleep (400);
  g_assert_true (sign (d1, FALSE, "kim"));
  ASSERT_PRESENCE (d1, "kim", "offline - - - 0");
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  stores = cd_test_stores_start ();
  g_test_add_func ("/presence/state-machine", test_state_machine);
  g_test_add_func ("/presence/missed-offers", test_missed_offers);
  g_test_add_func ("/presence/lease-lapses", test_lease_lapses);
  g_test_add_func ("/presence/late-after-lapse", test_late_after_lapse);
  g_test_add_func ("/presence/renew-after-stall", test_renew_after_stall);
  g_test_add_func ("/presence/sign-out", test_sign_out);
  g_test_add_func ("/presence/two-daemons-race", test_two_daemons_race);
  g_test_add_func ("/presence/redis-down", test_redis_down);
  status = g_test_run ();
  cd_test_stores_stop (stores);
  return status;
}
