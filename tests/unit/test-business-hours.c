/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Business hours against a fixed clock: weekdays, holidays, time zones and
 * both daylight saving changes; and every refusal. */

#include "cd-json.h"
#include "routing/cd-business-hours.h"

#include <string.h>

static CdBusinessHours *
parse (const char *json, GError **error)
{
  g_autoptr (JsonObject) spec = cd_json_parse_object (json, strlen (json), NULL, NULL);

  g_assert_nonnull (spec);
  return cd_business_hours_parse (spec, error);
}

/* Open at the UTC instant @iso? */
static gboolean
open_at (const CdBusinessHours *hours, const char *iso)
{
  g_autoptr (GDateTime) t = g_date_time_new_from_iso8601 (iso, NULL);

  g_assert_nonnull (t);
  return cd_business_hours_is_open (hours, t);
}

static void
test_weekly_and_holidays (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdBusinessHours) hours =
      parse ("{\"time_zone\":\"Europe/Berlin\",\"weekly\":{\"mon\":[\"09:00-12:30\","
             "\"13:30-17:00\"],\"sat\":[\"10:00-24:00\"]},\"holidays\":[\"2026-12-28\"]}",
             &error);

  g_assert_no_error (error);
  /* Monday 2026-11-30, Berlin is UTC+1 */
  g_assert_false (open_at (hours, "2026-11-30T07:59:00Z"));
  g_assert_true (open_at (hours, "2026-11-30T08:00:00Z"));
  g_assert_true (open_at (hours, "2026-11-30T11:29:59Z"));
  g_assert_false (open_at (hours, "2026-11-30T11:30:00Z")); /* lunch */
  g_assert_true (open_at (hours, "2026-11-30T12:30:00Z"));
  g_assert_false (open_at (hours, "2026-11-30T16:00:00Z")); /* 17:00: closed */
  /* the same instant written in another zone is the same instant */
  g_assert_true (open_at (hours, "2026-11-30T03:00:00-05:00"));
  /* Tuesday: not listed, closed */
  g_assert_false (open_at (hours, "2026-12-01T10:00:00Z"));
  /* Saturday until midnight local: 23:30 UTC is Sunday 00:30 in Berlin */
  g_assert_true (open_at (hours, "2026-12-05T22:59:00Z"));
  g_assert_false (open_at (hours, "2026-12-05T23:00:00Z"));
  /* Monday 2026-12-28 is a holiday; the Monday after is not */
  g_assert_false (open_at (hours, "2026-12-28T10:00:00Z"));
  g_assert_true (open_at (hours, "2027-01-04T10:00:00Z"));
}

static void
test_daylight_saving (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdBusinessHours) hours =
      parse ("{\"time_zone\":\"Europe/Berlin\",\"weekly\":{\"mon\":[\"09:00-17:00\"],"
             "\"sun\":[\"00:00-02:30\"]}}",
             &error);
  g_autoptr (CdBusinessHours) night =
      parse ("{\"time_zone\":\"Europe/Berlin\",\"weekly\":{\"sun\":[\"02:00-02:30\"]}}", &error);

  g_assert_no_error (error);
  /* 09:00 on the wall: 08:00 UTC in winter, 07:00 UTC after 2026-03-29 */
  g_assert_false (open_at (hours, "2026-03-23T07:30:00Z"));
  g_assert_true (open_at (hours, "2026-03-23T08:00:00Z"));
  g_assert_true (open_at (hours, "2026-03-30T07:30:00Z"));
  g_assert_false (open_at (hours, "2026-03-30T15:30:00Z")); /* 17:30 CEST */
  g_assert_true (open_at (hours, "2026-03-23T15:30:00Z"));  /* 16:30 CET */
  /* the night the clocks go forward (02:00 CET -> 03:00 CEST at 01:00 UTC):
   * 02:00-02:30 never happens, so the Sunday interval ends at 01:00 UTC */
  g_assert_true (open_at (hours, "2026-03-29T00:59:00Z"));  /* 01:59 CET */
  g_assert_false (open_at (hours, "2026-03-29T01:00:00Z")); /* 03:00 CEST */
  /* the night they go back (03:00 CEST -> 02:00 CET at 01:00 UTC):
   * 02:00-02:30 happens twice, open both times */
  g_assert_true (open_at (night, "2026-10-25T00:15:00Z"));  /* 02:15 CEST */
  g_assert_false (open_at (night, "2026-10-25T00:45:00Z")); /* 02:45 CEST */
  g_assert_true (open_at (night, "2026-10-25T01:15:00Z"));  /* 02:15 CET */
  g_assert_false (open_at (night, "2026-10-25T01:30:00Z")); /* 02:30 CET */
}

static void
test_other_zones (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (CdBusinessHours) tokyo =
      parse ("{\"time_zone\":\"Asia/Tokyo\",\"weekly\":{\"tue\":[\"00:00-01:00\"]}}", &error);
  g_autoptr (CdBusinessHours) utc = parse ("{\"time_zone\":\"UTC\"}", &error);
  g_autoptr (CdBusinessHours) buenos_aires =
      parse ("{\"time_zone\":\"America/Argentina/Buenos_Aires\"}", &error);
  g_autoptr (CdBusinessHours) gmt_plus = parse ("{\"time_zone\":\"Etc/GMT+1\"}", &error);

  g_assert_no_error (error);
  g_assert_nonnull (buenos_aires);
  g_assert_nonnull (gmt_plus);
  /* Tuesday 00:30 in Tokyo is Monday 15:30 UTC */
  g_assert_true (open_at (tokyo, "2026-11-30T15:30:00Z"));
  g_assert_false (open_at (tokyo, "2026-12-01T00:30:00Z"));
  /* no weekly hours: never open */
  g_assert_false (open_at (utc, "2026-11-30T12:00:00Z"));
}

static void
test_refused (void)
{
  static const struct {
    const char *json, *message;
  } bad[] = {
    { "{}", "time_zone: required, an IANA name such as \"Europe/Berlin\"" },
    { "{\"time_zone\":3}", "time_zone: required, an IANA name such as \"Europe/Berlin\"" },
    { "{\"time_zone\":\"Mars/Olympus\"}", "time_zone: \"Mars/Olympus\" is not a known time zone" },
    /* names only: never a file, a path out of the zone folder or a POSIX rule */
    { "{\"time_zone\":\"/etc/passwd\"}", "time_zone: \"/etc/passwd\" is not a known time zone" },
    { "{\"time_zone\":\"../../../proc/self/environ\"}",
      "time_zone: \"../../../proc/self/environ\" is not a known time zone" },
    { "{\"time_zone\":\":Europe/Berlin\"}",
      "time_zone: \":Europe/Berlin\" is not a known time zone" },
    { "{\"time_zone\":\"XXX-14\"}", "time_zone: \"XXX-14\" is not a known time zone" },
    { "{\"time_zone\":\"UTC\",\"open\":true}",
      "\"open\" is not a field of business hours (time_zone, weekly, holidays)" },
    { "{\"time_zone\":\"UTC\",\"weekly\":[]}", "weekly: expected an object of days" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"monday\":[]}}",
      "weekly: \"monday\" is not a day (mon, tue, wed, thu, fri, sat, sun)" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":\"09:00-17:00\"}}",
      "weekly.mon: expected a list of \"HH:MM-HH:MM\"" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":[9]}}",
      "weekly.mon[0]: expected \"HH:MM-HH:MM\"" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":[\"9-17\"]}}",
      "weekly.mon[0]: expected \"HH:MM-HH:MM\" (00:00 to 24:00), not \"9-17\"" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"tue\":[\"09:00-17:00\",\"24:30-25:00\"]}}",
      "weekly.tue[1]: expected \"HH:MM-HH:MM\" (00:00 to 24:00), not \"24:30-25:00\"" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":[\"09:60-17:00\"]}}",
      "weekly.mon[0]: expected \"HH:MM-HH:MM\" (00:00 to 24:00), not \"09:60-17:00\"" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":[\"22:00-02:00\"]}}",
      "weekly.mon[0]: \"22:00-02:00\" ends before it starts (an interval stays within its day)" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":[\"09:00-09:00\"]}}",
      "weekly.mon[0]: \"09:00-09:00\" ends before it starts (an interval stays within its day)" },
    { "{\"time_zone\":\"UTC\",\"weekly\":{\"mon\":[\"00:00-01:00\",\"01:00-02:00\","
      "\"02:00-03:00\",\"03:00-04:00\",\"04:00-05:00\",\"05:00-06:00\",\"06:00-07:00\","
      "\"07:00-08:00\",\"08:00-09:00\"]}}",
      "weekly.mon: at most 8 intervals a day" },
    { "{\"time_zone\":\"UTC\",\"holidays\":\"2026-12-25\"}", "holidays: expected a list of dates" },
    { "{\"time_zone\":\"UTC\",\"holidays\":[20261225]}", "holidays[0]: expected \"YYYY-MM-DD\"" },
    { "{\"time_zone\":\"UTC\",\"holidays\":[\"2026-12-25\",\"2026-02-30\"]}",
      "holidays[1]: expected a date \"YYYY-MM-DD\", not \"2026-02-30\"" },
    { "{\"time_zone\":\"UTC\",\"holidays\":[\"+026-12-25\"]}",
      "holidays[0]: expected a date \"YYYY-MM-DD\", not \"+026-12-25\"" },
    { "{\"time_zone\":\"UTC\",\"holidays\":[\"2026-12-25 \"]}",
      "holidays[0]: expected a date \"YYYY-MM-DD\", not \"2026-12-25 \"" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (CdBusinessHours) hours = parse (bad[i].json, &error);

    g_test_message ("%s", bad[i].json);
    g_assert_null (hours);
    g_assert_error (error, CD_BUSINESS_HOURS_ERROR, CD_BUSINESS_HOURS_ERROR_INVALID);
    g_assert_cmpstr (error->message, ==, bad[i].message);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/business-hours/weekly-and-holidays", test_weekly_and_holidays);
  g_test_add_func ("/business-hours/daylight-saving", test_daylight_saving);
  g_test_add_func ("/business-hours/other-zones", test_other_zones);
  g_test_add_func ("/business-hours/refused", test_refused);
  return g_test_run ();
}
