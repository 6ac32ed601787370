#pragma once
// `wattwise serve`: an HTTP server for a sequence classifier, with dynamic batching, per-request
// energy and a Prometheus endpoint (docs/SERVING.md). Routes: POST /predict (TEI's shape, see
// request.h), GET /health, GET /info, GET /metrics.
#include <cstdint>
#include <filesystem>
#include <string>

#include "wattwise/experiment/classifier.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/serve/batching.h"

namespace ww::serve {

struct ServeOptions {
  experiment::ClassifierOptions model;
  experiment::CalibrationOptions calibration;  // int8/fp8: calibration.data is required
  std::string host = "127.0.0.1";
  int port = 8080;                    // 0: any free port (printed, and written to port_file)
  std::filesystem::path port_file;    // receives the bound port once the server listens
  BatchPolicy policy;
  int64_t max_queue = 256;            // requests waiting for a batch; beyond: 503
  int64_t max_body_bytes = 1 << 20;   // beyond: 413
  int64_t timeout_ms = 30000;         // from arrival to answer; beyond: 504
  int threads = 64;                   // connections served at once
  std::filesystem::path emissions;    // CodeCarbon emissions.csv that gets the server's row at exit
};

// Loads the model, listens, and serves until SIGTERM or SIGINT: then stops accepting, answers every
// request already admitted, writes the energy files and returns 0. Errors before listening (model,
// options, port in use) throw ww::Error.
int run_serve(const ServeOptions& options);

}  // namespace ww::serve
