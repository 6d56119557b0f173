/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A company's country queues as the API takes them (and every refusal),
 * and the visitor's country from a MaxMind DB written for the test. */

#include "cd-json.h"
#include "cd-test-harness.h"
#include "routing/cd-country-queues.h"
#include "routing/cd-geoip.h"

#include <string.h>

#define QUEUE_A "6f1c1f0e-5a4b-4c3d-9e8f-0123456789ab"
#define QUEUE_B "0b7f2a55-1c2d-4e3f-8a9b-abcdefabcdef"

static char *dir;

static JsonObject *
parse (const char *json, GError **error)
{
  g_autoptr (JsonObject) map = cd_json_parse_object (json, strlen (json), NULL, NULL);

  g_assert_nonnull (map);
  return cd_country_queues_parse (map, error);
}

static void
test_countries_accepted (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) map =
      parse ("{\"de\":\"" QUEUE_A "\",\"AT\":\"" QUEUE_A "\",\"Fr\":\"6F1C1F0E-5A4B-4C3D-9E8F-"
             "0123456789AB\",\"JP\":\"" QUEUE_B "\"}",
             &error);
  g_autoptr (JsonObject) empty = parse ("{}", &error);

  g_assert_no_error (error);
  /* codes in upper case, ids in lower case */
  g_assert_cmpuint (json_object_get_size (map), ==, 4);
  g_assert_cmpstr (json_object_get_string_member (map, "DE"), ==, QUEUE_A);
  g_assert_cmpstr (json_object_get_string_member (map, "AT"), ==, QUEUE_A);
  g_assert_cmpstr (json_object_get_string_member (map, "FR"), ==, QUEUE_A);
  g_assert_cmpstr (json_object_get_string_member (map, "JP"), ==, QUEUE_B);
  g_assert_false (json_object_has_member (map, "de"));
  /* an empty map clears it */
  g_assert_nonnull (empty);
  g_assert_cmpuint (json_object_get_size (empty), ==, 0);
}

static void
test_countries_refused (void)
{
  static const struct {
    const char *json;
    const char *message;
  } cases[] = {
    { "{\"DEU\":\"" QUEUE_A "\"}", "countries.DEU: not a two-letter country code" },
    { "{\"D\":\"" QUEUE_A "\"}", "countries.D: not a two-letter country code" },
    { "{\"\":\"" QUEUE_A "\"}", "countries.: not a two-letter country code" },
    { "{\"D1\":\"" QUEUE_A "\"}", "countries.D1: not a two-letter country code" },
    { "{\"xx\":\"" QUEUE_A "\"}", "countries.xx: not a two-letter country code" },
    /* a long name is cut to 40 bytes where UTF-8 allows */
    { "{\"aääääääääääääääääääääääääääääääääääää\":1}",
      "countries.a"
      "äääääääääääääääääää\xef\xbf\xbd: not a two" /* 19 ä and the half of one, made valid */ },
    { "{\"DE\":\"sales\"}", "countries.DE: the value is a queue id (UUID)" },
    { "{\"DE\":42}", "countries.DE: the value is a queue id (UUID)" },
    { "{\"DE\":null}", "countries.DE: the value is a queue id (UUID)" },
    { "{\"DE\":[\"" QUEUE_A "\"]}", "countries.DE: the value is a queue id (UUID)" },
    { "{\"DE\":\"" QUEUE_A "\",\"de\":\"" QUEUE_B "\"}", "countries.DE: listed twice" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (JsonObject) map = parse (cases[i].json, &error);

    g_assert_null (map);
    g_assert_error (error, CD_COUNTRY_QUEUES_ERROR, CD_COUNTRY_QUEUES_ERROR_INVALID);
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    g_assert_true (g_str_has_prefix (error->message, cases[i].message));
  }
  /* at most CD_COUNTRY_QUEUES_MAX */
  {
    g_autoptr (JsonObject) many = json_object_new ();
    g_autoptr (GError) error = NULL;
    guint n = 0;

    for (char a = 'A'; a <= 'Z'; a++)
      for (char b = 'A'; b <= 'Z' && n <= CD_COUNTRY_QUEUES_MAX; b++, n++) {
        char code[3] = { a, b, 0 };
        json_object_set_string_member (many, code, QUEUE_A);
      }
    g_assert_null (cd_country_queues_parse (many, &error));
    g_assert_true (g_str_has_prefix (error->message, "countries: at most 300"));
  }
}

static void
test_country_codes (void)
{
  char out[3];

  g_assert_true (cd_country_code_normalize ("de", out));
  g_assert_cmpstr (out, ==, "DE");
  g_assert_true (cd_country_code_normalize ("Us", out));
  g_assert_cmpstr (out, ==, "US");
  for (const char *const *bad =
           (const char *const[]){ "XX", "xx", "T1", "D", "DEU", "", "1A", "d-", NULL };
       *bad; bad++) {
    g_assert_false (cd_country_code_normalize (*bad, out));
    g_assert_cmpstr (out, ==, "");
  }
  g_assert_false (cd_country_code_normalize (NULL, out));
}

static void
test_geoip_lookup (void)
{
  g_autofree char *path = g_build_filename (dir, "country.mmdb", NULL);
  const char *networks[] = { "127.0.0.0/8=FR", "203.0.113.0/24=de", "2001:db8::/32=JP", NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (CdGeoip) geoip = NULL;
  char country[3];

  cd_test_make_geoip (path, "GeoLite2-Country", networks);
  geoip = cd_geoip_open (path, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (cd_geoip_describe (geoip), "GeoLite2-Country, built "));
  g_assert_true (cd_geoip_country (geoip, "127.0.0.1", country));
  g_assert_cmpstr (country, ==, "FR");
  /* upper case whatever the database says */
  g_assert_true (cd_geoip_country (geoip, "203.0.113.77", country));
  g_assert_cmpstr (country, ==, "DE");
  g_assert_true (cd_geoip_country (geoip, "2001:db8::1", country));
  g_assert_cmpstr (country, ==, "JP");
  /* the IPv4-mapped IPv6 spelling of the same address */
  g_assert_true (cd_geoip_country (geoip, "::ffff:127.0.0.1", country));
  g_assert_cmpstr (country, ==, "FR");
  /* not in it, or no address */
  for (const char *const *none = (const char *const[]){ "198.51.100.1", "2001:db9::1", "localhost",
                                                        "", "1.2.3", "127.0.0.1 ", "[::1]", NULL };
       *none; none++) {
    g_assert_false (cd_geoip_country (geoip, *none, country));
    g_assert_cmpstr (country, ==, "");
  }
  g_assert_false (cd_geoip_country (geoip, NULL, country));
}

static void
test_geoip_refused (void)
{
  g_autofree char *missing = g_build_filename (dir, "missing.mmdb", NULL);
  g_autofree char *text = g_build_filename (dir, "text.mmdb", NULL);
  g_autofree char *asn = g_build_filename (dir, "asn.mmdb", NULL);
  const char *networks[] = { "127.0.0.0/8=FR", NULL };
  g_autoptr (GError) error = NULL;

  g_assert_null (cd_geoip_open (missing, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_nonnull (strstr (error->message, missing));
  g_assert_nonnull (strstr (error->message, "No such file"));
  g_clear_error (&error);

  g_assert_true (g_file_set_contents (text, "not a database\n", -1, NULL));
  g_assert_null (cd_geoip_open (text, &error));
  g_assert_nonnull (strstr (error->message, text));
  g_clear_error (&error);

  /* an empty file, a folder: said as such */
  g_assert_true (g_file_set_contents (text, "", 0, NULL));
  g_assert_null (cd_geoip_open (text, &error));
  g_assert_nonnull (strstr (error->message, "is empty"));
  g_clear_error (&error);
  g_assert_null (cd_geoip_open (dir, &error));
  g_assert_nonnull (strstr (error->message, "is a directory"));
  g_clear_error (&error);

  cd_test_make_geoip (asn, "GeoLite2-ASN", networks);
  g_assert_null (cd_geoip_open (asn, &error));
  g_assert_nonnull (strstr (error->message, "has no countries"));
}

int
main (int argc, char **argv)
{
  int status;

  g_test_init (&argc, &argv, NULL);
  dir = cd_test_make_tmp_dir ("cd-geo-XXXXXX");
  g_test_add_func ("/geo/countries-accepted", test_countries_accepted);
  g_test_add_func ("/geo/countries-refused", test_countries_refused);
  g_test_add_func ("/geo/country-codes", test_country_codes);
  g_test_add_func ("/geo/geoip-lookup", test_geoip_lookup);
  g_test_add_func ("/geo/geoip-refused", test_geoip_refused);
  status = g_test_run ();
  cd_test_remove_tree (dir);
  g_free (dir);
  return status;
}
