#include "wattwise/serve/metrics.h"

#include <cmath>
#include <cstdio>

#include "wattwise/core/error.h"

namespace ww::serve {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  for (size_t i = 1; i < bounds_.size(); ++i) WW_CHECK(bounds_[i - 1] < bounds_[i], "histogram bounds must ascend");
}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;  // le: a value equal to a bound is in it
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string escape_label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", value);
  else std::snprintf(buf, sizeof buf, "%.17g", value);
  return buf;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  int64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? prometheus_number(bounds_[i]) : "+Inf";
    out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + prometheus_number(sum_) + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_) + "\n";
}

namespace {
// Seconds: 1 ms to 30 s, about x2.5 apart (TEI and most servers use similar spreads).
std::vector<double> seconds_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}
void header(std::string& out, const std::string& name, const std::string& type, const std::string& help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}
void sample(std::string& out, const std::string& name, double value) {
  out += name + " " + prometheus_number(value) + "\n";
}
}  // namespace

ServerMetrics::ServerMetrics()
    : queue_(seconds_buckets()),
      batch_size_({1, 2, 4, 8, 16, 32, 64, 128, 256}),
      request_joules_({0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100}) {}

void ServerMetrics::request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  latency_.try_emplace(route, seconds_buckets()).first->second.observe(seconds);
}

void ServerMetrics::queue_time(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.observe(seconds);
}

void ServerMetrics::answered(int64_t tokens, double joules) {
  std::lock_guard<std::mutex> lock(mutex_);
  answered_tokens_ += tokens;
  answered_joules_ += joules;
  request_joules_.observe(joules);
}

void ServerMetrics::batch(int64_t inputs, int64_t tokens, double joules, bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++batches_;
  if (!ok) ++failed_batches_;
  batch_size_.observe(double(inputs));
  batch_tokens_ += tokens;
  batch_joules_ += joules;
}

double ServerMetrics::batch_joules() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batch_joules_;
}

std::string ServerMetrics::render(const Gauges& gauges) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(out, "wattwise_requests_total", "counter", "HTTP requests answered, by route and status code.");
  for (const auto& [key, n] : requests_)
    out += "wattwise_requests_total{route=\"" + escape_label_value(key.first) + "\",status=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  header(out, "wattwise_request_duration_seconds", "histogram", "Time from a request's arrival to its answer.");
  for (const auto& [route, h] : latency_)
    h.render(out, "wattwise_request_duration_seconds", "route=\"" + escape_label_value(route) + "\"");
  header(out, "wattwise_queue_duration_seconds", "histogram", "Time a /predict request waited for its batch to start.");
  queue_.render(out, "wattwise_queue_duration_seconds", "");
  header(out, "wattwise_batch_size", "histogram", "Inputs per forward pass.");
  batch_size_.render(out, "wattwise_batch_size", "");
  header(out, "wattwise_batches_total", "counter", "Forward passes run.");
  sample(out, "wattwise_batches_total", double(batches_));
  header(out, "wattwise_batches_failed_total", "counter", "Forward passes that failed (their requests got 500).");
  sample(out, "wattwise_batches_failed_total", double(failed_batches_));
  header(out, "wattwise_batch_tokens_total", "counter", "Input tokens (no padding) run through the model.");
  sample(out, "wattwise_batch_tokens_total", double(batch_tokens_));
  header(out, "wattwise_request_tokens_total", "counter", "Input tokens of the /predict requests answered 200.");
  sample(out, "wattwise_request_tokens_total", double(answered_tokens_));
  header(out, "wattwise_batch_energy_joules_total", "counter",
         "Energy of the forward passes (the meter's window around each batch), all devices metered.");
  sample(out, "wattwise_batch_energy_joules_total", batch_joules_);
  header(out, "wattwise_request_energy_joules_total", "counter",
         "Energy attributed to the /predict requests answered 200 (their X-Energy-Joules summed).");
  sample(out, "wattwise_request_energy_joules_total", answered_joules_);
  header(out, "wattwise_request_energy_joules", "histogram", "Energy attributed to one /predict request.");
  request_joules_.render(out, "wattwise_request_energy_joules", "");
  header(out, "wattwise_queue_depth", "gauge", "Requests waiting for a batch.");
  sample(out, "wattwise_queue_depth", double(gauges.queue_depth));
  if (gauges.server_joules >= 0) {
    header(out, "wattwise_server_energy_joules_total", "counter",
           "Energy of the server's whole life so far, idle time included.");
    sample(out, "wattwise_server_energy_joules_total", gauges.server_joules);
  }
  if (gauges.gpu_power_watts >= 0) {
    header(out, "wattwise_gpu_power_watts", "gauge", "Mean power of the metered GPUs over the last batch.");
    sample(out, "wattwise_gpu_power_watts", gauges.gpu_power_watts);
  }
  if (gauges.device_memory_bytes >= 0) {
    header(out, "wattwise_gpu_memory_used_bytes", "gauge", "GPU memory the engine holds now.");
    sample(out, "wattwise_gpu_memory_used_bytes", gauges.device_memory_bytes);
    header(out, "wattwise_gpu_memory_peak_bytes", "gauge", "Most GPU memory the engine has held.");
    sample(out, "wattwise_gpu_memory_peak_bytes", gauges.device_memory_peak_bytes);
  }
  return out;
}

}  // namespace ww::serve
