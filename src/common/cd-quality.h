/* SPDX-License-Identifier: GPL-3.0-or-later */
/* A call's listening quality estimated from its network statistics: the
 * ITU-T G.107 E-model in the simplified form usual for VoIP, and its MOS. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/*
 * Where the numbers come from (the model is G.107's; the wording and the
 * Opus figures are ours):
 *
 * - R starts at 93.2, the rating G.107 arrives at when every input of its
 *   full model (loudness ratings, sidetone, circuit and room noise) keeps
 *   its default value: the best a narrowband handset path can score.
 *   Nothing here models the wideband bonus of later E-model editions, so a
 *   perfect Opus call rates like a perfect G.711 call.
 *
 * - Delay impairment Id: the widely used two-line fit of G.107's delay
 *   curve for a path with good echo control. Each millisecond of one-way
 *   mouth-to-ear delay costs 0.024 points; past the knee at 177.3 ms each
 *   further millisecond costs another 0.11, because talkers start to
 *   interrupt each other.
 *
 * - One-way delay = rtt / 2 (network) + jitter buffer + 2 * jitter (the
 *   buffer grows with jitter: twice the RFC 3550 estimate is a common
 *   allowance) + CD_QUALITY_FIXED_DELAY_MS, the delay every call has before
 *   any network: Opus with 20 ms frames waits for a whole frame before it
 *   can send it (20 ms) and its encoder looks up to 6.5 ms ahead (the
 *   look-ahead RFC 6716 describes for its speech modes). Capture and
 *   playout device buffers are not counted: they depend on the endpoint.
 *
 * - Equipment impairment Ie and packet-loss robustness Bpl are the two
 *   numbers G.113 tabulates per codec: how much a codec degrades speech with
 *   no loss, and how well its concealment copes with random loss (the
 *   higher Bpl, the more robust). Ie-eff = Ie + (95 - Ie) * Ppl / (Ppl + Bpl)
 *   with Ppl the loss in percent, for random (not bursty) loss. G.113 has
 *   no entry for Opus, so cd_quality_input_set_opus() uses our own
 *   estimates, placed against the codecs G.113 does list at similar
 *   bitrates (G.711 Ie 0; G.729 at 8 kb/s Ie 10; AMR at 12.2 kb/s Ie 5) and
 *   set a little better, since Opus does better than those in published
 *   listening tests:
 *
 *     bitrate (bit/s)   >= 32000  >= 20000  >= 12000  >= 8000  below
 *     Ie                   0         2         5         9       11
 *
 *   Bpl is 20 without FEC (Opus concealment of a lost 20 ms frame, in the
 *   range G.113 gives codecs with concealment: 19 to 25 for G.729A and
 *   G.711 with PLC) and 35 with in-band FEC, which recovers most single
 *   losses from the next packet, so random loss hurts about half as much.
 *
 * - MOS from R: G.107's conversion, 1 + 0.035 R + 7e-6 R (R - 60) (100 - R),
 *   which dips slightly below 1 for small R, so it is clamped to 1..4.5
 *   (1 for R < 0, 4.5 for R > 100).
 */

#define CD_QUALITY_R_DEFAULT         93.2
#define CD_QUALITY_FIXED_DELAY_MS    26.5
#define CD_QUALITY_DELAY_KNEE_MS     177.3
#define CD_QUALITY_OPUS_BPL          20.0
#define CD_QUALITY_OPUS_BPL_WITH_FEC 35.0

typedef struct {
  double loss_percent;     /* 0..100, packets lost over expected */
  double jitter_ms;        /* RFC 3550 interarrival jitter */
  double rtt_ms;           /* round-trip time, 0 if unknown */
  double jitter_buffer_ms; /* the receiver's jitter buffer latency */
  double codec_ie;         /* equipment impairment of the codec (Opus: see above) */
  double codec_bpl;        /* packet-loss robustness (Opus: see above) */
} CdQualityInput;

double cd_quality_r_factor (const CdQualityInput *in);
double cd_quality_mos (double r);
void cd_quality_input_set_opus (CdQualityInput *in, guint bitrate, gboolean fec);

G_END_DECLS
