/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Log lines: level, domain, message, then the structured fields. */

#include "cd-log.h"

#include <string.h>

static void
test_format (void)
{
  const GLogField fields[] = {
    { "GLIB_DOMAIN", "calldocker-http", -1 },
    { "MESSAGE", "GET /healthz 200", -1 },
    { "PRIORITY", "6", -1 },
    { "CODE_FILE", "x.c", -1 },
    { "REQUEST_ID", "abc123", -1 },
    { "HTTP_STATUS", "200", -1 },
    { "BINARY", "\x01\x02", 2 },
  };
  g_autofree char *line =
      cd_log_format_line (G_LOG_LEVEL_INFO, fields, G_N_ELEMENTS (fields), FALSE);

  g_assert_cmpstr (line, ==,
                   "INFO    calldocker-http: GET /healthz 200 request_id=abc123 http_status=200");
}

static void
test_time_prefix (void)
{
  const GLogField fields[] = { { "MESSAGE", "hello", -1 } };
  g_autofree char *line = cd_log_format_line (G_LOG_LEVEL_WARNING, fields, 1, TRUE);
  g_autoptr (GRegex) re = g_regex_new (
      "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z WARNING calldocker: hello$", 0, 0,
      NULL);

  g_assert_true (g_regex_match (re, line, 0, NULL));
}

static void
test_levels (void)
{
  GLogLevelFlags level;

  g_assert_true (cd_log_parse_level ("debug", &level));
  g_assert_cmpint (level, ==, G_LOG_LEVEL_DEBUG);
  g_assert_true (cd_log_parse_level ("warning", &level));
  g_assert_cmpint (level, ==, G_LOG_LEVEL_WARNING);
  g_assert_false (cd_log_parse_level ("verbose", &level));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/log/format", test_format);
  g_test_add_func ("/log/time-prefix", test_time_prefix);
  g_test_add_func ("/log/levels", test_levels);
  return g_test_run ();
}
