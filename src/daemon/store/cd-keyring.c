/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The keyring: the master key file, company keys wrapped by it in the
 * company_keys table (XChaCha20-Poly1305), and a cache of unwrapped keys. */

#define G_LOG_DOMAIN "calldocker-store"

#include "cd-keyring.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>

#define AEAD(x) crypto_aead_xchacha20poly1305_ietf_##x

G_DEFINE_QUARK (cd - keyring - error - quark, cd_keyring_error)

struct _CdKeyring {
  GObject parent_instance;
  CdPgPool *pool;
  guint8 *master;   /* sodium_malloc'ed */
  guint8 *link_key; /* sodium_malloc'ed: signs links, derived from the master key */
  char master_id[17];
  GHashTable *keys; /* "COMPANY/VERSION" and "COMPANY/0" (newest) -> CdCompanyKey */
};

G_DEFINE_FINAL_TYPE (CdKeyring, cd_keyring, G_TYPE_OBJECT)

/* ---- company keys ---- */

static CdCompanyKey *
company_key_new (const char *company_id, guint32 version)
{
  CdCompanyKey *key = g_atomic_rc_box_new0 (CdCompanyKey);

  key->company_id = g_strdup (company_id);
  key->version = version;
  key->key = sodium_malloc (CD_SEAL_KEY_BYTES);
  g_assert (key->key != NULL);
  return key;
}

static void
company_key_clear (CdCompanyKey *key)
{
  g_free (key->company_id);
  sodium_free (key->key);
}

CdCompanyKey *
cd_company_key_ref (CdCompanyKey *key)
{
  return g_atomic_rc_box_acquire (key);
}

void
cd_company_key_unref (CdCompanyKey *key)
{
  g_atomic_rc_box_release_full (key, (GDestroyNotify) company_key_clear);
}

GBytes *
cd_company_key_dup_bytes (CdCompanyKey *key)
{
  guint8 *copy = sodium_malloc (CD_SEAL_KEY_BYTES);

  g_assert (copy != NULL);
  memcpy (copy, key->key, CD_SEAL_KEY_BYTES);
  return g_bytes_new_with_free_func (copy, CD_SEAL_KEY_BYTES, sodium_free, copy);
}

/* ---- the master key ---- */

static gboolean
is_base64 (const char *text)
{
  for (const char *c = text; *c; c++)
    if (!(g_ascii_isalnum (*c) || *c == '+' || *c == '/' || *c == '='))
      return FALSE;
  return TRUE;
}

gboolean
cd_keyring_load_master (const char *path, gboolean create, guint8 master[CD_SEAL_KEY_BYTES],
                        GError **error)
{
  g_autofree char *text = NULL;
  g_autofree guint8 *decoded = NULL;
  gsize length = 0;
  GStatBuf st;

  if (create && g_stat (path, &st) != 0 && errno == ENOENT) {
    guint8 fresh[CD_SEAL_KEY_BYTES];
    g_autofree char *encoded = NULL;
    g_autofree char *content = NULL;
    g_autofree char *dir = g_path_get_dirname (path);

    randombytes_buf (fresh, sizeof fresh);
    encoded = g_base64_encode (fresh, sizeof fresh);
    sodium_memzero (fresh, sizeof fresh);
    content = g_strdup_printf ("%s\n", encoded);
    sodium_memzero (encoded, strlen (encoded));
    if (g_mkdir_with_parents (dir, 0700) != 0) {
      g_set_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_MASTER, "cannot create %s: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }
    /* durable: company keys wrapped by it are committed right after */
    if (!g_file_set_contents_full (path, content, -1,
                                   G_FILE_SET_CONTENTS_CONSISTENT | G_FILE_SET_CONTENTS_DURABLE,
                                   0600, error)) {
      sodium_memzero (content, strlen (content));
      return FALSE;
    }
    sodium_memzero (content, strlen (content));
    g_info ("created the master key for recordings in %s: keep a copy in a safe place, without "
            "it no recording or voicemail can be opened",
            path);
  }
  if (g_stat (path, &st) != 0) {
    g_set_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_MASTER, "cannot read %s: %s", path,
                 g_strerror (errno));
    return FALSE;
  }
  if (st.st_mode & 0077) {
    g_set_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_MASTER,
                 "%s may be read by others (mode %03o): make it the owner's alone (chmod 600)",
                 path, (unsigned) (st.st_mode & 0777));
    return FALSE;
  }
  if (!g_file_get_contents (path, &text, NULL, error))
    return FALSE;
  g_strstrip (text);
  if (is_base64 (text) && text[0] != '\0')
    decoded = g_base64_decode (text, &length);
  sodium_memzero (text, strlen (text));
  if (decoded == NULL || length != CD_SEAL_KEY_BYTES) {
    if (decoded)
      sodium_memzero (decoded, length);
    g_set_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_MASTER,
                 "%s does not hold a master key: 32 bytes in base64 on one line", path);
    return FALSE;
  }
  memcpy (master, decoded, CD_SEAL_KEY_BYTES);
  sodium_memzero (decoded, length);
  return TRUE;
}

/* What a wrapped key is bound to: its company and version. */
static char *
wrap_ad (const char *company_id, guint32 version)
{
  return g_strdup_printf ("calldocker company key/%s/%u", company_id, version);
}

/* base64 (nonce, then the key sealed) */
static char *
wrap (CdKeyring *self, const CdCompanyKey *key)
{
  guint8 out[AEAD (NPUBBYTES) + CD_SEAL_KEY_BYTES + AEAD (ABYTES)];
  g_autofree char *ad = wrap_ad (key->company_id, key->version);
  unsigned long long n = 0;

  randombytes_buf (out, AEAD (NPUBBYTES));
  AEAD (encrypt)
  (out + AEAD (NPUBBYTES), &n, key->key, CD_SEAL_KEY_BYTES, (const guint8 *) ad, strlen (ad), NULL,
   out, self->master);
  return g_base64_encode (out, sizeof out);
}

static gboolean
unwrap (CdKeyring *self, const char *wrapped, const char *master_id, CdCompanyKey *key,
        GError **error)
{
  g_autofree guint8 *raw = NULL;
  g_autofree char *ad = wrap_ad (key->company_id, key->version);
  gsize length = 0;
  unsigned long long n = 0;

  if (g_strcmp0 (master_id, self->master_id) != 0) {
    g_set_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_WRONG_MASTER,
                 "company %s's key %u was wrapped by master key %s, and this daemon has %s: "
                 "give every daemon the same master key file",
                 key->company_id, key->version, master_id, self->master_id);
    return FALSE;
  }
  raw = g_base64_decode (wrapped, &length);
  if (length != AEAD (NPUBBYTES) + CD_SEAL_KEY_BYTES + AEAD (ABYTES) ||
      AEAD (decrypt) (key->key, &n, NULL, raw + AEAD (NPUBBYTES), length - AEAD (NPUBBYTES),
                      (const guint8 *) ad, strlen (ad), raw, self->master) != 0) {
    g_set_error (error, CD_KEYRING_ERROR, CD_KEYRING_ERROR_WRONG_MASTER,
                 "company %s's key %u does not unwrap with master key %s: the stored key was "
                 "changed",
                 key->company_id, key->version, self->master_id);
    return FALSE;
  }
  return TRUE;
}

/* ---- fetching ---- */

typedef struct {
  char *company_id;
  guint32 version;     /* 0: the newest */
  CdCompanyKey *fresh; /* the key offered when the company has none yet */
  char *fresh_wrapped;
  guint tries;
} Fetch;

static void
fetch_free (Fetch *f)
{
  g_free (f->company_id);
  g_clear_pointer (&f->fresh, cd_company_key_unref);
  g_free (f->fresh_wrapped);
  g_free (f);
}

static char *
cache_key (const char *company_id, guint32 version)
{
  return g_strdup_printf ("%s/%u", company_id, version);
}

static void run_fetch (GTask *task);

static void
on_fetched (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CdKeyring *self = g_task_get_source_object (task);
  Fetch *f = g_task_get_task_data (task);
  g_autoptr (GError) error = NULL;
  g_autoptr (PGresult) res = cd_pg_pool_query_finish (CD_PG_POOL (source), result, &error);
  g_autoptr (CdCompanyKey) key = NULL;
  guint32 version;

  if (res == NULL) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (PQntuples (res) == 0) {
    if (f->version == 0 && f->tries < 3) {
      /* another daemon made the company's first key meanwhile: read it */
      run_fetch (g_steal_pointer (&task));
      return;
    }
    g_task_return_new_error (task, CD_KEYRING_ERROR, CD_KEYRING_ERROR_NO_KEY,
                             "company %s has no key %u", f->company_id, f->version);
    return;
  }
  version = (guint32) g_ascii_strtoull (PQgetvalue (res, 0, 0), NULL, 10);
  key = company_key_new (f->company_id, version);
  if (!unwrap (self, PQgetvalue (res, 0, 2), PQgetvalue (res, 0, 1), key, &error)) {
    g_message ("%s", error->message);
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  g_hash_table_replace (self->keys, cache_key (f->company_id, version), cd_company_key_ref (key));
  if (f->version == 0)
    g_hash_table_replace (self->keys, cache_key (f->company_id, 0), cd_company_key_ref (key));
  g_task_return_pointer (task, g_steal_pointer (&key), (GDestroyNotify) cd_company_key_unref);
}

static void
run_fetch (GTask *task)
{
  CdKeyring *self = g_task_get_source_object (task);
  Fetch *f = g_task_get_task_data (task);
  CdPgScope scope = { .company_id = f->company_id };

  f->tries++;
  if (f->version == 0) {
    const char *params[] = { f->company_id, self->master_id, f->fresh_wrapped };

    /* the newest key, or a first one made now; a daemon that loses the race
     * to make it reads the winner's on the next try */
    cd_pg_pool_query_scoped_async (
        self->pool, &scope,
        "WITH found AS (SELECT version, master_key_id, wrapped FROM company_keys"
        "  WHERE company_id = $1 ORDER BY version DESC LIMIT 1),"
        " made AS (INSERT INTO company_keys (company_id, version, master_key_id, wrapped)"
        "  SELECT $1, 1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM found)"
        "  ON CONFLICT DO NOTHING RETURNING version, master_key_id, wrapped)"
        " SELECT version, master_key_id, wrapped FROM found"
        " UNION ALL SELECT version, master_key_id, wrapped FROM made",
        params, G_N_ELEMENTS (params), g_task_get_cancellable (task), on_fetched, task);
  } else {
    g_autofree char *version = g_strdup_printf ("%u", f->version);
    const char *params[] = { f->company_id, version };

    cd_pg_pool_query_scoped_async (self->pool, &scope,
                                   "SELECT version, master_key_id, wrapped FROM company_keys"
                                   " WHERE company_id = $1 AND version = $2",
                                   params, G_N_ELEMENTS (params), g_task_get_cancellable (task),
                                   on_fetched, task);
  }
}

void
cd_keyring_get_async (CdKeyring *self, const char *company_id, guint32 version,
                      GCancellable *cancellable, GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autofree char *ck = cache_key (company_id, version);
  CdCompanyKey *cached = g_hash_table_lookup (self->keys, ck);
  Fetch *f;

  g_task_set_source_tag (task, cd_keyring_get_async);
  if (cached) {
    g_task_return_pointer (task, cd_company_key_ref (cached),
                           (GDestroyNotify) cd_company_key_unref);
    return;
  }
  f = g_new0 (Fetch, 1);
  f->company_id = g_strdup (company_id);
  f->version = version;
  if (version == 0) {
    f->fresh = company_key_new (company_id, 1);
    crypto_secretstream_xchacha20poly1305_keygen (f->fresh->key);
    f->fresh_wrapped = wrap (self, f->fresh);
  }
  g_task_set_task_data (task, f, (GDestroyNotify) fetch_free);
  run_fetch (g_steal_pointer (&task));
}

CdCompanyKey *
cd_keyring_get_finish (CdKeyring *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}

const char *
cd_keyring_get_master_id (CdKeyring *self)
{
  return self->master_id;
}

static void
cd_keyring_finalize (GObject *object)
{
  CdKeyring *self = CD_KEYRING (object);

  g_hash_table_unref (self->keys);
  sodium_free (self->master);
  sodium_free (self->link_key);
  g_clear_object (&self->pool);
  G_OBJECT_CLASS (cd_keyring_parent_class)->finalize (object);
}

static void
cd_keyring_class_init (CdKeyringClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_keyring_finalize;
}

static void
cd_keyring_init (CdKeyring *self)
{
  self->master = sodium_malloc (CD_SEAL_KEY_BYTES);
  self->link_key = sodium_malloc (crypto_auth_KEYBYTES);
  g_assert (self->link_key != NULL);
  g_assert (self->master != NULL);
  self->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) cd_company_key_unref);
}

CdKeyring *
cd_keyring_new (CdPgPool *pool, const guint8 master[CD_SEAL_KEY_BYTES])
{
  CdKeyring *self = g_object_new (CD_TYPE_KEYRING, NULL);
  static const char context[] = "calldocker master key id";
  guint8 id[8];
  crypto_generichash_state h;

  self->pool = g_object_ref (pool);
  memcpy (self->master, master, CD_SEAL_KEY_BYTES);
  crypto_generichash_init (&h, NULL, 0, sizeof id);
  crypto_generichash_update (&h, (const guint8 *) context, sizeof context);
  crypto_generichash_update (&h, master, CD_SEAL_KEY_BYTES);
  crypto_generichash_final (&h, id, sizeof id);
  sodium_memzero (&h, sizeof h);
  for (gsize i = 0; i < sizeof id; i++)
    g_snprintf (self->master_id + 2 * i, 3, "%02x", id[i]);
  {
    /* every daemon of one database has the master key, so each makes and
     * checks the same links */
    static const char link_context[] = "calldocker link key";

    crypto_generichash (self->link_key, crypto_auth_KEYBYTES, (const guint8 *) link_context,
                        sizeof link_context, master, CD_SEAL_KEY_BYTES);
  }
  return self;
}

char *
cd_keyring_sign_link (CdKeyring *self, const char *message)
{
  guint8 mac[crypto_auth_BYTES];
  char hex[crypto_auth_BYTES * 2 + 1];

  crypto_auth (mac, (const guint8 *) message, strlen (message), self->link_key);
  sodium_bin2hex (hex, sizeof hex, mac, sizeof mac);
  return g_strdup (hex);
}

gboolean
cd_keyring_check_link (CdKeyring *self, const char *message, const char *signature)
{
  guint8 mac[crypto_auth_BYTES];
  gsize got = 0;

  if (signature == NULL || strlen (signature) != crypto_auth_BYTES * 2 ||
      sodium_hex2bin (mac, sizeof mac, signature, strlen (signature), NULL, &got, NULL) != 0 ||
      got != sizeof mac)
    return FALSE;
  return crypto_auth_verify (mac, (const guint8 *) message, strlen (message), self->link_key) == 0;
}
