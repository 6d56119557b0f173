/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The daemon's GLogWriterFunc: filters by level, sends structured fields to
 * journald when stderr is the journal, else prints "time LEVEL domain: msg k=v". */

#define G_LOG_DOMAIN "calldocker"

#include "cd-log.h"

#include <stdio.h>
#include <unistd.h>

static GLogLevelFlags lowest = G_LOG_LEVEL_INFO;

/* Lower number: more severe. */
static int
level_rank (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return 0;
  if (level & G_LOG_LEVEL_CRITICAL)
    return 1;
  if (level & G_LOG_LEVEL_WARNING)
    return 2;
  if (level & G_LOG_LEVEL_MESSAGE)
    return 3;
  if (level & G_LOG_LEVEL_INFO)
    return 4;
  return 5;
}

static const char *
level_name (GLogLevelFlags level)
{
  static const char *names[] = { "ERROR", "CRITICAL", "WARNING", "MESSAGE", "INFO", "DEBUG" };
  return names[level_rank (level)];
}

gboolean
cd_log_parse_level (const char *name, GLogLevelFlags *level)
{
  static const struct {
    const char *name;
    GLogLevelFlags level;
  } table[] = {
    { "debug", G_LOG_LEVEL_DEBUG },
    { "info", G_LOG_LEVEL_INFO },
    { "message", G_LOG_LEVEL_MESSAGE },
    { "warning", G_LOG_LEVEL_WARNING },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
    if (g_str_equal (name, table[i].name)) {
      *level = table[i].level;
      return TRUE;
    }
  }
  return FALSE;
}

/**
 * cd_log_format_line:
 *
 * Returns: (transfer full): one line (no newline) for @fields
 */
char *
cd_log_format_line (GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                    gboolean with_time)
{
  GString *line = g_string_new (NULL);
  const char *domain = NULL;
  const char *message = NULL;

  for (gsize i = 0; i < n_fields; i++) {
    if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
      domain = fields[i].value;
    else if (g_str_equal (fields[i].key, "MESSAGE"))
      message = fields[i].value;
  }

  if (with_time) {
    g_autoptr (GDateTime) now = g_date_time_new_now_utc ();
    g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S");
    g_string_append_printf (line, "%s.%03dZ ", stamp, g_date_time_get_microsecond (now) / 1000);
  }
  g_string_append_printf (line, "%-7s %s: %s", level_name (level), domain ? domain : "calldocker",
                          message ? message : "");

  for (gsize i = 0; i < n_fields; i++) {
    const char *key = fields[i].key;
    if (g_str_equal (key, "MESSAGE") || g_str_equal (key, "PRIORITY") ||
        g_str_equal (key, "GLIB_DOMAIN") || g_str_has_prefix (key, "CODE_") ||
        g_str_equal (key, "GLIB_OLD_LOG_API") || fields[i].length >= 0)
      continue;
    g_autofree char *lower = g_ascii_strdown (key, -1);
    g_string_append_printf (line, " %s=%s", lower, (const char *) fields[i].value);
  }
  return g_string_free (line, FALSE);
}

static GLogWriterOutput
write_log (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  static gsize journal_checked = 0;
  static gboolean to_journal = FALSE;
  g_autofree char *line = NULL;

  if (level_rank (level) > level_rank (lowest))
    return G_LOG_WRITER_HANDLED;

  if (g_once_init_enter (&journal_checked)) {
    to_journal = g_log_writer_is_journald (STDERR_FILENO);
    g_once_init_leave (&journal_checked, 1);
  }
  if (to_journal &&
      g_log_writer_journald (level, fields, n_fields, user_data) == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;

  line = cd_log_format_line (level, fields, n_fields, TRUE);
  fprintf (stderr, "%s\n", line);
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

/**
 * cd_log_install:
 * @lowest_level: the least severe level still written
 */
void
cd_log_install (GLogLevelFlags lowest_level)
{
  lowest = lowest_level;
  g_log_set_writer_func (write_log, NULL, NULL);
}
