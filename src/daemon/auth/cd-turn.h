/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Time-limited TURN credentials as coturn's use-auth-secret expects them:
 * username "EXPIRY:USER", password base64(HMAC-SHA1(secret, username)). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

void cd_turn_credentials (const char *secret, const char *user, gint64 expiry, char **username,
                          char **password);

G_END_DECLS
