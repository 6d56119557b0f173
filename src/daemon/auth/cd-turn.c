/* SPDX-License-Identifier: GPL-3.0-or-later */
/* TURN REST credentials (draft-uberti-behave-turn-rest), as coturn checks
 * them with use-auth-secret and static-auth-secret. */

#include "cd-turn.h"

#include <string.h>

/**
 * cd_turn_credentials:
 * @secret: coturn's static-auth-secret
 * @user: who the credentials are for (any text without ':')
 * @expiry: when they stop working, seconds since the epoch
 * @username: (out) (transfer full): "EXPIRY:USER"
 * @password: (out) (transfer full): base64 of HMAC-SHA1 (secret, username)
 */
void
cd_turn_credentials (const char *secret, const char *user, gint64 expiry, char **username,
                     char **password)
{
  g_autoptr (GHmac) hmac = g_hmac_new (G_CHECKSUM_SHA1, (const guchar *) secret, strlen (secret));
  guint8 digest[20];
  gsize length = sizeof digest;

  *username = g_strdup_printf ("%" G_GINT64_FORMAT ":%s", expiry, user);
  g_hmac_update (hmac, (const guchar *) *username, -1);
  g_hmac_get_digest (hmac, digest, &length);
  *password = g_base64_encode (digest, length);
}
