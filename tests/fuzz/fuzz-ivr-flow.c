/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Fuzz target: an IVR flow (JSON), as the API will take it when saved. */

#include "cd-json.h"
#include "ivr/cd-ivr-flow.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  CdJsonLimits limits = { 256 * 1024, 16, FALSE };
  g_autoptr (JsonObject) object = cd_json_parse_object ((const char *) data, size, &limits, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (CdIvrFlow) flow = NULL;

  if (object == NULL)
    return 0;
  flow = cd_ivr_flow_parse (object, &error);
  g_assert_true ((flow != NULL) == (error == NULL));
  if (flow == NULL) {
    /* a refusal says what is wrong, in text a client can show */
    g_assert_true (error->message[0] != '\0');
    g_assert_true (g_utf8_validate (error->message, -1, NULL));
    return 0;
  }
  /* what is accepted is a graph the runner can walk: targets in range, the
   * start among the nodes, every node with a name */
  g_assert_cmpuint (flow->n_nodes, >=, 1);
  g_assert_cmpuint (flow->n_nodes, <=, CD_IVR_MAX_NODES);
  g_assert_cmpint (flow->start, >=, 0);
  g_assert_cmpint (flow->start, <, (int) flow->n_nodes);
  for (guint i = 0; i < flow->n_nodes; i++) {
    const CdIvrNode *n = &flow->nodes[i];
    int next[CD_IVR_MAX_CASES + 3];
    guint count = cd_ivr_node_successors (n, next);

    g_assert_nonnull (n->id);
    g_assert_cmpint (n->type, <, CD_IVR_N_TYPES);
    for (guint k = 0; k < count; k++) {
      g_assert_cmpint (next[k], >=, 0);
      g_assert_cmpint (next[k], <, (int) flow->n_nodes);
    }
    if (n->type == CD_IVR_PLAY)
      g_assert_nonnull (n->prompt.prompt_id);
    if (n->type == CD_IVR_SAY || n->type == CD_IVR_MENU || n->type == CD_IVR_GATHER)
      g_assert_true (n->prompt.prompt_id != NULL || n->prompt.text != NULL);
  }
  return 0;
}
