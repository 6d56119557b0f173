/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Bounded JSON parsing for input that comes from outside: size and nesting
 * are checked by a cheap scan before json-glib sees the text. */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CD_JSON_ERROR (cd_json_error_quark ())

typedef enum {
  CD_JSON_ERROR_TOO_LARGE,
  CD_JSON_ERROR_TOO_DEEP,
  CD_JSON_ERROR_SYNTAX,
  CD_JSON_ERROR_DUPLICATE_KEY,
  CD_JSON_ERROR_NOT_OBJECT,
} CdJsonError;

GQuark cd_json_error_quark (void);

typedef struct {
  gsize max_bytes; /* 0: no limit */
  guint max_depth; /* 0: no limit */
  gboolean allow_duplicate_keys;
} CdJsonLimits;

#define CD_JSON_DEFAULT_MAX_DEPTH 32

JsonNode *cd_json_parse_bounded (const char *data, gsize length, const CdJsonLimits *limits,
                                 GError **error);

JsonObject *cd_json_parse_object (const char *data, gsize length, const CdJsonLimits *limits,
                                  GError **error);

char *cd_json_to_string (JsonNode *node);

G_END_DECLS
