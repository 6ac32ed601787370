#pragma once
// The server's Prometheus metrics (text exposition format 0.0.4): counters, gauges and histograms
// with cumulative buckets, kept under one mutex (a scrape sees one consistent state).
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace ww::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // ascending; +Inf is implied
  void observe(double value);
  // "<name>_bucket{le="..."} n" lines (cumulative), then _sum and _count; `labels` ("route=\"/predict\"",
  // or "") go into every line.
  void render(std::string& out, const std::string& name, const std::string& labels) const;
  int64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  int64_t count_ = 0;
};

// A label value escaped as the text format requires (backslash, double quote, newline).
std::string escape_label_value(const std::string& value);
// A number as the text format writes it: integers without exponent, "+Inf", "NaN".
std::string prometheus_number(double value);

// Live readings added at scrape time (not kept in the registry).
struct Gauges {
  int64_t queue_depth = 0;
  double server_joules = -1;       // the whole life of the server so far (idle time included); < 0: unknown
  double gpu_power_watts = -1;     // the last batch's mean GPU power; < 0: no GPU
  double device_memory_bytes = -1; // the model device's memory in use; < 0: no GPU
  double device_memory_peak_bytes = -1;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void request(const std::string& route, int status, double seconds);
  void queue_time(double seconds);
  void answered(int64_t tokens, double joules);  // a /predict request answered 200
  void batch(int64_t inputs, int64_t tokens, double joules, bool ok);
  std::string render(const Gauges& gauges) const;
  double batch_joules() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  std::map<std::string, Histogram> latency_;  // by route
  Histogram queue_;
  Histogram batch_size_;
  Histogram request_joules_;
  int64_t batches_ = 0, failed_batches_ = 0;
  int64_t batch_tokens_ = 0, answered_tokens_ = 0;
  double batch_joules_ = 0, answered_joules_ = 0;
};

}  // namespace ww::serve
