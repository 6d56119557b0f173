/* SPDX-License-Identifier: GPL-3.0-or-later */
/* AWS Signature Version 4: the signer gives the signatures of AWS's own
 * published S3 examples (GET with a range, PUT with a body, a sorted
 * query, a bare sub-resource); encoding follows the rules; malformed
 * arguments are refused with what was wrong. */

#include "store/cd-s3.h"
#include "store/cd-sigv4.h"

#include <gio/gio.h>
#include <string.h>

/* AWS's example key pair and time (S3 API reference, "Signature
 * Calculations for the Authorization Header") */
static const CdSigV4Key aws_example = {
  .access_key = "AKIAIOSFODNN7EXAMPLE",
  .secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  .region = "us-east-1",
  .service = "s3",
};
#define WHEN "20130524T000000Z"
#define HOST "examplebucket.s3.amazonaws.com"
#define CREDENTIAL \
  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"

static char *
sign (const char *method, const char *path, const char *const *query, const char *const *headers,
      const char *payload, char **canonical)
{
  GError *error = NULL;
  char *auth = cd_sigv4_authorization (&aws_example, method, path, query, headers, payload, WHEN,
                                       canonical, &error);

  g_assert_no_error (error);
  g_assert_nonnull (auth);
  return auth;
}

static void
test_get_object_with_range (void)
{
  g_autofree char *auth =
      sign ("GET", "/test.txt", NULL,
            (const char *const[]){ "Host", HOST, "Range", "bytes=0-9", "x-amz-content-sha256",
                                   CD_SIGV4_EMPTY_SHA256, "x-amz-date", WHEN, NULL },
            CD_SIGV4_EMPTY_SHA256, NULL);

  g_assert_cmpstr (auth, ==,
                   CREDENTIAL "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
                              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c"
                              "6036bdb41");
}

static void
test_put_object (void)
{
  g_autofree char *body_hash =
      g_compute_checksum_for_string (G_CHECKSUM_SHA256, "Welcome to Amazon S3.", -1);
  g_autofree char *canonical = NULL;
  g_autofree char *auth = NULL;

  g_assert_cmpstr (body_hash, ==,
                   "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  /* the headers in another order and case than signed, a value with blanks
   * to trim: the canonical form is the same */
  auth = sign ("PUT", "/test$file.text", NULL,
               (const char *const[]){ "X-Amz-Storage-Class", "  REDUCED_REDUNDANCY ", "x-amz-date",
                                      WHEN, "Date", "Fri, 24 May 2013   00:00:00 GMT", "host", HOST,
                                      "x-amz-content-sha256", body_hash, NULL },
               body_hash, &canonical);
  g_assert_cmpstr (auth, ==,
                   CREDENTIAL "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-"
                              "storage-class,Signature=98ad721746da40c64f1a55b78f14c238d841ea1380"
                              "cd77a1b5971af0ece108bd");
  g_assert_true (g_str_has_prefix (canonical, "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 "
                                              "00:00:00 GMT\nhost:" HOST "\n"));
}

static void
test_list_objects_query (void)
{
  /* given out of order: the canonical query sorts it */
  g_autofree char *auth =
      sign ("GET", "/", (const char *const[]){ "prefix", "J", "max-keys", "2", NULL },
            (const char *const[]){ "host", HOST, "x-amz-content-sha256", CD_SIGV4_EMPTY_SHA256,
                                   "x-amz-date", WHEN, NULL },
            CD_SIGV4_EMPTY_SHA256, NULL);

  g_assert_cmpstr (auth, ==,
                   CREDENTIAL "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature="
                              "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

static void
test_bare_subresource (void)
{
  g_autofree char *auth =
      sign ("GET", "/", (const char *const[]){ "lifecycle", "", NULL },
            (const char *const[]){ "host", HOST, "x-amz-content-sha256", CD_SIGV4_EMPTY_SHA256,
                                   "x-amz-date", WHEN, NULL },
            CD_SIGV4_EMPTY_SHA256, NULL);

  g_assert_cmpstr (auth, ==,
                   CREDENTIAL "SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature="
                              "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

static void
test_another_secret_another_signature (void)
{
  CdSigV4Key other = aws_example;
  const char *const headers[] = { "host", HOST, "x-amz-date", WHEN, NULL };
  g_autofree char *a = sign ("GET", "/k", NULL, headers, CD_SIGV4_EMPTY_SHA256, NULL);
  g_autofree char *b = NULL;
  g_autofree char *c = sign ("GET", "/k", NULL, headers, "UNSIGNED-PAYLOAD", NULL);

  other.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ";
  b = cd_sigv4_authorization (&other, "GET", "/k", NULL, headers, CD_SIGV4_EMPTY_SHA256, WHEN, NULL,
                              NULL);
  g_assert_cmpstr (a, !=, b);
  g_assert_cmpstr (a, !=, c);
}

static void
test_uri_encode (void)
{
  static const struct {
    const char *in;
    gboolean slash;
    const char *out;
  } cases[] = {
    { "recordings/c1/a.ogg", FALSE, "recordings/c1/a.ogg" },
    { "a/b", TRUE, "a%2Fb" },
    { "A-z_0.9~", TRUE, "A-z_0.9~" },
    { "a b+c", FALSE, "a%20b%2Bc" },
    { "=&?#%", TRUE, "%3D%26%3F%23%25" },
    { "\xc3\xa9", FALSE, "%C3%A9" },
    { "", FALSE, "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *got = cd_sigv4_uri_encode (cases[i].in, cases[i].slash);

    g_assert_cmpstr (got, ==, cases[i].out);
  }
  {
    g_autofree char *q = cd_sigv4_canonical_query (
        (const char *const[]){ "uploadId", "a/b c", "partNumber", "10", "uploads", "", NULL });

    g_assert_cmpstr (q, ==, "partNumber=10&uploadId=a%2Fb%20c&uploads=");
  }
}

static void
test_amz_date (void)
{
  g_autoptr (GTimeZone) tz = g_time_zone_new_offset (2 * 3600);
  g_autoptr (GDateTime) t = g_date_time_new (tz, 2013, 5, 24, 2, 0, 0);
  g_autofree char *d = cd_sigv4_amz_date (t);

  /* in UTC whatever the zone given */
  g_assert_cmpstr (d, ==, WHEN);
}

static void
test_bad_arguments (void)
{
  const struct {
    const char *path;
    const char *date;
    const char *const *headers;
    const char *says;
  } cases[] = {
    { "/k", "2013-05-24T00:00:00Z", (const char *const[]){ "host", HOST, NULL }, "x-amz-date" },
    { "/k", "20130524T000000", (const char *const[]){ "host", HOST, NULL }, "x-amz-date" },
    { "/k", NULL, (const char *const[]){ "host", HOST, NULL }, "x-amz-date" },
    { "k", WHEN, (const char *const[]){ "host", HOST, "x-amz-date", WHEN, NULL }, "begin" },
    { "/k", WHEN, (const char *const[]){ "x-amz-date", WHEN, NULL }, "need host" },
    { "/k", WHEN, (const char *const[]){ "host", HOST, NULL }, "need host" },
    { "/k", WHEN, (const char *const[]){ "host", HOST, "x-amz-date", "20130524T000001Z", NULL },
      "not the date signed" },
    { "/k", WHEN, (const char *const[]){ "ho st", HOST, "x-amz-date", WHEN, NULL },
      "not a header" },
    { "/k", WHEN, (const char *const[]){ "host", "a\r\nb: c", "x-amz-date", WHEN, NULL },
      "not a header" },
    { "/k", WHEN, (const char *const[]){ "", "x", "host", HOST, "x-amz-date", WHEN, NULL },
      "not a header" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *canonical = NULL;
    g_autofree char *auth =
        cd_sigv4_authorization (&aws_example, "GET", cases[i].path, NULL, cases[i].headers,
                                CD_SIGV4_EMPTY_SHA256, cases[i].date, &canonical, &error);

    g_assert_null (auth);
    g_assert_null (canonical);
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    g_assert_nonnull (strstr (error->message, cases[i].says));
  }
}

/* What the S3 client reads of a reply: the first element's text, decoded;
 * nothing from a reply that is cut, empty or not XML. */
static void
test_s3_reply_text (void)
{
  const char *error = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>a &lt;b&gt; "
                      "&amp; &quot;c&quot; &apos;d&apos; &unknown;</Message></Error>";
  const struct {
    const char *body;
    const char *name;
    const char *text;
  } cases[] = {
    { error, "Code", "NoSuchBucket" },     { error, "Message", "a <b> & \"c\" 'd' &unknown;" },
    { error, "UploadId", NULL },           { "<UploadId></UploadId>", "UploadId", "" },
    { "<UploadId>abc", "UploadId", NULL }, { "<Code>a</Code><Code>b</Code>", "Code", "a" },
    { "</Code>x<Code>", "Code", NULL },    { "<Code>&amp</Code>", "Code", "&amp" },
    { "not xml at all", "Code", NULL },    { "", "Code", NULL },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *text = cd_s3_xml_text (cases[i].body, strlen (cases[i].body), cases[i].name);

    g_assert_cmpstr (text, ==, cases[i].text);
  }
  {
    /* the length is the bound, not a NUL */
    const char cut[] = "<Code>abc</Code>";
    g_autofree char *none = cd_s3_xml_text (cut, 12, "Code");

    g_assert_null (none);
    g_assert_null (cd_s3_xml_text (NULL, 0, "Code"));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sigv4/aws-example/get-object-with-range", test_get_object_with_range);
  g_test_add_func ("/sigv4/aws-example/put-object", test_put_object);
  g_test_add_func ("/sigv4/aws-example/list-objects-query", test_list_objects_query);
  g_test_add_func ("/sigv4/aws-example/bare-subresource", test_bare_subresource);
  g_test_add_func ("/sigv4/another-secret", test_another_secret_another_signature);
  g_test_add_func ("/sigv4/uri-encode", test_uri_encode);
  g_test_add_func ("/sigv4/amz-date", test_amz_date);
  g_test_add_func ("/sigv4/bad-arguments", test_bad_arguments);
  g_test_add_func ("/sigv4/s3-reply-text", test_s3_reply_text);
  return g_test_run ();
}
