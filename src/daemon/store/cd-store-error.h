/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Errors of the store layer (PostgreSQL, Redis, the embedded servers). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CD_STORE_ERROR (cd_store_error_quark ())

typedef enum {
  CD_STORE_ERROR_UNAVAILABLE, /* no connection to the server right now */
  CD_STORE_ERROR_TIMED_OUT,   /* no answer in time */
  CD_STORE_ERROR_QUERY,       /* the server refused the statement */
  CD_STORE_ERROR_CONSTRAINT,  /* SQLSTATE class 23: unique, foreign key, check */
  CD_STORE_ERROR_CLOSED,      /* the pool or client was closed */
  CD_STORE_ERROR_MIGRATION,   /* a migration file is missing, malformed or failed */
  CD_STORE_ERROR_SPAWN,       /* an embedded server could not be started */
  CD_STORE_ERROR_LOCKED,      /* another daemon holds the state folder */
} CdStoreError;

GQuark cd_store_error_quark (void);

/* A CD_STORE_ERROR_CONSTRAINT from a foreign key (SQLSTATE 23503). */
gboolean cd_store_error_is_foreign_key (const GError *error);

G_END_DECLS
