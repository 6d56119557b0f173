/* SPDX-License-Identifier: GPL-3.0-or-later */

#define G_LOG_DOMAIN "calldocker-routing"

#include "cd-geoip.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <errno.h>
#include <maxminddb.h>
#include <string.h>

struct _CdGeoip {
  MMDB_s db;
  char *description;
};

CdGeoip *
cd_geoip_open (const char *path, GError **error)
{
  CdGeoip *geoip;
  GStatBuf st;
  int status, saved_errno;
  g_autoptr (GDateTime) built = NULL;
  g_autofree char *built_text = NULL;

  /* what libmaxminddb would only call "Invalid argument" */
  if (g_stat (path, &st) == 0 && (S_ISDIR (st.st_mode) || st.st_size == 0)) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "GeoIP database %s: %s", path,
                 S_ISDIR (st.st_mode) ? "is a directory, not a MaxMind DB file"
                                      : "is empty (a download that failed?)");
    return NULL;
  }
  geoip = g_new0 (CdGeoip, 1);
  status = MMDB_open (path, MMDB_MODE_MMAP, &geoip->db);
  saved_errno = errno;
  if (status != MMDB_SUCCESS) {
    /* the system's reason when there is one (no such file, permission) */
    g_set_error (
        error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "GeoIP database %s: %s%s%s", path,
        MMDB_strerror (status),
        status == MMDB_IO_ERROR || status == MMDB_FILE_OPEN_ERROR ? ": " : "",
        status == MMDB_IO_ERROR || status == MMDB_FILE_OPEN_ERROR ? g_strerror (saved_errno) : "");
    g_free (geoip);
    return NULL;
  }
  built = g_date_time_new_from_unix_utc ((gint64) geoip->db.metadata.build_epoch);
  built_text = built ? g_date_time_format (built, "%Y-%m-%d") : g_strdup ("?");
  geoip->description =
      g_strdup_printf ("%s, built %s", geoip->db.metadata.database_type, built_text);
  /* a database that cannot say countries is a mistake in the config */
  if (strstr (geoip->db.metadata.database_type, "ASN") != NULL ||
      strstr (geoip->db.metadata.database_type, "ISP") != NULL) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "GeoIP database %s (%s) has no countries: use a Country or City database", path,
                 geoip->description);
    cd_geoip_free (geoip);
    return NULL;
  }
  return geoip;
}

void
cd_geoip_free (CdGeoip *geoip)
{
  if (geoip == NULL)
    return;
  MMDB_close (&geoip->db);
  g_free (geoip->description);
  g_free (geoip);
}

const char *
cd_geoip_describe (CdGeoip *geoip)
{
  return geoip->description;
}

gboolean
cd_geoip_country (CdGeoip *geoip, const char *address, char country[3])
{
  int gai_error = 0, status = MMDB_SUCCESS;
  MMDB_lookup_result_s found;
  MMDB_entry_data_s data;

  country[0] = '\0';
  if (address == NULL)
    return FALSE;
  /* an IPv4 client of a dual-stack socket: its IPv4 address */
  if (g_ascii_strncasecmp (address, "::ffff:", 7) == 0 && strchr (address + 7, '.'))
    address += 7;
  found = MMDB_lookup_string (&geoip->db, address, &gai_error, &status);
  if (gai_error != 0 || status != MMDB_SUCCESS || !found.found_entry)
    return FALSE;
  /* the country of the network; else where it is registered */
  if (MMDB_get_value (&found.entry, &data, "country", "iso_code", NULL) != MMDB_SUCCESS ||
      !data.has_data) {
    if (MMDB_get_value (&found.entry, &data, "registered_country", "iso_code", NULL) !=
            MMDB_SUCCESS ||
        !data.has_data)
      return FALSE;
  }
  if (data.type != MMDB_DATA_TYPE_UTF8_STRING || data.data_size != 2 ||
      !g_ascii_isalpha (data.utf8_string[0]) || !g_ascii_isalpha (data.utf8_string[1]))
    return FALSE;
  country[0] = g_ascii_toupper (data.utf8_string[0]);
  country[1] = g_ascii_toupper (data.utf8_string[1]);
  country[2] = '\0';
  return TRUE;
}
