/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: the redis.url parser. */

#include "cd-config.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *text = g_strndup ((const char *) data, size);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdRedisAddress) address = cd_redis_address_parse (text, &error);

  g_assert_true ((address == NULL) != (error == NULL));
  if (address != NULL && address->transport == CD_REDIS_TRANSPORT_UNIX)
    g_assert_true (address->path[0] == '/');
  if (address != NULL && address->transport == CD_REDIS_TRANSPORT_TCP)
    g_assert_true (address->host != NULL && address->host[0] != '\0');
  return 0;
}
