/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The REST API's shared context and the pieces every handler uses: the
 * authenticated caller, paused messages answered later, audit entries. */
#pragma once

#include <json-glib/json-glib.h>

#include "../auth/cd-jwt.h"
#include "../auth/cd-password.h"
#include "../events/cd-mailer.h"
#include "../media/cd-call-pipeline.h"
#include "../routing/cd-queue-roster.h"
#include "../store/cd-blob-store.h"
#include "../store/cd-call-store.h"
#include "../store/cd-keyring.h"
#include "../store/cd-pg-pool.h"
#include "../store/cd-redis.h"
#include "cd-http-problem.h"
#include "cd-http-server.h"

G_BEGIN_DECLS

typedef struct {
  guint widget_token_ttl_s;
  guint widget_limit_per_address;
  guint widget_limit_window_s;
  guint access_ttl_s;
  guint refresh_ttl_s;
  guint login_limit_per_account;
  guint login_limit_per_address;
  guint login_limit_window_s;
  guint64 max_prompt_bytes;
  guint max_prompt_ms;
} CdApiSettings;

/* Owned by the daemon; handlers borrow it. All of it belongs to the main thread. */
typedef struct {
  CdPgPool *pool;
  CdRedis *redis;
  CdJwtKeys *keys;
  CdPasswordPolicy *passwords;
  CdMailer *mailer;   /* nullable: mails then wait in the outbox */
  CdCallStore *calls; /* calls and their timelines, written behind */
  CdBlobStore *blobs; /* prompts, voicemails, recordings */
  CdKeyring *keyring; /* the keys that seal recordings and voicemails */
  /* the call recordings this daemon controls (set by the signal server):
   * @action start, pause, resume or stop; @only_agent: the agent who asks,
   * who must be the call's (NULL for admins); FALSE and @error (a CD_HTTP_ERROR
   * for the client) when it cannot */
  gboolean (*control_recording) (gpointer data, const char *company_id, const char *call_id,
                                 const char *action, const char *only_agent, GError **error);
  gpointer control_recording_data;
  /* the calls live on this daemon, for media engineers (set by the signal server) */
  CdCallPipeline *(*lookup_pipeline) (gpointer data, const char *company_id, const char *call_id);
  gpointer lookup_pipeline_data;
  /* what this daemon knows of an agent now, for routing simulations (set by
   * the signal server; NULL: every agent reads as offline) */
  gboolean (*lookup_member) (gpointer data, const char *company_id, const char *agent_id,
                             CdMemberNow *now);
  gpointer lookup_member_data;
  char *public_url; /* where users reach the daemon, ending in '/' */
  CdApiSettings settings;
  GHashTable *blocked; /* UUID -> gint64*: tokens issued until then are refused */
  GStrv stun_urls;     /* ICE servers for visitors */
  GStrv turn_urls;
  char *turn_secret;
  guint turn_ttl_s;
} CdApi;

typedef enum {
  CD_API_ANSWER_ROW,   /* the JSON in the first column, with answer_status; 404 if none */
  CD_API_ANSWER_PAGE,  /* a list page: {items, next_cursor} */
  CD_API_ANSWER_EMPTY, /* answer_status and no body; 404 if no row */
} CdApiAnswer;

/* One request being answered asynchronously; its message is paused. */
typedef struct {
  CdApi *api;
  CdPausedMessage paused;
  SoupServerMessage *msg; /* paused.msg */
  char *request_id;
  char *client_address;
  CdJwtClaims *caller; /* NULL on public routes */
  JsonObject *body;    /* validated body, if any */
  GHashTable *params;  /* path parameters */
  gpointer data;       /* the handler's own state */
  GDestroyNotify data_free;
  char *block_on_success; /* a UUID whose older tokens end if the call succeeds */
  /* what cd_api_call_on_query() answers with the statement's result */
  CdApiAnswer answer;
  guint answer_status;
  const char *conflict_detail; /* static text for a constraint violation */
  char *idempotency_key;       /* set while this call owns the key's answer */
  char *idempotency_fingerprint;
} CdApiCall;

typedef void (*CdApiProceedFunc) (CdApiCall *call);

gboolean cd_api_register (CdApi *api, CdHttpServer *server, GError **error);
void cd_api_block (CdApi *api, const char *id);
gboolean cd_api_is_blocked (CdApi *api, const char *id, gint64 issued_at);
void cd_api_listen_for_blocks (CdApi *api);
void cd_api_load_recent_blocks_async (CdApi *api, GCancellable *cancellable,
                                      GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_api_load_recent_blocks_finish (GAsyncResult *result, GError **error);

typedef enum {
  CD_ROLE_SUPERADMIN = 1 << 0,
  CD_ROLE_COMPANY_ADMIN = 1 << 1,
  CD_ROLE_AGENT = 1 << 2,
  CD_ROLE_ANY = 7,
} CdRoles;

CdJwtClaims *cd_api_guard (CdApi *api, CdHttpRequest *request, CdRoles roles,
                           const char *company_param, GError **error);
CdPgScope cd_api_scope_of (const CdJwtClaims *claims);
CdJwtClaims *cd_api_guard_company_admin (CdApi *api, CdHttpRequest *request, const char *item_param,
                                         const char *missing);
void cd_api_list (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims, const char *sql);
void cd_api_list_where (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims, const char *sql,
                        const char *const *filters, int n_filters);
void cd_api_get_one (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims,
                     const char *item_param, const char *sql);
void cd_api_call_respond_rows (CdApiCall *call, guint status, PGresult *res);
void cd_api_call_respond_page (CdApiCall *call, PGresult *res);
void cd_api_call_expect (CdApiCall *call, CdApiAnswer answer, guint status,
                         const char *conflict_detail);
void cd_api_call_on_query (GObject *source, GAsyncResult *result, gpointer user_data);
/* The end of a keyset-paged list statement. After a CTE "page" of up to
 * LIMIT + 1 rows (created_at, id, and j: the item's JSON) in the list's
 * order, it selects the page object {items, next_cursor}; @limit names the
 * limit's parameter ("$4"). */
#define CD_API_PAGE_OLDEST_FIRST(limit)                                                    \
  " shown AS (SELECT * FROM page ORDER BY created_at, id LIMIT " limit "::int)"            \
  " SELECT json_build_object("                                                             \
  "  'items', coalesce((SELECT json_agg(j ORDER BY created_at, id) FROM shown), '[]'),"    \
  "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > " limit "::int THEN"           \
  "   (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" \
  "    || '|' || id FROM shown ORDER BY created_at DESC, id DESC LIMIT 1) END)"
#define CD_API_PAGE_NEWEST_FIRST(limit)                                                    \
  " shown AS (SELECT * FROM page ORDER BY created_at DESC, id DESC LIMIT " limit "::int)"  \
  " SELECT json_build_object("                                                             \
  "  'items', coalesce((SELECT json_agg(j ORDER BY created_at DESC, id DESC) FROM shown)," \
  "   '[]'),"                                                                              \
  "  'next_cursor', CASE WHEN (SELECT count(*) FROM page) > " limit "::int THEN"           \
  "   (SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" \
  "    || '|' || id FROM shown ORDER BY created_at, id LIMIT 1) END)"

gboolean cd_api_page_params (CdHttpRequest *request, guint *limit, char **cursor_time,
                             char **cursor_id, GError **error);
gboolean cd_api_calls_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_call_media_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_companies_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_users_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_queues_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_ivr_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_prompts_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_voicemails_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_recordings_register (CdApi *api, CdHttpServer *server, GError **error);
gboolean cd_api_widget_register (CdApi *api, CdHttpServer *server, GError **error);
void cd_api_call_rate_limit_address (CdApiCall *call, const char *kind, guint limit, guint window_s,
                                     CdApiProceedFunc proceed);

CdJwtClaims *cd_api_authenticate (CdApi *api, CdHttpRequest *request, GError **error);
CdApiCall *cd_api_call_new (CdApi *api, CdHttpRequest *request);
CdApiCall *cd_api_call_start (CdApi *api, CdHttpRequest *request, CdJwtClaims *claims);
void cd_api_call_respond_problem (CdApiCall *call, CdHttpError code, const char *detail);
void cd_api_call_respond_blob (CdApiCall *call, GAsyncResult *result, const char *content_type,
                               const char *missing);
void cd_api_call_respond_json (CdApiCall *call, guint status, JsonNode *body);
void cd_api_call_respond_empty (CdApiCall *call, guint status);
void cd_api_call_respond_stored (CdApiCall *call, const char *storage_key,
                                 const char *content_type);
void cd_api_call_respond_sealed (CdApiCall *call, const char *storage_key, const char *company_id,
                                 guint32 key_version, const char *content_type);
void cd_api_call_respond_bytes (CdApiCall *call, guint status, const char *content_type,
                                GBytes *body);
void cd_api_call_respond_error (CdApiCall *call, const GError *error);
void cd_api_call_idempotent (CdApiCall *call, const char *caller, CdApiProceedFunc proceed);
void cd_api_call_rate_limit (CdApiCall *call, const char *kind, const char *account,
                             CdApiProceedFunc proceed);
char *cd_api_rate_limit_key (const char *kind, const char *account);
void cd_api_respond_auth_error (CdHttpRequest *request, const GError *error);
char *cd_api_hash_token (const char *token);
char *cd_api_new_token (void);
const char *cd_api_client_address (SoupServerMessage *msg);

gboolean cd_api_auth_register (CdApi *api, CdHttpServer *server, GError **error);

G_END_DECLS
