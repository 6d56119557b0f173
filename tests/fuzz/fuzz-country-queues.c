/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a company's country queues (JSON), as PUT .../country-queues
 * takes its "countries" member. */

#include "cd-json.h"
#include "routing/cd-country-queues.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdJsonLimits limits = { 64 * 1024, 8, FALSE };
  g_autoptr (JsonObject) object = cd_json_parse_object ((const char *) data, size, &limits, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (JsonObject) map = NULL;
  JsonObjectIter iter;
  const char *code;
  JsonNode *queue;

  if (object == NULL)
    return 0;
  map = cd_country_queues_parse (object, &error);
  g_assert_true ((map != NULL) == (error == NULL));
  if (map == NULL) {
    /* a refusal names what is wrong */
    g_assert_true (g_str_has_prefix (error->message, "countries"));
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    return 0;
  }
  /* what is accepted is what the table takes: two upper-case letters (not
   * XX) to a lower-case queue id, each country once */
  g_assert_cmpuint (json_object_get_size (map), <=, CD_COUNTRY_QUEUES_MAX);
  g_assert_cmpuint (json_object_get_size (map), ==, json_object_get_size (object));
  json_object_iter_init (&iter, map);
  while (json_object_iter_next (&iter, &code, &queue)) {
    const char *id = json_node_get_string (queue);
    char again[3];

    g_assert_cmpuint (strlen (code), ==, 2);
    g_assert_true (g_ascii_isupper (code[0]) && g_ascii_isupper (code[1]));
    g_assert_cmpstr (code, !=, "XX");
    g_assert_true (cd_country_code_normalize (code, again));
    g_assert_cmpstr (again, ==, code);
    g_assert_true (g_uuid_string_is_valid (id));
    for (const char *c = id; *c; c++)
      g_assert_false (g_ascii_isupper (*c));
  }
  return 0;
}
