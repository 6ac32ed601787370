#pragma once
// A copy of a training's state in host memory, taken at an optimizer-step boundary and put back
// later: the parameters, the optimizer's state (its part, when sharded) and the trainer's own state
// (loss scale, dropout position, adaptive accumulation). With it a start-up measurement (the
// overhead guards) can take real optimizer steps and leave the run exactly as if it had not: the
// steps after restore() are the ones that would have come, bit for bit. Host memory, so the
// copy costs the device nothing.
#include <map>
#include <string>

#include "wattwise/core/tensor.h"
#include "wattwise/models/model.h"
#include "wattwise/train/trainer.h"

namespace ww::train {

class TrainingSnapshot {
 public:
  // `trainer` trains `model`; both at a step boundary (else an error).
  TrainingSnapshot(models::TrainableModel& model, const Trainer& trainer);
  // Puts the state back into the same model and trainer (at a step boundary).
  void restore(models::TrainableModel& model, Trainer& trainer) const;

 private:
  Tensor parameters_;
  std::map<std::string, Tensor> optimizer_;
  TrainerState trainer_;
};

}  // namespace ww::train
