/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Request bodies: JSON read with bounds, then checked against a declared
 * table of fields before any handler code runs. */
#pragma once

#include <json-glib/json-glib.h>

#include "cd-http-router.h"

G_BEGIN_DECLS

typedef enum {
  CD_FIELD_STRING, /* min/max: length in characters */
  CD_FIELD_TEXT,   /* like STRING, with CRLF line ends allowed (SDP) */
  CD_FIELD_EMAIL,  /* 3..254 bytes, one @, no spaces or controls */
  CD_FIELD_SECRET, /* a string never echoed in errors; min/max: bytes */
  CD_FIELD_UUID,
  CD_FIELD_INT, /* min/max: value */
  CD_FIELD_BOOL,
  CD_FIELD_STRING_ARRAY, /* min/max: element count; elements 1..200 characters */
  CD_FIELD_OBJECT,       /* min/max: member count */
} CdFieldType;

typedef struct {
  const char *name;
  CdFieldType type;
  gboolean required;
  gint64 min;
  gint64 max;
} CdField;

gboolean cd_fields_validate (JsonObject *object, const CdField *fields, gsize n_fields,
                             GError **error);
JsonObject *cd_http_request_read_json (CdHttpRequest *request, const CdField *fields,
                                       gsize n_fields, GError **error);
gboolean cd_is_email (const char *text);

G_END_DECLS
