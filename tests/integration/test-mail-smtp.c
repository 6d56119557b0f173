/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Mail through SMTP: with mail.smtp_url set, the daemon delivers the outbox
 * to an SMTP server (a sink in this test) instead of writing files. */

#include "cd-test-harness.h"

#include <signal.h>
#include <string.h>

#define PASSWORD "correct horse battery staple"

static void
test_reset_mail_over_smtp (void)
{
  CdTestSmtp *smtp = cd_test_smtp_start ();
  g_autofree char *state = cd_test_make_tmp_dir ("cd-smtp-XXXXXX");
  g_autofree char *smtp_url =
      g_strdup_printf ("CALLDOCKER_MAIL_SMTP_URL=smtp://127.0.0.1:%u", smtp->port);
  const char *env[] = { smtp_url, "CALLDOCKER_MAIL_SMTP_TLS=none", NULL };
  CdTestDaemon *d = cd_test_daemon_spawn (state, NULL, env);
  g_autofree char *signup = NULL;
  g_autofree char *reset = NULL;
  g_autofree char *maildir = g_build_filename (state, "mail", NULL);
  const char *json = "{\"company_name\":\"Mailco\",\"admin_name\":\"Mo\",\"email\":"
                     "\"mo@mailco.test\",\"password\":\"" PASSWORD "\"}";
  const char *reset_json = "{\"email\":\"mo@mailco.test\"}";
  const char *message;

  cd_test_daemon_wait_ready (d, 60000);
  signup = g_strconcat (d->base_url, "api/v1/companies", NULL);
  reset = g_strconcat (d->base_url, "api/v1/auth/password-reset", NULL);
  g_assert_cmpuint (cd_test_http_request ("POST", signup, "application/json", json, strlen (json),
                                          NULL, NULL, NULL),
                    ==, 201);
  g_assert_cmpuint (cd_test_http_request ("POST", reset, "application/json", reset_json,
                                          strlen (reset_json), NULL, NULL, NULL),
                    ==, 202);

  WAIT_UNTIL (smtp->messages->len >= 1, 20000);
  message = g_ptr_array_index (smtp->messages, 0);
  g_test_message ("%s", message);
  g_assert_nonnull (strstr (message, "MAIL FROM:<no-reply@calldocker.invalid>"));
  g_assert_nonnull (strstr (message, "RCPT TO:<mo@mailco.test>"));
  g_assert_nonnull (strstr (message, "Subject: Reset your CallDocker password"));
  g_assert_nonnull (strstr (message, "reset-password?token="));
  /* no file was written */
  g_assert_false (g_file_test (maildir, G_FILE_TEST_EXISTS));

  kill (g_ascii_strtoll (g_subprocess_get_identifier (d->process), NULL, 10), SIGTERM);
  cd_test_daemon_wait_exit (d, 30000);
  g_assert_cmpint (d->exit_status, ==, 0);
  cd_test_daemon_free (d);
  cd_test_remove_tree (state);
  cd_test_smtp_stop (smtp);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/mail/reset-mail-over-smtp", test_reset_mail_over_smtp);
  return g_test_run ();
}
