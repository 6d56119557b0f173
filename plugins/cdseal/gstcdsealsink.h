/* SPDX-License-Identifier: GPL-3.0-or-later */
/* cdsealsink: writes a stream to a file sealed with a company's key, a
 * chunk at a time, so a crash leaves a file that opens up to its last chunk. */
#pragma once

#include <gst/base/gstbasesink.h>

G_BEGIN_DECLS

#define GST_TYPE_CD_SEAL_SINK (gst_cd_seal_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstCdSealSink, gst_cd_seal_sink, GST, CD_SEAL_SINK, GstBaseSink)

GST_ELEMENT_REGISTER_DECLARE (cdsealsink);

/* Registers CallDocker's own elements with GStreamer (once; any thread). */
void cd_plugins_register (void);

G_END_DECLS
