// The Prometheus text: cumulative histogram buckets, label escaping, number formats, and the
// server's families with HELP and TYPE lines.
#include <gtest/gtest.h>

#include <cmath>

#include "wattwise/serve/metrics.h"

namespace ww::serve {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(Prometheus, HistogramBucketsAreCumulative) {
  Histogram h({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 3.0, 9.0}) h.observe(v);
  std::string out;
  h.render(out, "x", "route=\"/p\"");
  EXPECT_TRUE(has_line(out, "x_bucket{route=\"/p\",le=\"1\"} 2")) << out;  // le: 1.0 is in the first
  EXPECT_TRUE(has_line(out, "x_bucket{route=\"/p\",le=\"2\"} 3")) << out;
  EXPECT_TRUE(has_line(out, "x_bucket{route=\"/p\",le=\"4\"} 4")) << out;
  EXPECT_TRUE(has_line(out, "x_bucket{route=\"/p\",le=\"+Inf\"} 5")) << out;
  EXPECT_TRUE(has_line(out, "x_sum{route=\"/p\"} 15")) << out;
  EXPECT_TRUE(has_line(out, "x_count{route=\"/p\"} 5")) << out;
  std::string bare;
  Histogram({0.5}).render(bare, "y", "");
  EXPECT_TRUE(has_line(bare, "y_bucket{le=\"0.5\"} 0")) << bare;
  EXPECT_TRUE(has_line(bare, "y_count 0")) << bare;
}

TEST(Prometheus, NumbersAndLabels) {
  EXPECT_EQ(prometheus_number(3), "3");
  EXPECT_EQ(prometheus_number(0.25), "0.25");
  EXPECT_EQ(prometheus_number(INFINITY), "+Inf");
  EXPECT_EQ(prometheus_number(NAN), "NaN");
  EXPECT_EQ(std::stod(prometheus_number(0.1)), 0.1);  // round-trips
  EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

TEST(Prometheus, ServerFamilies) {
  ServerMetrics m;
  m.request("/predict", 200, 0.02);
  m.request("/predict", 200, 0.03);
  m.request("/predict", 400, 0.001);
  m.request("/health", 200, 0.0001);
  m.batch(3, 30, 1.5, true);
  m.batch(1, 5, 0.5, false);
  m.answered(10, 0.5);
  m.answered(20, 1.0);
  m.queue_time(0.004);
  Gauges g;
  g.queue_depth = 2;
  g.server_joules = 7.5;
  const std::string text = m.render(g);
  EXPECT_TRUE(has_line(text, "wattwise_requests_total{route=\"/predict\",status=\"200\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_requests_total{route=\"/predict\",status=\"400\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_requests_total{route=\"/health\",status=\"200\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "# TYPE wattwise_request_duration_seconds histogram")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_request_duration_seconds_count{route=\"/predict\"} 3")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_batch_size_bucket{le=\"1\"} 1")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_batch_size_bucket{le=\"4\"} 2")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_batches_failed_total 1")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_batch_energy_joules_total 2")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_request_energy_joules_total 1.5")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_request_tokens_total 30")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_batch_tokens_total 35")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_queue_depth 2")) << text;
  EXPECT_TRUE(has_line(text, "wattwise_server_energy_joules_total 7.5")) << text;
  EXPECT_EQ(text.find("wattwise_gpu_power_watts"), std::string::npos) << "no GPU: no GPU gauges";
  // Every family has HELP and TYPE; every sample line is "name{labels} value".
  size_t types = 0, helps = 0;
  for (size_t pos = 0; (pos = text.find("# TYPE ", pos)) != std::string::npos; ++pos) ++types;
  for (size_t pos = 0; (pos = text.find("# HELP ", pos)) != std::string::npos; ++pos) ++helps;
  EXPECT_EQ(types, helps);
  EXPECT_GE(types, 12u);
  g.gpu_power_watts = 250;
  g.device_memory_bytes = 1e9;
  g.device_memory_peak_bytes = 2e9;
  const std::string gpu = m.render(g);
  EXPECT_TRUE(has_line(gpu, "wattwise_gpu_power_watts 250")) << gpu;
  EXPECT_TRUE(has_line(gpu, "wattwise_gpu_memory_used_bytes 1000000000")) << gpu;
}

}  // namespace
}  // namespace ww::serve
