/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The E-model: R from delay, loss and codec, MOS from R at G.107's known
 * points, and the Opus codec values. */

#include "cd-quality.h"

#include <math.h>

/* Opus at 32 kb/s with FEC on a network with no loss, jitter or delay */
static CdQualityInput
perfect_opus (void)
{
  CdQualityInput in = { 0 };

  cd_quality_input_set_opus (&in, 32000, TRUE);
  return in;
}

static void
test_perfect_network (void)
{
  CdQualityInput in = perfect_opus ();
  double r = cd_quality_r_factor (&in);

  /* only the fixed 26.5 ms of codec delay: 93.2 - 0.024 * 26.5 */
  g_assert_cmpfloat_with_epsilon (r, 92.564, 0.001);
  g_assert_cmpfloat (cd_quality_mos (r), >, 4.3);
  g_assert_cmpfloat_with_epsilon (cd_quality_mos (r), 4.397, 0.001);
}

static void
test_loss (void)
{
  CdQualityInput perfect = perfect_opus ();
  CdQualityInput fec = perfect_opus ();
  CdQualityInput no_fec = { 0 };
  double r_perfect, r_fec, r_no_fec;

  fec.loss_percent = 5;
  cd_quality_input_set_opus (&no_fec, 32000, FALSE);
  no_fec.loss_percent = 5;

  r_perfect = cd_quality_r_factor (&perfect);
  r_fec = cd_quality_r_factor (&fec);
  r_no_fec = cd_quality_r_factor (&no_fec);
  /* Ie-eff = 0 + 95 * 5 / (5 + Bpl), Bpl 35 with FEC and 20 without */
  g_assert_cmpfloat_with_epsilon (r_perfect - r_fec, 95.0 * 5 / 40, 0.001);
  g_assert_cmpfloat_with_epsilon (r_perfect - r_no_fec, 95.0 * 5 / 25, 0.001);
  g_assert_cmpfloat (cd_quality_mos (r_fec), <, cd_quality_mos (r_perfect) - 0.2);
  g_assert_cmpfloat (cd_quality_mos (r_no_fec), <, cd_quality_mos (r_fec) - 0.2);

  /* all packets lost leaves nothing of the codec: Ie-eff tends to 95 */
  no_fec.loss_percent = 100;
  g_assert_cmpfloat_with_epsilon (r_perfect - cd_quality_r_factor (&no_fec), 95.0 * 100 / 120,
                                  0.001);
  g_assert_cmpfloat (cd_quality_mos (cd_quality_r_factor (&no_fec)), <, 1.2);
  /* more than all is all */
  no_fec.loss_percent = 150;
  g_assert_cmpfloat_with_epsilon (r_perfect - cd_quality_r_factor (&no_fec), 95.0 * 100 / 120,
                                  0.001);
}

static void
test_codec_impairment_adds_to_loss (void)
{
  CdQualityInput in = { 0 };

  cd_quality_input_set_opus (&in, 8000, FALSE);
  g_assert_cmpfloat (in.codec_ie, ==, 9);
  in.loss_percent = 2;
  /* Ie + (95 - Ie) * 2 / (2 + 20) = 9 + 86 / 11, and the delay term */
  g_assert_cmpfloat_with_epsilon (cd_quality_r_factor (&in), 93.2 - 0.636 - 9 - 86.0 / 11, 0.001);
}

static void
test_delay_knee (void)
{
  CdQualityInput in = perfect_opus ();
  double r0 = cd_quality_r_factor (&in);
  double r200, r300, r500, r600;

  in.rtt_ms = 200;
  r200 = cd_quality_r_factor (&in);
  in.rtt_ms = 300;
  r300 = cd_quality_r_factor (&in);
  in.rtt_ms = 500;
  r500 = cd_quality_r_factor (&in);
  in.rtt_ms = 600;
  r600 = cd_quality_r_factor (&in);

  /* below the knee (one way 126.5 and 176.5 ms) 0.024 per ms */
  g_assert_cmpfloat_with_epsilon (r0 - r300, 0.024 * 150, 0.001);
  g_assert_cmpfloat_with_epsilon (r200 - r300, 0.024 * 50, 0.001);
  /* above it (276.5 and 326.5 ms) 0.024 + 0.11 per ms */
  g_assert_cmpfloat_with_epsilon (r500 - r600, 0.134 * 50, 0.001);
  /* 300 ms one way: Id = 0.024 * 326.5 + 0.11 * (326.5 - 177.3) */
  g_assert_cmpfloat_with_epsilon (r600, 93.2 - 24.2486, 0.001);
  g_assert_cmpfloat (cd_quality_mos (r600), <, 3.6);
  g_assert_cmpfloat (cd_quality_mos (r300), >, 4.3);
}

static void
test_jitter (void)
{
  CdQualityInput in = perfect_opus ();

  /* 26.5 + 40 + 2 * 10 = 86.5 ms one way */
  in.jitter_ms = 10;
  in.jitter_buffer_ms = 40;
  g_assert_cmpfloat_with_epsilon (cd_quality_r_factor (&in), 93.2 - 0.024 * 86.5, 0.001);
  in.rtt_ms = 100;
  g_assert_cmpfloat_with_epsilon (cd_quality_r_factor (&in), 93.2 - 0.024 * 136.5, 0.001);
}

static void
test_bad_inputs (void)
{
  CdQualityInput in = perfect_opus ();
  double r = cd_quality_r_factor (&in);

  in.rtt_ms = NAN;
  in.jitter_ms = -5;
  in.loss_percent = -1;
  in.jitter_buffer_ms = NAN;
  g_assert_cmpfloat_with_epsilon (cd_quality_r_factor (&in), r, 1e-9);
  g_assert_cmpfloat (cd_quality_mos (NAN), ==, 1.0);
}

static void
test_mos (void)
{
  g_assert_cmpfloat_with_epsilon (cd_quality_mos (93.2), 4.41, 0.01);
  g_assert_cmpfloat_with_epsilon (cd_quality_mos (50), 2.58, 0.01);
  g_assert_cmpfloat_with_epsilon (cd_quality_mos (80), 4.02, 0.01);
  g_assert_cmpfloat_with_epsilon (cd_quality_mos (60), 3.10, 0.01);
  g_assert_cmpfloat (cd_quality_mos (-5), ==, 1.0);
  g_assert_cmpfloat (cd_quality_mos (0), ==, 1.0);
  /* the formula dips to 0.99 at R = 5: clamped */
  g_assert_cmpfloat (cd_quality_mos (5), ==, 1.0);
  g_assert_cmpfloat_with_epsilon (cd_quality_mos (100), 4.5, 1e-9);
  g_assert_cmpfloat (cd_quality_mos (101), ==, 4.5);
  g_assert_cmpfloat (cd_quality_mos (150), ==, 4.5);
}

static void
test_opus_values (void)
{
  static const struct {
    guint bitrate;
    double ie;
  } expected[] = {
    { 6000, 11 }, { 7999, 11 }, { 8000, 9 },  { 11999, 9 }, { 12000, 5 }, { 19999, 5 },
    { 20000, 2 }, { 24000, 2 }, { 31999, 2 }, { 32000, 0 }, { 64000, 0 }, { 510000, 0 },
  };
  CdQualityInput in = { 1, 2, 3, 4, -1, -1 };

  for (gsize i = 0; i < G_N_ELEMENTS (expected); i++) {
    cd_quality_input_set_opus (&in, expected[i].bitrate, FALSE);
    g_test_message ("%u bit/s", expected[i].bitrate);
    g_assert_cmpfloat (in.codec_ie, ==, expected[i].ie);
    g_assert_cmpfloat (in.codec_bpl, ==, 20);
  }
  cd_quality_input_set_opus (&in, 32000, TRUE);
  g_assert_cmpfloat (in.codec_bpl, ==, 35);
  /* the network statistics are left alone */
  g_assert_cmpfloat (in.loss_percent, ==, 1);
  g_assert_cmpfloat (in.jitter_ms, ==, 2);
  g_assert_cmpfloat (in.rtt_ms, ==, 3);
  g_assert_cmpfloat (in.jitter_buffer_ms, ==, 4);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/quality/perfect-network", test_perfect_network);
  g_test_add_func ("/quality/loss", test_loss);
  g_test_add_func ("/quality/codec-impairment-adds-to-loss", test_codec_impairment_adds_to_loss);
  g_test_add_func ("/quality/delay-knee", test_delay_knee);
  g_test_add_func ("/quality/jitter", test_jitter);
  g_test_add_func ("/quality/bad-inputs", test_bad_inputs);
  g_test_add_func ("/quality/mos", test_mos);
  g_test_add_func ("/quality/opus-values", test_opus_values);
  return g_test_run ();
}
