/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdGeoip: the country of an IP address, from a MaxMind DB file (GeoLite2
 * or GeoIP2 Country or City, DB-IP, or any database with country.iso_code)
 * read through libmaxminddb. The file is mapped into memory when opened;
 * a look-up reads memory only, so it may run on the main loop. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _CdGeoip CdGeoip;

/* Opens @path; the error says why it cannot be used (missing, not a
 * MaxMind DB, no country data). */
CdGeoip *cd_geoip_open (const char *path, GError **error);
void cd_geoip_free (CdGeoip *geoip);

/* The two-letter country code (upper case) of @address (IPv4 or IPv6
 * text) into @country; FALSE when the address is not one, or the
 * database has no country for it. */
gboolean cd_geoip_country (CdGeoip *geoip, const char *address, char country[3]);

/* What the database says it is ("GeoLite2-Country, built 2026-11-24"). */
const char *cd_geoip_describe (CdGeoip *geoip);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdGeoip, cd_geoip_free)

G_END_DECLS
