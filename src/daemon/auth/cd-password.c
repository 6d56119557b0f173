/* SPDX-License-Identifier: GPL-3.0-or-later */
/* argon2id through libsodium's crypto_pwhash_str; hashing takes tens of
 * milliseconds and much memory, so it never runs on the main thread. */

#define G_LOG_DOMAIN "calldocker-auth"

#include "cd-password.h"

#include "cd-auth-error.h"

#include <gio/gio.h>

#include <sodium.h>
#include <string.h>

#define MAX_PASSWORD_BYTES 1024

struct _CdPasswordPolicy {
  guint64 memlimit;
  guint64 opslimit;
  guint min_length;
  GHashTable *common; /* lower-case common passwords */
  char *dummy_hash;   /* verified against when the account does not exist */
  gint ref_count;
};

G_DEFINE_QUARK (calldocker_auth_error, cd_auth_error)

/**
 * cd_password_policy_new:
 * @memlimit_bytes: argon2id memory; at least 19 MiB
 * @opslimit: argon2id passes; at least 2
 * @common_list_path: (nullable): one common password per line
 */
CdPasswordPolicy *
cd_password_policy_new (guint64 memlimit_bytes, guint64 opslimit, guint min_length,
                        const char *common_list_path, GError **error)
{
  g_autoptr (CdPasswordPolicy) policy = g_new0 (CdPasswordPolicy, 1);
  g_autofree char *text = NULL;

  if (sodium_init () < 0) {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD,
                         "libsodium cannot initialise");
    return NULL;
  }
  policy->ref_count = 1;
  policy->memlimit = memlimit_bytes;
  policy->opslimit = opslimit;
  policy->min_length = min_length;
  policy->common = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (common_list_path != NULL) {
    g_auto (GStrv) lines = NULL;
    if (!g_file_get_contents (common_list_path, &text, NULL, error)) {
      g_prefix_error (error, "common password list: ");
      return NULL;
    }
    lines = g_strsplit (text, "\n", -1);
    for (gsize i = 0; lines[i]; i++) {
      char *line = g_strstrip (lines[i]);
      if (line[0] != '\0' && line[0] != '#')
        g_hash_table_add (policy->common, g_utf8_strdown (line, -1));
    }
  }
  /* a real hash of random bytes, so unknown accounts cost the same time */
  {
    guchar random[32];
    g_autofree char *secret = NULL;
    randombytes_buf (random, sizeof random);
    secret = g_base64_encode (random, sizeof random);
    policy->dummy_hash = cd_password_hash (policy, secret, error);
    if (policy->dummy_hash == NULL)
      return NULL;
  }
  return g_steal_pointer (&policy);
}

static CdPasswordPolicy *
policy_ref (CdPasswordPolicy *policy)
{
  g_atomic_int_inc (&policy->ref_count);
  return policy;
}

void
cd_password_policy_free (CdPasswordPolicy *policy)
{
  if (policy == NULL || !g_atomic_int_dec_and_test (&policy->ref_count))
    return;
  g_clear_pointer (&policy->common, g_hash_table_unref);
  g_free (policy->dummy_hash);
  g_free (policy);
}

const char *
cd_password_dummy_hash (CdPasswordPolicy *policy)
{
  return policy->dummy_hash;
}

/**
 * cd_password_policy_check:
 * @email: (nullable): the account's email, which the password must not be
 *
 * Returns: whether @password may be used; @error says why not
 */
gboolean
cd_password_policy_check (CdPasswordPolicy *policy, const char *password, const char *email,
                          GError **error)
{
  g_autofree char *lower = NULL;
  gsize bytes = strlen (password);

  if (!g_utf8_validate (password, -1, NULL)) {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD,
                         "the password is not valid UTF-8");
    return FALSE;
  }
  if (g_utf8_strlen (password, -1) < (glong) policy->min_length) {
    g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD,
                 "the password needs at least %u characters", policy->min_length);
    return FALSE;
  }
  if (bytes > MAX_PASSWORD_BYTES) {
    g_set_error (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD,
                 "the password may have at most %d bytes", MAX_PASSWORD_BYTES);
    return FALSE;
  }
  lower = g_utf8_strdown (password, -1);
  if (g_hash_table_contains (policy->common, lower)) {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD,
                         "the password is too common; choose another");
    return FALSE;
  }
  if (email != NULL && g_ascii_strcasecmp (password, email) == 0) {
    g_set_error_literal (error, CD_AUTH_ERROR, CD_AUTH_ERROR_WEAK_PASSWORD,
                         "the password must not be the email address");
    return FALSE;
  }
  return TRUE;
}

/**
 * cd_password_hash:
 *
 * Blocking (tens of milliseconds): use cd_password_hash_async() on the main thread.
 *
 * Returns: (transfer full): an encoded argon2id hash ($argon2id$v=19$...)
 */
char *
cd_password_hash (CdPasswordPolicy *policy, const char *password, GError **error)
{
  char out[crypto_pwhash_STRBYTES];

  if (crypto_pwhash_str_alg (out, password, strlen (password), policy->opslimit,
                             (size_t) policy->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                         "out of memory while hashing the password");
    return NULL;
  }
  return g_strdup (out);
}

/**
 * cd_password_verify:
 *
 * Blocking: use cd_password_verify_async() on the main thread.
 */
gboolean
cd_password_verify (const char *hash, const char *password)
{
  if (hash == NULL || strlen (hash) >= crypto_pwhash_STRBYTES)
    return FALSE;
  return crypto_pwhash_str_verify (hash, password, strlen (password)) == 0;
}

typedef struct {
  CdPasswordPolicy *policy;
  char *hash;
  char *password;
} Work;

static void
work_free (Work *work)
{
  g_clear_pointer (&work->policy, cd_password_policy_free);
  g_free (work->hash);
  if (work->password) {
    sodium_memzero (work->password, strlen (work->password));
    g_free (work->password);
  }
  g_free (work);
}

static void
hash_in_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  Work *work = data;
  GError *error = NULL;
  char *hash = cd_password_hash (work->policy, work->password, &error);

  if (hash == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, hash, g_free);
}

void
cd_password_hash_async (CdPasswordPolicy *policy, const char *password, GCancellable *cancellable,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  Work *work = g_new0 (Work, 1);

  work->policy = policy_ref (policy);
  work->password = g_strdup (password);
  g_task_set_source_tag (task, cd_password_hash_async);
  g_task_set_task_data (task, work, (GDestroyNotify) work_free);
  g_task_run_in_thread (task, hash_in_thread);
}

char *
cd_password_hash_finish (GAsyncResult *result, GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

static void
verify_in_thread (GTask *task, gpointer source, gpointer data, GCancellable *cancellable)
{
  Work *work = data;

  g_task_return_boolean (task, cd_password_verify (work->hash, work->password));
}

void
cd_password_verify_async (const char *hash, const char *password, GCancellable *cancellable,
                          GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  Work *work = g_new0 (Work, 1);

  work->hash = g_strdup (hash);
  work->password = g_strdup (password);
  g_task_set_source_tag (task, cd_password_verify_async);
  g_task_set_task_data (task, work, (GDestroyNotify) work_free);
  g_task_run_in_thread (task, verify_in_thread);
}

/**
 * cd_password_verify_finish:
 *
 * Returns: whether the password matched (a cancelled check did not)
 */
gboolean
cd_password_verify_finish (GAsyncResult *result)
{
  return g_task_propagate_boolean (G_TASK (result), NULL);
}
