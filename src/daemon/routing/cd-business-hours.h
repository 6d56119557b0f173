/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A queue's business hours: weekly opening intervals in a time zone, and
 * holidays, checked against any instant (the caller's clock). */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

#define CD_BUSINESS_HOURS_ERROR (cd_business_hours_error_quark ())
GQuark cd_business_hours_error_quark (void);

typedef enum {
  CD_BUSINESS_HOURS_ERROR_INVALID,
} CdBusinessHoursError;

typedef struct _CdBusinessHours CdBusinessHours;

/* {"time_zone": "Europe/Berlin",
 *  "weekly": {"mon": ["09:00-12:30", "13:30-17:00"], ..., "sun": []},
 *  "holidays": ["2026-12-25"]}
 * Days left out are closed; "24:00" ends a day. The error names the field. */
CdBusinessHours *cd_business_hours_parse (JsonObject *spec, GError **error);
gboolean cd_business_hours_is_open (const CdBusinessHours *hours, GDateTime *now);
void cd_business_hours_free (CdBusinessHours *hours);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdBusinessHours, cd_business_hours_free)

G_END_DECLS
