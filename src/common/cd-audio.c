/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Audio checks for test peers, tests and benchmarks: what frequency arrives
 * and how loud, on plain S16 mono samples, plus tone and WAV file helpers. */

#define G_LOG_DOMAIN "calldocker-audio"

#include "cd-audio.h"

#include <glib/gstdio.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

G_DEFINE_QUARK (calldocker_audio_error, cd_audio_error)

G_DEFINE_AUTOPTR_CLEANUP_FUNC (FILE, fclose)

/* One S16 sample as a fraction of full scale. */
#define FULL_SCALE 32768.0

/* The second, finer pass of the tone detector: FINE_POINTS frequencies from
 * one coarse step below the coarse peak to one step above it. */
#define FINE_POINTS 21

/* Loud windows whose frequencies lie within this span of each other are
 * counted as the same tone by cd_tone_detector_get_dominant_frequency(). */
#define DOMINANT_SPAN_HZ 4.0

/* Only these are kept per analysed window, so an hour of 50 ms windows is
 * about 0.6 MB. */
typedef struct {
  float frequency; /* Hz, 0 if the window was silent */
  float level;     /* RMS relative to full scale */
} ToneWindow;

/* Not thread-safe: one owner feeds and queries it. */
struct _CdToneDetector {
  guint rate;
  gsize window_n;     /* samples per window */
  double min_hz;      /* first coarse bin */
  double step_hz;     /* coarse bin spacing */
  double nyquist;     /* rate / 2 */
  gsize n_bins;       /* coarse bins */
  double *coeffs;     /* n_bins Goertzel coefficients, 2 cos (2 pi f / rate) */
  double *powers;     /* n_bins, scratch for the coarse scan */
  double *hann;       /* window_n */
  double *windowed;   /* window_n: the window being filled, Hann-weighted, in -1..1 */
  gsize fill;         /* samples in windowed */
  double sum_squares; /* of the unweighted samples in windowed, in -1..1 */
  GArray *history;    /* ToneWindow, one per analysed window */
  double last_frequency;
  double last_level;
};

/* Squared magnitude of the DTFT of @x at each frequency whose Goertzel
 * coefficient is in @coeffs. Four frequencies run side by side so that the
 * recurrences, each a chain of dependent multiply-adds, overlap. */
static void
goertzel_powers (const double *x, gsize n, const double *coeffs, gsize n_coeffs, double *powers)
{
  gsize k = 0;

  for (; k + 4 <= n_coeffs; k += 4) {
    double c[4] = { coeffs[k], coeffs[k + 1], coeffs[k + 2], coeffs[k + 3] };
    double s1[4] = { 0 }, s2[4] = { 0 };

    for (gsize i = 0; i < n; i++) {
      for (guint j = 0; j < 4; j++) {
        double s0 = x[i] + c[j] * s1[j] - s2[j];
        s2[j] = s1[j];
        s1[j] = s0;
      }
    }
    for (guint j = 0; j < 4; j++)
      powers[k + j] = s1[j] * s1[j] + s2[j] * s2[j] - c[j] * s1[j] * s2[j];
  }
  for (; k < n_coeffs; k++) {
    double c = coeffs[k], s1 = 0, s2 = 0;

    for (gsize i = 0; i < n; i++) {
      double s0 = x[i] + c * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    powers[k] = s1 * s1 + s2 * s2 - c * s1 * s2;
  }
}

static double
goertzel_coeff (double freq, guint rate)
{
  return 2.0 * cos (2.0 * G_PI * freq / rate);
}

/* The frequency of the strongest peak: the best coarse bin, then a pass at a
 * tenth of the coarse step around it, then a parabola through the logarithms
 * of the three best fine powers (a Hann peak is close to a Gaussian there). */
static double
find_peak (CdToneDetector *d)
{
  double fine_freq[FINE_POINTS], fine_coeff[FINE_POINTS], fine_power[FINE_POINTS];
  double fine_step = d->step_hz / 10.0;
  double a, b, c, curvature, offset = 0;
  gsize best = 0;
  guint fine_best = 0;

  goertzel_powers (d->windowed, d->window_n, d->coeffs, d->n_bins, d->powers);
  for (gsize k = 1; k < d->n_bins; k++)
    if (d->powers[k] > d->powers[best])
      best = k;

  for (guint j = 0; j < FINE_POINTS; j++) {
    fine_freq[j] = d->min_hz + best * d->step_hz + ((int) j - FINE_POINTS / 2) * fine_step;
    /* outside 0..nyquist a power is meaningless: give it none */
    fine_coeff[j] = goertzel_coeff (CLAMP (fine_freq[j], 0.0, d->nyquist), d->rate);
  }
  goertzel_powers (d->windowed, d->window_n, fine_coeff, FINE_POINTS, fine_power);
  for (guint j = 0; j < FINE_POINTS; j++) {
    if (fine_freq[j] <= 0 || fine_freq[j] >= d->nyquist)
      fine_power[j] = 0;
    if (fine_power[j] > fine_power[fine_best])
      fine_best = j;
  }

  if (fine_best > 0 && fine_best < FINE_POINTS - 1) {
    a = log (fine_power[fine_best - 1] + 1e-300);
    b = log (fine_power[fine_best] + 1e-300);
    c = log (fine_power[fine_best + 1] + 1e-300);
    curvature = a - 2 * b + c;
    if (curvature < 0)
      offset = CLAMP (0.5 * (a - c) / curvature, -0.5, 0.5);
  }
  return fine_freq[fine_best] + offset * fine_step;
}

static void
analyse_window (CdToneDetector *d)
{
  ToneWindow w;

  d->last_level = sqrt (d->sum_squares / d->window_n);
  d->last_frequency = d->last_level < CD_AUDIO_SILENCE_LEVEL ? 0 : find_peak (d);
  w.frequency = (float) d->last_frequency;
  w.level = (float) d->last_level;
  g_array_append_val (d->history, w);
  d->fill = 0;
  d->sum_squares = 0;
}

static int
compare_doubles (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return (x > y) - (x < y);
}

static guint16
get_u16 (const guint8 *p)
{
  return (guint16) (p[0] | (p[1] << 8));
}

static guint32
get_u32 (const guint8 *p)
{
  return (guint32) p[0] | ((guint32) p[1] << 8) | ((guint32) p[2] << 16) | ((guint32) p[3] << 24);
}

static void
put_u16 (guint8 *p, guint16 v)
{
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

static void
put_u32 (guint8 *p, guint32 v)
{
  p[0] = v & 0xff;
  p[1] = (v >> 8) & 0xff;
  p[2] = (v >> 16) & 0xff;
  p[3] = v >> 24;
}

static void
set_read_error (GError **error, FILE *f, const char *path, const char *what)
{
  int saved_errno = errno;

  if (ferror (f))
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno),
                 "Could not read %s: %s", path, g_strerror (saved_errno));
  else
    g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TRUNCATED, "%s is truncated: %s", path,
                 what);
}

/* The format of a WAV file, from its fmt chunk. */
typedef struct {
  guint rate;
  guint channels;
} WavFormat;

static gboolean
parse_fmt_chunk (const guint8 *fmt, guint32 size, const char *path, WavFormat *format,
                 GError **error)
{
  guint tag = get_u16 (fmt);
  guint bits = get_u16 (fmt + 14);

  /* WAVE_FORMAT_EXTENSIBLE names the real format in the first two bytes of
   * its sub-format GUID */
  if (tag == 0xfffe && size >= 40 && get_u16 (fmt + 16) >= 22)
    tag = get_u16 (fmt + 24);
  if (tag != 1)
    goto not_pcm;
  if (bits != 16)
    goto not_16_bit;
  format->channels = get_u16 (fmt + 2);
  format->rate = get_u32 (fmt + 4);
  if (format->channels != 1 && format->channels != 2)
    goto bad_channels;
  if (format->rate == 0)
    goto no_rate;
  return TRUE;

  /* ERRORS */
not_pcm:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_PCM,
               "%s is not integer PCM (format tag 0x%04x%s)", path, tag,
               tag == 3 ? ", IEEE float" : "");
  return FALSE;
not_16_bit:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_UNSUPPORTED,
               "%s has %u-bit samples: only 16-bit PCM is read", path, bits);
  return FALSE;
bad_channels:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_UNSUPPORTED,
               "%s has %u channels: only mono and stereo are read", path, format->channels);
  return FALSE;
no_rate:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_UNSUPPORTED, "%s has a sample rate of 0",
               path);
  return FALSE;
}

/**
 * cd_audio_goertzel:
 * @samples: (array length=n): mono S16 samples
 * @n: number of samples
 * @rate: sample rate in Hz
 * @freq: the frequency to measure, in Hz (need not fall on a DFT bin)
 *
 * Measures the power of one frequency with the Goertzel recurrence over all
 * @n samples (no window), normalised by (n / 2)^2 and full scale so that a
 * sine at @freq with amplitude A (0..1 of full scale) gives about A^2: a
 * full-scale sine gives about 1.0 and silence 0.
 *
 * Returns: the normalised power, 0 if @n is 0
 */
double
cd_audio_goertzel (const gint16 *samples, gsize n, guint rate, double freq)
{
  double c, s1 = 0, s2 = 0, power;

  g_return_val_if_fail (samples != NULL || n == 0, 0);
  g_return_val_if_fail (rate > 0, 0);

  if (n == 0)
    return 0;
  c = goertzel_coeff (freq, rate);
  for (gsize i = 0; i < n; i++) {
    double s0 = samples[i] / FULL_SCALE + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  power = s1 * s1 + s2 * s2 - c * s1 * s2;
  return MAX (power, 0.0) * 4.0 / ((double) n * n);
}

/**
 * cd_tone_detector_new:
 * @rate: sample rate in Hz
 * @window_ms: length of one analysed window (50 is a good choice)
 * @min_hz: lowest frequency scanned, above 0
 * @max_hz: highest frequency scanned (clipped below rate / 2)
 * @step_hz: spacing of the coarse scan (10 is a good choice)
 *
 * Creates a detector that cuts the audio it is fed into consecutive windows
 * of @window_ms and finds, in each one, the strongest frequency: a coarse
 * Goertzel scan from @min_hz to @max_hz every @step_hz over the Hann-weighted
 * window, a finer pass at @step_hz / 10 around the best bin, and a parabolic
 * interpolation; a pure tone is found to well within 1 Hz. All buffers are
 * allocated here, none per window; the coarse scan costs about
 * (max_hz - min_hz) / step_hz multiply-adds per sample.
 *
 * Returns: (transfer full): a new detector
 */
CdToneDetector *
cd_tone_detector_new (guint rate, guint window_ms, double min_hz, double max_hz, double step_hz)
{
  CdToneDetector *d;
  gsize window_n = (gsize) ((guint64) rate * window_ms / 1000);

  g_return_val_if_fail (rate > 0, NULL);
  g_return_val_if_fail (window_n >= 16, NULL);
  g_return_val_if_fail (step_hz > 0, NULL);
  g_return_val_if_fail (min_hz > 0 && min_hz < rate / 2.0, NULL);
  g_return_val_if_fail (max_hz >= min_hz, NULL);

  d = g_new0 (CdToneDetector, 1);
  d->rate = rate;
  d->window_n = window_n;
  d->min_hz = min_hz;
  d->step_hz = step_hz;
  d->nyquist = rate / 2.0;
  max_hz = MIN (max_hz, d->nyquist);
  /* every bin at or below max_hz (allowing for rounding) and below nyquist */
  d->n_bins = (gsize) floor ((max_hz - min_hz) / step_hz + 1e-9) + 1;
  while (d->n_bins > 1 && min_hz + (d->n_bins - 1) * step_hz >= d->nyquist)
    d->n_bins--;

  d->coeffs = g_new (double, d->n_bins);
  d->powers = g_new (double, d->n_bins);
  for (gsize k = 0; k < d->n_bins; k++)
    d->coeffs[k] = goertzel_coeff (min_hz + k * step_hz, rate);

  d->hann = g_new (double, window_n);
  d->windowed = g_new (double, window_n);
  for (gsize i = 0; i < window_n; i++)
    d->hann[i] = 0.5 - 0.5 * cos (2.0 * G_PI * i / window_n);

  /* a minute of 50 ms windows before the first reallocation */
  d->history = g_array_sized_new (FALSE, FALSE, sizeof (ToneWindow), 1200);
  return d;
}

/**
 * cd_tone_detector_free:
 * @d: (nullable): a detector
 *
 * Frees @d and everything it holds.
 */
void
cd_tone_detector_free (CdToneDetector *d)
{
  if (d == NULL)
    return;
  g_free (d->coeffs);
  g_free (d->powers);
  g_free (d->hann);
  g_free (d->windowed);
  g_array_unref (d->history);
  g_free (d);
}

/**
 * cd_tone_detector_feed:
 * @d: a detector
 * @samples: (array length=n): mono S16 samples
 * @n: number of samples, any chunk size
 *
 * Adds audio; each time a window fills up it is analysed. A partial window
 * waits for the next call.
 */
void
cd_tone_detector_feed (CdToneDetector *d, const gint16 *samples, gsize n)
{
  g_return_if_fail (d != NULL);
  g_return_if_fail (samples != NULL || n == 0);

  for (gsize i = 0; i < n; i++) {
    double x = samples[i] / FULL_SCALE;

    d->windowed[d->fill] = d->hann[d->fill] * x;
    d->sum_squares += x * x;
    if (++d->fill == d->window_n)
      analyse_window (d);
  }
}

/**
 * cd_tone_detector_get_windows:
 * @d: a detector
 *
 * Returns: the number of windows analysed so far
 */
guint
cd_tone_detector_get_windows (CdToneDetector *d)
{
  g_return_val_if_fail (d != NULL, 0);

  return d->history->len;
}

/**
 * cd_tone_detector_count_matching:
 * @d: a detector
 * @hz: the expected frequency
 * @tolerance_hz: how far the found frequency may be from @hz
 * @min_level: RMS level relative to full scale that a window must exceed
 *
 * Returns: the number of windows louder than @min_level whose strongest
 *   frequency was within @tolerance_hz of @hz
 */
guint
cd_tone_detector_count_matching (CdToneDetector *d, double hz, double tolerance_hz,
                                 double min_level)
{
  guint count = 0;

  g_return_val_if_fail (d != NULL, 0);

  for (guint i = 0; i < d->history->len; i++) {
    const ToneWindow *w = &g_array_index (d->history, ToneWindow, i);

    if (w->frequency > 0 && w->level > min_level && fabs (w->frequency - hz) <= tolerance_hz)
      count++;
  }
  return count;
}

/**
 * cd_tone_detector_get_last_frequency:
 * @d: a detector
 *
 * Returns: the strongest frequency of the last window, 0 if it was silent
 *   (below %CD_AUDIO_SILENCE_LEVEL) or if no window was analysed yet
 */
double
cd_tone_detector_get_last_frequency (CdToneDetector *d)
{
  g_return_val_if_fail (d != NULL, 0);

  return d->last_frequency;
}

/**
 * cd_tone_detector_get_last_level:
 * @d: a detector
 *
 * Returns: the RMS level of the last window relative to full scale, 0..1
 *   (a full-scale sine is about 0.707)
 */
double
cd_tone_detector_get_last_level (CdToneDetector *d)
{
  g_return_val_if_fail (d != NULL, 0);

  return d->last_level;
}

/**
 * cd_tone_detector_get_dominant_frequency:
 * @d: a detector
 * @min_level: RMS level relative to full scale that a window must exceed
 *
 * Groups the windows louder than @min_level by their strongest frequency
 * (frequencies within 4 Hz of each other make one group) and picks the
 * largest group; ties go to the lower frequency.
 *
 * Returns: the mean frequency of that group, 0 if no window was loud enough
 */
double
cd_tone_detector_get_dominant_frequency (CdToneDetector *d, double min_level)
{
  g_autoptr (GArray) freqs = NULL;
  const double *f;
  gsize best_lo = 0, best_count = 0, hi = 0;
  double sum = 0;

  g_return_val_if_fail (d != NULL, 0);

  freqs = g_array_sized_new (FALSE, FALSE, sizeof (double), d->history->len);
  for (guint i = 0; i < d->history->len; i++) {
    const ToneWindow *w = &g_array_index (d->history, ToneWindow, i);
    double freq = w->frequency;

    if (w->frequency > 0 && w->level > min_level)
      g_array_append_val (freqs, freq);
  }
  if (freqs->len == 0)
    return 0;
  g_array_sort (freqs, compare_doubles);

  f = (const double *) freqs->data;
  for (gsize lo = 0; lo < freqs->len; lo++) {
    while (hi < freqs->len && f[hi] - f[lo] <= DOMINANT_SPAN_HZ)
      hi++;
    if (hi - lo > best_count) {
      best_count = hi - lo;
      best_lo = lo;
    }
  }
  for (gsize i = best_lo; i < best_lo + best_count; i++)
    sum += f[i];
  return sum / best_count;
}

/**
 * cd_audio_sine:
 * @out: (array length=n): where to write
 * @n: number of samples
 * @rate: sample rate in Hz
 * @freq: frequency in Hz
 * @amplitude: 0..1 of full scale
 * @phase: (inout) (nullable): phase in radians to start from, updated to
 *   continue in the next call; %NULL starts at 0
 *
 * Fills @out with a sine, rounded to the nearest sample value.
 */
void
cd_audio_sine (gint16 *out, gsize n, guint rate, double freq, double amplitude, double *phase)
{
  double p = phase != NULL ? *phase : 0;
  double step;

  g_return_if_fail (out != NULL || n == 0);
  g_return_if_fail (rate > 0);

  step = 2.0 * G_PI * freq / rate;
  for (gsize i = 0; i < n; i++) {
    double v = round (amplitude * 32767.0 * sin (p));

    out[i] = (gint16) CLAMP (v, -32768.0, 32767.0);
    p += step;
    if (p >= 2.0 * G_PI || p < 0) {
      p = fmod (p, 2.0 * G_PI);
      if (p < 0)
        p += 2.0 * G_PI;
    }
  }
  if (phase != NULL)
    *phase = p;
}

/**
 * cd_audio_dtmf_frequencies:
 * @digit: one of 0-9, *, #, A-D
 * @low: (out) (optional): the row frequency in Hz
 * @high: (out) (optional): the column frequency in Hz
 *
 * Returns: %FALSE (and leaves @low and @high alone) if @digit is not a
 *   DTMF key
 */
gboolean
cd_audio_dtmf_frequencies (char digit, double *low, double *high)
{
  /* the keypad, row by row: rows are the low group, columns the high one */
  static const char keys[] = "123A456B789C*0#D";
  static const double rows[] = { 697, 770, 852, 941 };
  static const double columns[] = { 1209, 1336, 1477, 1633 };
  const char *key;

  if (digit == '\0' || (key = strchr (keys, digit)) == NULL)
    return FALSE;
  if (low != NULL)
    *low = rows[(key - keys) / 4];
  if (high != NULL)
    *high = columns[(key - keys) % 4];
  return TRUE;
}

/**
 * cd_audio_write_tone_wav:
 * @path: the file to write (replaced atomically)
 * @rate: sample rate in Hz, 1..384000
 * @channels: 1 or 2 (both channels carry the same tone)
 * @freq: frequency in Hz; 0 writes silence
 * @amplitude: 0..1 of full scale
 * @seconds: duration
 * @error: return location for a #GError
 *
 * Writes a RIFF WAVE file of 16-bit PCM with one sine tone.
 *
 * Returns: %TRUE on success
 */
gboolean
cd_audio_write_tone_wav (const char *path, guint rate, guint channels, double freq,
                         double amplitude, double seconds, GError **error)
{
  g_autofree guint8 *data = NULL;
  gint16 chunk[1024];
  double phase = 0, data_bytes;
  gsize frames, done = 0;
  guint8 *p;

  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (rate == 0 || rate > 384000 || (channels != 1 && channels != 2))
    goto bad_format;
  if (!isfinite (freq) || freq < 0 || !(amplitude >= 0 && amplitude <= 1) || !isfinite (seconds) ||
      seconds < 0)
    goto bad_tone;
  data_bytes = round (seconds * rate) * channels * 2;
  if (data_bytes > CD_AUDIO_WAV_MAX_DATA_BYTES)
    goto too_large;
  frames = (gsize) round (seconds * rate);

  data = g_malloc (44 + (gsize) data_bytes);
  memcpy (data, "RIFF", 4);
  put_u32 (data + 4, 36 + (guint32) data_bytes);
  memcpy (data + 8, "WAVEfmt ", 8);
  put_u32 (data + 16, 16);
  put_u16 (data + 20, 1); /* PCM */
  put_u16 (data + 22, channels);
  put_u32 (data + 24, rate);
  put_u32 (data + 28, rate * channels * 2);
  put_u16 (data + 32, channels * 2);
  put_u16 (data + 34, 16);
  memcpy (data + 36, "data", 4);
  put_u32 (data + 40, (guint32) data_bytes);

  p = data + 44;
  while (done < frames) {
    gsize n = MIN (frames - done, G_N_ELEMENTS (chunk));

    cd_audio_sine (chunk, n, rate, freq, amplitude, &phase);
    for (gsize i = 0; i < n; i++)
      for (guint c = 0; c < channels; c++, p += 2)
        put_u16 (p, (guint16) chunk[i]);
    done += n;
  }
  return g_file_set_contents (path, (const char *) data, 44 + (gssize) data_bytes, error);

  /* ERRORS */
bad_format:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT,
               "Cannot write %s: %u Hz with %u channels (1..384000 Hz, 1 or 2 channels)", path,
               rate, channels);
  return FALSE;
bad_tone:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_INVALID_ARGUMENT,
               "Cannot write %s: a %g Hz tone at amplitude %g for %g s (need a frequency >= 0, "
               "amplitude 0..1, duration >= 0)",
               path, freq, amplitude, seconds);
  return FALSE;
too_large:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TOO_LARGE,
               "Cannot write %s: %.0f bytes of samples, more than the %u MiB limit", path,
               data_bytes, CD_AUDIO_WAV_MAX_DATA_BYTES / (1024 * 1024));
  return FALSE;
}

/**
 * cd_audio_read_wav:
 * @path: a RIFF WAVE file of 16-bit PCM, mono or stereo
 * @rate: (out) (optional): its sample rate in Hz
 * @n_samples: (out) (optional): the number of mono samples returned
 * @error: return location for a #GError
 *
 * Reads the samples of a WAV file, averaging the two channels of a stereo
 * file. Chunks other than fmt and data are skipped. A data chunk that
 * declares more than %CD_AUDIO_WAV_MAX_DATA_BYTES is refused before anything
 * is allocated; one that declares more than the file holds is truncated.
 *
 * Returns: (transfer full) (array length=n_samples): the samples (never
 *   %NULL on success, even with no samples), or %NULL with @error set
 *   (%G_FILE_ERROR if the file cannot be read, %CD_AUDIO_ERROR if it is not
 *   a WAV file this function reads)
 */
gint16 *
cd_audio_read_wav (const char *path, guint *rate, gsize *n_samples, GError **error)
{
  g_autoptr (FILE) f = NULL;
  g_autofree guint8 *raw = NULL;
  gint16 *samples;
  guint8 header[12], chunk[8], fmt[40];
  WavFormat format = { 0, 0 };
  gboolean have_fmt = FALSE;
  guint32 id_size = 0;
  gsize got, frames;
  int saved_errno;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  f = g_fopen (path, "rb");
  if (f == NULL)
    goto open_failed;

  got = fread (header, 1, sizeof header, f);
  if (got < sizeof header) {
    if (ferror (f))
      goto read_failed;
    goto too_short;
  }
  if (memcmp (header, "RIFF", 4) != 0 || memcmp (header + 8, "WAVE", 4) != 0)
    goto not_riff;

  for (;;) {
    if (fread (chunk, 1, sizeof chunk, f) < sizeof chunk) {
      set_read_error (error, f, path, "it ends before its data chunk");
      return NULL;
    }
    id_size = get_u32 (chunk + 4);

    if (memcmp (chunk, "fmt ", 4) == 0) {
      gsize want = MIN (id_size, sizeof fmt);

      if (id_size < 16)
        goto short_fmt;
      if (fread (fmt, 1, want, f) < want) {
        set_read_error (error, f, path, "its fmt chunk is cut short");
        return NULL;
      }
      if (!parse_fmt_chunk (fmt, id_size, path, &format, error))
        return NULL;
      have_fmt = TRUE;
      if (fseeko (f, (off_t) (id_size - want) + (id_size & 1), SEEK_CUR) != 0)
        goto read_failed;
    } else if (memcmp (chunk, "data", 4) == 0) {
      break;
    } else if (fseeko (f, (off_t) id_size + (id_size & 1), SEEK_CUR) != 0) {
      goto read_failed;
    }
  }

  if (!have_fmt)
    goto data_before_fmt;
  if (id_size > CD_AUDIO_WAV_MAX_DATA_BYTES)
    goto too_large;
  frames = id_size / (format.channels * 2);
  raw = g_malloc (frames * format.channels * 2 + 1);
  got = fread (raw, 1, frames * format.channels * 2, f);
  if (got < frames * format.channels * 2) {
    if (ferror (f))
      goto read_failed;
    goto truncated_data;
  }

  samples = g_new (gint16, MAX (frames, 1));
  for (gsize i = 0; i < frames; i++) {
    if (format.channels == 1) {
      samples[i] = (gint16) get_u16 (raw + 2 * i);
    } else {
      gint32 left = (gint16) get_u16 (raw + 4 * i);
      gint32 right = (gint16) get_u16 (raw + 4 * i + 2);
      samples[i] = (gint16) ((left + right) / 2);
    }
  }
  if (rate != NULL)
    *rate = format.rate;
  if (n_samples != NULL)
    *n_samples = frames;
  return samples;

  /* ERRORS */
open_failed:
  saved_errno = errno;
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno), "Could not open %s: %s",
               path, g_strerror (saved_errno));
  return NULL;
read_failed:
  saved_errno = errno;
  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno), "Could not read %s: %s",
               path, g_strerror (saved_errno));
  return NULL;
too_short:
  if (got == 0)
    g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV, "%s is empty, not a RIFF WAVE file",
                 path);
  else
    g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV,
                 "%s is not a RIFF WAVE file: only %" G_GSIZE_FORMAT " bytes", path, got);
  return NULL;
not_riff:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV,
               "%s is not a RIFF WAVE file (no RIFF/WAVE header)", path);
  return NULL;
short_fmt:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV,
               "%s is not a valid WAV file: its fmt chunk has %u bytes, fewer than 16", path,
               id_size);
  return NULL;
data_before_fmt:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_NOT_WAV,
               "%s is not a valid WAV file: its data chunk comes before any fmt chunk", path);
  return NULL;
too_large:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TOO_LARGE,
               "%s is too big: its data chunk declares %u bytes, more than the %u MiB limit", path,
               id_size, CD_AUDIO_WAV_MAX_DATA_BYTES / (1024 * 1024));
  return NULL;
truncated_data:
  g_set_error (error, CD_AUDIO_ERROR, CD_AUDIO_ERROR_TRUNCATED,
               "%s is truncated: its data chunk declares %u bytes but only %" G_GSIZE_FORMAT
               " follow",
               path, id_size, got);
  return NULL;
}
