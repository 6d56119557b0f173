/* SPDX-License-Identifier: GPL-3.0-or-later */
/* calldockerd's configuration: a key file, CALLDOCKER_SECTION_KEY environment
 * overrides and command-line options, validated as a whole before start. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CD_CONFIG_ERROR (cd_config_error_quark ())

typedef enum {
  CD_CONFIG_ERROR_READ,
  CD_CONFIG_ERROR_SYNTAX,
  CD_CONFIG_ERROR_UNKNOWN_KEY,
  CD_CONFIG_ERROR_INVALID_VALUE,
  CD_CONFIG_ERROR_CONTRADICTION,
} CdConfigError;

GQuark cd_config_error_quark (void);

typedef enum {
  CD_REDIS_TRANSPORT_TCP,
  CD_REDIS_TRANSPORT_UNIX,
} CdRedisTransport;

typedef struct {
  CdRedisTransport transport;
  char *host;     /* TCP */
  guint16 port;   /* TCP */
  char *path;     /* unix socket */
  char *password; /* nullable */
  guint db;
} CdRedisAddress;

typedef struct {
  /* [server] */
  char *listen_host;
  guint listen_port;
  guint64 max_body_bytes;
  char *public_url; /* empty: http://LISTEN/ */
  /* [state] */
  char *state_dir;
  /* [postgres] */
  char *pg_conninfo; /* empty: the embedded server under the state folder */
  guint pg_pool_size;
  guint pg_query_timeout_ms;
  char *pg_app_role; /* every request's statements run as this role */
  /* [redis] */
  char *redis_url; /* empty: the embedded server under the state folder */
  guint redis_command_timeout_ms;
  /* [store] */
  guint reconnect_min_ms;
  guint reconnect_max_ms;
  /* [auth] */
  char *auth_key_file;
  guint access_ttl_s;
  guint refresh_ttl_s;
  guint password_memlimit_kib;
  guint password_opslimit;
  guint password_min_length;
  guint login_limit_per_account;
  guint login_limit_per_address;
  guint login_limit_window_s;
  /* [mail] */
  char *mail_from;
  char *smtp_url;
  char *smtp_username;
  char *smtp_password;
  char *smtp_tls;
  /* [ice] */
  char *stun_urls;
  char *turn_urls;
  char *turn_secret;
  guint turn_ttl_s;
  /* [widget] */
  guint widget_token_ttl_s;
  guint widget_limit_per_address;
  guint widget_limit_window_s;
  /* [signal] */
  guint signal_auth_timeout_s;
  guint signal_max_message_bytes;
  guint signal_max_messages_per_second;
  guint signal_keepalive_s;
  guint signal_resume_grace_s;
  /* [calls] */
  char *signal_country_header;
  char *signal_geoip_database;
  guint calls_ring_timeout_s;
  guint calls_max_missed_offers;
  guint calls_reoffer_after_s;
  guint calls_reservation_lease_s;
  guint calls_max_wait_s;
  guint calls_ice_timeout_s;
  guint calls_media_timeout_s;
  guint calls_max_per_daemon;
  /* [media] */
  char *media_local_addresses; /* comma separated; empty: every interface */
  guint media_jitter_latency_ms;
  guint media_ringback;
  guint media_min_rtp_port;
  guint media_max_rtp_port;
  guint opus_bitrate;
  guint opus_complexity;
  guint opus_fec;
  guint opus_dtx;
  /* [ivr] */
  guint64 ivr_max_prompt_bytes;
  guint ivr_max_prompt_s;
  /* [blobs] */
  char *blobs_dir;             /* empty: blobs under the state folder */
  char *blobs_master_key_file; /* empty: STATE/keys/master.key, made once */
  char *blobs_backend;         /* local or s3 */
  char *blobs_s3_endpoint;
  char *blobs_s3_bucket;
  char *blobs_s3_region;
  char *blobs_s3_access_key;
  char *blobs_s3_secret_key;
  guint64 blobs_s3_part_bytes;
  guint blobs_s3_retry_max_s;
  guint blobs_retention_interval_s;
  /* [log] */
  char *log_level;
  /* [shutdown] */
  guint shutdown_timeout_s;

  /* derived */
  CdRedisAddress *redis_address; /* NULL while redis_url is empty */
  char *source_path;             /* file it came from, nullable */
} CdConfig;

CdConfig *cd_config_new_default (void);
void cd_config_free (CdConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdConfig, cd_config_free)

gboolean cd_config_load_file (CdConfig *config, const char *path, GError **error);
gboolean cd_config_load_data (CdConfig *config, const char *data, gsize length, GError **error);
gboolean cd_config_apply_environment (CdConfig *config, char **envp, GError **error);
gboolean cd_config_set (CdConfig *config, const char *section, const char *key, const char *value,
                        const char *origin, GError **error);
gboolean cd_config_validate (CdConfig *config, GError **error);
char *cd_config_describe (const CdConfig *config);

char *cd_config_data_path (const char *name);

gboolean cd_config_uses_embedded_postgres (const CdConfig *config);
gboolean cd_config_uses_embedded_redis (const CdConfig *config);

CdRedisAddress *cd_redis_address_parse (const char *url, GError **error);
CdRedisAddress *cd_redis_address_copy (const CdRedisAddress *address);
void cd_redis_address_free (CdRedisAddress *address);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdRedisAddress, cd_redis_address_free)

G_END_DECLS
