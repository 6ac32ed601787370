#include "wattwise/serve/server.h"

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/serve/metrics.h"
#include "wattwise/serve/request.h"

namespace ww::serve {

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// How a window's joules were obtained, one line: "cpu: estimated: ...; ram: estimated: ...". Header
// values must be printable ASCII, so anything else becomes '?'.
std::string provenance_of(const energy::WindowResult& window) {
  std::string out;
  for (const energy::SourceEnergy& s : window.sources) {
    if (!out.empty()) out += "; ";
    out += s.source + ": " + s.provenance;
  }
  for (char& c : out)
    if (c < 0x20 || c > 0x7e) c = '?';
  return out;
}

// The route label of /metrics: the known routes, everything else "other" (a scanner's paths would
// otherwise make a series each).
std::string route_label(const std::string& path) {
  static const std::set<std::string> known = {"/predict", "/health", "/info", "/metrics"};
  return known.count(path) ? path : "other";
}

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, const RequestError& e) {
  send_json(res, e.status(), error_body(e.what(), e.error_type(), e.field()));
}

// The reason phrase of the statuses httplib may answer on its own (before any handler runs).
std::string status_message(int status) {
  switch (status) {
    case 400: return "bad request";
    case 404: return "no such route (POST /predict, GET /health, /info, /metrics)";
    case 405: return "method not allowed";
    case 413: return "the body is larger than --max-body-bytes";
    case 414: return "the request line is too long";
    default: return "HTTP " + std::to_string(status);
  }
}

// SIGINT and SIGTERM only set this flag (all a signal handler may safely do); a watcher thread
// sees it and does the real work: stop the HTTP server, which lets the drain begin. A handler, not
// sigwait: libraries start threads before main (OpenBLAS) whose signal masks we cannot set.
volatile std::sig_atomic_t termination_signal = 0;
extern "C" void on_termination_signal(int sig) { termination_signal = sig; }

void install_termination_handlers() {
  struct sigaction action {};
  action.sa_handler = on_termination_signal;
  action.sa_flags = SA_RESTART;  // other threads' system calls carry on
  sigemptyset(&action.sa_mask);
  // Installed even where the signal was ignored (a background job of a script ignores SIGINT): a
  // server must stop cleanly on either.
  for (int sig : {SIGINT, SIGTERM})
    if (::sigaction(sig, &action, nullptr) != 0) fail("cannot install the ", sig == SIGINT ? "SIGINT" : "SIGTERM", " handler");
}

class Server {
 public:
  explicit Server(const ServeOptions& options);
  int run();

 private:
  void predict(const httplib::Request& req, httplib::Response& res);
  BatchOutput run_batch(const std::vector<const text::Encoding*>& inputs);
  nlohmann::json info() const;
  Gauges gauges();

  const ServeOptions options_;
  experiment::InferenceClassifier classifier_;
  std::vector<std::string> labels_;
  nlohmann::json quantization_;
  std::unique_ptr<energy::EnergyMonitor> monitor_;
  std::mutex monitor_mutex_;  // the batcher's windows and the scrapes' readings
  double last_gpu_watts_ = -1;
  ServerMetrics metrics_;
  std::unique_ptr<Batcher> batcher_;
  httplib::Server http_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> admitted_{0}, answered_{0};
};

Server::Server(const ServeOptions& options) : options_(options), classifier_(options.model) {
  if (options.policy.max_batch < 1) fail("--max-batch must be at least 1, got ", options.policy.max_batch);
  if (options.policy.max_batch_tokens < classifier_.max_length())
    fail("--max-batch-tokens ", options.policy.max_batch_tokens, " is below the model's input length ",
         classifier_.max_length(), ": a long input could never run");
  if (options.max_queue < 1) fail("--max-queue must be at least 1, got ", options.max_queue);
  if (options.max_body_bytes < 2) fail("--max-body-bytes must be at least 2, got ", options.max_body_bytes);
  if (options.timeout_ms < 1) fail("--timeout-ms must be at least 1, got ", options.timeout_ms);
  if (options.threads < 1) fail("--threads must be at least 1, got ", options.threads);
  if (experiment::quantization_of(options.model.precision)) {
    if (options.model.precision != "int8-weight" && options.calibration.data.empty())
      fail("--precision ", options.model.precision,
           " calibrates its input scales on texts: give them with --calibration-data FILE");
    quantization_ = classifier_.quantize(options.calibration, {}, options.policy.max_batch);
  }
  for (int64_t k = 0; k < classifier_.config().num_labels; ++k) labels_.push_back(classifier_.config().label_name(k));

  experiment::EnergySettings settings = experiment::energy_settings_for(options.model.device);
  monitor_ = std::make_unique<energy::EnergyMonitor>(experiment::energy_options_of(settings, ""));
  monitor_->start();
  monitor_->begin_window("serve");
  batcher_ = std::make_unique<Batcher>(
      options.policy, size_t(options.max_queue), classifier_.config().num_labels,
      [this](const std::vector<const text::Encoding*>& inputs) { return run_batch(inputs); },
      [this](int64_t inputs, int64_t tokens, double joules, bool ok) { metrics_.batch(inputs, tokens, joules, ok); });
}

BatchOutput Server::run_batch(const std::vector<const text::Encoding*>& inputs) {
  {
    std::lock_guard<std::mutex> lock(monitor_mutex_);
    monitor_->begin_window("batch");
  }
  BatchOutput out;
  try {
    out.logits = classifier_.logits(inputs);
    experiment::check_finite_logits(out.logits, classifier_.config().num_labels, "batch input", 0);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  // The window closes whatever happened: a failed batch used energy too.
  std::lock_guard<std::mutex> lock(monitor_mutex_);
  energy::WindowResult window = monitor_->end_window("batch");
  out.joules = window.total_joules;
  out.provenance = provenance_of(window);
  if (window.gpu_present && window.duration_s > 0) last_gpu_watts_ = window.gpu_joules / window.duration_s;
  return out;
}

void Server::predict(const httplib::Request& req, httplib::Response& res) {
  const Clock::time_point start = Clock::now();
  try {
    PredictRequest request = parse_predict_request(req.body, size_t(options_.policy.max_batch));
    auto job = std::make_shared<Job>();
    job->arrived = start;
    const text::Tokenizer& tokenizer = classifier_.tokenizer();
    const int max_length = classifier_.max_length();
    for (size_t i = 0; i < request.inputs.size(); ++i) {
      const TextInput& input = request.inputs[i];
      const std::string field = request.batch ? "inputs[" + std::to_string(i) + "]" : "inputs";
      const std::optional<std::string_view> pair =
          input.text_pair ? std::optional<std::string_view>(*input.text_pair) : std::nullopt;
      text::Encoding e;
      try {
        e = tokenizer.encode(input.text, pair, 0);  // 0: no truncation, to see the real length
        if (int64_t(e.input_ids.size()) > max_length) {
          if (!request.truncate)
            throw RequestError(413, field,
                               field + ": " + std::to_string(e.input_ids.size()) + " tokens, more than the model's " +
                                   std::to_string(max_length) + " (send \"truncate\": true to cut it)");
          e = tokenizer.encode(input.text, pair, max_length);
        }
      } catch (const RequestError&) {
        throw;
      } catch (const Error& err) {
        throw RequestError(400, field, field + ": " + err.what());
      }
      job->tokens += int64_t(e.input_ids.size());
      job->longest = std::max<int64_t>(job->longest, int64_t(e.input_ids.size()));
      job->encodings.push_back(std::move(e));
    }
    if (job->encodings.size() * size_t(job->longest) > size_t(options_.policy.max_batch_tokens))
      throw RequestError(413, "inputs",
                         "inputs: " + std::to_string(job->encodings.size()) + " inputs of up to " +
                             std::to_string(job->longest) + " tokens exceed --max-batch-tokens " +
                             std::to_string(options_.policy.max_batch_tokens));
    std::future<Job::Result> answer = job->promise.get_future();
    const Batcher::Admission admission = batcher_->submit(job);
    if (admission != Batcher::Admission::accepted) {
      res.set_header("Retry-After", "1");
      throw RequestError(503, "",
                         admission == Batcher::Admission::queue_full
                             ? "the queue is full (--max-queue " + std::to_string(options_.max_queue) + "): retry later"
                             : "the server is shutting down",
                         "Overloaded");
    }
    ++admitted_;
    const auto deadline = start + std::chrono::milliseconds(options_.timeout_ms);
    if (answer.wait_until(deadline) != std::future_status::ready) {
      job->abandoned = true;
      ++answered_;
      throw RequestError(504, "",
                         "no answer within --timeout-ms " + std::to_string(options_.timeout_ms) + " ms", "Timeout");
    }
    Job::Result result = answer.get();
    ++answered_;
    if (!result.error.empty()) throw RequestError(500, "", result.error, "Backend");
    std::vector<std::vector<LabelScore>> answers;
    const int64_t L = classifier_.config().num_labels;
    for (size_t i = 0; i < job->encodings.size(); ++i)
      answers.push_back(ranked_scores(result.logits.data() + int64_t(i) * L, labels_, request.raw_scores,
                                      classifier_.config().regression));
    char joules[32];
    std::snprintf(joules, sizeof joules, "%.9g", result.joules);
    res.set_header("X-Energy-Joules", joules);
    res.set_header("X-Energy-Provenance", result.provenance);
    res.set_header("X-Batch-Size", std::to_string(result.batch_inputs));
    res.set_header("X-Queue-Time-Ms", std::to_string(int64_t(result.queue_seconds * 1e3)));
    send_json(res, 200, predict_response_body(answers, request.batch));
    metrics_.queue_time(result.queue_seconds);
    metrics_.answered(job->tokens, result.joules);
  } catch (const RequestError& e) {
    send_error(res, e);
  } catch (const std::exception& e) {
    send_json(res, 500, error_body(e.what(), "Backend"));
  }
  metrics_.request("/predict", res.status, seconds_since(start));
}

nlohmann::json Server::info() const {
  const models::ModelConfig& config = classifier_.config();
  nlohmann::json id2label = nlohmann::json::object();
  for (size_t k = 0; k < labels_.size(); ++k) id2label[std::to_string(k)] = labels_[k];
  nlohmann::json j;
  // TEI's /info keys first, then ours.
  j["model_id"] = options_.model.model_dir.string();
  j["model_dtype"] = options_.model.precision;
  j["model_type"] = {{"classifier", {{"id2label", id2label}}}};
  j["max_input_length"] = classifier_.max_length();
  j["max_batch_tokens"] = options_.policy.max_batch_tokens;
  j["max_batch_requests"] = options_.policy.max_batch;
  j["max_client_batch_size"] = options_.policy.max_batch;
  j["max_concurrent_requests"] = options_.max_queue;
  j["version"] = "wattwise 0.1.0";
  j["architecture"] = models::architecture_name(config.arch);
  j["regression"] = config.regression;
  j["device"] = classifier_.device().str();
  j["precision"] = options_.model.precision;
  j["attention"] = classifier_.attention_name();
  if (!quantization_.empty()) j["quantization"] = quantization_;
  j["max_wait_ms"] = double(options_.policy.max_wait.count()) / 1e3;
  j["max_queue"] = options_.max_queue;
  j["max_body_bytes"] = options_.max_body_bytes;
  j["timeout_ms"] = options_.timeout_ms;
  j["energy"] = {{"gpu_metered", monitor_->gpu_present()},
                 {"cpu_model", monitor_->host().cpu_model},
                 {"carbon_g_per_kwh", monitor_->carbon().intensity_g_per_kwh}};
  return j;
}

Gauges Server::gauges() {
  Gauges g;
  g.queue_depth = int64_t(batcher_->queued());
  {
    std::lock_guard<std::mutex> lock(monitor_mutex_);
    g.server_joules = monitor_->window_so_far("serve").total_joules;
    g.gpu_power_watts = last_gpu_watts_;
  }
  if (classifier_.device().is_cuda()) {
    MemoryStats m = memory_stats(classifier_.device());
    g.device_memory_bytes = double(m.current);
    g.device_memory_peak_bytes = double(m.peak);
  }
  return g;
}

int Server::run() {
  http_.new_task_queue = [n = options_.threads] { return new httplib::ThreadPool(size_t(n)); };
  http_.set_payload_max_length(size_t(options_.max_body_bytes));
  http_.Post("/predict", [this](const httplib::Request& req, httplib::Response& res) { predict(req, res); });
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    const Clock::time_point start = Clock::now();
    if (draining_) send_json(res, 503, error_body("shutting down", "Unhealthy"));
    else send_json(res, 200, R"({"status":"ok"})");
    metrics_.request("/health", res.status, seconds_since(start));
  });
  http_.Get("/info", [this](const httplib::Request&, httplib::Response& res) {
    const Clock::time_point start = Clock::now();
    send_json(res, 200, info().dump(2));
    metrics_.request("/info", res.status, seconds_since(start));
  });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    const Clock::time_point start = Clock::now();
    res.status = 200;
    res.set_content(metrics_.render(gauges()), "text/plain; version=0.0.4; charset=utf-8");
    metrics_.request("/metrics", res.status, seconds_since(start));
  });
  // Statuses httplib answers itself (unknown route, body over the limit) get a JSON body too;
  // the handlers' own error bodies are left alone.
  http_.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    res.set_content(error_body(status_message(res.status), res.status == 413 ? "Validation" : "NotFound"),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  // Every answer counted by route and status, those httplib gave itself included.
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const std::string route = route_label(req.path);
    if (route == "other" || res.status == 413 || res.status == 405) metrics_.request(route, res.status, 0.0);
  });

  int port = options_.port;
  if (port == 0) {
    port = http_.bind_to_any_port(options_.host);
    if (port < 0) fail("--host ", options_.host, ": cannot listen on any port");
  } else if (!http_.bind_to_port(options_.host, port)) {
    fail("--host ", options_.host, " --port ", port, ": cannot listen (in use, or not an address of this machine)");
  }
  if (!options_.port_file.empty()) io::write_file_atomic(options_.port_file, std::to_string(port) + "\n");
  std::fprintf(stderr, "wattwise serve: %s (%s, %s, attention %s) listening on http://%s:%d\n",
               options_.model.model_dir.c_str(), classifier_.device().str().c_str(), options_.model.precision.c_str(),
               classifier_.attention_name().c_str(), options_.host.c_str(), port);

  std::atomic<bool> listening_done{false};
  std::thread signals([this, &listening_done] {
    while (!listening_done && !termination_signal) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!termination_signal) return;
    std::fprintf(stderr, "wattwise serve: %s: no new connections; answering the requests already admitted\n",
                 termination_signal == SIGTERM ? "SIGTERM" : "SIGINT");
    draining_ = true;
    // listen_after_bind may not have marked itself running yet: stop once it has.
    while (!listening_done && !http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (http_.is_running()) http_.stop();
  });
  // Returns once stopped and every connection's thread has finished (its requests answered).
  const bool listened = http_.listen_after_bind();
  listening_done = true;
  signals.join();
  batcher_->stop();

  energy::WindowResult total = [&] {
    std::lock_guard<std::mutex> lock(monitor_mutex_);
    energy::WindowResult w = monitor_->end_window("serve");
    monitor_->stop();
    return w;
  }();
  if (!options_.emissions.empty()) {
    energy::RunInfo run;
    run.project_name = "wattwise:serve";
    monitor_->append_emissions_csv(options_.emissions.string(), total, run);
  }
  std::fprintf(stderr,
               "wattwise serve: stopped: %lld requests admitted, %lld answered; batches used %.6g J; %s\n",
               (long long)admitted_.load(), (long long)answered_.load(), metrics_.batch_joules(),
               experiment::energy_summary_line(energy::to_json(total)).c_str());
  if (!listened && !draining_) fail("--host ", options_.host, ": the server stopped listening unexpectedly");
  return 0;
}

}  // namespace

int run_serve(const ServeOptions& options) {
  // Before the model loads, so a signal during loading already stops the server cleanly: the
  // watcher sees the flag as soon as the server would listen.
  install_termination_handlers();
  Server server(options);
  return server.run();
}

}  // namespace ww::serve
