/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Prometheus metrics: counters, gauges and histograms kept on the main
 * thread and rendered in the text exposition format. */
#pragma once

#include <glib-object.h>

G_BEGIN_DECLS

typedef enum {
  CD_METRIC_COUNTER,
  CD_METRIC_GAUGE,
  CD_METRIC_HISTOGRAM,
} CdMetricType;

#define CD_TYPE_METRICS (cd_metrics_get_type ())
G_DECLARE_FINAL_TYPE (CdMetrics, cd_metrics, CD, METRICS, GObject)

/* Called before every rendering to refresh gauges that mirror other state. */
typedef void (*CdMetricsCollectFunc) (CdMetrics *metrics, gpointer user_data);

CdMetrics *cd_metrics_new (void);
void cd_metrics_register (CdMetrics *self, const char *name, CdMetricType type, const char *help,
                          const double *buckets, gsize n_buckets);
void cd_metrics_add (CdMetrics *self, const char *name, const char *labels, double value);
void cd_metrics_set (CdMetrics *self, const char *name, const char *labels, double value);
void cd_metrics_observe (CdMetrics *self, const char *name, const char *labels, double value);
double cd_metrics_get (CdMetrics *self, const char *name, const char *labels);
void cd_metrics_add_collector (CdMetrics *self, CdMetricsCollectFunc func, gpointer user_data);
char *cd_metrics_render (CdMetrics *self);
char *cd_metrics_escape_label (const char *value);

G_END_DECLS
