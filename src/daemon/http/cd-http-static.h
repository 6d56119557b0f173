/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The daemon's own web pages (the call check): files of data/web/, read once
 * at start-up and served read-only with validators and a strict CSP. */
#pragma once

#include "cd-http-server.h"

G_BEGIN_DECLS

char *cd_http_static_web_dir (void);
gboolean cd_http_static_register (CdHttpServer *server, GError **error);

G_END_DECLS
