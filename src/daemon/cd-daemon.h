/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdDaemon: calldockerd's parts and their start-up and shutdown order. */
#pragma once

#include <gio/gio.h>

#include "cd-config.h"

G_BEGIN_DECLS

#define CD_TYPE_DAEMON (cd_daemon_get_type ())
G_DECLARE_FINAL_TYPE (CdDaemon, cd_daemon, CD, DAEMON, GObject)

CdDaemon *cd_daemon_new (CdConfig *config);
gboolean cd_daemon_start (CdDaemon *self, GError **error);
void cd_daemon_shutdown (CdDaemon *self);
void cd_daemon_set_create_superadmin (CdDaemon *self, const char *email, const char *password);
void cd_daemon_set_seed_demo (CdDaemon *self, gboolean seed);
int cd_daemon_get_exit_code (CdDaemon *self);
gboolean cd_daemon_is_ready (CdDaemon *self);
gboolean cd_daemon_is_stopping (CdDaemon *self);
GSList *cd_daemon_get_uris (CdDaemon *self);
GStrv cd_daemon_list_routes (void);

G_END_DECLS
