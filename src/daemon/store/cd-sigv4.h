/* SPDX-License-Identifier: GPL-3.0-or-later */
/* AWS Signature Version 4 for S3-compatible object stores: the canonical
 * request, the string to sign and the Authorization header, written from
 * AWS's description of the scheme (checked against its published
 * examples in tests/unit/test-sigv4.c). Pure functions, no I/O. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  const char *access_key;
  const char *secret_key;
  const char *region;  /* us-east-1 */
  const char *service; /* s3 */
} CdSigV4Key;

/* SHA-256 of nothing, the payload hash of a request without a body. */
#define CD_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* @s percent-encoded the SigV4 way: A-Z a-z 0-9 - . _ ~ stay, every other
 * byte is %XX (upper case); '/' stays unless @encode_slash. */
char *cd_sigv4_uri_encode (const char *s, gboolean encode_slash);

/* "20130524T000000Z" for @when (converted to UTC). */
char *cd_sigv4_amz_date (GDateTime *when);

/* The canonical query string of @query (name, value, name, value, ...,
 * NULL; raw, not encoded; a value of "" for a bare name): encoded, sorted
 * by name, joined with '&'. Also the query to send. */
char *cd_sigv4_canonical_query (const char *const *query);

/**
 * cd_sigv4_authorization:
 * @method: "GET", "PUT"...
 * @path: the absolute path, raw (each byte encoded here, '/' kept)
 * @query: as for cd_sigv4_canonical_query(), or NULL
 * @headers: name, value, ..., NULL: every header to sign, which must
 *   include host and x-amz-date (and, for S3, x-amz-content-sha256)
 * @payload_sha256: hex SHA-256 of the body (or "UNSIGNED-PAYLOAD")
 * @amz_date: the x-amz-date value, "YYYYMMDDTHHMMSSZ"
 * @canonical_request: (out) (optional): the canonical request, for tests
 *   and for debugging a refusal
 *
 * Returns: the Authorization header's value, or NULL with @error when an
 * argument is malformed (no host, a bad date, a name with a space).
 */
char *cd_sigv4_authorization (const CdSigV4Key *key, const char *method, const char *path,
                              const char *const *query, const char *const *headers,
                              const char *payload_sha256, const char *amz_date,
                              char **canonical_request, GError **error);

G_END_DECLS
