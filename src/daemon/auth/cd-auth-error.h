/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Errors of the auth layer: tokens, passwords, permissions. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CD_AUTH_ERROR (cd_auth_error_quark ())

typedef enum {
  CD_AUTH_ERROR_TOKEN_MISSING, /* no Authorization: Bearer */
  CD_AUTH_ERROR_TOKEN_INVALID, /* malformed, wrong algorithm, key or signature */
  CD_AUTH_ERROR_TOKEN_EXPIRED,
  CD_AUTH_ERROR_BAD_CREDENTIALS, /* the same answer for unknown email and bad password */
  CD_AUTH_ERROR_WEAK_PASSWORD,
  CD_AUTH_ERROR_FORBIDDEN, /* authenticated, not allowed */
  CD_AUTH_ERROR_RATE_LIMITED,
  CD_AUTH_ERROR_ACCOUNT_DISABLED,
} CdAuthError;

GQuark cd_auth_error_quark (void);

G_END_DECLS
