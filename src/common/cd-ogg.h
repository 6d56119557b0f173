/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Ogg pages read without GStreamer: where the last whole page of a cut file
 * ends, and how long an Ogg/Opus stream lasts, for recovering recordings. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  gsize whole_bytes;    /* the file up to the end of its last whole page */
  guint pages;          /* whole pages (checksums good) */
  gint64 last_granule;  /* the last whole page's granule position, -1 if none */
  guint pre_skip;       /* from OpusHead, 0 if none was found */
  gint64 start_granule; /* where the audio starts (a live stream need not start at 0) */
  gboolean ends_stream; /* the last whole page ends its stream (EOS flag) */
} CdOggScan;

/* Reads the pages at the start of @data for as long as they are whole and
 * their checksums hold: a cut or damaged file is good up to
 * @scan->whole_bytes. FALSE when not even one page is whole. */
gboolean cd_ogg_scan (const guint8 *data, gsize length, CdOggScan *scan);

/* The milliseconds of 48 kHz Opus that @scan's pages hold. */
guint cd_ogg_opus_ms (const CdOggScan *scan);

G_END_DECLS
