/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Metrics in the Prometheus text format: every line parses, histograms are
 * cumulative, labels are escaped, collectors run before rendering. */

#include "cd-test-harness.h"
#include "events/cd-metrics.h"

#include <string.h>

static void
collect (CdMetrics *metrics, gpointer user_data)
{
  int *calls = user_data;

  (*calls)++;
  cd_metrics_set (metrics, "test_gauge", NULL, *calls * 10);
}

static void
test_render (void)
{
  g_autoptr (CdMetrics) m = cd_metrics_new ();
  const double buckets[] = { 0.1, 1, 10 };
  g_autofree char *text = NULL;
  g_autofree char *escaped = cd_metrics_escape_label ("a\"b\\c\nd");
  g_autofree char *labels = g_strdup_printf ("route=\"%s\"", escaped);
  int calls = 0;

  cd_metrics_register (m, "test_total", CD_METRIC_COUNTER, "A counter", NULL, 0);
  cd_metrics_register (m, "test_gauge", CD_METRIC_GAUGE, "A gauge", NULL, 0);
  cd_metrics_register (m, "test_seconds", CD_METRIC_HISTOGRAM, "A histogram", buckets, 3);
  cd_metrics_add_collector (m, collect, &calls);

  cd_metrics_add (m, "test_total", labels, 1);
  cd_metrics_add (m, "test_total", labels, 2);
  cd_metrics_add (m, "test_total", "route=\"/x\"", 1);
  cd_metrics_observe (m, "test_seconds", NULL, 0.05);
  cd_metrics_observe (m, "test_seconds", NULL, 0.5);
  cd_metrics_observe (m, "test_seconds", NULL, 50);

  text = cd_metrics_render (m);
  g_test_message ("%s", text);
  cd_test_assert_prometheus_text (text);
  g_assert_cmpint (calls, ==, 1);
  g_assert_nonnull (strstr (text, "# TYPE test_total counter\n"));
  g_assert_nonnull (strstr (text, "test_total{route=\"a\\\"b\\\\c\\nd\"} 3\n"));
  g_assert_nonnull (strstr (text, "test_total{route=\"/x\"} 1\n"));
  g_assert_nonnull (strstr (text, "test_gauge 10\n"));
  g_assert_nonnull (strstr (text, "test_seconds_bucket{le=\"0.1\"} 1\n"));
  g_assert_nonnull (strstr (text, "test_seconds_bucket{le=\"1\"} 2\n"));
  g_assert_nonnull (strstr (text, "test_seconds_bucket{le=\"10\"} 2\n"));
  g_assert_nonnull (strstr (text, "test_seconds_bucket{le=\"+Inf\"} 3\n"));
  g_assert_nonnull (strstr (text, "test_seconds_count 3\n"));
  g_assert_nonnull (strstr (text, "test_seconds_sum 50.55"));
  g_assert_cmpfloat (cd_metrics_get (m, "test_total", labels), ==, 3);
}

static void
test_unregistered_is_critical (void)
{
  g_autoptr (CdMetrics) m = cd_metrics_new ();

  g_test_expect_message ("calldocker-metrics", G_LOG_LEVEL_CRITICAL, "*not a registered*");
  cd_metrics_add (m, "nope_total", NULL, 1);
  g_test_assert_expected_messages ();
  g_assert_cmpfloat (cd_metrics_get (m, "nope_total", NULL), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/metrics/render", test_render);
  g_test_add_func ("/metrics/unregistered-is-critical", test_unregistered_is_critical);
  return g_test_run ();
}
