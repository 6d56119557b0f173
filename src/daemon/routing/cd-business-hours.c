/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Business hours: local wall-clock intervals by weekday, so a daylight
 * saving change moves them with the clocks on the wall. */

#define G_LOG_DOMAIN "calldocker-routing"

#include "routing/cd-business-hours.h"

#include <stdlib.h>
#include <string.h>

G_DEFINE_QUARK (cd - business - hours - error - quark, cd_business_hours_error)

#define MAX_INTERVALS 8 /* a day */
#define MAX_HOLIDAYS  400

typedef struct {
  guint16 start, end; /* minutes after local midnight, start < end <= 1440 */
} Interval;

struct _CdBusinessHours {
  GTimeZone *zone;
  Interval days[7][MAX_INTERVALS]; /* Monday first */
  guint n[7];
  guint32 *holidays; /* YYYYMMDD, sorted */
  guint n_holidays;
};

static const char *const day_names[] = { "mon", "tue", "wed", "thu", "fri", "sat", "sun" };

static gboolean invalid (GError **error, const char *format, ...) G_GNUC_PRINTF (2, 3);

static gboolean
invalid (GError **error, const char *format, ...)
{
  va_list args;

  if (error == NULL)
    return FALSE;
  g_return_val_if_fail (*error == NULL, FALSE);
  va_start (args, format);
  *error =
      g_error_new_valist (CD_BUSINESS_HOURS_ERROR, CD_BUSINESS_HOURS_ERROR_INVALID, format, args);
  va_end (args);
  return FALSE;
}

/* "HH:MM" at @s: minutes, or -1 */
static int
parse_clock (const char *s)
{
  int h, m;

  if (!g_ascii_isdigit (s[0]) || !g_ascii_isdigit (s[1]) || s[2] != ':' ||
      !g_ascii_isdigit (s[3]) || !g_ascii_isdigit (s[4]))
    return -1;
  h = (s[0] - '0') * 10 + (s[1] - '0');
  m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && m != 0))
    return -1;
  return h * 60 + m;
}

static gboolean
parse_interval (const char *text, Interval *out, const char *where, GError **error)
{
  int start, end;

  if (strlen (text) != 11 || text[5] != '-' || (start = parse_clock (text)) < 0 ||
      (end = parse_clock (text + 6)) < 0)
    return invalid (error, "%s: expected \"HH:MM-HH:MM\" (00:00 to 24:00), not \"%.20s\"", where,
                    text);
  if (start >= end)
    return invalid (error, "%s: \"%s\" ends before it starts (an interval stays within its day)",
                    where, text);
  out->start = (guint16) start;
  out->end = (guint16) end;
  return TRUE;
}

static gboolean
parse_weekly (CdBusinessHours *self, JsonObject *weekly, GError **error)
{
  g_autoptr (GList) members = json_object_get_members (weekly);

  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (weekly, name);
    JsonArray *list;
    int day = -1;

    for (int d = 0; d < 7; d++)
      if (g_str_equal (name, day_names[d]))
        day = d;
    if (day < 0)
      return invalid (error, "weekly: \"%.20s\" is not a day (mon, tue, wed, thu, fri, sat, sun)",
                      name);
    if (!JSON_NODE_HOLDS_ARRAY (node))
      return invalid (error, "weekly.%s: expected a list of \"HH:MM-HH:MM\"", name);
    list = json_node_get_array (node);
    if (json_array_get_length (list) > MAX_INTERVALS)
      return invalid (error, "weekly.%s: at most %d intervals a day", name, MAX_INTERVALS);
    for (guint i = 0; i < json_array_get_length (list); i++) {
      JsonNode *item = json_array_get_element (list, i);
      g_autofree char *where = g_strdup_printf ("weekly.%s[%u]", name, i);

      if (!JSON_NODE_HOLDS_VALUE (item) || json_node_get_value_type (item) != G_TYPE_STRING)
        return invalid (error, "%s: expected \"HH:MM-HH:MM\"", where);
      if (!parse_interval (json_node_get_string (item), &self->days[day][self->n[day]], where,
                           error))
        return FALSE;
      self->n[day]++;
    }
  }
  return TRUE;
}

/* "Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Etc/GMT+1":
 * a name in the system's time zone database, never a path or a POSIX TZ
 * rule (which GLib would also take) */
static gboolean
is_zone_name (const char *zone)
{
  gsize n = strlen (zone);
  const char *dir = g_getenv ("TZDIR");
  g_autofree char *file = NULL;

  if (n < 1 || n > 64 || !g_ascii_isalpha (zone[0]) || zone[n - 1] == '/' || strstr (zone, "//") ||
      strstr (zone, ".."))
    return FALSE;
  for (const char *p = zone; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '/' && *p != '_' && *p != '-' && *p != '+')
      return FALSE;
  file = g_build_filename (dir && *dir ? dir : "/usr/share/zoneinfo", zone, NULL);
  return g_file_test (file, G_FILE_TEST_IS_REGULAR);
}

static int
compare_u32 (gconstpointer a, gconstpointer b)
{
  guint32 x = *(const guint32 *) a, y = *(const guint32 *) b;
  return x < y ? -1 : x > y;
}

/* "YYYY-MM-DD", digits where digits go */
static gboolean
is_date (const char *s, int *y, int *m, int *d)
{
  for (int i = 0; i < 10; i++)
    if (s[i] == '\0' || ((i == 4 || i == 7) ? s[i] != '-' : !g_ascii_isdigit (s[i])))
      return FALSE;
  if (s[10] != '\0')
    return FALSE;
  *y = atoi (s);
  *m = atoi (s + 5);
  *d = atoi (s + 8);
  return *y >= 1 && *m >= 1 && *m <= 12 && *d >= 1 && *d <= 31;
}

static gboolean
parse_holidays (CdBusinessHours *self, JsonArray *list, GError **error)
{
  guint n = json_array_get_length (list);

  if (n > MAX_HOLIDAYS)
    return invalid (error, "holidays: at most %d dates", MAX_HOLIDAYS);
  self->holidays = g_new0 (guint32, MAX (n, 1));
  for (guint i = 0; i < n; i++) {
    JsonNode *item = json_array_get_element (list, i);
    const char *s;
    int y, m, d;

    if (!JSON_NODE_HOLDS_VALUE (item) || json_node_get_value_type (item) != G_TYPE_STRING)
      return invalid (error, "holidays[%u]: expected \"YYYY-MM-DD\"", i);
    s = json_node_get_string (item);
    if (!is_date (s, &y, &m, &d) || !g_date_valid_dmy ((GDateDay) d, (GDateMonth) m, (GDateYear) y))
      return invalid (error, "holidays[%u]: expected a date \"YYYY-MM-DD\", not \"%.20s\"", i, s);
    self->holidays[self->n_holidays++] = (guint32) (y * 10000 + m * 100 + d);
  }
  qsort (self->holidays, self->n_holidays, sizeof (guint32), compare_u32);
  return TRUE;
}

/**
 * cd_business_hours_parse:
 *
 * Returns: (transfer full): the hours, or %NULL with @error naming the
 * field that is wrong.
 */
CdBusinessHours *
cd_business_hours_parse (JsonObject *spec, GError **error)
{
  g_autoptr (CdBusinessHours) self = g_new0 (CdBusinessHours, 1);
  const char *zone = NULL;
  JsonNode *node;
  g_autoptr (GList) members = json_object_get_members (spec);

  for (GList *l = members; l; l = l->next)
    if (!g_str_equal (l->data, "time_zone") && !g_str_equal (l->data, "weekly") &&
        !g_str_equal (l->data, "holidays")) {
      invalid (error, "\"%.40s\" is not a field of business hours (time_zone, weekly, holidays)",
               (const char *) l->data);
      return NULL;
    }
  node = json_object_get_member (spec, "time_zone");
  if (node == NULL || !JSON_NODE_HOLDS_VALUE (node) ||
      json_node_get_value_type (node) != G_TYPE_STRING) {
    invalid (error, "time_zone: required, an IANA name such as \"Europe/Berlin\"");
    return NULL;
  }
  zone = json_node_get_string (node);
  if (!is_zone_name (zone) || (self->zone = g_time_zone_new_identifier (zone)) == NULL) {
    invalid (error, "time_zone: \"%.64s\" is not a known time zone", zone);
    return NULL;
  }
  node = json_object_get_member (spec, "weekly");
  if (node && !JSON_NODE_HOLDS_OBJECT (node)) {
    invalid (error, "weekly: expected an object of days");
    return NULL;
  }
  if (node && !parse_weekly (self, json_node_get_object (node), error))
    return NULL;
  node = json_object_get_member (spec, "holidays");
  if (node && !JSON_NODE_HOLDS_ARRAY (node)) {
    invalid (error, "holidays: expected a list of dates");
    return NULL;
  }
  if (node && !parse_holidays (self, json_node_get_array (node), error))
    return NULL;
  return g_steal_pointer (&self);
}

/**
 * cd_business_hours_is_open:
 * @now: any instant, in any time zone
 */
gboolean
cd_business_hours_is_open (const CdBusinessHours *hours, GDateTime *now)
{
  g_autoptr (GDateTime) local = g_date_time_to_timezone (now, hours->zone);
  guint32 date =
      (guint32) (g_date_time_get_year (local) * 10000 + g_date_time_get_month (local) * 100 +
                 g_date_time_get_day_of_month (local));
  int day = g_date_time_get_day_of_week (local) - 1;
  int minute = g_date_time_get_hour (local) * 60 + g_date_time_get_minute (local);

  if (hours->n_holidays > 0 &&
      bsearch (&date, hours->holidays, hours->n_holidays, sizeof (guint32), compare_u32))
    return FALSE;
  for (guint i = 0; i < hours->n[day]; i++)
    if (minute >= hours->days[day][i].start && minute < hours->days[day][i].end)
      return TRUE;
  return FALSE;
}

void
cd_business_hours_free (CdBusinessHours *hours)
{
  if (hours == NULL)
    return;
  g_clear_pointer (&hours->zone, g_time_zone_unref);
  g_free (hours->holidays);
  g_free (hours);
}
