/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Seeding a test daemon's database directly, and signing in through its API. */
#pragma once

#include <glib.h>
#include <libpq-fe.h>

G_BEGIN_DECLS

/* An approved company named @slug (allowed origin @origin) with an admin
 * admin@SLUG.test and agents agent1@SLUG.test .. agentN@SLUG.test, all with
 * @password, in the database of the test stores under @state; the
 * company's id. */
char *cd_test_seed_company (const char *state, const char *slug, const char *origin, guint agents,
                            const char *password);
/* POST /api/v1/auth/login on @base_url; the access token. */
/* A statement as the database's owner on the embedded server of the
 * daemon whose state folder is @state (row-level security does not apply). */
PGresult *cd_test_state_sql (const char *state, const char *sql, const char *const *params, int n);
char *cd_test_login (const char *base_url, const char *email, const char *password);
/* POST /api/v1/widget/session for @company_id from @origin; the visitor token. */
char *cd_test_visitor_token (const char *base_url, const char *company_id, const char *origin);
/* The user an access token is for (its "sub" claim). */
char *cd_test_user_id (const char *token);

G_END_DECLS
