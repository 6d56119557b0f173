/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cd-srtp-gate.h"

#include <string.h>

/*
 * Why a gate: when a pipeline goes to NULL, each element deactivates its
 * source pads before its sink pads, and downstream elements stop before
 * the network source upstream of them. Inside webrtcbin, GStreamer 1.22's
 * srtpdec can then receive its first RTCP packet while its source pads are
 * already inactive (which drops their sticky events). It then makes up a
 * stream id with gst_pad_create_stream_id() on an element with two sink
 * pads, which raises a GStreamer-CRITICAL (three, in fact) and, under
 * G_DEBUG=fatal-warnings, kills the program.
 *
 * The gate is a probe on every srtpdec's sink pads. Closed, it drops what
 * arrives; closing it waits for the packet in flight (the probe runs under
 * the pad's stream lock), so from then on no packet reaches srtpdec and the
 * pipeline can stop in any order. It is only for shutting down.
 */

#define GATE_KEY "cd-srtp-gate"

typedef struct {
  gint closed;
  GMutex lock;
  GPtrArray *pads; /* GWeakRef* to GstPad: the probes hold the gate */
} Gate;

static void
gate_free (gpointer data)
{
  Gate *gate = data;

  g_ptr_array_unref (gate->pads);
  g_mutex_clear (&gate->lock);
}

static void
gate_release (gpointer data)
{
  g_atomic_rc_box_release_full (data, gate_free);
}

static void
weak_ref_free (gpointer data)
{
  g_weak_ref_clear (data);
  g_free (data);
}

static GstPadProbeReturn
on_data (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Gate *gate = user_data;

  return g_atomic_int_get (&gate->closed) ? GST_PAD_PROBE_DROP : GST_PAD_PROBE_OK;
}

static void
guard (Gate *gate, GstElement *element)
{
  GstElementFactory *factory = gst_element_get_factory (element);
  static const char *const names[] = { "rtp_sink", "rtcp_sink" };

  if (factory == NULL ||
      strcmp (gst_plugin_feature_get_name (GST_PLUGIN_FEATURE (factory)), "srtpdec") != 0)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++) {
    g_autoptr (GstPad) pad = gst_element_get_static_pad (element, names[i]);
    GWeakRef *ref;

    if (pad == NULL)
      continue;
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_data,
                       g_atomic_rc_box_acquire (gate), gate_release);
    ref = g_new0 (GWeakRef, 1);
    g_weak_ref_init (ref, pad);
    g_mutex_lock (&gate->lock);
    g_ptr_array_add (gate->pads, ref);
    g_mutex_unlock (&gate->lock);
  }
}

static void
on_deep_element_added (GstBin *bin, GstBin *sub_bin, GstElement *element, gpointer user_data)
{
  guard (user_data, element);
}

static void
guard_existing (const GValue *item, gpointer user_data)
{
  guard (user_data, g_value_get_object (item));
}

/**
 * cd_srtp_gate_install:
 * @pipeline: a pipeline that holds (or will hold) webrtcbin elements
 *
 * Puts the gate, open, on every srtpdec inside @pipeline, now and later.
 */
void
cd_srtp_gate_install (GstBin *pipeline)
{
  Gate *gate = g_atomic_rc_box_new0 (Gate);
  GstIterator *it;

  g_mutex_init (&gate->lock);
  gate->pads = g_ptr_array_new_with_free_func (weak_ref_free);
  /* the pipeline keeps one reference, each probe another; pads and the
   * pipeline may be released in different threads */
  g_object_set_data_full (G_OBJECT (pipeline), GATE_KEY, gate, gate_release);
  g_signal_connect (pipeline, "deep-element-added", G_CALLBACK (on_deep_element_added), gate);
  it = gst_bin_iterate_recurse (pipeline);
  while (gst_iterator_foreach (it, guard_existing, gate) == GST_ITERATOR_RESYNC)
    gst_iterator_resync (it);
  gst_iterator_free (it);
}

/**
 * cd_srtp_gate_close:
 * @pipeline: a pipeline given to cd_srtp_gate_install()
 *
 * Drops every packet that reaches an srtpdec from now on and waits until
 * none is being decoded. Blocks for at most one packet's processing, so
 * call it just before setting the pipeline to NULL, where that is done.
 */
void
cd_srtp_gate_close (GstBin *pipeline)
{
  Gate *gate = g_object_get_data (G_OBJECT (pipeline), GATE_KEY);
  g_autoptr (GPtrArray) pads = g_ptr_array_new_with_free_func (gst_object_unref);

  if (gate == NULL)
    return;
  g_atomic_int_set (&gate->closed, 1);
  g_mutex_lock (&gate->lock);
  for (guint i = 0; i < gate->pads->len; i++) {
    GstPad *pad = g_weak_ref_get (g_ptr_array_index (gate->pads, i));

    if (pad)
      g_ptr_array_add (pads, pad);
  }
  g_mutex_unlock (&gate->lock);
  for (guint i = 0; i < pads->len; i++) {
    GstPad *pad = g_ptr_array_index (pads, i);

    /* a packet past the probe holds this lock until srtpdec is done with it */
    GST_PAD_STREAM_LOCK (pad);
    GST_PAD_STREAM_UNLOCK (pad);
  }
}
