/* SPDX-License-Identifier: GPL-3.0-or-later */
/* CdMetrics: metric families by name, series by their label text
 * (`route="/healthz",status="200"`), rendered sorted so output is stable. */

#define G_LOG_DOMAIN "calldocker-metrics"

#include "cd-metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  double value;     /* counter, gauge; histogram: sum */
  guint64 count;    /* histogram */
  guint64 *buckets; /* histogram: cumulative counts per bound */
} Series;

typedef struct {
  char *name;
  CdMetricType type;
  char *help;
  double *bounds;
  gsize n_bounds;
  GHashTable *series; /* label text -> Series */
} Family;

typedef struct {
  CdMetricsCollectFunc func;
  gpointer user_data;
} Collector;

struct _CdMetrics {
  GObject parent_instance;

  GHashTable *families; /* name -> Family */
  GArray *collectors;
};

G_DEFINE_FINAL_TYPE (CdMetrics, cd_metrics, G_TYPE_OBJECT)

static void
series_free (gpointer data)
{
  Series *s = data;

  g_free (s->buckets);
  g_free (s);
}

static void
family_free (gpointer data)
{
  Family *f = data;

  g_free (f->name);
  g_free (f->help);
  g_free (f->bounds);
  g_hash_table_unref (f->series);
  g_free (f);
}

static Series *
lookup_series (CdMetrics *self, const char *name, const char *labels, CdMetricType type)
{
  Family *f = g_hash_table_lookup (self->families, name);
  Series *s;

  if (f == NULL || f->type != type) {
    g_critical ("metric %s is not a registered %s", name,
                type == CD_METRIC_COUNTER ? "counter"
                : type == CD_METRIC_GAUGE ? "gauge"
                                          : "histogram");
    return NULL;
  }
  if (labels == NULL)
    labels = "";
  s = g_hash_table_lookup (f->series, labels);
  if (s == NULL) {
    s = g_new0 (Series, 1);
    if (type == CD_METRIC_HISTOGRAM)
      s->buckets = g_new0 (guint64, f->n_bounds);
    g_hash_table_insert (f->series, g_strdup (labels), s);
  }
  return s;
}

static void
cd_metrics_finalize (GObject *object)
{
  CdMetrics *self = CD_METRICS (object);

  g_hash_table_unref (self->families);
  g_array_unref (self->collectors);
  G_OBJECT_CLASS (cd_metrics_parent_class)->finalize (object);
}

static void
cd_metrics_class_init (CdMetricsClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = cd_metrics_finalize;
}

static void
cd_metrics_init (CdMetrics *self)
{
  self->families = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, family_free);
  self->collectors = g_array_new (FALSE, FALSE, sizeof (Collector));
}

CdMetrics *
cd_metrics_new (void)
{
  return g_object_new (CD_TYPE_METRICS, NULL);
}

/**
 * cd_metrics_register:
 * @buckets: (array length=n_buckets) (nullable): histogram upper bounds, ascending
 *
 * Declares a metric family. Registering a name twice is a programming error.
 */
void
cd_metrics_register (CdMetrics *self, const char *name, CdMetricType type, const char *help,
                     const double *buckets, gsize n_buckets)
{
  Family *f;

  g_return_if_fail (!g_hash_table_contains (self->families, name));
  f = g_new0 (Family, 1);
  f->name = g_strdup (name);
  f->type = type;
  f->help = g_strdup (help);
  if (type == CD_METRIC_HISTOGRAM) {
    f->bounds = g_memdup2 (buckets, n_buckets * sizeof (double));
    f->n_bounds = n_buckets;
  }
  f->series = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, series_free);
  g_hash_table_insert (self->families, f->name, f);
}

/**
 * cd_metrics_add:
 * @labels: (nullable): label pairs as Prometheus text, values escaped
 *
 * Adds @value (>= 0) to a counter.
 */
void
cd_metrics_add (CdMetrics *self, const char *name, const char *labels, double value)
{
  Series *s = lookup_series (self, name, labels, CD_METRIC_COUNTER);

  g_return_if_fail (value >= 0);
  if (s)
    s->value += value;
}

void
cd_metrics_set (CdMetrics *self, const char *name, const char *labels, double value)
{
  Series *s = lookup_series (self, name, labels, CD_METRIC_GAUGE);

  if (s)
    s->value = value;
}

void
cd_metrics_observe (CdMetrics *self, const char *name, const char *labels, double value)
{
  Series *s = lookup_series (self, name, labels, CD_METRIC_HISTOGRAM);
  Family *f;

  if (s == NULL)
    return;
  f = g_hash_table_lookup (self->families, name);
  s->value += value;
  s->count++;
  for (gsize i = 0; i < f->n_bounds; i++) {
    if (value <= f->bounds[i])
      s->buckets[i]++;
  }
}

/**
 * cd_metrics_get:
 *
 * Returns: a counter's or gauge's value, a histogram's count; 0 if unknown
 */
double
cd_metrics_get (CdMetrics *self, const char *name, const char *labels)
{
  Family *f = g_hash_table_lookup (self->families, name);
  Series *s = f ? g_hash_table_lookup (f->series, labels ? labels : "") : NULL;

  if (s == NULL)
    return 0;
  return f->type == CD_METRIC_HISTOGRAM ? (double) s->count : s->value;
}

void
cd_metrics_add_collector (CdMetrics *self, CdMetricsCollectFunc func, gpointer user_data)
{
  Collector c = { func, user_data };

  g_array_append_val (self->collectors, c);
}

/**
 * cd_metrics_escape_label:
 *
 * Returns: (transfer full): @value escaped for a label value
 */
char *
cd_metrics_escape_label (const char *value)
{
  GString *out = g_string_sized_new (strlen (value));

  for (const char *p = value; *p; p++) {
    switch (*p) {
    case '\\':
      g_string_append (out, "\\\\");
      break;
    case '"':
      g_string_append (out, "\\\"");
      break;
    case '\n':
      g_string_append (out, "\\n");
      break;
    default:
      g_string_append_c (out, *p);
      break;
    }
  }
  return g_string_free (out, FALSE);
}

static void
append_number (GString *out, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (isinf (v))
    g_string_append (out, v > 0 ? "+Inf" : "-Inf");
  else if (isnan (v))
    g_string_append (out, "NaN");
  else if (v == floor (v) && fabs (v) < 1e15)
    g_string_append_printf (out, "%.0f", v);
  else
    g_string_append (out, g_ascii_formatd (buf, sizeof buf, "%.15g", v));
}

static void
append_sample (GString *out, const char *name, const char *suffix, const char *labels,
               const char *extra, double value)
{
  gboolean has_labels = labels && *labels;

  g_string_append (out, name);
  g_string_append (out, suffix);
  if (has_labels || extra) {
    g_string_append_c (out, '{');
    if (has_labels)
      g_string_append (out, labels);
    if (has_labels && extra)
      g_string_append_c (out, ',');
    if (extra)
      g_string_append (out, extra);
    g_string_append_c (out, '}');
  }
  g_string_append_c (out, ' ');
  append_number (out, value);
  g_string_append_c (out, '\n');
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

/**
 * cd_metrics_render:
 *
 * Returns: (transfer full): every family in the Prometheus text format 0.0.4
 */
char *
cd_metrics_render (CdMetrics *self)
{
  GString *out = g_string_new (NULL);
  g_autofree gpointer *names = NULL;
  guint n_names;

  for (guint i = 0; i < self->collectors->len; i++) {
    Collector *c = &g_array_index (self->collectors, Collector, i);
    c->func (self, c->user_data);
  }

  names = g_hash_table_get_keys_as_array (self->families, &n_names);
  qsort (names, n_names, sizeof (gpointer), compare_strings);
  for (guint i = 0; i < n_names; i++) {
    Family *f = g_hash_table_lookup (self->families, names[i]);
    g_autofree gpointer *labels = NULL;
    guint n_labels;

    g_string_append_printf (out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                            f->type == CD_METRIC_COUNTER ? "counter"
                            : f->type == CD_METRIC_GAUGE ? "gauge"
                                                         : "histogram");
    labels = g_hash_table_get_keys_as_array (f->series, &n_labels);
    qsort (labels, n_labels, sizeof (gpointer), compare_strings);
    for (guint j = 0; j < n_labels; j++) {
      Series *s = g_hash_table_lookup (f->series, labels[j]);
      if (f->type != CD_METRIC_HISTOGRAM) {
        append_sample (out, f->name, "", labels[j], NULL, s->value);
        continue;
      }
      for (gsize b = 0; b < f->n_bounds; b++) {
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        g_autofree char *le =
            g_strdup_printf ("le=\"%s\"", g_ascii_formatd (buf, sizeof buf, "%g", f->bounds[b]));
        append_sample (out, f->name, "_bucket", labels[j], le, (double) s->buckets[b]);
      }
      append_sample (out, f->name, "_bucket", labels[j], "le=\"+Inf\"", (double) s->count);
      append_sample (out, f->name, "_sum", labels[j], NULL, s->value);
      append_sample (out, f->name, "_count", labels[j], NULL, (double) s->count);
    }
  }
  return g_string_free (out, FALSE);
}
