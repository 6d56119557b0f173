/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Audio checks: Goertzel power, the streaming tone detector, sines, the DTMF
 * table and WAV files, good and malformed. */

#include "cd-audio.h"

#include "cd-test-harness.h"

#include <math.h>
#include <string.h>

/* a sine computed here, independently of cd_audio_sine() */
static gint16 *
make_sine (guint rate, double freq, double amplitude, gsize n)
{
  gint16 *out = g_new (gint16, n);

  for (gsize i = 0; i < n; i++)
    out[i] = (gint16) lround (amplitude * 32767.0 * sin (2.0 * G_PI * freq * i / rate));
  return out;
}

/* feeds @samples in chunks of awkward sizes, none a divisor of a window */
static void
feed_in_odd_chunks (CdToneDetector *d, const gint16 *samples, gsize n)
{
  static const gsize sizes[] = { 1, 7, 333, 1001, 4097, 13, 2 };
  gsize done = 0;

  for (guint i = 0; done < n; i++) {
    gsize chunk = MIN (sizes[i % G_N_ELEMENTS (sizes)], n - done);

    cd_tone_detector_feed (d, samples + done, chunk);
    done += chunk;
  }
}

static void
test_goertzel (void)
{
  g_autofree gint16 *full = make_sine (48000, 440, 1.0, 4800);
  g_autofree gint16 *half = make_sine (48000, 440, 0.5, 4800);
  /* 1234 samples hold 11.3 periods: the frequency falls between DFT bins */
  g_autofree gint16 *odd = make_sine (48000, 440, 1.0, 1234);
  g_autofree gint16 *silence = g_new0 (gint16, 4800);

  g_assert_cmpfloat_with_epsilon (cd_audio_goertzel (full, 4800, 48000, 440), 1.0, 0.001);
  g_assert_cmpfloat (cd_audio_goertzel (full, 4800, 48000, 880), <, 1e-4);
  g_assert_cmpfloat (cd_audio_goertzel (full, 4800, 48000, 1000), <, 1e-4);
  /* power goes with the square of the amplitude */
  g_assert_cmpfloat_with_epsilon (cd_audio_goertzel (half, 4800, 48000, 440), 0.25, 0.001);
  g_assert_cmpfloat_with_epsilon (cd_audio_goertzel (odd, 1234, 48000, 440), 1.0, 0.03);
  g_assert_cmpfloat (cd_audio_goertzel (odd, 1234, 48000, 880), <, 0.01);
  g_assert_cmpfloat (cd_audio_goertzel (odd, 1234, 48000, 1000), <, 0.01);

  g_assert_cmpfloat (cd_audio_goertzel (silence, 4800, 48000, 440), ==, 0.0);
  g_assert_cmpfloat (cd_audio_goertzel (silence, 0, 48000, 440), ==, 0.0);
}

static void
test_sine (void)
{
  g_autofree gint16 *expected = make_sine (8000, 1000, 0.5, 1000);
  gint16 out[1000];
  double phase = 0;
  gint16 peak = 0;

  cd_audio_sine (out, 333, 8000, 1000, 0.5, &phase);
  cd_audio_sine (out + 333, 667, 8000, 1000, 0.5, &phase);
  for (gsize i = 0; i < 1000; i++) {
    g_assert_cmpint (ABS (out[i] - expected[i]), <=, 1);
    peak = MAX (peak, out[i]);
  }
  /* 1 kHz at 8 kHz: one sample in eight lands on the crest */
  g_assert_cmpint (peak, ==, 16384);
  g_assert_cmpfloat (phase, >=, 0);
  g_assert_cmpfloat (phase, <, 2 * G_PI);

  cd_audio_sine (out, 4, 8000, 2000, 1.0, NULL);
  g_assert_cmpint (out[0], ==, 0);
  g_assert_cmpint (out[1], ==, 32767);
  g_assert_cmpint (out[2], ==, 0);
  g_assert_cmpint (out[3], ==, -32767);
}

static void
check_finds_tone (guint rate, double freq)
{
  g_autoptr (CdToneDetector) d = cd_tone_detector_new (rate, 50, 100, 4000, 10);
  g_autofree gint16 *tone = make_sine (rate, freq, 0.5, rate);
  double found;

  feed_in_odd_chunks (d, tone, rate);
  found = cd_tone_detector_get_last_frequency (d);
  g_test_message ("%u Hz: %.2f Hz found as %.3f Hz", rate, freq, found);

  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 20);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, freq, 2.0, 0.01), ==, 20);
  g_assert_cmpfloat_with_epsilon (found, freq, 2.0);
  /* the interpolation does much better than the 2 Hz asked for */
  g_assert_cmpfloat_with_epsilon (found, freq, 0.25);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_dominant_frequency (d, 0.01), freq, 2.0);
  /* RMS of a sine at half scale */
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_last_level (d), 0.5 / G_SQRT2, 0.002);
  /* a neighbour a few Hz away is not the same tone */
  g_assert_cmpuint (cd_tone_detector_count_matching (d, freq + 5, 2.0, 0.01), ==, 0);
}

static void
test_detector_tones (void)
{
  check_finds_tone (48000, 440);
  check_finds_tone (48000, 880);
  /* between two coarse bins and not a whole number of periods per window */
  check_finds_tone (48000, 1234.5);
  check_finds_tone (16000, 3333.3);
}

static void
test_detector_rates (void)
{
  check_finds_tone (8000, 1000);
  check_finds_tone (48000, 1000);
}

static void
test_detector_mix (void)
{
  g_autoptr (CdToneDetector) d = cd_tone_detector_new (48000, 50, 100, 4000, 10);
  g_autofree gint16 *a = make_sine (48000, 440, 0.5, 48000);
  g_autofree gint16 *b = make_sine (48000, 880, 0.1, 48000);
  g_autofree gint16 *mix = g_new (gint16, 48000);

  for (gsize i = 0; i < 48000; i++)
    mix[i] = a[i] + b[i];
  feed_in_odd_chunks (d, mix, 48000);

  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 20);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 440, 2.0, 0.01), ==, 20);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 880, 2.0, 0.01), ==, 0);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_dominant_frequency (d, 0.01), 440, 2.0);
}

static void
test_detector_noise (void)
{
  g_autoptr (CdToneDetector) d = cd_tone_detector_new (48000, 50, 100, 4000, 10);
  g_autoptr (GRand) rand = g_rand_new_with_seed (20240601);
  g_autofree gint16 *noise = g_new (gint16, 48000);

  for (gsize i = 0; i < 48000; i++)
    noise[i] = (gint16) g_rand_int_range (rand, -16384, 16384);
  feed_in_odd_chunks (d, noise, 48000);

  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 20);
  /* loud enough (uniform noise at half scale: RMS 0.5 / sqrt 3) ... */
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_last_level (d), 0.5 / sqrt (3), 0.01);
  g_assert_cmpfloat (cd_tone_detector_get_last_frequency (d), >, 0);
  /* ... but no tone */
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 440, 2.0, 0.01), ==, 0);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 880, 2.0, 0.01), ==, 0);
}

static void
test_detector_min_level (void)
{
  g_autoptr (CdToneDetector) d = cd_tone_detector_new (48000, 50, 100, 4000, 10);
  /* RMS 0.0035, -49 dBFS */
  g_autofree gint16 *quiet = make_sine (48000, 440, 0.005, 48000);

  feed_in_odd_chunks (d, quiet, 48000);

  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 20);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_last_level (d), 0.005 / G_SQRT2, 0.0002);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 440, 2.0, 0.01), ==, 0);
  g_assert_cmpfloat (cd_tone_detector_get_dominant_frequency (d, 0.01), ==, 0);
  /* it is found all the same, just below the level asked for */
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 440, 2.0, 0.001), ==, 20);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_dominant_frequency (d, 0.001), 440, 2.0);
}

static void
test_detector_silence (void)
{
  g_autoptr (CdToneDetector) d = cd_tone_detector_new (48000, 50, 100, 4000, 10);
  g_autofree gint16 *silence = g_new0 (gint16, 4800);
  g_autofree gint16 *tone = make_sine (48000, 440, 0.5, 2400);

  /* nothing is analysed before a window is full */
  cd_tone_detector_feed (d, silence, 2399);
  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 0);
  cd_tone_detector_feed (d, silence, 1);
  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 1);
  g_assert_cmpfloat (cd_tone_detector_get_last_frequency (d), ==, 0);
  g_assert_cmpfloat (cd_tone_detector_get_last_level (d), ==, 0);
  g_assert_cmpfloat (cd_tone_detector_get_dominant_frequency (d, 0), ==, 0);

  cd_tone_detector_feed (d, tone, 2400);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_last_frequency (d), 440, 2.0);
  cd_tone_detector_feed (d, silence, 4800);
  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 4);
  g_assert_cmpfloat (cd_tone_detector_get_last_frequency (d), ==, 0);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 440, 2.0, 0.01), ==, 1);
}

static void
test_detector_dominant (void)
{
  g_autoptr (CdToneDetector) d = cd_tone_detector_new (8000, 50, 100, 4000, 10);
  g_autofree gint16 *low = make_sine (8000, 697, 0.3, 400 * 12);
  g_autofree gint16 *high = make_sine (8000, 1633, 0.3, 400 * 15);

  g_assert_cmpfloat (cd_tone_detector_get_dominant_frequency (d, 0.01), ==, 0);
  cd_tone_detector_feed (d, low, 400 * 12);
  cd_tone_detector_feed (d, high, 400 * 5);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_dominant_frequency (d, 0.01), 697, 2.0);
  cd_tone_detector_feed (d, high + 400 * 5, 400 * 10);
  g_assert_cmpuint (cd_tone_detector_get_windows (d), ==, 27);
  g_assert_cmpfloat_with_epsilon (cd_tone_detector_get_dominant_frequency (d, 0.01), 1633, 2.0);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 697, 2.0, 0.01), ==, 12);
  g_assert_cmpuint (cd_tone_detector_count_matching (d, 1633, 2.0, 0.01), ==, 15);
}

static void
test_dtmf (void)
{
  static const struct {
    char digit;
    double low, high;
  } keys[] = {
    { '1', 697, 1209 }, { '2', 697, 1336 }, { '3', 697, 1477 }, { 'A', 697, 1633 },
    { '4', 770, 1209 }, { '5', 770, 1336 }, { '6', 770, 1477 }, { 'B', 770, 1633 },
    { '7', 852, 1209 }, { '8', 852, 1336 }, { '9', 852, 1477 }, { 'C', 852, 1633 },
    { '*', 941, 1209 }, { '0', 941, 1336 }, { '#', 941, 1477 }, { 'D', 941, 1633 },
  };
  static const char refused[] = { 'x', '\0', 'E', 'a', ' ', '+' };

  for (gsize i = 0; i < G_N_ELEMENTS (keys); i++) {
    double low = 0, high = 0;

    g_test_message ("%c", keys[i].digit);
    g_assert_true (cd_audio_dtmf_frequencies (keys[i].digit, &low, &high));
    g_assert_cmpfloat (low, ==, keys[i].low);
    g_assert_cmpfloat (high, ==, keys[i].high);
  }
  g_assert_true (cd_audio_dtmf_frequencies ('5', NULL, NULL));
  for (gsize i = 0; i < G_N_ELEMENTS (refused); i++) {
    double low = -1, high = -1;

    g_assert_false (cd_audio_dtmf_frequencies (refused[i], &low, &high));
    g_assert_cmpfloat (low, ==, -1);
    g_assert_cmpfloat (high, ==, -1);
  }
}

/* ---- WAV files ---- */

typedef struct {
  char *dir;
} WavFixture;

static void
wav_setup (WavFixture *fixture, gconstpointer data)
{
  fixture->dir = cd_test_make_tmp_dir ("cd-test-audio-XXXXXX");
}

static void
wav_teardown (WavFixture *fixture, gconstpointer data)
{
  cd_test_remove_tree (fixture->dir);
  g_free (fixture->dir);
}

static void
append_u16 (GByteArray *b, guint16 v)
{
  guint8 le[2] = { v & 0xff, v >> 8 };

  g_byte_array_append (b, le, 2);
}

static void
append_u32 (GByteArray *b, guint32 v)
{
  guint8 le[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };

  g_byte_array_append (b, le, 4);
}

/* A RIFF WAVE header with a 16-byte fmt chunk, then a data chunk header
 * declaring @data_size; the caller appends the samples. */
static GByteArray *
wav_header (guint16 tag, guint channels, guint rate, guint bits, guint32 data_size)
{
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, (const guint8 *) "RIFF", 4);
  append_u32 (b, 36 + data_size);
  g_byte_array_append (b, (const guint8 *) "WAVEfmt ", 8);
  append_u32 (b, 16);
  append_u16 (b, tag);
  append_u16 (b, channels);
  append_u32 (b, rate);
  append_u32 (b, rate * channels * bits / 8);
  append_u16 (b, channels * bits / 8);
  append_u16 (b, bits);
  g_byte_array_append (b, (const guint8 *) "data", 4);
  append_u32 (b, data_size);
  return b;
}

static char *
save (WavFixture *fixture, const char *name, const guint8 *data, gsize len)
{
  g_autoptr (GError) error = NULL;
  char *path = g_build_filename (fixture->dir, name, NULL);

  g_file_set_contents (path, (const char *) data, len, &error);
  g_assert_no_error (error);
  return path;
}

static void
test_wav_round_trip (WavFixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *path = g_build_filename (fixture->dir, "tone.wav", NULL);
  g_autofree gint16 *samples = NULL;
  g_autofree char *contents = NULL;
  gsize n = 0, len = 0;
  guint rate = 0;

  g_assert_true (cd_audio_write_tone_wav (path, 8000, 1, 440, 0.5, 0.25, &error));
  g_assert_no_error (error);

  /* the header a RIFF reader expects */
  g_assert_true (g_file_get_contents (path, &contents, &len, &error));
  g_assert_cmpuint (len, ==, 44 + 2000 * 2);
  g_assert_cmpmem (contents, 4, "RIFF", 4);
  g_assert_cmpmem (contents + 8, 16, "WAVEfmt \x10\0\0\0\x01\0\x01\0", 16);
  g_assert_cmpmem (contents + 24, 4, "\x40\x1f\0\0", 4);
  g_assert_cmpmem (contents + 34, 10, "\x10\0data\xa0\x0f\0\0", 10);

  samples = cd_audio_read_wav (path, &rate, &n, &error);
  g_assert_no_error (error);
  g_assert_nonnull (samples);
  g_assert_cmpuint (rate, ==, 8000);
  g_assert_cmpuint (n, ==, 2000);
  for (gsize i = 0; i < n; i++) {
    double expected = 0.5 * 32767.0 * sin (2.0 * G_PI * 440 * i / 8000);

    g_assert_cmpfloat (fabs (samples[i] - expected), <=, 0.5 + 1e-6);
  }
  g_assert_cmpfloat_with_epsilon (cd_audio_goertzel (samples, n, rate, 440), 0.25, 0.01);
}

static void
test_wav_stereo (WavFixture *fixture, gconstpointer data)
{
  static const gint16 frames[][2] = {
    { 1000, -200 }, { 32767, 32767 }, { -32768, -32768 }, { 3, 0 }, { -20000, 20000 },
  };
  static const gint16 means[] = { 400, 32767, -32768, 1, 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *mono_path = g_build_filename (fixture->dir, "mono.wav", NULL);
  g_autofree char *stereo_path = g_build_filename (fixture->dir, "stereo.wav", NULL);
  g_autofree char *mixed_path = NULL;
  g_autofree gint16 *mono = NULL;
  g_autofree gint16 *stereo = NULL;
  g_autofree gint16 *mixed = NULL;
  g_autoptr (GByteArray) file = wav_header (1, 2, 16000, 16, sizeof frames);
  gsize n_mono = 0, n_stereo = 0, n = 0;
  guint rate = 0;

  /* a tone written on both channels reads back as the mono tone */
  g_assert_true (cd_audio_write_tone_wav (mono_path, 48000, 1, 1000, 0.7, 0.1, &error));
  g_assert_true (cd_audio_write_tone_wav (stereo_path, 48000, 2, 1000, 0.7, 0.1, &error));
  g_assert_no_error (error);
  mono = cd_audio_read_wav (mono_path, NULL, &n_mono, &error);
  g_assert_no_error (error);
  stereo = cd_audio_read_wav (stereo_path, &rate, &n_stereo, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rate, ==, 48000);
  g_assert_cmpuint (n_stereo, ==, 4800);
  g_assert_cmpmem (mono, n_mono * 2, stereo, n_stereo * 2);

  /* different channels are averaged */
  for (gsize i = 0; i < G_N_ELEMENTS (frames); i++) {
    append_u16 (file, (guint16) frames[i][0]);
    append_u16 (file, (guint16) frames[i][1]);
  }
  mixed_path = save (fixture, "mixed.wav", file->data, file->len);
  mixed = cd_audio_read_wav (mixed_path, &rate, &n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (rate, ==, 16000);
  g_assert_cmpuint (n, ==, G_N_ELEMENTS (frames));
  for (gsize i = 0; i < n; i++)
    g_assert_cmpint (ABS (mixed[i] - means[i]), <=, i == 3 ? 1 : 0);
}

static void
test_wav_skips_chunks (WavFixture *fixture, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GByteArray) file = g_byte_array_new ();
  g_autoptr (GByteArray) fmt_data = wav_header (1, 1, 8000, 16, 4);
  g_autofree char *path = NULL;
  g_autofree gint16 *samples = NULL;
  gsize n = 0;

  /* RIFF header and fmt chunk, then an odd-sized LIST chunk and its pad byte */
  g_byte_array_append (file, fmt_data->data, 36);
  g_byte_array_append (file, (const guint8 *) "LIST\x03\0\0\0abc\0", 12);
  g_byte_array_append (file, fmt_data->data + 36, 8);
  append_u16 (file, 1234);
  append_u16 (file, (guint16) -4321);
  path = save (fixture, "list.wav", file->data, file->len);

  samples = cd_audio_read_wav (path, NULL, &n, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmpint (samples[0], ==, 1234);
  g_assert_cmpint (samples[1], ==, -4321);
}

static void
check_refused (const char *path, GQuark domain, int code, const char *in_message)
{
  g_autoptr (GError) error = NULL;
  gsize n = 12345;
  guint rate = 12345;
  gint16 *samples = cd_audio_read_wav (path, &rate, &n, &error);

  g_assert_null (samples);
  g_assert_error (error, domain, code);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_nonnull (strstr (error->message, in_message));
  /* outputs are left alone on failure */
  g_assert_cmpuint (n, ==, 12345);
  g_assert_cmpuint (rate, ==, 12345);
}

static void
test_wav_refuses (WavFixture *fixture, gconstpointer data)
{
  static const guint8 text[] = "ID3\x04 this is an MP3 file, or something else altogether";
  guint8 samples[100] = { 0 };
  g_autofree char *missing = g_build_filename (fixture->dir, "missing.wav", NULL);
  g_autofree char *empty = save (fixture, "empty.wav", NULL, 0);
  g_autofree char *not_riff = save (fixture, "not-riff.wav", text, sizeof text);
  g_autofree char *short_riff = save (fixture, "short.wav", (const guint8 *) "RIFF\0\0", 6);
  g_autoptr (GByteArray) eight_bit = wav_header (1, 1, 8000, 8, 100);
  g_autoptr (GByteArray) float_pcm = wav_header (3, 1, 8000, 32, 100);
  g_autoptr (GByteArray) five_channels = wav_header (1, 5, 8000, 16, 100);
  g_autoptr (GByteArray) truncated = wav_header (1, 1, 8000, 16, 1000);
  g_autoptr (GByteArray) huge = wav_header (1, 1, 8000, 16, 0x7fffffff);
  g_autoptr (GByteArray) no_data = wav_header (1, 1, 8000, 16, 0);
  g_autofree char *eight_bit_path = NULL;
  g_autofree char *float_path = NULL;
  g_autofree char *five_path = NULL;
  g_autofree char *truncated_path = NULL;
  g_autofree char *huge_path = NULL;
  g_autofree char *no_data_path = NULL;

  g_byte_array_append (eight_bit, samples, 100);
  eight_bit_path = save (fixture, "8-bit.wav", eight_bit->data, eight_bit->len);
  g_byte_array_append (float_pcm, samples, 100);
  float_path = save (fixture, "float.wav", float_pcm->data, float_pcm->len);
  g_byte_array_append (five_channels, samples, 100);
  five_path = save (fixture, "5ch.wav", five_channels->data, five_channels->len);
  g_byte_array_append (truncated, samples, 100);
  truncated_path = save (fixture, "truncated.wav", truncated->data, truncated->len);
  g_byte_array_append (huge, samples, 100);
  huge_path = save (fixture, "huge.wav", huge->data, huge->len);
  /* everything up to the data chunk's header */
  no_data_path = save (fixture, "no-data.wav", no_data->data, 36);

  check_refused (missing, G_FILE_ERROR, G_FILE_ERROR_NOENT, "Could not open");
  check_refused (fixture->dir, G_FILE_ERROR, G_FILE_ERROR_ISDIR, "Could not read");
  check_refused (empty, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV, "is empty");
  check_refused (not_riff, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV, "not a RIFF WAVE file");
  check_refused (short_riff, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV, "only 6 bytes");
  check_refused (eight_bit_path, CD_AUDIO_ERROR, CD_AUDIO_ERROR_UNSUPPORTED,
                 "8-bit samples: only 16-bit");
  check_refused (float_path, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_PCM, "IEEE float");
  check_refused (five_path, CD_AUDIO_ERROR, CD_AUDIO_ERROR_UNSUPPORTED, "5 channels");
  check_refused (truncated_path, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TRUNCATED,
                 "declares 1000 bytes but only 100");
  check_refused (huge_path, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TOO_LARGE,
                 "declares 2147483647 bytes, more than the 64 MiB limit");
  check_refused (no_data_path, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TRUNCATED,
                 "ends before its data chunk");
}

static void
test_wav_write_refuses (WavFixture *fixture, gconstpointer data)
{
  g_autofree char *path = g_build_filename (fixture->dir, "out.wav", NULL);
  g_autofree char *in_missing_dir = g_build_filename (fixture->dir, "no", "out.wav", NULL);
  g_autoptr (GError) error = NULL;

  g_assert_false (cd_audio_write_tone_wav (path, 8000, 3, 440, 0.5, 1, &error));
  g_assert_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (cd_audio_write_tone_wav (path, 0, 1, 440, 0.5, 1, &error));
  g_assert_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (cd_audio_write_tone_wav (path, 8000, 1, 440, 1.5, 1, &error));
  g_assert_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (cd_audio_write_tone_wav (path, 8000, 1, 440, NAN, 1, &error));
  g_assert_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_false (cd_audio_write_tone_wav (path, 8000, 1, 440, 0.5, -1, &error));
  g_assert_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  /* 48 kHz stereo: 64 MiB is 349.5 s */
  g_assert_false (cd_audio_write_tone_wav (path, 48000, 2, 440, 0.5, 350, &error));
  g_assert_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TOO_LARGE);
  g_clear_error (&error);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));

  g_assert_false (cd_audio_write_tone_wav (in_missing_dir, 8000, 1, 440, 0.5, 1, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/audio/goertzel", test_goertzel);
  g_test_add_func ("/audio/sine", test_sine);
  g_test_add_func ("/audio/tone-detector/finds-tones", test_detector_tones);
  g_test_add_func ("/audio/tone-detector/rates", test_detector_rates);
  g_test_add_func ("/audio/tone-detector/strongest-of-a-mix", test_detector_mix);
  g_test_add_func ("/audio/tone-detector/ignores-noise", test_detector_noise);
  g_test_add_func ("/audio/tone-detector/min-level", test_detector_min_level);
  g_test_add_func ("/audio/tone-detector/silence", test_detector_silence);
  g_test_add_func ("/audio/tone-detector/dominant", test_detector_dominant);
  g_test_add_func ("/audio/dtmf", test_dtmf);
  g_test_add ("/audio/wav/round-trip", WavFixture, NULL, wav_setup, test_wav_round_trip,
              wav_teardown);
  g_test_add ("/audio/wav/stereo-averaged", WavFixture, NULL, wav_setup, test_wav_stereo,
              wav_teardown);
  g_test_add ("/audio/wav/skips-other-chunks", WavFixture, NULL, wav_setup, test_wav_skips_chunks,
              wav_teardown);
  g_test_add ("/audio/wav/refuses-bad-files", WavFixture, NULL, wav_setup, test_wav_refuses,
              wav_teardown);
  g_test_add ("/audio/wav/write-refuses", WavFixture, NULL, wav_setup, test_wav_write_refuses,
              wav_teardown);
  return g_test_run ();
}
