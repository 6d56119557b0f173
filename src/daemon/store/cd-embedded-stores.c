/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdEmbeddedStores: runs initdb once, then postgres and redis-server as
 * children in their own process group with a parent-death signal, restarts
 * them if they exit on their own, and stops them in order. */

#define G_LOG_DOMAIN "calldocker-embedded"

#include "cd-embedded-stores.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define PG_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"
#define RESTART_MAX_MS    30000

typedef struct {
  CdEmbeddedStores *owner; /* unowned */
  CdEmbeddedServer which;
  const char *name;
  GSubprocess *process;
  GCancellable *wait_cancellable;
  gboolean stopping;
  guint restart_id;
  guint restart_ms;
  gint64 started_at;
  char *log_path;
} Child;

struct _CdEmbeddedStores {
  GObject parent_instance;

  char *state_dir;
  char *pg_dir; /* holds data/ and the socket; owned by the server's user */
  char *pg_data;
  char *redis_dir;
  char *redis_socket;
  gboolean with_postgres;
  gboolean with_redis;
  gboolean fast_unsafe;
  char *pg_bindir;
  /* whom the servers run as: PostgreSQL refuses to run as root */
  gboolean drop_privileges;
  uid_t run_uid;
  gid_t run_gid;
  Child postgres;
  Child redis;
  gboolean started;
  gboolean stopped;
  GTask *stop_task;
  guint stop_timeout_id;
};

G_DEFINE_FINAL_TYPE (CdEmbeddedStores, cd_embedded_stores, G_TYPE_OBJECT)

/* Read by the forked child before exec: set in the parent just before spawn. */
static pid_t child_setup_parent;
static int child_setup_death_signal;
static gboolean child_setup_drop;
static uid_t child_setup_uid;
static gid_t child_setup_gid;

/* Runs in the forked child: async-signal-safe calls only. */
static void
child_setup (gpointer user_data)
{
  if (child_setup_drop) {
    if (setgroups (0, NULL) != 0 || setgid (child_setup_gid) != 0 || setuid (child_setup_uid) != 0)
      _exit (126);
  }
  /* after setuid(): changing credentials clears the parent-death signal */
  if (prctl (PR_SET_PDEATHSIG, child_setup_death_signal) != 0)
    _exit (126);
  if (getppid () != child_setup_parent)
    _exit (126); /* the daemon died before prctl() */
  /* Ctrl-C in a terminal reaches the daemon only; it stops us in order */
  setpgid (0, 0);
}

static GSubprocessLauncher *
launcher_new (CdEmbeddedStores *self, const char *cwd, GSubprocessFlags flags, int death_signal,
              gboolean drop)
{
  GSubprocessLauncher *launcher = g_subprocess_launcher_new (flags);

  g_subprocess_launcher_set_cwd (launcher, cwd);
  g_subprocess_launcher_unsetenv (launcher, "PGDATA");
  g_subprocess_launcher_setenv (launcher, "LC_ALL", "C", TRUE);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);
  child_setup_parent = getpid ();
  child_setup_death_signal = death_signal;
  child_setup_drop = drop && self->drop_privileges;
  child_setup_uid = self->run_uid;
  child_setup_gid = self->run_gid;
  return launcher;
}

static char *
pg_binary (CdEmbeddedStores *self, const char *name)
{
  return g_build_filename (self->pg_bindir, name, NULL);
}

static gboolean
ensure_dir (CdEmbeddedStores *self, const char *path, int mode, gboolean for_server, GError **error)
{
  if (g_mkdir_with_parents (path, mode) != 0) {
    int e = errno;
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN, "cannot create folder %s: %s", path,
                 g_strerror (e));
    return FALSE;
  }
  if (for_server && self->drop_privileges && chown (path, self->run_uid, self->run_gid) != 0) {
    int e = errno;
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN, "cannot hand folder %s to uid %u: %s",
                 path, (guint) self->run_uid, g_strerror (e));
    return FALSE;
  }
  if (g_chmod (path, mode) != 0) {
    int e = errno;
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN, "cannot set mode of %s: %s", path,
                 g_strerror (e));
    return FALSE;
  }
  return TRUE;
}

/* PostgreSQL's user must be able to walk down to its folder. */
static gboolean
check_reachable (CdEmbeddedStores *self, GError **error)
{
  g_autofree char *dir = NULL;

  if (!self->drop_privileges)
    return TRUE;
  dir = g_path_get_dirname (self->state_dir);
  while (TRUE) {
    struct stat st;
    if (g_stat (dir, &st) == 0 && st.st_uid != self->run_uid && !(st.st_mode & S_IXOTH) &&
        !(st.st_gid == self->run_gid && (st.st_mode & S_IXGRP))) {
      g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN,
                   "the embedded PostgreSQL runs as user 'postgres', which cannot enter %s: "
                   "allow it (chmod o+x %s) or choose a --state-dir it can reach, "
                   "such as one under /var/lib or /tmp",
                   dir, dir);
      return FALSE;
    }
    if (g_str_equal (dir, "/") || g_str_equal (dir, "."))
      break;
    g_autofree char *parent = g_path_get_dirname (dir);
    g_free (dir);
    dir = g_steal_pointer (&parent);
  }
  return TRUE;
}

static void child_spawn (Child *child);

static gboolean
on_restart (gpointer user_data)
{
  Child *child = user_data;

  child->restart_id = 0;
  child_spawn (child);
  return G_SOURCE_REMOVE;
}

static void
on_child_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Child *child = user_data;
  GSubprocess *process = G_SUBPROCESS (source);
  g_autoptr (GError) error = NULL;
  CdEmbeddedStores *self;

  if (!g_subprocess_wait_finish (process, result, &error) &&
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return; /* the owner is gone */
  self = child->owner;
  if (child->process != process)
    return;
  g_clear_object (&child->process);
  g_clear_object (&child->wait_cancellable);

  if (child->stopping || self->stopped) {
    g_info ("embedded %s stopped", child->name);
    if (self->stop_task != NULL && self->postgres.process == NULL && self->redis.process == NULL) {
      g_autoptr (GTask) task = g_steal_pointer (&self->stop_task);
      g_clear_handle_id (&self->stop_timeout_id, g_source_remove);
      g_task_return_boolean (task, TRUE);
    }
    return;
  }

  if (g_subprocess_get_if_signaled (process))
    g_message ("embedded %s was killed by signal %d; restarting (its log: %s)", child->name,
               g_subprocess_get_term_sig (process), child->log_path);
  else
    g_message ("embedded %s exited with status %d; restarting (its log: %s)", child->name,
               g_subprocess_get_exit_status (process), child->log_path);
  /* quick crash loops back off; a long healthy run starts the delay afresh */
  if (g_get_monotonic_time () - child->started_at > 60 * G_USEC_PER_SEC)
    child->restart_ms = 0;
  child->restart_ms = child->restart_ms == 0 ? 200 : MIN (child->restart_ms * 2, RESTART_MAX_MS);
  child->restart_id = g_timeout_add (child->restart_ms, on_restart, child);
}

static void
child_spawn (Child *child)
{
  CdEmbeddedStores *self = child->owner;
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;

  if (child->which == CD_EMBEDDED_POSTGRES) {
    g_ptr_array_add (argv, pg_binary (self, "postgres"));
    g_ptr_array_add (argv, g_strdup ("-D"));
    g_ptr_array_add (argv, g_strdup (self->pg_data));
    g_ptr_array_add (argv, g_strdup ("-k"));
    g_ptr_array_add (argv, g_strdup (self->pg_dir));
    g_ptr_array_add (argv, g_strdup ("-c"));
    g_ptr_array_add (argv, g_strdup ("listen_addresses="));
    g_ptr_array_add (argv, g_strdup ("-c"));
    g_ptr_array_add (argv, g_strdup ("unix_socket_permissions=0700"));
    g_ptr_array_add (argv, g_strdup ("-c"));
    g_ptr_array_add (argv, g_strdup ("log_min_messages=warning"));
    g_ptr_array_add (argv, g_strdup ("-c"));
    g_ptr_array_add (argv, g_strdup ("log_line_prefix=postgres[%p]: "));
    if (self->fast_unsafe) {
      /* survives the server being killed (tests do that), not a machine crash */
      const char *unsafe[] = { "fsync=off", "full_page_writes=off" };
      for (gsize i = 0; i < G_N_ELEMENTS (unsafe); i++) {
        g_ptr_array_add (argv, g_strdup ("-c"));
        g_ptr_array_add (argv, g_strdup (unsafe[i]));
      }
    }
    /* SIGQUIT: immediate shutdown, which also ends every backend */
    launcher = launcher_new (self, self->pg_dir, G_SUBPROCESS_FLAGS_NONE, SIGQUIT, TRUE);
  } else {
    g_ptr_array_add (argv, g_strdup ("redis-server"));
    g_ptr_array_add (argv, g_strdup ("--port"));
    g_ptr_array_add (argv, g_strdup ("0"));
    g_ptr_array_add (argv, g_strdup ("--unixsocket"));
    g_ptr_array_add (argv, g_strdup (self->redis_socket));
    g_ptr_array_add (argv, g_strdup ("--unixsocketperm"));
    g_ptr_array_add (argv, g_strdup ("700"));
    g_ptr_array_add (argv, g_strdup ("--dir"));
    g_ptr_array_add (argv, g_strdup (self->redis_dir));
    g_ptr_array_add (argv, g_strdup ("--save"));
    g_ptr_array_add (argv, g_strdup (""));
    g_ptr_array_add (argv, g_strdup ("--appendonly"));
    g_ptr_array_add (argv, g_strdup ("no"));
    g_ptr_array_add (argv, g_strdup ("--daemonize"));
    g_ptr_array_add (argv, g_strdup ("no"));
    g_ptr_array_add (argv, g_strdup ("--loglevel"));
    g_ptr_array_add (argv, g_strdup ("warning"));
    launcher = launcher_new (self, self->redis_dir, G_SUBPROCESS_FLAGS_NONE, SIGTERM, FALSE);
  }
  /* the servers' own logs stay out of the daemon's output */
  g_subprocess_launcher_set_flags (launcher, G_SUBPROCESS_FLAGS_STDERR_MERGE);
  {
    /* appended, so a crash's last words survive the restart */
    int fd = g_open (child->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0)
      g_subprocess_launcher_take_stdout_fd (launcher, fd);
  }
  g_ptr_array_add (argv, NULL);

  child->process =
      g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  if (child->process == NULL) {
    g_warning ("cannot start the embedded %s: %s", child->name, error->message);
    child->restart_ms = child->restart_ms == 0 ? 1000 : MIN (child->restart_ms * 2, RESTART_MAX_MS);
    child->restart_id = g_timeout_add (child->restart_ms, on_restart, child);
    return;
  }
  child->started_at = g_get_monotonic_time ();
  child->wait_cancellable = g_cancellable_new ();
  g_info ("embedded %s started (pid %s)", child->name,
          g_subprocess_get_identifier (child->process));
  g_subprocess_wait_async (child->process, child->wait_cancellable, on_child_exited, child);
}

/* ---- first start: initdb into a scratch folder, create the database, rename ---- */

typedef enum {
  INIT_INITDB,
  INIT_CREATEDB,
  INIT_DONE,
} InitStep;

static void start_servers (GTask *task);

static void
on_init_step_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GTask) task = user_data;
  CdEmbeddedStores *self = g_task_get_source_object (task);
  InitStep step = GPOINTER_TO_INT (g_task_get_task_data (task));
  GSubprocess *process = G_SUBPROCESS (source);
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  g_autofree char *scratch = g_strconcat (self->pg_data, ".init", NULL);

  if (!g_subprocess_communicate_utf8_finish (process, result, &out, &err, &error)) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  /* single-user mode reports a failed statement on stderr and still exits 0 */
  if (!g_subprocess_get_successful (process) || (err && strstr (err, "ERROR:"))) {
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN, "%s failed: %s",
                             step == INIT_INITDB ? "initdb" : "creating the database",
                             err && *err ? g_strstrip (err) : (out ? g_strstrip (out) : "?"));
    return;
  }

  if (step == INIT_INITDB) {
    g_autoptr (GSubprocessLauncher) launcher = NULL;
    g_autoptr (GSubprocess) single = NULL;
    g_autofree char *postgres = pg_binary (self, "postgres");
    const char *argv[] = { postgres, "--single", "-j", "-D", scratch, "postgres", NULL };

    launcher = launcher_new (self, self->pg_dir,
                             G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                 G_SUBPROCESS_FLAGS_STDERR_PIPE,
                             SIGKILL, TRUE);
    single = g_subprocess_launcher_spawnv (launcher, argv, &error);
    if (single == NULL) {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
    GCancellable *cancellable = g_task_get_cancellable (task);
    g_task_set_task_data (task, GINT_TO_POINTER (INIT_CREATEDB), NULL);
    g_subprocess_communicate_utf8_async (single, "CREATE DATABASE calldocker;\n", cancellable,
                                         on_init_step_done, g_steal_pointer (&task));
    return;
  }

  if (g_rename (scratch, self->pg_data) != 0) {
    int e = errno;
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN,
                             "cannot move the new database into place: %s", g_strerror (e));
    return;
  }
  g_info ("created the embedded PostgreSQL database in %s", self->pg_data);
  start_servers (g_steal_pointer (&task));
}

static void
start_initdb (GTask *task)
{
  CdEmbeddedStores *self = g_task_get_source_object (task);
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) initdb = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *scratch = g_strconcat (self->pg_data, ".init", NULL);
  g_autofree char *binary = pg_binary (self, "initdb");
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();

  if (g_file_test (scratch, G_FILE_TEST_EXISTS)) {
    /* a first start that was interrupted: start over */
    g_autoptr (GFile) file = g_file_new_for_path (scratch);
    g_autoptr (GFileEnumerator) e = NULL;
    GFileInfo *info;
    GFile *child;
    g_autoptr (GPtrArray) stack = g_ptr_array_new_with_free_func (g_object_unref);
    g_autoptr (GPtrArray) dirs = g_ptr_array_new_with_free_func (g_object_unref);
    g_ptr_array_add (stack, g_object_ref (file));
    while (stack->len > 0) {
      GFile *dir = g_ptr_array_steal_index (stack, stack->len - 1);
      g_ptr_array_add (dirs, dir);
      e = g_file_enumerate_children (dir, "standard::name,standard::type",
                                     G_FILE_QUERY_INFO_NOFOLLOW_SYMLINKS, NULL, NULL);
      while (e && g_file_enumerator_iterate (e, &info, &child, NULL, NULL) && info) {
        if (g_file_info_get_file_type (info) == G_FILE_TYPE_DIRECTORY)
          g_ptr_array_add (stack, g_object_ref (child));
        else
          g_file_delete (child, NULL, NULL);
      }
      g_clear_object (&e);
    }
    for (guint i = dirs->len; i > 0; i--)
      g_file_delete (g_ptr_array_index (dirs, i - 1), NULL, NULL);
  }

  g_ptr_array_add (argv, binary);
  g_ptr_array_add (argv, "-D");
  g_ptr_array_add (argv, scratch);
  g_ptr_array_add (argv, "-U");
  g_ptr_array_add (argv, "calldocker");
  g_ptr_array_add (argv, "--auth=trust");
  g_ptr_array_add (argv, "--encoding=UTF8");
  g_ptr_array_add (argv, "--locale=C");
  if (self->fast_unsafe)
    g_ptr_array_add (argv, "--no-sync");
  g_ptr_array_add (argv, NULL);

  g_info ("creating the embedded PostgreSQL database (first start)");
  launcher =
      launcher_new (self, self->pg_dir,
                    G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE, SIGKILL, TRUE);
  initdb = g_subprocess_launcher_spawnv (launcher, (const char *const *) argv->pdata, &error);
  if (initdb == NULL) {
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN,
                             "cannot run initdb: %s (is postgresql-15 installed?)", error->message);
    g_object_unref (task);
    return;
  }
  g_task_set_task_data (task, GINT_TO_POINTER (INIT_INITDB), NULL);
  g_subprocess_communicate_utf8_async (initdb, NULL, g_task_get_cancellable (task),
                                       on_init_step_done, task);
}

static void
start_servers (GTask *task)
{
  CdEmbeddedStores *self = g_task_get_source_object (task);

  if (self->with_postgres)
    child_spawn (&self->postgres);
  if (self->with_redis)
    child_spawn (&self->redis);
  g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static void
child_stop_now (Child *child, int sig)
{
  g_clear_handle_id (&child->restart_id, g_source_remove);
  child->stopping = TRUE;
  if (child->process != NULL)
    g_subprocess_send_signal (child->process, sig);
}

static void
cd_embedded_stores_dispose (GObject *object)
{
  CdEmbeddedStores *self = CD_EMBEDDED_STORES (object);
  Child *children[] = { &self->postgres, &self->redis };

  /* last resort: a stores object dropped without a stop kills its servers */
  for (gsize i = 0; i < G_N_ELEMENTS (children); i++) {
    Child *child = children[i];
    g_clear_handle_id (&child->restart_id, g_source_remove);
    if (child->process != NULL) {
      g_subprocess_force_exit (child->process);
      g_cancellable_cancel (child->wait_cancellable);
      g_clear_object (&child->process);
    }
    g_clear_object (&child->wait_cancellable);
  }
  g_clear_handle_id (&self->stop_timeout_id, g_source_remove);
  G_OBJECT_CLASS (cd_embedded_stores_parent_class)->dispose (object);
}

static void
cd_embedded_stores_finalize (GObject *object)
{
  CdEmbeddedStores *self = CD_EMBEDDED_STORES (object);

  g_free (self->state_dir);
  g_free (self->pg_dir);
  g_free (self->pg_data);
  g_free (self->redis_dir);
  g_free (self->redis_socket);
  g_free (self->pg_bindir);
  g_free (self->postgres.log_path);
  g_free (self->redis.log_path);
  G_OBJECT_CLASS (cd_embedded_stores_parent_class)->finalize (object);
}

static void
cd_embedded_stores_class_init (CdEmbeddedStoresClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = cd_embedded_stores_dispose;
  object_class->finalize = cd_embedded_stores_finalize;
}

static void
cd_embedded_stores_init (CdEmbeddedStores *self)
{
  self->postgres.owner = self;
  self->postgres.which = CD_EMBEDDED_POSTGRES;
  self->postgres.name = "PostgreSQL";
  self->redis.owner = self;
  self->redis.which = CD_EMBEDDED_REDIS;
  self->redis.name = "Redis";
}

/**
 * cd_embedded_stores_new:
 * @state_dir: the state folder (absolute or relative to the working folder)
 *
 * Returns: (transfer full): embedded servers, not yet started
 */
CdEmbeddedStores *
cd_embedded_stores_new (const char *state_dir, gboolean with_postgres, gboolean with_redis)
{
  CdEmbeddedStores *self = g_object_new (CD_TYPE_EMBEDDED_STORES, NULL);
  const char *bindir = g_getenv ("CALLDOCKER_PG_BINDIR");

  self->state_dir = g_canonicalize_filename (state_dir, NULL);
  self->pg_dir = g_build_filename (self->state_dir, "postgres", NULL);
  self->pg_data = g_build_filename (self->pg_dir, "data", NULL);
  self->redis_dir = g_build_filename (self->state_dir, "redis", NULL);
  self->redis_socket = g_build_filename (self->redis_dir, "redis.sock", NULL);
  self->postgres.log_path = g_build_filename (self->pg_dir, "server.log", NULL);
  self->redis.log_path = g_build_filename (self->redis_dir, "server.log", NULL);
  self->with_postgres = with_postgres;
  self->with_redis = with_redis;
  self->pg_bindir = g_strdup (bindir && *bindir ? bindir : PG_BINDIR_DEFAULT);
  self->run_uid = getuid ();
  self->run_gid = getgid ();
  if (geteuid () == 0) {
    struct passwd *pw = getpwnam ("postgres");
    self->drop_privileges = TRUE;
    if (pw != NULL) {
      self->run_uid = pw->pw_uid;
      self->run_gid = pw->pw_gid;
    } else {
      self->run_uid = 65534; /* nobody */
      self->run_gid = 65534;
    }
  }
  return self;
}

/**
 * cd_embedded_stores_set_fast_unsafe:
 *
 * For tests: no fsync. A crash of the machine can lose the database.
 */
void
cd_embedded_stores_set_fast_unsafe (CdEmbeddedStores *self, gboolean fast_unsafe)
{
  self->fast_unsafe = fast_unsafe;
}

/**
 * cd_embedded_stores_check:
 *
 * Checks, without starting anything, that the servers can run here:
 * binaries present, socket paths short enough, folders reachable.
 */
gboolean
cd_embedded_stores_check (CdEmbeddedStores *self, GError **error)
{
  struct sockaddr_un addr;
  g_autofree char *pg_socket = g_build_filename (self->pg_dir, ".s.PGSQL.5432", NULL);
  g_autofree char *postgres = pg_binary (self, "postgres");
  g_autofree char *redis = g_find_program_in_path ("redis-server");

  if (self->with_postgres && !g_file_test (postgres, G_FILE_TEST_IS_EXECUTABLE)) {
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN,
                 "the embedded PostgreSQL needs %s (apt-get install postgresql-15, or set "
                 "postgres.conninfo to use another server)",
                 postgres);
    return FALSE;
  }
  if (self->with_redis && redis == NULL) {
    g_set_error_literal (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN,
                         "the embedded Redis needs redis-server in PATH (apt-get install "
                         "redis-server, or set redis.url to use another server)");
    return FALSE;
  }
  if ((self->with_postgres && strlen (pg_socket) >= sizeof (addr.sun_path)) ||
      (self->with_redis && strlen (self->redis_socket) >= sizeof (addr.sun_path))) {
    g_set_error (error, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN,
                 "the state folder %s is too deep for unix sockets (at most %zu characters "
                 "in all): choose a shorter --state-dir",
                 self->state_dir, sizeof (addr.sun_path) - 1);
    return FALSE;
  }
  if (self->with_postgres && !check_reachable (self, error))
    return FALSE;
  return TRUE;
}

/**
 * cd_embedded_stores_start_async:
 *
 * Creates the folders, runs initdb on the first start, then starts the
 * servers. Completes once they are spawned; clients connect with retries.
 */
void
cd_embedded_stores_start_async (CdEmbeddedStores *self, GCancellable *cancellable,
                                GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);
  g_autoptr (GError) error = NULL;
  g_autofree char *version_file = g_build_filename (self->pg_data, "PG_VERSION", NULL);

  g_task_set_source_tag (task, cd_embedded_stores_start_async);
  if (self->started) {
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN, "already started");
    return;
  }
  self->started = TRUE;
  if (!cd_embedded_stores_check (self, &error) ||
      !ensure_dir (self, self->state_dir, self->drop_privileges ? 0711 : 0700, FALSE, &error) ||
      (self->with_postgres && !ensure_dir (self, self->pg_dir, 0700, TRUE, &error)) ||
      (self->with_redis && !ensure_dir (self, self->redis_dir, 0700, FALSE, &error))) {
    g_task_return_error (task, g_steal_pointer (&error));
    return;
  }
  if (self->with_postgres && !g_file_test (version_file, G_FILE_TEST_EXISTS))
    start_initdb (g_steal_pointer (&task));
  else
    start_servers (g_steal_pointer (&task));
}

gboolean
cd_embedded_stores_start_finish (CdEmbeddedStores *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

static gboolean
on_stop_timeout (gpointer user_data)
{
  CdEmbeddedStores *self = user_data;

  self->stop_timeout_id = 0;
  g_warning ("embedded servers did not stop in time; killing them");
  child_stop_now (&self->postgres, SIGKILL);
  child_stop_now (&self->redis, SIGKILL);
  return G_SOURCE_REMOVE;
}

/**
 * cd_embedded_stores_stop_async:
 * @timeout_s: after this, the servers are killed
 *
 * Stops Redis (SIGTERM) and PostgreSQL (SIGINT, a fast shutdown) and waits.
 */
void
cd_embedded_stores_stop_async (CdEmbeddedStores *self, guint timeout_s,
                               GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, NULL, callback, user_data);

  g_task_set_source_tag (task, cd_embedded_stores_stop_async);
  self->stopped = TRUE;
  child_stop_now (&self->redis, SIGTERM);
  child_stop_now (&self->postgres, SIGINT);
  if (self->postgres.process == NULL && self->redis.process == NULL) {
    g_task_return_boolean (task, TRUE);
    return;
  }
  if (self->stop_task != NULL) {
    g_task_return_new_error (task, CD_STORE_ERROR, CD_STORE_ERROR_SPAWN, "already stopping");
    return;
  }
  self->stop_task = g_steal_pointer (&task);
  self->stop_timeout_id = g_timeout_add_seconds (timeout_s, on_stop_timeout, self);
}

gboolean
cd_embedded_stores_stop_finish (CdEmbeddedStores *self, GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * cd_embedded_stores_get_pg_conninfo:
 *
 * Returns: (transfer full): the libpq connection string of the embedded server
 */
char *
cd_embedded_stores_get_pg_conninfo (CdEmbeddedStores *self)
{
  g_autoptr (GString) info = g_string_new ("host='");

  for (const char *p = self->pg_dir; *p; p++) {
    if (*p == '\'' || *p == '\\')
      g_string_append_c (info, '\\');
    g_string_append_c (info, *p);
  }
  g_string_append (info, "' dbname=calldocker user=calldocker");
  return g_string_free (g_steal_pointer (&info), FALSE);
}

/**
 * cd_embedded_stores_get_redis_address:
 *
 * Returns: (transfer full): the embedded Redis server's unix socket
 */
CdRedisAddress *
cd_embedded_stores_get_redis_address (CdEmbeddedStores *self)
{
  CdRedisAddress *address = g_new0 (CdRedisAddress, 1);

  address->transport = CD_REDIS_TRANSPORT_UNIX;
  address->path = g_strdup (self->redis_socket);
  return address;
}

/**
 * cd_embedded_stores_get_pid:
 *
 * Returns: the server's process id, or 0 while it is not running
 */
GPid
cd_embedded_stores_get_pid (CdEmbeddedStores *self, CdEmbeddedServer server)
{
  Child *child = server == CD_EMBEDDED_POSTGRES ? &self->postgres : &self->redis;
  const char *id;

  if (child->process == NULL)
    return 0;
  id = g_subprocess_get_identifier (child->process);
  return id ? (GPid) g_ascii_strtoll (id, NULL, 10) : 0;
}
