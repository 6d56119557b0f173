/* SPDX-License-Identifier: GPL-3.0-or-later */
/* cdsealsink: a file sink that seals what it writes (CdSealer), flushes a
 * chunk at least every flush-interval and syncs the file to disk at least
 * every sync-interval. It never fails the pipeline: a file it cannot open
 * or write is told in a "cd-seal-failed" element message, and what follows
 * is dropped, so the call it records goes on. */

#include "gstcdsealsink.h"

#include "store/cd-seal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

GST_DEBUG_CATEGORY_STATIC (cd_seal_sink_debug);
#define GST_CAT_DEFAULT cd_seal_sink_debug

enum {
  PROP_0,
  PROP_LOCATION,
  PROP_KEY,
  PROP_COMPANY,
  PROP_KEY_VERSION,
  PROP_FLUSH_INTERVAL,
  PROP_SYNC_INTERVAL,
  PROP_PLAIN_BYTES,
  PROP_SEALED_BYTES,
  PROP_LAST_ERROR,
};

struct _GstCdSealSink {
  GstBaseSink parent;

  /* properties (object lock) */
  char *location;
  GBytes *key;
  char *company;
  guint key_version;
  GstClockTime flush_interval;
  GstClockTime sync_interval;

  /* streaming thread (start and stop: the state change's thread) */
  int fd;
  gboolean opened; /* tried to open the file (in the streaming thread) */
  CdSealer *sealer;
  gboolean failed;
  gboolean finished;
  gint64 last_flush_us;
  gint64 last_sync_us;
  guint8 *out; /* sealed bytes on their way to the file */
  gsize out_size;
  /* object lock: read by the application */
  guint64 plain_bytes;
  guint64 sealed_bytes;
  char *last_error; /* why the file was given up; NULL while all is well */
};

G_DEFINE_TYPE (GstCdSealSink, gst_cd_seal_sink, GST_TYPE_BASE_SINK)
GST_ELEMENT_REGISTER_DEFINE (cdsealsink, "cdsealsink", GST_RANK_NONE, GST_TYPE_CD_SEAL_SINK)

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

/* Told once: the file is given up; the reason is for the recording's row. */
static void
fail (GstCdSealSink *self, const char *reason)
{
  GstStructure *s;
  guint64 plain;

  if (self->failed)
    return;
  self->failed = TRUE;
  GST_WARNING_OBJECT (self, "%s", reason);
  GST_OBJECT_LOCK (self);
  g_free (self->last_error);
  self->last_error = g_strdup (reason);
  plain = self->plain_bytes;
  GST_OBJECT_UNLOCK (self);
  s = gst_structure_new ("cd-seal-failed", "reason", G_TYPE_STRING, reason, "plain-bytes",
                         G_TYPE_UINT64, plain, NULL);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

static gboolean
write_all (GstCdSealSink *self, const guint8 *data, gsize length)
{
  while (length > 0) {
    ssize_t n = write (self->fd, data, length);

    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      g_autofree char *reason =
          g_strdup_printf ("cannot write %s: %s", self->location, g_strerror (errno));
      fail (self, reason);
      return FALSE;
    }
    data += n;
    length -= (gsize) n;
    GST_OBJECT_LOCK (self);
    self->sealed_bytes += (guint64) n;
    GST_OBJECT_UNLOCK (self);
  }
  return TRUE;
}

/* Seals @length bytes (none with a flush or the end) and writes them. */
static gboolean
seal (GstCdSealSink *self, const guint8 *data, gsize length, GConverterFlags flags)
{
  for (;;) {
    gsize read = 0, written = 0;
    g_autoptr (GError) error = NULL;
    GConverterResult r = g_converter_convert (G_CONVERTER (self->sealer), data, length, self->out,
                                              self->out_size, flags, &read, &written, &error);

    if (r == G_CONVERTER_ERROR) {
      if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT) && length == 0)
        return TRUE;
      fail (self, error->message);
      return FALSE;
    }
    if (written > 0 && !write_all (self, self->out, written))
      return FALSE;
    if (read > 0) {
      data += read;
      length -= read;
    }
    if (r == G_CONVERTER_FINISHED || r == G_CONVERTER_FLUSHED)
      return TRUE;
    if (length == 0 && written == 0 && !(flags & (G_CONVERTER_FLUSH | G_CONVERTER_INPUT_AT_END)))
      return TRUE;
  }
}

static gboolean
sync_file (GstCdSealSink *self)
{
  if (fdatasync (self->fd) != 0 && errno != EINVAL) {
    g_autofree char *reason =
        g_strdup_printf ("cannot sync %s to disk: %s", self->location, g_strerror (errno));
    fail (self, reason);
    return FALSE;
  }
  self->last_sync_us = g_get_monotonic_time ();
  return TRUE;
}

/* The file is made at the first buffer (or the end), in the streaming
 * thread: a state change may come from the application's main loop, which
 * must not wait on storage. */
static void
open_file (GstCdSealSink *self)
{
  g_autofree char *location = NULL;

  if (self->opened)
    return;
  self->opened = TRUE;
  GST_OBJECT_LOCK (self);
  location = g_strdup (self->location);
  GST_OBJECT_UNLOCK (self);
  self->fd = open (location, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (self->fd < 0) {
    g_autofree char *reason =
        g_strdup_printf ("cannot create %s: %s", location, g_strerror (errno));
    fail (self, reason);
    return;
  }
  self->last_flush_us = self->last_sync_us = g_get_monotonic_time ();
  /* the header at once: even an empty recording is a sealed file */
  if (seal (self, NULL, 0, G_CONVERTER_FLUSH))
    sync_file (self);
}

static gboolean
gst_cd_seal_sink_start (GstBaseSink *sink)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (sink);
  g_autoptr (GBytes) key = NULL;
  g_autofree char *company = NULL;
  gboolean located;
  guint version;

  GST_OBJECT_LOCK (self);
  key = self->key ? g_bytes_ref (self->key) : NULL;
  company = g_strdup (self->company);
  version = self->key_version;
  located = self->location != NULL;
  self->plain_bytes = self->sealed_bytes = 0;
  g_clear_pointer (&self->last_error, g_free);
  GST_OBJECT_UNLOCK (self);

  self->failed = self->finished = self->opened = FALSE;
  self->fd = -1;
  if (!located || key == NULL || g_bytes_get_size (key) != CD_SEAL_KEY_BYTES || company == NULL ||
      company[0] == '\0' || strlen (company) > 255) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("cdsealsink needs a location, a key and a company"), (NULL));
    return FALSE;
  }
  self->sealer = cd_sealer_new (g_bytes_get_data (key, NULL), company, version);
  self->out_size = CD_SEAL_CHUNK_BYTES + 1024;
  self->out = g_malloc (self->out_size);
  return TRUE;
}

static GstFlowReturn
gst_cd_seal_sink_render (GstBaseSink *sink, GstBuffer *buffer)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (sink);
  GstMapInfo map;
  gint64 now = g_get_monotonic_time ();
  gboolean ok;

  open_file (self);
  if (self->failed || self->finished || self->fd < 0)
    return GST_FLOW_OK;
  if (!gst_buffer_map (buffer, &map, GST_MAP_READ))
    return GST_FLOW_OK;
  ok = seal (self, map.data, map.size, 0);
  if (ok) {
    GST_OBJECT_LOCK (self);
    self->plain_bytes += map.size;
    GST_OBJECT_UNLOCK (self);
  }
  gst_buffer_unmap (buffer, &map);
  if (ok && self->flush_interval != GST_CLOCK_TIME_NONE &&
      (GstClockTime) (now - self->last_flush_us) * GST_USECOND >= self->flush_interval) {
    ok = seal (self, NULL, 0, G_CONVERTER_FLUSH);
    self->last_flush_us = now;
  }
  if (ok && self->sync_interval > 0 && self->sync_interval != GST_CLOCK_TIME_NONE &&
      (GstClockTime) (now - self->last_sync_us) * GST_USECOND >= self->sync_interval)
    sync_file (self);
  return GST_FLOW_OK;
}

/* The end: the final chunk, the file synced and closed. */
static void
finish (GstCdSealSink *self)
{
  GstStructure *s;
  guint64 plain, sealed;

  open_file (self);
  if (self->finished || self->fd < 0)
    return;
  self->finished = TRUE;
  if (self->failed)
    return;
  if (!seal (self, NULL, 0, G_CONVERTER_INPUT_AT_END) || !sync_file (self))
    return;
  if (close (self->fd) != 0) {
    g_autofree char *reason =
        g_strdup_printf ("cannot close %s: %s", self->location, g_strerror (errno));
    self->fd = -1;
    fail (self, reason);
    return;
  }
  self->fd = -1;
  GST_OBJECT_LOCK (self);
  plain = self->plain_bytes;
  sealed = self->sealed_bytes;
  GST_OBJECT_UNLOCK (self);
  s = gst_structure_new ("cd-seal-done", "plain-bytes", G_TYPE_UINT64, plain, "sealed-bytes",
                         G_TYPE_UINT64, sealed, NULL);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

static gboolean
gst_cd_seal_sink_event (GstBaseSink *sink, GstEvent *event)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (sink);

  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS)
    finish (self);
  return GST_BASE_SINK_CLASS (gst_cd_seal_sink_parent_class)->event (sink, event);
}

static gboolean
gst_cd_seal_sink_stop (GstBaseSink *sink)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (sink);

  if (self->fd >= 0) {
    /* stopped before its end: what was written stays, without its final
     * chunk, as a crash would leave it */
    if (!self->failed && !self->finished) {
      seal (self, NULL, 0, G_CONVERTER_FLUSH);
      GST_INFO_OBJECT (self, "%s stopped before its end", self->location);
    }
    close (self->fd);
    self->fd = -1;
  }
  g_clear_object (&self->sealer);
  g_clear_pointer (&self->out, g_free);
  /* the key is not kept past its use */
  GST_OBJECT_LOCK (self);
  g_clear_pointer (&self->key, g_bytes_unref);
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static void
gst_cd_seal_sink_set_property (GObject *object, guint prop_id, const GValue *value,
                               GParamSpec *pspec)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
  case PROP_LOCATION:
    g_free (self->location);
    self->location = g_value_dup_string (value);
    break;
  case PROP_KEY:
    g_clear_pointer (&self->key, g_bytes_unref);
    self->key = g_value_dup_boxed (value);
    break;
  case PROP_COMPANY:
    g_free (self->company);
    self->company = g_value_dup_string (value);
    break;
  case PROP_KEY_VERSION:
    self->key_version = g_value_get_uint (value);
    break;
  case PROP_FLUSH_INTERVAL:
    self->flush_interval = g_value_get_uint64 (value);
    break;
  case PROP_SYNC_INTERVAL:
    self->sync_interval = g_value_get_uint64 (value);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_cd_seal_sink_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
  case PROP_LOCATION:
    g_value_set_string (value, self->location);
    break;
  case PROP_COMPANY:
    g_value_set_string (value, self->company);
    break;
  case PROP_KEY_VERSION:
    g_value_set_uint (value, self->key_version);
    break;
  case PROP_FLUSH_INTERVAL:
    g_value_set_uint64 (value, self->flush_interval);
    break;
  case PROP_SYNC_INTERVAL:
    g_value_set_uint64 (value, self->sync_interval);
    break;
  case PROP_PLAIN_BYTES:
    g_value_set_uint64 (value, self->plain_bytes);
    break;
  case PROP_SEALED_BYTES:
    g_value_set_uint64 (value, self->sealed_bytes);
    break;
  case PROP_LAST_ERROR:
    g_value_set_string (value, self->last_error);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_cd_seal_sink_finalize (GObject *object)
{
  GstCdSealSink *self = GST_CD_SEAL_SINK (object);

  g_free (self->location);
  g_clear_pointer (&self->key, g_bytes_unref);
  g_free (self->company);
  g_free (self->last_error);
  G_OBJECT_CLASS (gst_cd_seal_sink_parent_class)->finalize (object);
}

static void
gst_cd_seal_sink_class_init (GstCdSealSinkClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *sink_class = GST_BASE_SINK_CLASS (klass);
  const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  const GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  object_class->set_property = gst_cd_seal_sink_set_property;
  object_class->get_property = gst_cd_seal_sink_get_property;
  object_class->finalize = gst_cd_seal_sink_finalize;
  g_object_class_install_property (object_class, PROP_LOCATION,
                                   g_param_spec_string ("location", "Location",
                                                        "The file to write (made owner-only)", NULL,
                                                        rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      object_class, PROP_KEY,
      g_param_spec_boxed ("key", "Key", "The company's key (32 bytes)", G_TYPE_BYTES,
                          G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (object_class, PROP_COMPANY,
                                   g_param_spec_string ("company", "Company",
                                                        "Whose file it is (named in its header)",
                                                        NULL, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      object_class, PROP_KEY_VERSION,
      g_param_spec_uint ("key-version", "Key version", "The version of the company's key", 0,
                         G_MAXUINT32, 1, rw | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (
      object_class, PROP_FLUSH_INTERVAL,
      g_param_spec_uint64 ("flush-interval", "Flush interval",
                           "Seal and write a chunk at least this often (ns; NONE: only when full)",
                           0, G_MAXUINT64, GST_SECOND, rw));
  g_object_class_install_property (
      object_class, PROP_SYNC_INTERVAL,
      g_param_spec_uint64 ("sync-interval", "Sync interval",
                           "Sync the file to disk at least this often (ns; 0: only at the end)", 0,
                           G_MAXUINT64, 5 * GST_SECOND, rw));
  g_object_class_install_property (object_class, PROP_PLAIN_BYTES,
                                   g_param_spec_uint64 ("plain-bytes", "Plain bytes",
                                                        "Bytes sealed so far", 0, G_MAXUINT64, 0,
                                                        ro));
  g_object_class_install_property (object_class, PROP_SEALED_BYTES,
                                   g_param_spec_uint64 ("sealed-bytes", "Sealed bytes",
                                                        "Bytes written to the file so far", 0,
                                                        G_MAXUINT64, 0, ro));

  g_object_class_install_property (
      object_class, PROP_LAST_ERROR,
      g_param_spec_string ("last-error", "Last error",
                           "Why the file was given up (NULL while all is well; kept after stop)",
                           NULL, ro));

  gst_element_class_set_static_metadata (element_class, "Sealed file sink", "Sink/File",
                                         "Writes a stream sealed with a company's key",
                                         "CallDocker");
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  sink_class->start = gst_cd_seal_sink_start;
  sink_class->stop = gst_cd_seal_sink_stop;
  sink_class->render = gst_cd_seal_sink_render;
  sink_class->event = gst_cd_seal_sink_event;
  GST_DEBUG_CATEGORY_INIT (cd_seal_sink_debug, "cdsealsink", 0, "CallDocker sealed file sink");
}

static void
gst_cd_seal_sink_init (GstCdSealSink *self)
{
  self->fd = -1;
  self->key_version = 1;
  self->flush_interval = GST_SECOND;
  self->sync_interval = 5 * GST_SECOND;
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
  gst_base_sink_set_async_enabled (GST_BASE_SINK (self), FALSE);
}

static gboolean
plugin_init (GstPlugin *plugin)
{
  return GST_ELEMENT_REGISTER (cdsealsink, plugin);
}

static gpointer
register_once (gpointer data)
{
  if (!gst_plugin_register_static (GST_VERSION_MAJOR, GST_VERSION_MINOR, "calldocker",
                                   "CallDocker's own elements", plugin_init, "1.0", "GPL",
                                   "calldocker", "CallDocker", "CallDocker"))
    g_error ("cannot register CallDocker's GStreamer elements");
  return NULL;
}

void
cd_plugins_register (void)
{
  static GOnce once = G_ONCE_INIT;

  g_once (&once, register_once, NULL);
}
