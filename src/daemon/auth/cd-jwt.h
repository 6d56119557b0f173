/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Access tokens: HS256 JWTs with a kid header for key rotation. Signed with
 * libjwt; verified with a constant-time HMAC check, HS256 only, and every
 * claim checked here (libjwt 1.10 checks none). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CD_JWT_ISSUER "calldocker"

typedef struct {
  char *sub;     /* the user's UUID */
  char *role;    /* superadmin, company_admin, agent */
  char *company; /* the company's UUID; NULL for the super admin */
  gint64 iat;
  gint64 iat_ms; /* iat in milliseconds (our own claim; iat * 1000 without it) */
  gint64 exp;
  char *kid;
} CdJwtClaims;

void cd_jwt_claims_free (CdJwtClaims *claims);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdJwtClaims, cd_jwt_claims_free)

typedef struct _CdJwtKeys CdJwtKeys;

CdJwtKeys *cd_jwt_keys_new (void);
void cd_jwt_keys_free (CdJwtKeys *keys);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdJwtKeys, cd_jwt_keys_free)
gboolean cd_jwt_keys_add (CdJwtKeys *keys, const char *kid, const guint8 *secret, gsize length,
                          GError **error);
gboolean cd_jwt_keys_load_file (CdJwtKeys *keys, const char *path, gboolean create, GError **error);
const char *cd_jwt_keys_get_active_kid (CdJwtKeys *keys);

char *cd_jwt_sign (CdJwtKeys *keys, const char *sub, const char *role, const char *company,
                   gint64 now, gint64 ttl_s, GError **error);
char *cd_jwt_sign_at_ms (CdJwtKeys *keys, const char *sub, const char *role, const char *company,
                         gint64 now_ms, gint64 ttl_s, GError **error);
CdJwtClaims *cd_jwt_verify (CdJwtKeys *keys, const char *token, gint64 now, GError **error);

gboolean cd_is_uuid (const char *text);
char *cd_base64url_encode (const guint8 *data, gsize length);
guint8 *cd_base64url_decode (const char *text, gsize length, gsize *out_length);

G_END_DECLS
