#pragma once
// The ranges of the integers a user gives, from a flag or a TOML file: wide enough for any real run,
// narrow enough that no count, size or product of them overflows its type downstream. Every integer
// flag and key is checked against one of these before any work starts (docs/CONFIG.md and
// docs/SWEEPS.md list them), and the error names the flag or key, the value and the range.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ww::experiment {

struct IntRange {
  int64_t min;
  int64_t max;
};

namespace limits {
inline constexpr IntRange kBatchSize{1, 1 << 20};            // examples per (micro-)batch
inline constexpr IntRange kGradAccum{1, 1 << 16};            // micro-batches per step
inline constexpr IntRange kAdaptiveGradAccum{2, 1 << 16};    // adaptive accumulation's bounds
inline constexpr IntRange kZeroStage{0, 2};                   // ZeRO stage (sharded optimizer state)
inline constexpr IntRange kSequenceLength{2, 1 << 20};       // tokens per sequence
inline constexpr IntRange kOptionalLength{0, 1 << 20};       // 0: the model's own
inline constexpr IntRange kPositions{2, 1 << 20};            // max_position_embeddings of a new model
inline constexpr IntRange kExampleCount{0, 1'000'000'000};   // at most N examples or sequences (0: all)
inline constexpr IntRange kStepCount{0, 1'000'000'000};      // steps, intervals in steps (0: off)
inline constexpr IntRange kTokenCount{0, int64_t(1) << 40};  // tokens per optimizer step (0: off)
inline constexpr IntRange kPatience{0, 1'000'000};           // evaluations without improvement
inline constexpr IntRange kSeed{0, INT64_MAX};
inline constexpr IntRange kCalibration{1, 1'000'000};        // examples that calibrate int8/fp8 scales
inline constexpr IntRange kLabels{1, 1 << 16};               // classes (1: regression)
inline constexpr IntRange kLayers{1, 1024};
inline constexpr IntRange kRepeats{1, 1000};                 // measured passes per configuration
inline constexpr IntRange kWarmupPasses{0, 1000};            // unmeasured passes per configuration
inline constexpr IntRange kIntervalMs{10, 3'600'000};        // energy sampling interval
inline constexpr IntRange kNewTokens{0, 1 << 20};
inline constexpr IntRange kTopK{0, 1 << 30};
}  // namespace limits

// "<what> <value> is out of range (<min>..<max>)" unless value lies in the range; returns value.
int64_t check_range(int64_t value, IntRange range, const std::string& what);

// Why `text` is not a whole decimal integer in `range` (nullopt when it is): "'12x' is not an
// integer" or "99999999999999999999 is out of range (1..1048576)".
std::optional<std::string> integer_text_error(std::string_view text, IntRange range);

}  // namespace ww::experiment
