#include "kernels/cuda/input_errors.h"

#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "kernels/cuda/common.h"
#include "wattwise/core/error.h"

namespace ww::kernels::cuda {

int* input_error_record() {
  static std::mutex mutex;
  static std::vector<int*> records;
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (int(records.size()) <= device) records.resize(size_t(device) + 1, nullptr);
  int*& record = records[size_t(device)];
  if (!record) {
    check(cudaMalloc(&record, kInputErrorFields * sizeof(int)), "cudaMalloc (input error record)");
    // On our stream, so kernels launched on it see the zeros.
    check(cudaMemsetAsync(record, 0, kInputErrorFields * sizeof(int), stream()), "cudaMemsetAsync");
  }
  return record;
}

void raise_input_errors() {
  int* record = input_error_record();
  int host[kInputErrorFields] = {};
  check(cudaMemcpyAsync(host, record, sizeof(host), cudaMemcpyDeviceToHost, stream()), "cudaMemcpyAsync");
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
  if (host[0] == kNoError) return;
  check(cudaMemsetAsync(record, 0, sizeof(host), stream()), "cudaMemsetAsync");
  check(cudaStreamSynchronize(stream()), "cudaStreamSynchronize");
  const int row = host[1], position = host[2], value = host[3], limit = host[4];
  switch (host[0]) {
    case kBadWordId:
      fail("embeddings: input id ", value, " at batch row ", row, ", position ", position,
           " is outside the word table (vocab size ", limit, ")");
    case kBadTokenType:
      fail("embeddings: token type id ", value, " at batch row ", row, ", position ", position,
           " is outside the token type table (", limit, " types)");
    case kBadMaskValue:
      fail("masked_mean: mask value ", value, " at batch row ", row, ", position ", position,
           " must be 0 (padding) or 1 (real token)");
    case kBadLabel:
      fail("cross_entropy: label ", value, " at row ", row, " is outside [0, ", limit,
           ") (use -100 to ignore a row)");
    default:
      fail("CUDA kernels recorded an unknown input error kind ", host[0]);
  }
}

}  // namespace ww::kernels::cuda
