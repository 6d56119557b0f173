/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Ogg pages (RFC 3533): a page is "OggS", version 0, header type, granule
 * position (64 bits), serial, sequence, CRC-32 (polynomial 0x04c11db7, no
 * reflection, over the page with its CRC field zeroed), the number of
 * segments and their sizes, then the segments. */

#include "cd-ogg.h"

#include <string.h>

#define HEADER_BYTES 27

static guint32 crc_table[256];

static gpointer
make_crc_table (gpointer data)
{
  for (guint32 i = 0; i < 256; i++) {
    guint32 r = i << 24;

    for (int k = 0; k < 8; k++)
      r = (r & 0x80000000u) ? (r << 1) ^ 0x04c11db7u : r << 1;
    crc_table[i] = r;
  }
  return NULL;
}

static guint32
page_crc (const guint8 *page, gsize length)
{
  guint32 crc = 0;

  for (gsize i = 0; i < length; i++) {
    /* the CRC field itself counts as zeros */
    guint8 byte = (i >= 22 && i < 26) ? 0 : page[i];

    crc = (crc << 8) ^ crc_table[((crc >> 24) & 0xff) ^ byte];
  }
  return crc;
}

static guint32
read_le32 (const guint8 *p)
{
  return (guint32) p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

gboolean
cd_ogg_scan (const guint8 *data, gsize length, CdOggScan *scan)
{
  static GOnce once = G_ONCE_INIT;
  gsize at = 0;

  g_once (&once, make_crc_table, NULL);
  memset (scan, 0, sizeof *scan);
  scan->last_granule = -1;
  while (length - at >= HEADER_BYTES) {
    const guint8 *page = data + at;
    guint segments = page[26];
    gsize body = 0, size;
    guint64 granule = 0;

    if (memcmp (page, "OggS", 4) != 0 || page[4] != 0)
      break;
    if (length - at < (gsize) HEADER_BYTES + segments)
      break;
    for (guint i = 0; i < segments; i++)
      body += page[HEADER_BYTES + i];
    size = HEADER_BYTES + segments + body;
    if (length - at < size || page_crc (page, size) != read_le32 (page + 22))
      break;
    for (int i = 7; i >= 0; i--)
      granule = granule << 8 | page[6 + i];
    /* the stream's first page holds OpusHead: its pre-skip */
    if (scan->pages == 0 && body >= 19 &&
        memcmp (page + HEADER_BYTES + segments, "OpusHead", 8) == 0)
      scan->pre_skip =
          page[HEADER_BYTES + segments + 10] | (guint) page[HEADER_BYTES + segments + 11] << 8;
    /* -1: no packet ends on this page */
    if (granule != G_MAXUINT64)
      scan->last_granule = (gint64) MIN (granule, (guint64) G_MAXINT64);
    scan->ends_stream = (page[5] & 0x04) != 0;
    scan->pages++;
    at += size;
    scan->whole_bytes = at;
  }
  return scan->pages > 0;
}

guint
cd_ogg_opus_ms (const CdOggScan *scan)
{
  gint64 samples = scan->last_granule - (gint64) scan->pre_skip;

  if (scan->last_granule < 0 || samples <= 0)
    return 0;
  return (guint) MIN (samples / 48, (gint64) G_MAXUINT);
}
