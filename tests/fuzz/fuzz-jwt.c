/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: access token verification (Authorization: Bearer ...). */

#include "auth/cd-jwt.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static CdJwtKeys *keys;
  static const guint8 secret[32] = "0123456789abcdef0123456789abcde";
  g_autofree char *token = g_strndup ((const char *) data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdJwtClaims) claims = NULL;

  if (keys == NULL) {
    keys = cd_jwt_keys_new ();
    cd_jwt_keys_add (keys, "k1", secret, sizeof secret, NULL);
  }
  claims = cd_jwt_verify (keys, token, 1790000000, &error);
  g_assert_true ((claims == NULL) != (error == NULL));
  if (claims != NULL)
    g_assert_true (cd_is_uuid (claims->sub));
  return 0;
}
