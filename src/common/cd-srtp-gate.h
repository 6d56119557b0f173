/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Stops received packets at the SRTP decoders before a pipeline shuts down. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

void cd_srtp_gate_install (GstBin *pipeline);
void cd_srtp_gate_close (GstBin *pipeline);

G_END_DECLS
