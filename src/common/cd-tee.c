/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cd-tee.h"

/*
 * Why not gst_element_request_pad_simple (tee, "src_%u") alone: GStreamer's
 * tee copies the sticky events its sink pad holds (stream-start, caps,
 * segment) to the new pad, then adds the pad to its list. A sink pad stores
 * a sticky event only after the tee has forwarded it to the pads then in
 * the list. A pad requested while an event is between those two steps gets
 * neither copy: the next buffer reaches it without a segment (or without a
 * stream-start), and GStreamer warns "Got data flow before segment event",
 * which a daemon run with fatal warnings does not survive. A call's legs
 * start streaming just when the switchboard links them, so this happens.
 *
 * Holding the sink pad's stream lock while the pad is made waits for the
 * event or buffer in flight, so the copy and the list agree. The wait is
 * one push into the tee's branches, which all start with a queue. Linking
 * the pad comes after, without the lock: a link queries and sends events
 * upstream, which must not wait on the streaming thread.
 */
GstPad *
cd_tee_request_pad (GstElement *tee)
{
  g_autoptr (GstPad) sink = gst_element_get_static_pad (tee, "sink");
  GstPad *src;

  g_return_val_if_fail (sink != NULL, NULL);
  GST_PAD_STREAM_LOCK (sink);
  src = gst_element_request_pad_simple (tee, "src_%u");
  GST_PAD_STREAM_UNLOCK (sink);
  return src;
}
