/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Delivers the mail outbox: each due mail is claimed, written as an .eml
 * file under the state folder (the default) and marked sent; failures are
 * retried with backoff. */
#pragma once

#include <gio/gio.h>

#include "../store/cd-pg-pool.h"

G_BEGIN_DECLS

#define CD_TYPE_MAILER (cd_mailer_get_type ())
G_DECLARE_FINAL_TYPE (CdMailer, cd_mailer, CD, MAILER, GObject)

CdMailer *cd_mailer_new (CdPgPool *pool, const char *maildir, const char *from_address);
void cd_mailer_set_smtp (CdMailer *self, const char *url, const char *username,
                         const char *password, gboolean tls_required);
void cd_mailer_start (CdMailer *self);
void cd_mailer_kick (CdMailer *self);
void cd_mailer_stop (CdMailer *self);
guint64 cd_mailer_get_delivered (CdMailer *self);

G_END_DECLS
