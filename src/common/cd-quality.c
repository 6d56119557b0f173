/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The E-model rating and MOS of a call from loss, jitter and delay; the
 * constants and their sources are described in cd-quality.h. */

#define G_LOG_DOMAIN "calldocker-quality"

#include "cd-quality.h"

#include <math.h>

/* A measurement as a non-negative number: NaN and negative values (an
 * unknown or nonsensical statistic) count as 0. */
static double
non_negative (double x)
{
  return x > 0 ? x : 0;
}

/* G.107's delay impairment, in its two-line form (see cd-quality.h). */
static double
delay_impairment (double one_way_ms)
{
  double id = 0.024 * one_way_ms;

  if (one_way_ms > CD_QUALITY_DELAY_KNEE_MS)
    id += 0.11 * (one_way_ms - CD_QUALITY_DELAY_KNEE_MS);
  return id;
}

/**
 * cd_quality_r_factor:
 * @in: a call's network statistics and codec values
 *
 * Computes the E-model transmission rating: R = 93.2 - Id - Ie-eff, with Id
 * from the one-way delay rtt / 2 + jitter buffer + 2 * jitter + 26.5 ms and
 * Ie-eff from the codec's Ie and Bpl and the loss. Negative or NaN inputs
 * count as 0 and loss is capped at 100 %.
 *
 * Returns: R, not clamped: below 0 for a hopeless call
 */
double
cd_quality_r_factor (const CdQualityInput *in)
{
  double one_way, loss, ie, bpl, ie_eff;

  g_return_val_if_fail (in != NULL, 0);

  one_way = non_negative (in->rtt_ms) / 2 + non_negative (in->jitter_buffer_ms) +
            2 * non_negative (in->jitter_ms) + CD_QUALITY_FIXED_DELAY_MS;
  loss = MIN (non_negative (in->loss_percent), 100.0);
  ie = MIN (non_negative (in->codec_ie), 95.0);
  bpl = non_negative (in->codec_bpl);

  ie_eff = ie;
  if (loss > 0)
    ie_eff += (95.0 - ie) * loss / (loss + bpl);

  return CD_QUALITY_R_DEFAULT - delay_impairment (one_way) - ie_eff;
}

/**
 * cd_quality_mos:
 * @r: an E-model rating
 *
 * Converts R to an estimated mean opinion score with G.107's formula.
 *
 * Returns: the MOS, 1..4.5
 */
double
cd_quality_mos (double r)
{
  double mos;

  if (isnan (r) || r < 0)
    return 1.0;
  if (r > 100)
    return 4.5;
  mos = 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
  return CLAMP (mos, 1.0, 4.5);
}

/**
 * cd_quality_input_set_opus:
 * @in: the input to complete
 * @bitrate: the Opus encoder's target bitrate in bit/s
 * @fec: whether in-band FEC is on
 *
 * Sets @in's codec_ie and codec_bpl to our estimates for Opus (the table in
 * cd-quality.h); leaves the network statistics alone.
 */
void
cd_quality_input_set_opus (CdQualityInput *in, guint bitrate, gboolean fec)
{
  static const struct {
    guint min_bitrate;
    double ie;
  } table[] = {
    { 32000, 0 }, { 20000, 2 }, { 12000, 5 }, { 8000, 9 }, { 0, 11 },
  };

  g_return_if_fail (in != NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (table); i++) {
    if (bitrate >= table[i].min_bitrate) {
      in->codec_ie = table[i].ie;
      break;
    }
  }
  in->codec_bpl = fec ? CD_QUALITY_OPUS_BPL_WITH_FEC : CD_QUALITY_OPUS_BPL;
}
