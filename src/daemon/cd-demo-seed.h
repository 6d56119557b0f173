/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The demo's accounts: a super admin, an approved demo company, its admin
 * and two agents, with random passwords kept in the state folder. */
#pragma once

#include <gio/gio.h>

#include "auth/cd-password.h"
#include "store/cd-pg-pool.h"

G_BEGIN_DECLS

void cd_demo_seed_async (CdPgPool *pool, CdPasswordPolicy *passwords, const char *state_dir,
                         GAsyncReadyCallback callback, gpointer user_data);
char *cd_demo_seed_finish (GAsyncResult *result, GError **error);

G_END_DECLS
