#pragma once
// Bad indices met by CUDA kernels (ids, token types, mask values, class labels). They live in device
// memory, so the kernels do not read them on the host. Instead a kernel that meets one never reads
// out of bounds (it writes 0, or NaN for a loss) and records the first bad value in a per-device
// "input error" record; raise_input_errors() copies that record to the host and throws ww::Error
// with the same kind of message as the CPU check. It runs after every such launch in debug builds,
// inside count_valid_labels (which synchronises anyway), and wherever the caller asks
// (ww::ops::check_device_input_errors()). Kernels write the record with record_input_error
// (device_util.cuh).

namespace ww::kernels::cuda {

// The record: [kind, row, position, value, limit]; kind 0 = no error.
enum InputErrorKind : int { kNoError = 0, kBadWordId = 1, kBadTokenType = 2, kBadMaskValue = 3, kBadLabel = 4 };
constexpr int kInputErrorFields = 5;

// The current device's record (device memory, zeroed on creation).
int* input_error_record();

// Throws ww::Error describing the first bad input a kernel met since the last call, and clears it.
// Synchronises the stream.
void raise_input_errors();

}  // namespace ww::kernels::cuda
