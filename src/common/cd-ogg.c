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

/* Samples (at 48 kHz) in an Opus packet, from its TOC byte (RFC 6716,
 * 3.1); 0 for one too short to say. */
static guint
opus_packet_samples (const guint8 *packet, gsize length)
{
  static const guint silk[] = { 480, 960, 1920, 2880 };
  static const guint hybrid[] = { 480, 960 };
  static const guint celt[] = { 120, 240, 480, 960 };
  guint config, frame, frames;

  if (length < 1)
    return 0;
  config = packet[0] >> 3;
  frame = config < 12 ? silk[config & 3] : config < 16 ? hybrid[config & 1] : celt[config & 3];
  switch (packet[0] & 3) {
  case 0:
    frames = 1;
    break;
  case 1:
  case 2:
    frames = 2;
    break;
  default:
    if (length < 2)
      return 0;
    frames = packet[1] & 0x3f;
    break;
  }
  return frame * frames;
}

/* The samples of the packets that end on @page (whose segment table is
 * @segments long): its first audio page's, to find where the audio starts. */
static guint64
page_samples (const guint8 *page, guint segments)
{
  const guint8 *body = page + 27 + segments;
  gsize start = 0, length = 0;
  guint64 samples = 0;
  /* a packet continued from the page before: its start (and TOC) is there */
  gboolean continued = (page[5] & 0x01) != 0;

  for (guint i = 0; i < segments; i++) {
    length += page[27 + i];
    if (page[27 + i] < 255) {
      if (!continued)
        samples += opus_packet_samples (body + start, length);
      continued = FALSE;
      start += length;
      length = 0;
    }
  }
  return samples;
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
  gboolean started = FALSE;
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
    if (granule != G_MAXUINT64) {
      scan->last_granule = (gint64) MIN (granule, (guint64) G_MAXINT64);
      /* the header pages have 0; the first audio page the samples up to
       * its end, counted from where the stream starts */
      if (granule > 0 && !started) {
        guint64 on_page = page_samples (page, segments);

        scan->start_granule =
            on_page < granule ? (gint64) MIN (granule - on_page, (guint64) G_MAXINT64) : 0;
        started = TRUE;
      }
    }
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
  gint64 samples = scan->last_granule - scan->start_granule - (gint64) scan->pre_skip;

  if (scan->last_granule < 0 || samples <= 0)
    return 0;
  return (guint) MIN (samples / 48, (gint64) G_MAXUINT);
}
