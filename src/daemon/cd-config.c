/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Configuration: one declared table of keys drives the key file, environment
 * overrides, validation messages and the --check-config summary. */

#define G_LOG_DOMAIN "calldocker-config"

#include "cd-config.h"

#include "cd-build-config.h"

#include "store/cd-pg-pool.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <string.h>

G_DEFINE_QUARK (calldocker_config_error, cd_config_error)

typedef enum {
  KEY_STRING,
  KEY_UINT,
  KEY_UINT64,
  KEY_LISTEN,
  KEY_LOG_LEVEL,
} KeyType;

typedef struct {
  const char *section;
  const char *key;
  KeyType type;
  gsize offset;
  guint64 min;
  guint64 max;
  const char *default_value;
  const char *help;
} KeyInfo;

#define OFF(field) offsetof (CdConfig, field)

static const KeyInfo keys[] = {
  { "server", "listen", KEY_LISTEN, OFF (listen_host), 0, 65535, "127.0.0.1:8080",
    "address and port the HTTP server listens on (port 0: any free port)" },
  { "server", "max_body_bytes", KEY_UINT64, OFF (max_body_bytes), 1024, 64 * 1024 * 1024, "1048576",
    "largest request body accepted, in bytes" },
  { "server", "public_url", KEY_STRING, OFF (public_url), 0, 0, "",
    "the address users reach the daemon at, for links in mails; empty: http://LISTEN/" },
  { "state", "dir", KEY_STRING, OFF (state_dir), 0, 0, ".calldocker",
    "folder for the lock file and the embedded PostgreSQL and Redis" },
  { "postgres", "conninfo", KEY_STRING, OFF (pg_conninfo), 0, 0, "",
    "libpq connection string; empty runs an embedded server under the state folder" },
  { "postgres", "pool_size", KEY_UINT, OFF (pg_pool_size), 1, 64, "4", "connections kept open" },
  { "postgres", "query_timeout_ms", KEY_UINT, OFF (pg_query_timeout_ms), 100, 600000, "5000",
    "how long a query waits for a connection and an answer" },
  { "postgres", "app_role", KEY_STRING, OFF (pg_app_role), 0, 0, "calldocker_app",
    "role the daemon's queries run as (row-level security applies to it); migrations create it" },
  { "redis", "url", KEY_STRING, OFF (redis_url), 0, 0, "",
    "redis://[:password@]host[:port][/db] or unix:/path/to/socket; empty runs an embedded server" },
  { "redis", "command_timeout_ms", KEY_UINT, OFF (redis_command_timeout_ms), 100, 600000, "2000",
    "how long a Redis command may take" },
  { "store", "reconnect_min_ms", KEY_UINT, OFF (reconnect_min_ms), 10, 600000, "100",
    "first delay before reconnecting to PostgreSQL or Redis" },
  { "store", "reconnect_max_ms", KEY_UINT, OFF (reconnect_max_ms), 10, 600000, "5000",
    "longest delay between reconnection attempts" },
  { "auth", "key_file", KEY_STRING, OFF (auth_key_file), 0, 0, "",
    "JWT keys, \"KID BASE64\" per line, the first signs; empty: STATE/auth/jwt-keys, made once" },
  { "auth", "access_ttl_s", KEY_UINT, OFF (access_ttl_s), 60, 86400, "900",
    "lifetime of an access token" },
  { "auth", "refresh_ttl_s", KEY_UINT, OFF (refresh_ttl_s), 3600, 31536000, "2592000",
    "lifetime of a refresh token" },
  { "auth", "password_memlimit_kib", KEY_UINT, OFF (password_memlimit_kib), 19456, 4194304, "19456",
    "argon2id memory per hash, in KiB (at least 19 MiB)" },
  { "auth", "password_opslimit", KEY_UINT, OFF (password_opslimit), 2, 64, "2",
    "argon2id passes (at least 2)" },
  { "auth", "password_min_length", KEY_UINT, OFF (password_min_length), 8, 128, "10",
    "fewest characters a new password may have" },
  { "auth", "login_limit_per_account", KEY_UINT, OFF (login_limit_per_account), 1, 100000, "10",
    "login attempts per account per window" },
  { "auth", "login_limit_per_address", KEY_UINT, OFF (login_limit_per_address), 1, 1000000, "50",
    "login attempts per client address per window" },
  { "auth", "login_limit_window_s", KEY_UINT, OFF (login_limit_window_s), 10, 86400, "900",
    "the rate limits' window" },
  { "mail", "from", KEY_STRING, OFF (mail_from), 0, 0, "CallDocker <no-reply@calldocker.invalid>",
    "the From of mails; without SMTP, mails are written to STATE/mail/*.eml" },
  { "mail", "smtp_url", KEY_STRING, OFF (smtp_url), 0, 0, "",
    "smtp://host:port or smtps://host:port; empty: write mails as files" },
  { "mail", "smtp_username", KEY_STRING, OFF (smtp_username), 0, 0, "", "SMTP login, if any" },
  { "mail", "smtp_password", KEY_STRING, OFF (smtp_password), 0, 0, "",
    "SMTP password (better: CALLDOCKER_MAIL_SMTP_PASSWORD)" },
  { "mail", "smtp_tls", KEY_STRING, OFF (smtp_tls), 0, 0, "required",
    "required: STARTTLS or smtps, or no mail; none: plain text (a local relay only)" },
  { "ice", "stun_urls", KEY_STRING, OFF (stun_urls), 0, 0, "",
    "STUN servers for browsers, comma-separated (stun:host:3478)" },
  { "ice", "turn_urls", KEY_STRING, OFF (turn_urls), 0, 0, "",
    "TURN servers, comma-separated (turn:host:3478?transport=udp, turns:host:5349)" },
  { "ice", "turn_secret", KEY_STRING, OFF (turn_secret), 0, 0, "",
    "coturn's static-auth-secret (better: CALLDOCKER_ICE_TURN_SECRET)" },
  { "ice", "turn_ttl_s", KEY_UINT, OFF (turn_ttl_s), 60, 86400, "3600",
    "how long TURN credentials work" },
  { "widget", "token_ttl_s", KEY_UINT, OFF (widget_token_ttl_s), 60, 86400, "900",
    "lifetime of a visitor token" },
  { "widget", "session_limit_per_address", KEY_UINT, OFF (widget_limit_per_address), 1, 1000000,
    "30", "widget sessions per client address per window" },
  { "widget", "session_limit_window_s", KEY_UINT, OFF (widget_limit_window_s), 1, 86400, "60",
    "the widget limit's window" },
  { "signal", "auth_timeout_s", KEY_UINT, OFF (signal_auth_timeout_s), 1, 300, "10",
    "a signaling WebSocket must authenticate within this" },
  { "signal", "max_message_bytes", KEY_UINT, OFF (signal_max_message_bytes), 1024, 1048576, "65536",
    "largest signaling message" },
  { "signal", "max_messages_per_second", KEY_UINT, OFF (signal_max_messages_per_second), 1, 10000,
    "20", "more in one second closes the connection" },
  { "signal", "keepalive_s", KEY_UINT, OFF (signal_keepalive_s), 1, 3600, "20",
    "WebSocket pings every this many seconds" },
  { "signal", "country_header", KEY_STRING, OFF (signal_country_header), 0, 0, "",
    "a header your reverse proxy sets to the visitor's country (e.g. CF-IPCountry); empty: none" },
  { "signal", "geoip_database", KEY_STRING, OFF (signal_geoip_database), 0, 0, "",
    "a MaxMind DB file (e.g. GeoLite2-Country.mmdb) giving the visitor's country from its "
    "address when no header says it; empty: none" },
  { "signal", "resume_grace_s", KEY_UINT, OFF (signal_resume_grace_s), 1, 600, "20",
    "a party on a call whose WebSocket dropped may resume it within this" },
  { "calls", "ring_timeout_s", KEY_UINT, OFF (calls_ring_timeout_s), 1, 600, "20",
    "an agent offered a call has this long to accept it" },
  { "calls", "max_missed_offers", KEY_UINT, OFF (calls_max_missed_offers), 0, 100, "3",
    "an agent who lets this many offers in a row ring out is set away (missed); 0: never" },
  { "calls", "reoffer_after_s", KEY_UINT, OFF (calls_reoffer_after_s), 1, 3600, "30",
    "a call an agent rejected or let ring out is offered them again after this, if it still "
    "waits" },
  { "calls", "reservation_lease_s", KEY_UINT, OFF (calls_reservation_lease_s), 1, 300, "15",
    "an agent reserved by a daemon that stops renewing (it died) is free again after this" },
  { "calls", "max_wait_s", KEY_UINT, OFF (calls_max_wait_s), 1, 86400, "300",
    "a call no agent took in this long ends (no-agent)" },
  { "calls", "ice_timeout_s", KEY_UINT, OFF (calls_ice_timeout_s), 1, 600, "15",
    "a leg whose ICE has not connected in this long ends the call (ice-failed)" },
  { "calls", "media_timeout_s", KEY_UINT, OFF (calls_media_timeout_s), 1, 600, "10",
    "a connected party that sends no audio for this long ends the call (media-timeout)" },
  { "calls", "max_per_daemon", KEY_UINT, OFF (calls_max_per_daemon), 1, 100000, "500",
    "calls this daemon carries at once; more are refused (busy)" },
  { "media", "local_addresses", KEY_STRING, OFF (media_local_addresses), 0, 0, "",
    "comma-separated local IP addresses ICE may use; empty: every interface" },
  { "media", "jitter_latency_ms", KEY_UINT, OFF (media_jitter_latency_ms), 10, 1000, "50",
    "jitter buffer of each leg" },
  { "media", "ringback", KEY_UINT, OFF (media_ringback), 0, 1, "1",
    "a ringing tone to the visitor until an agent answers (1 on, 0 off)" },
  { "media", "min_rtp_port", KEY_UINT, OFF (media_min_rtp_port), 0, 65535, "0",
    "lowest UDP port for media (0: any)" },
  { "media", "max_rtp_port", KEY_UINT, OFF (media_max_rtp_port), 0, 65535, "0",
    "highest UDP port for media (0: any)" },
  { "media", "opus_bitrate", KEY_UINT, OFF (opus_bitrate), 6000, 510000, "32000",
    "Opus bitrate where the daemon encodes (prompts, tones), bit/s" },
  { "media", "opus_complexity", KEY_UINT, OFF (opus_complexity), 0, 10, "5",
    "Opus encoder complexity" },
  { "media", "opus_fec", KEY_UINT, OFF (opus_fec), 0, 1, "1", "Opus in-band FEC (1 on, 0 off)" },
  { "media", "opus_dtx", KEY_UINT, OFF (opus_dtx), 0, 1, "0",
    "Opus discontinuous transmission (1 on, 0 off)" },
  { "ivr", "max_prompt_bytes", KEY_UINT64, OFF (ivr_max_prompt_bytes), 1024, 256 * 1024 * 1024,
    "10485760", "largest prompt file an admin may upload" },
  { "ivr", "max_prompt_s", KEY_UINT, OFF (ivr_max_prompt_s), 1, 3600, "300",
    "longest prompt an admin may upload, in seconds of audio" },
  { "blobs", "dir", KEY_STRING, OFF (blobs_dir), 0, 0, "",
    "the folder stored files live in (with backend s3: the spool they wait in until uploaded); "
    "empty: blobs under the state folder" },
  { "blobs", "backend", KEY_STRING, OFF (blobs_backend), 0, 0, "local",
    "where stored files live: local (the folder) or s3 (an S3-compatible bucket)" },
  { "blobs", "s3_endpoint", KEY_STRING, OFF (blobs_s3_endpoint), 0, 0, "",
    "the S3 endpoint, http(s)://host[:port] (path-style requests)" },
  { "blobs", "s3_bucket", KEY_STRING, OFF (blobs_s3_bucket), 0, 0, "", "the bucket, made already" },
  { "blobs", "s3_region", KEY_STRING, OFF (blobs_s3_region), 0, 0, "us-east-1",
    "the region requests are signed for" },
  { "blobs", "s3_access_key", KEY_STRING, OFF (blobs_s3_access_key), 0, 0, "",
    "the access key id" },
  { "blobs", "s3_secret_key", KEY_STRING, OFF (blobs_s3_secret_key), 0, 0, "",
    "the secret key (better set through CALLDOCKER_BLOBS_S3_SECRET_KEY than in a file)" },
  { "blobs", "s3_part_bytes", KEY_UINT64, OFF (blobs_s3_part_bytes), 5 * 1024 * 1024,
    G_GUINT64_CONSTANT (5) * 1024 * 1024 * 1024, "8388608",
    "files larger than this go up in parts of this size (multipart upload)" },
  { "blobs", "s3_retry_max_s", KEY_UINT, OFF (blobs_s3_retry_max_s), 1, 3600, "60",
    "longest wait between attempts to upload a file (the wait doubles from 1 s)" },
  { "blobs", "retention_interval_s", KEY_UINT, OFF (blobs_retention_interval_s), 1, 86400, "3600",
    "how often recordings and voicemails past their company's retention are deleted" },
  { "blobs", "master_key_file", KEY_STRING, OFF (blobs_master_key_file), 0, 0, "",
    "the master key that seals recordings and voicemails (32 bytes, base64); empty: "
    "STATE/keys/master.key, made once. Every daemon of one database needs the same" },
  { "log", "level", KEY_LOG_LEVEL, OFF (log_level), 0, 0, "info",
    "lowest level logged: debug, info, message, warning" },
  { "shutdown", "timeout_s", KEY_UINT, OFF (shutdown_timeout_s), 1, 3600, "10",
    "how long a graceful shutdown may take before children are killed" },
};

static const char *log_levels[] = { "debug", "info", "message", "warning", NULL };

static const KeyInfo *
lookup_key (const char *section, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
    if (g_str_equal (keys[i].section, section) && g_str_equal (keys[i].key, key))
      return &keys[i];
  }
  return NULL;
}

static gboolean
section_exists (const char *section)
{
  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
    if (g_str_equal (keys[i].section, section))
      return TRUE;
  }
  return FALSE;
}

static gboolean
parse_uint (const char *value, guint64 min, guint64 max, guint64 *out)
{
  guint64 v;

  if (value == NULL || *value == '\0' || !g_ascii_isdigit (value[0]))
    return FALSE;
  if (!g_ascii_string_to_unsigned (value, 10, min, max, &v, NULL))
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_listen (const char *value, char **host, guint *port)
{
  const char *colon;
  g_autofree char *h = NULL;
  guint64 p;

  if (value == NULL)
    return FALSE;
  if (value[0] == '[') {
    const char *end = strchr (value, ']');
    if (end == NULL || end[1] != ':')
      return FALSE;
    h = g_strndup (value + 1, (gsize) (end - value - 1));
    colon = end + 1;
  } else {
    colon = strrchr (value, ':');
    if (colon == NULL)
      return FALSE;
    h = g_strndup (value, (gsize) (colon - value));
    if (strchr (h, ':') != NULL)
      return FALSE;
  }
  if (*h == '\0' || !parse_uint (colon + 1, 0, 65535, &p))
    return FALSE;
  if (!g_hostname_is_ip_address (h) && !g_str_equal (h, "localhost"))
    return FALSE;
  g_free (*host);
  *host = g_steal_pointer (&h);
  *port = (guint) p;
  return TRUE;
}

static void
key_set_default (CdConfig *config, const KeyInfo *info)
{
  g_autoptr (GError) error = NULL;

  if (!cd_config_set (config, info->section, info->key, info->default_value, "default", &error))
    g_error ("bad default for %s.%s: %s", info->section, info->key, error->message);
}

/**
 * cd_config_new_default:
 *
 * Returns: (transfer full): a configuration with every key at its default
 */
CdConfig *
cd_config_new_default (void)
{
  CdConfig *config = g_new0 (CdConfig, 1);

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++)
    key_set_default (config, &keys[i]);
  return config;
}

void
cd_config_free (CdConfig *config)
{
  if (config == NULL)
    return;
  g_free (config->listen_host);
  g_free (config->state_dir);
  g_free (config->blobs_dir);
  g_free (config->blobs_backend);
  g_free (config->blobs_s3_endpoint);
  g_free (config->blobs_s3_bucket);
  g_free (config->blobs_s3_region);
  g_free (config->blobs_s3_access_key);
  g_free (config->blobs_s3_secret_key);
  g_free (config->blobs_master_key_file);
  g_free (config->pg_conninfo);
  g_free (config->pg_app_role);
  g_free (config->redis_url);
  g_free (config->log_level);
  g_free (config->auth_key_file);
  g_free (config->public_url);
  g_free (config->mail_from);
  g_free (config->smtp_url);
  g_free (config->smtp_username);
  g_free (config->smtp_password);
  g_free (config->smtp_tls);
  g_free (config->stun_urls);
  g_free (config->turn_urls);
  g_free (config->turn_secret);
  g_free (config->media_local_addresses);
  g_free (config->signal_country_header);
  g_free (config->signal_geoip_database);
  g_free (config->source_path);
  g_clear_pointer (&config->redis_address, cd_redis_address_free);
  g_free (config);
}

/**
 * cd_config_set:
 * @origin: where the value came from, for messages ("config.conf", "CALLDOCKER_X")
 *
 * Sets one key from its text form; the message names the key and the problem.
 */
gboolean
cd_config_set (CdConfig *config, const char *section, const char *key, const char *value,
               const char *origin, GError **error)
{
  const KeyInfo *info = lookup_key (section, key);
  char *base = (char *) config;
  guint64 v;

  if (info == NULL) {
    if (!section_exists (section))
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_UNKNOWN_KEY, "%s: unknown section [%s]",
                   origin, section);
    else
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_UNKNOWN_KEY,
                   "%s: unknown key '%s' in section [%s]", origin, key, section);
    return FALSE;
  }

  switch (info->type) {
  case KEY_STRING: {
    char **field = (char **) (base + info->offset);
    if (!g_utf8_validate (value, -1, NULL))
      goto invalid_utf8;
    g_free (*field);
    *field = g_strstrip (g_strdup (value));
    return TRUE;
  }
  case KEY_UINT:
    if (!parse_uint (value, info->min, info->max, &v))
      goto out_of_range;
    *(guint *) (base + info->offset) = (guint) v;
    return TRUE;
  case KEY_UINT64:
    if (!parse_uint (value, info->min, info->max, &v))
      goto out_of_range;
    *(guint64 *) (base + info->offset) = v;
    return TRUE;
  case KEY_LISTEN:
    if (!parse_listen (value, &config->listen_host, &config->listen_port)) {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                   "%s: %s.%s = '%s' is not an IP address and port "
                   "(like 127.0.0.1:8080 or [::1]:8080)",
                   origin, section, key, value);
      return FALSE;
    }
    return TRUE;
  case KEY_LOG_LEVEL:
    if (!g_strv_contains (log_levels, value)) {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                   "%s: %s.%s = '%s' is not one of debug, info, message, warning", origin, section,
                   key, value);
      return FALSE;
    }
    g_free (config->log_level);
    config->log_level = g_strdup (value);
    return TRUE;
  default:
    g_assert_not_reached ();
  }

out_of_range:
  g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
               "%s: %s.%s = '%s' is not a whole number from %" G_GUINT64_FORMAT
               " to %" G_GUINT64_FORMAT,
               origin, section, key, value, info->min, info->max);
  return FALSE;

invalid_utf8:
  g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
               "%s: %s.%s is not valid UTF-8", origin, section, key);
  return FALSE;
}

/**
 * cd_config_load_data:
 *
 * Reads a key file's text. Every key must be known; the first problem found
 * is reported and @config is left as it was.
 */
gboolean
cd_config_load_data (CdConfig *config, const char *data, gsize length, GError **error)
{
  g_autoptr (GKeyFile) file = g_key_file_new ();
  g_autoptr (GError) local_error = NULL;
  g_auto (GStrv) groups = NULL;
  g_autoptr (CdConfig) scratch = cd_config_new_default ();
  const char *origin = config->source_path ? config->source_path : "config";

  if (!g_key_file_load_from_data (file, data, length, G_KEY_FILE_NONE, &local_error)) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_SYNTAX, "%s: %s", origin,
                 local_error->message);
    return FALSE;
  }

  /* Validate every key on a scratch copy first, so a bad file changes nothing. */
  groups = g_key_file_get_groups (file, NULL);
  for (int pass = 0; pass < 2; pass++) {
    CdConfig *target = pass == 0 ? scratch : config;
    for (gsize g = 0; groups[g] != NULL; g++) {
      g_auto (GStrv) names = g_key_file_get_keys (file, groups[g], NULL, NULL);
      if (!section_exists (groups[g])) {
        g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_UNKNOWN_KEY,
                     "%s: unknown section [%s]", origin, groups[g]);
        return FALSE;
      }
      for (gsize k = 0; names != NULL && names[k] != NULL; k++) {
        g_autofree char *value = g_key_file_get_value (file, groups[g], names[k], NULL);
        if (value == NULL || !cd_config_set (target, groups[g], names[k], value, origin, error))
          return FALSE;
      }
    }
  }
  return TRUE;
}

gboolean
cd_config_load_file (CdConfig *config, const char *path, GError **error)
{
  g_autofree char *data = NULL;
  g_autoptr (GError) local_error = NULL;
  gsize length;

  if (!g_file_get_contents (path, &data, &length, &local_error)) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_READ, "cannot read config %s: %s", path,
                 local_error->message);
    return FALSE;
  }
  g_free (config->source_path);
  config->source_path = g_strdup (path);
  return cd_config_load_data (config, data, length, error);
}

static char *
env_name_for (const KeyInfo *info)
{
  g_autofree char *name = g_strdup_printf ("CALLDOCKER_%s_%s", info->section, info->key);
  return g_ascii_strup (name, -1);
}

/**
 * cd_config_apply_environment:
 * @envp: (nullable): environment as from g_get_environ(); %NULL reads the process's
 *
 * Applies CALLDOCKER_SECTION_KEY overrides, e.g. CALLDOCKER_SERVER_LISTEN.
 */
gboolean
cd_config_apply_environment (CdConfig *config, char **envp, GError **error)
{
  g_auto (GStrv) own_env = NULL;

  if (envp == NULL)
    envp = own_env = g_get_environ ();

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
    g_autofree char *name = env_name_for (&keys[i]);
    const char *value = g_environ_getenv (envp, name);
    if (value != NULL && !cd_config_set (config, keys[i].section, keys[i].key, value, name, error))
      return FALSE;
  }
  return TRUE;
}

/**
 * cd_config_validate:
 *
 * Checks what single keys cannot: values that contradict each other and
 * connection strings. Fills the derived fields.
 */
gboolean
cd_config_validate (CdConfig *config, GError **error)
{
  if (config->reconnect_min_ms > config->reconnect_max_ms) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION,
                 "store.reconnect_min_ms (%u) is larger than store.reconnect_max_ms (%u)",
                 config->reconnect_min_ms, config->reconnect_max_ms);
    return FALSE;
  }
  if (config->state_dir[0] == '\0' &&
      (cd_config_uses_embedded_postgres (config) || cd_config_uses_embedded_redis (config))) {
    g_set_error_literal (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION,
                         "state.dir is empty, but the embedded PostgreSQL or Redis needs it "
                         "(set state.dir, or both postgres.conninfo and redis.url)");
    return FALSE;
  }
  if ((config->media_min_rtp_port == 0) != (config->media_max_rtp_port == 0) ||
      config->media_min_rtp_port > config->media_max_rtp_port) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION,
                 "media.min_rtp_port (%u) and media.max_rtp_port (%u) must both be 0 or form a "
                 "range",
                 config->media_min_rtp_port, config->media_max_rtp_port);
    return FALSE;
  }
  if (config->media_local_addresses[0] != '\0') {
    g_auto (GStrv) addresses = g_strsplit (config->media_local_addresses, ",", -1);
    for (char **a = addresses; *a != NULL; a++) {
      g_autoptr (GInetAddress) parsed = g_inet_address_new_from_string (g_strstrip (*a));
      if (parsed == NULL) {
        g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                     "media.local_addresses: '%s' is not an IP address", *a);
        return FALSE;
      }
    }
  }
  if (config->pg_conninfo[0] != '\0') {
    char *pq_error = NULL;
    PQconninfoOption *options = PQconninfoParse (config->pg_conninfo, &pq_error);
    if (options == NULL) {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                   "postgres.conninfo is not a valid libpq connection string: %s",
                   pq_error ? g_strstrip (pq_error) : "out of memory");
      PQfreemem (pq_error);
      return FALSE;
    }
    PQconninfoFree (options);
  }
  if (config->public_url[0] != '\0') {
    g_autoptr (GUri) uri = g_uri_parse (config->public_url, G_URI_FLAGS_NONE, NULL);
    if (uri == NULL ||
        (!g_str_equal (g_uri_get_scheme (uri), "http") &&
         !g_str_equal (g_uri_get_scheme (uri), "https")) ||
        g_uri_get_host (uri) == NULL || !g_str_has_suffix (config->public_url, "/")) {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                   "server.public_url = '%s' is not an http(s) URL ending in /",
                   config->public_url);
      return FALSE;
    }
  }
  if (strchr (config->mail_from, '\n') || strchr (config->mail_from, '\r') ||
      !strchr (config->mail_from, '@')) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                 "mail.from = '%s' is not a mail address", config->mail_from);
    return FALSE;
  }
  if (config->smtp_url[0] != '\0' && !g_str_has_prefix (config->smtp_url, "smtp://") &&
      !g_str_has_prefix (config->smtp_url, "smtps://")) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                 "mail.smtp_url = '%s' must start with smtp:// or smtps://", config->smtp_url);
    return FALSE;
  }
  if (!g_str_equal (config->smtp_tls, "required") && !g_str_equal (config->smtp_tls, "none")) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                 "mail.smtp_tls = '%s' is not one of required, none", config->smtp_tls);
    return FALSE;
  }
  if (!g_str_equal (config->blobs_backend, "local") && !g_str_equal (config->blobs_backend, "s3")) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                 "blobs.backend = '%s' is not one of local, s3", config->blobs_backend);
    return FALSE;
  }
  if (g_str_equal (config->blobs_backend, "s3") &&
      (!config->blobs_s3_endpoint[0] || !config->blobs_s3_bucket[0] ||
       !config->blobs_s3_access_key[0] || !config->blobs_s3_secret_key[0])) {
    g_set_error_literal (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION,
                         "blobs.backend is s3, but blobs.s3_endpoint, s3_bucket, s3_access_key "
                         "and s3_secret_key are not all set");
    return FALSE;
  }
  if (config->turn_urls[0] != '\0' && config->turn_secret[0] == '\0') {
    g_set_error_literal (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_CONTRADICTION,
                         "ice.turn_urls is set but ice.turn_secret is empty: TURN needs the "
                         "secret it shares with coturn");
    return FALSE;
  }
  {
    const char *lists[] = { config->stun_urls, config->turn_urls };
    const char *names[] = { "ice.stun_urls", "ice.turn_urls" };
    const char *schemes[][3] = { { "stun:", "stuns:", NULL }, { "turn:", "turns:", NULL } };
    for (int l = 0; l < 2; l++) {
      g_auto (GStrv) urls = g_strsplit (lists[l], ",", -1);
      for (gsize i = 0; lists[l][0] && urls[i]; i++) {
        char *u = g_strstrip (urls[i]);
        if (!g_str_has_prefix (u, schemes[l][0]) && !g_str_has_prefix (u, schemes[l][1])) {
          g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                       "%s: '%s' must start with %s or %s", names[l], u, schemes[l][0],
                       schemes[l][1]);
          return FALSE;
        }
      }
    }
  }
  if (!cd_pg_is_identifier (config->pg_app_role)) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                 "postgres.app_role = '%s' is not a plain role name ([a-z_][a-z0-9_]*)",
                 config->pg_app_role);
    return FALSE;
  }
  g_clear_pointer (&config->redis_address, cd_redis_address_free);
  if (config->redis_url[0] != '\0') {
    g_autoptr (GError) local_error = NULL;
    config->redis_address = cd_redis_address_parse (config->redis_url, &local_error);
    if (config->redis_address == NULL) {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE, "redis.url: %s",
                   local_error->message);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
cd_config_uses_embedded_postgres (const CdConfig *config)
{
  return config->pg_conninfo[0] == '\0';
}

gboolean
cd_config_uses_embedded_redis (const CdConfig *config)
{
  return config->redis_url[0] == '\0';
}

/**
 * cd_config_describe:
 *
 * Returns: (transfer full): one "section.key = value" line per key; secrets hidden
 */
char *
cd_config_describe (const CdConfig *config)
{
  GString *out = g_string_new (NULL);
  const char *base = (const char *) config;

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
    const KeyInfo *info = &keys[i];
    g_string_append_printf (out, "%s.%s = ", info->section, info->key);
    switch (info->type) {
    case KEY_STRING: {
      const char *v = *(char *const *) (base + info->offset);
      if (g_str_equal (info->key, "smtp_password") || g_str_equal (info->key, "turn_secret") ||
          g_str_equal (info->key, "s3_secret_key"))
        g_string_append (out, v[0] ? "(set)" : "");
      else if (g_str_equal (info->key, "conninfo") || g_str_equal (info->key, "url"))
        g_string_append (out, v[0] ? "(set)" : "(embedded)");
      else
        g_string_append (out, v);
      break;
    }
    case KEY_UINT:
      g_string_append_printf (out, "%u", *(const guint *) (base + info->offset));
      break;
    case KEY_UINT64:
      g_string_append_printf (out, "%" G_GUINT64_FORMAT, *(const guint64 *) (base + info->offset));
      break;
    case KEY_LISTEN:
      if (strchr (config->listen_host, ':'))
        g_string_append_printf (out, "[%s]:%u", config->listen_host, config->listen_port);
      else
        g_string_append_printf (out, "%s:%u", config->listen_host, config->listen_port);
      break;
    case KEY_LOG_LEVEL:
      g_string_append (out, config->log_level);
      break;
    default:
      g_assert_not_reached ();
    }
    g_string_append_c (out, '\n');
  }
  return g_string_free (out, FALSE);
}

/**
 * cd_redis_address_parse:
 * @url: redis://[:password@]host[:port][/db] or unix:/path[?db=N]
 */
CdRedisAddress *
cd_redis_address_parse (const char *url, GError **error)
{
  g_autoptr (GUri) uri = NULL;
  g_autoptr (GError) local_error = NULL;
  g_autoptr (CdRedisAddress) address = g_new0 (CdRedisAddress, 1);
  const char *scheme;
  const char *path;

  uri = g_uri_parse (url, G_URI_FLAGS_HAS_PASSWORD | G_URI_FLAGS_ENCODED_QUERY, &local_error);
  if (uri == NULL) {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE, "'%s' is not a URL: %s",
                 url, local_error->message);
    return NULL;
  }
  scheme = g_uri_get_scheme (uri);
  path = g_uri_get_path (uri);
  if (g_uri_get_password (uri) != NULL && g_uri_get_password (uri)[0] != '\0')
    address->password = g_strdup (g_uri_get_password (uri));

  if (g_str_equal (scheme, "redis")) {
    guint64 db = 0;
    if (g_uri_get_host (uri) == NULL || g_uri_get_host (uri)[0] == '\0') {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE, "'%s' names no host",
                   url);
      return NULL;
    }
    address->transport = CD_REDIS_TRANSPORT_TCP;
    address->host = g_strdup (g_uri_get_host (uri));
    address->port = g_uri_get_port (uri) > 0 ? (guint16) g_uri_get_port (uri) : 6379;
    if (path[0] == '/' && path[1] != '\0' && !parse_uint (path + 1, 0, 1023, &db)) {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                   "'%s': database '%s' is not a number from 0 to 1023", url, path + 1);
      return NULL;
    }
    address->db = (guint) db;
  } else if (g_str_equal (scheme, "unix")) {
    if (path[0] != '/') {
      g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                   "'%s' needs an absolute socket path (unix:/path/to/redis.sock)", url);
      return NULL;
    }
    address->transport = CD_REDIS_TRANSPORT_UNIX;
    address->path = g_strdup (path);
  } else {
    g_set_error (error, CD_CONFIG_ERROR, CD_CONFIG_ERROR_INVALID_VALUE,
                 "'%s' has scheme '%s'; use redis:// or unix:", url, scheme);
    return NULL;
  }
  return g_steal_pointer (&address);
}

CdRedisAddress *
cd_redis_address_copy (const CdRedisAddress *address)
{
  CdRedisAddress *copy = g_new0 (CdRedisAddress, 1);

  copy->transport = address->transport;
  copy->host = g_strdup (address->host);
  copy->port = address->port;
  copy->path = g_strdup (address->path);
  copy->password = g_strdup (address->password);
  copy->db = address->db;
  return copy;
}

void
cd_redis_address_free (CdRedisAddress *address)
{
  if (address == NULL)
    return;
  g_free (address->host);
  g_free (address->path);
  if (address->password)
    memset (address->password, 0, strlen (address->password));
  g_free (address->password);
  g_free (address);
}

/**
 * cd_config_data_path:
 *
 * A file or folder of data/: under $CALLDOCKER_DATADIR, else the installed
 * copy, else the source tree's (a build run from its checkout).
 *
 * Returns: (transfer full): the path
 */
char *
cd_config_data_path (const char *name)
{
  const char *env = g_getenv ("CALLDOCKER_DATADIR");
  g_autofree char *installed = g_build_filename (CD_DATADIR, "sql", NULL);

  if (env && *env)
    return g_build_filename (env, name, NULL);
  if (g_file_test (installed, G_FILE_TEST_IS_DIR))
    return g_build_filename (CD_DATADIR, name, NULL);
  return g_build_filename (CD_SOURCE_DATADIR, name, NULL);
}
