/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Structured logging: journald fields when stderr is the journal, one
 * readable line with key=value fields otherwise. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

gboolean cd_log_parse_level (const char *name, GLogLevelFlags *level);
void cd_log_install (GLogLevelFlags lowest_level);
char *cd_log_format_line (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                          gboolean with_time);

G_END_DECLS
