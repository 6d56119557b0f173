/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Audio checks without GStreamer: Goertzel power, a streaming tone detector,
 * sine and DTMF generation, and 16-bit PCM WAV files for test peers. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CD_AUDIO_ERROR (cd_audio_error_quark ())

typedef enum {
  CD_AUDIO_ERROR_NOT_WAV,          /* not a RIFF WAVE file, or empty */
  CD_AUDIO_ERROR_NOT_PCM,          /* compressed or float samples */
  CD_AUDIO_ERROR_UNSUPPORTED,      /* not 16-bit, not mono or stereo, no rate */
  CD_AUDIO_ERROR_TRUNCATED,        /* a chunk ends past the end of the file */
  CD_AUDIO_ERROR_TOO_LARGE,        /* more than CD_AUDIO_WAV_MAX_DATA_BYTES of samples */
  CD_AUDIO_ERROR_INVALID_ARGUMENT, /* cd_audio_write_tone_wav() parameters out of range */
} CdAudioError;

GQuark cd_audio_error_quark (void);

/* The largest data chunk read or written: 64 MiB, about 11 minutes of 48 kHz stereo. */
#define CD_AUDIO_WAV_MAX_DATA_BYTES (64u * 1024u * 1024u)

/* A window whose RMS level is below this (about -80 dBFS) counts as silent:
 * its dominant frequency is reported as 0. */
#define CD_AUDIO_SILENCE_LEVEL 1e-4

double cd_audio_goertzel (const gint16 *samples, gsize n, guint rate, double freq);

typedef struct _CdToneDetector CdToneDetector;

CdToneDetector *cd_tone_detector_new (guint rate, guint window_ms, double min_hz, double max_hz,
                                      double step_hz);
void cd_tone_detector_free (CdToneDetector *d);
void cd_tone_detector_feed (CdToneDetector *d, const gint16 *samples, gsize n);
guint cd_tone_detector_get_windows (CdToneDetector *d);
guint cd_tone_detector_count_matching (CdToneDetector *d, double hz, double tolerance_hz,
                                       double min_level);
double cd_tone_detector_get_last_frequency (CdToneDetector *d);
double cd_tone_detector_get_last_level (CdToneDetector *d);
double cd_tone_detector_get_dominant_frequency (CdToneDetector *d, double min_level);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CdToneDetector, cd_tone_detector_free)

void cd_audio_sine (gint16 *out, gsize n, guint rate, double freq, double amplitude, double *phase);

gboolean cd_audio_dtmf_frequencies (char digit, double *low, double *high);

gboolean cd_audio_write_tone_wav (const char *path, guint rate, guint channels, double freq,
                                  double amplitude, double seconds, GError **error);
gint16 *cd_audio_read_wav (const char *path, guint *rate, gsize *n_samples, GError **error);

G_END_DECLS
