/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: a party's SDP offer (sdp.offer on the signaling WebSocket). */

#include "media/cd-call-pipeline.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree char *sdp = g_strndup ((const char *) data, size);
  g_autoptr (GError) error = NULL;
  gboolean ok = cd_sdp_check_offer (sdp, 32768, &error);

  /* an answer either way, and a refusal says why */
  g_assert_true (ok == (error == NULL));
  if (error)
    g_assert_true (error->domain == CD_MEDIA_ERROR && error->message[0] != '\0');
  return 0;
}
