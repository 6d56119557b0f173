/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The store layer's error domain. */

#include "cd-store-error.h"

G_DEFINE_QUARK (calldocker_store_error, cd_store_error)
