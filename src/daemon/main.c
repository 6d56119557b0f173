/* SPDX-License-Identifier: GPL-3.0-or-later */
/* calldockerd: options, configuration, logging, signals, the main loop. */

#define G_LOG_DOMAIN "calldocker"

#include "cd-build-config.h"
#include "cd-config.h"
#include "cd-daemon.h"
#include "cd-log.h"
#include "cd-process.h"
#include "cdseal/gstcdsealsink.h"
#include "http/cd-http-fields.h"
#include "routing/cd-geoip.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <gst/gst.h>
#include <locale.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static GMainLoop *loop;
static CdDaemon *daemon_instance;
static int exit_code;

static gboolean
on_signal (gpointer user_data)
{
  const char *name = user_data;

  if (cd_daemon_is_stopping (daemon_instance)) {
    /* the embedded servers die with us through their parent-death signal */
    g_printerr ("calldockerd: %s again: exiting at once\n", name);
    _exit (1);
  }
  g_printerr ("calldockerd: %s: shutting down (repeat to force)\n", name);
  cd_daemon_shutdown (daemon_instance);
  return G_SOURCE_CONTINUE;
}

static void
on_stopped (CdDaemon *daemon, gpointer user_data)
{
  g_main_loop_quit (loop);
}

static void
print_uris (CdDaemon *daemon)
{
  GSList *uris = cd_daemon_get_uris (daemon);

  for (GSList *l = uris; l != NULL; l = l->next) {
    g_autofree char *text = g_uri_to_string (l->data);
    g_print ("calldockerd: serving %s (health %shealthz, readiness %sreadyz, metrics %smetrics)\n",
             text, text, text, text);
  }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

int
main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *listen = NULL;
  g_autofree char *state_dir = NULL;
  g_autofree char *superadmin = NULL;
  g_autofree char *password_file = NULL;
  g_autofree char *password = NULL;
  gboolean version = FALSE;
  gboolean check_config = FALSE;
  gboolean print_routes = FALSE;
  gboolean seed_demo = FALSE;
  GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path, "Read the configuration from FILE",
      "FILE" },
    { "listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
      "Listen on ADDRESS:PORT (overrides server.listen)", "ADDRESS:PORT" },
    { "state-dir", 's', 0, G_OPTION_ARG_FILENAME, &state_dir,
      "Keep state in DIR (overrides state.dir)", "DIR" },
    { "check-config", 0, 0, G_OPTION_ARG_NONE, &check_config,
      "Check the configuration, print it and exit", NULL },
    { "create-superadmin", 0, 0, G_OPTION_ARG_STRING, &superadmin,
      "Create the platform's super admin (password from stdin or --password-file), then exit",
      "EMAIL" },
    { "password-file", 0, 0, G_OPTION_ARG_FILENAME, &password_file,
      "Read the password for --create-superadmin from FILE (its first line)", "FILE" },
    { "seed-demo", 0, 0, G_OPTION_ARG_NONE, &seed_demo,
      "Create demo accounts on first start (logins kept in the state folder) and print them",
      NULL },
    { "print-routes", 0, 0, G_OPTION_ARG_NONE, &print_routes,
      "Print every HTTP route (METHOD PATTERN) and exit", NULL },
    { "version", 'V', 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) context = g_option_context_new ("- the CallDocker call-center daemon");
  g_autoptr (GError) error = NULL;
  g_autoptr (CdConfig) config = NULL;
  GLogLevelFlags level;

  cd_process_init ();
  setlocale (LC_ALL, "");
  g_option_context_add_main_entries (context, entries, NULL);
  g_option_context_set_description (context,
                                    "Every config key can also be set in the environment as\n"
                                    "CALLDOCKER_SECTION_KEY, e.g. CALLDOCKER_SERVER_LISTEN.\n"
                                    "See data/calldockerd.conf.example.");
  if (!g_option_context_parse (context, &argc, &argv, &error)) {
    g_printerr ("calldockerd: %s\nTry calldockerd --help.\n", error->message);
    return 2;
  }
  if (version) {
    g_print ("calldockerd %s\n", CD_VERSION);
    return 0;
  }

  if (print_routes) {
    g_auto (GStrv) routes = cd_daemon_list_routes ();
    for (gsize i = 0; routes[i]; i++)
      g_print ("%s\n", routes[i]);
    return 0;
  }

  config = cd_config_new_default ();
  if ((config_path && !cd_config_load_file (config, config_path, &error)) ||
      !cd_config_apply_environment (config, NULL, &error) ||
      (listen && !cd_config_set (config, "server", "listen", listen, "--listen", &error)) ||
      (state_dir && !cd_config_set (config, "state", "dir", state_dir, "--state-dir", &error)) ||
      !cd_config_validate (config, &error)) {
    g_printerr ("calldockerd: bad configuration: %s\n", error->message);
    return 1;
  }
  if (superadmin != NULL) {
    g_autoptr (GError) read_error = NULL;
    g_autofree char *text = NULL;
    if (!cd_is_email (superadmin)) {
      g_printerr ("calldockerd: --create-superadmin: '%s' is not an email address\n", superadmin);
      return 1;
    }
    if (password_file != NULL) {
      if (!g_file_get_contents (password_file, &text, NULL, &read_error)) {
        g_printerr ("calldockerd: --password-file: %s\n", read_error->message);
        return 1;
      }
    } else {
      char line[2048];
      if (isatty (STDIN_FILENO))
        g_printerr ("Password for %s: ", superadmin);
      if (fgets (line, sizeof line, stdin) == NULL) {
        g_printerr ("calldockerd: --create-superadmin: no password on standard input\n");
        return 1;
      }
      text = g_strdup (line);
      memset (line, 0, sizeof line);
    }
    text[strcspn (text, "\r\n")] = '\0';
    password = g_steal_pointer (&text);
    /* a one-shot run must not take the configured port from a running daemon */
    cd_config_set (config, "server", "listen", "127.0.0.1:0", "--create-superadmin", NULL);
  }
  if (check_config) {
    g_autofree char *summary = cd_config_describe (config);

    /* the files the daemon reads at start, beside the values */
    if (config->signal_geoip_database[0] != '\0') {
      g_autoptr (CdGeoip) geoip = cd_geoip_open (config->signal_geoip_database, &error);

      if (geoip == NULL) {
        g_printerr ("calldockerd: signal.geoip_database: %s\n", error->message);
        return 1;
      }
    }
    g_print ("%sconfiguration OK\n", summary);
    return 0;
  }

  if (!cd_log_parse_level (config->log_level, &level))
    g_assert_not_reached ();
  cd_log_install (level);
  /* hiredis writes to sockets with write(): a closed peer must not kill us */
  signal (SIGPIPE, SIG_IGN);

  if (!gst_init_check (NULL, NULL, &error)) {
    g_printerr ("calldockerd: cannot initialise GStreamer: %s\n", error->message);
    return 1;
  }
  cd_plugins_register ();
  if (sodium_init () < 0) {
    g_printerr ("calldockerd: cannot initialise libsodium\n");
    return 1;
  }

  loop = g_main_loop_new (NULL, FALSE);
  daemon_instance = cd_daemon_new (g_steal_pointer (&config));
  if (superadmin != NULL)
    cd_daemon_set_create_superadmin (daemon_instance, superadmin, password);
  cd_daemon_set_seed_demo (daemon_instance, seed_demo);
  g_signal_connect (daemon_instance, "stopped", G_CALLBACK (on_stopped), NULL);
  g_unix_signal_add (SIGINT, on_signal, (gpointer) "SIGINT");
  g_unix_signal_add (SIGTERM, on_signal, (gpointer) "SIGTERM");

  g_info ("calldockerd %s starting (pid %d)", CD_VERSION, (int) getpid ());
  if (!cd_daemon_start (daemon_instance, &error)) {
    g_printerr ("calldockerd: %s\n", error->message);
    exit_code = 1;
    cd_daemon_shutdown (daemon_instance);
  } else if (superadmin == NULL) {
    print_uris (daemon_instance);
  }

  g_main_loop_run (loop);
  if (exit_code == 0)
    exit_code = cd_daemon_get_exit_code (daemon_instance);

  g_clear_object (&daemon_instance);
  g_main_loop_unref (loop);
  gst_deinit ();
  return exit_code;
}
