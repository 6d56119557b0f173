/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's country queues: which queue a visitor's call enters when
 * the visitor names none, by the visitor's country (docs/routing.md). */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CD_COUNTRY_QUEUES_ERROR (cd_country_queues_error_quark ())
GQuark cd_country_queues_error_quark (void);

typedef enum {
  CD_COUNTRY_QUEUES_ERROR_INVALID,
} CdCountryQueuesError;

#define CD_COUNTRY_QUEUES_MAX 300

/* {"DE": "QUEUE-UUID", "AT": "QUEUE-UUID"}: each key a two-letter country
 * code (ISO 3166-1 alpha-2, any case; not XX, which proxies use for
 * unknown), each value a queue id, at most CD_COUNTRY_QUEUES_MAX. The
 * answer spells codes in upper case and ids in lower case; the error
 * names the member that is wrong ("countries.DEU: ..."). */
JsonObject *cd_country_queues_parse (JsonObject *map, GError **error);

/* Whether @code is a country code as the map takes it; upper-cased into
 * @out. */
gboolean cd_country_code_normalize (const char *code, char out[3]);

G_END_DECLS
