/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A tee's new source pad that never sees data before its stream's events. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

GstPad *cd_tee_request_pad (GstElement *tee);

G_END_DECLS
