/* SPDX-License-Identifier: GPL-3.0-or-later */
/* calldocker-agent: sign in as an agent and answer calls. */

#include "cd-peer.h"

int
main (int argc, char **argv)
{
  return cd_peer_main (CD_PEER_AGENT, argc, argv);
}
