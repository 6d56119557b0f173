/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Passwords: argon2id hashes (libsodium) computed in worker threads, and the
 * policy a new password must meet. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _CdPasswordPolicy CdPasswordPolicy;

CdPasswordPolicy *cd_password_policy_new (guint64 memlimit_bytes, guint64 opslimit,
                                          guint min_length, const char *common_list_path,
                                          GError **error);
void cd_password_policy_free (CdPasswordPolicy *policy);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdPasswordPolicy, cd_password_policy_free)

gboolean cd_password_policy_check (CdPasswordPolicy *policy, const char *password,
                                   const char *email, GError **error);

char *cd_password_hash (CdPasswordPolicy *policy, const char *password, GError **error);
gboolean cd_password_verify (const char *hash, const char *password);
const char *cd_password_dummy_hash (CdPasswordPolicy *policy);

void cd_password_hash_async (CdPasswordPolicy *policy, const char *password,
                             GCancellable *cancellable, GAsyncReadyCallback callback,
                             gpointer user_data);
char *cd_password_hash_finish (GAsyncResult *result, GError **error);
void cd_password_verify_async (const char *hash, const char *password, GCancellable *cancellable,
                               GAsyncReadyCallback callback, gpointer user_data);
gboolean cd_password_verify_finish (GAsyncResult *result);

G_END_DECLS
