/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The keys that seal a company's recordings and voicemails: one master key
 * from a file, and per company a key kept in PostgreSQL wrapped by it. */
#pragma once

#include <gio/gio.h>

#include "cd-pg-pool.h"
#include "cd-seal.h"

G_BEGIN_DECLS

#define CD_KEYRING_ERROR (cd_keyring_error_quark ())

typedef enum {
  CD_KEYRING_ERROR_MASTER,       /* the master key file is missing, unsafe or malformed */
  CD_KEYRING_ERROR_WRONG_MASTER, /* a company key was wrapped by another master key */
  CD_KEYRING_ERROR_NO_KEY,       /* no such key version for the company */
} CdKeyringError;

GQuark cd_keyring_error_quark (void);

/* One company key, unwrapped (in locked memory); refcounted. */
typedef struct {
  char *company_id;
  guint32 version;
  guint8 *key; /* CD_SEAL_KEY_BYTES */
} CdCompanyKey;

CdCompanyKey *cd_company_key_ref (CdCompanyKey *key);
void cd_company_key_unref (CdCompanyKey *key);
/* A copy of the key's bytes in locked memory, wiped when the last
 * reference goes (for a sealing element's "key"). */
GBytes *cd_company_key_dup_bytes (CdCompanyKey *key);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdCompanyKey, cd_company_key_unref)

/* Reads the master key from @path: 32 bytes in base64 on one line, in a
 * file only its owner may read. With @create, a missing file is made so
 * (mode 0600) with a new random key. Blocking: for start-up. */
gboolean cd_keyring_load_master (const char *path, gboolean create,
                                 guint8 master[CD_SEAL_KEY_BYTES], GError **error);

#define CD_TYPE_KEYRING (cd_keyring_get_type ())
G_DECLARE_FINAL_TYPE (CdKeyring, cd_keyring, CD, KEYRING, GObject)

CdKeyring *cd_keyring_new (CdPgPool *pool, const guint8 master[CD_SEAL_KEY_BYTES]);
/* The master key's public fingerprint (16 hex digits): what the database
 * records beside each key it wrapped. */
const char *cd_keyring_get_master_id (CdKeyring *self);
/* Links (short-lived signed URLs): the signature of @message (64 hex
 * digits, HMAC-SHA-512/256 under a key derived from the master key), and
 * whether @signature is @message's. */
char *cd_keyring_sign_link (CdKeyring *self, const char *message);
gboolean cd_keyring_check_link (CdKeyring *self, const char *message, const char *signature);
/* @company_id's key of @version, or its newest (made on first use) when
 * @version is 0. */
void cd_keyring_get_async (CdKeyring *self, const char *company_id, guint32 version,
                           GCancellable *cancellable, GAsyncReadyCallback callback,
                           gpointer user_data);
CdCompanyKey *cd_keyring_get_finish (CdKeyring *self, GAsyncResult *result, GError **error);

G_END_DECLS
