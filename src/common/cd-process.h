/* SPDX-License-Identifier: GPL-3.0-or-later */
/* What every CallDocker program does first, before any library starts threads. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

void cd_process_init (void);

G_END_DECLS
