/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The store layer's error domain. */

#include "cd-store-error.h"

G_DEFINE_QUARK (calldocker_store_error, cd_store_error)

/* The pool words a statement's error "SQLSTATE <code>: <message>". */
gboolean
cd_store_error_is_foreign_key (const GError *error)
{
  return g_error_matches (error, CD_STORE_ERROR, CD_STORE_ERROR_CONSTRAINT) &&
         g_str_has_prefix (error->message, "SQLSTATE 23503:");
}
