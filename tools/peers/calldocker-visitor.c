/* SPDX-License-Identifier: GPL-3.0-or-later */
/* calldocker-visitor: call a company the way the website widget does. */

#include "cd-peer.h"

int
main (int argc, char **argv)
{
  return cd_peer_main (CD_PEER_VISITOR, argc, argv);
}
