#include "wattwise/train/snapshot.h"

#include "wattwise/core/error.h"

namespace ww::train {

TrainingSnapshot::TrainingSnapshot(models::TrainableModel& model, const Trainer& trainer)
    : trainer_(trainer.state()) {
  parameters_ = model.parameters().flat_values().to(Device::cpu());
  for (const auto& [name, tensor] : trainer.optimizer().state()) optimizer_.emplace(name, tensor.to(Device::cpu()));
}

void TrainingSnapshot::restore(models::TrainableModel& model, Trainer& trainer) const {
  WW_CHECK(trainer.at_step_boundary(), "a training snapshot restored in the middle of an optimizer step");
  models::ParameterStore& params = model.parameters();
  params.flat_values().copy_from(parameters_);
  params.mark_updated();  // a 16-bit working copy is cast again from the restored masters
  trainer.optimizer().load_state(optimizer_);
  trainer.restore(trainer_);
}

}  // namespace ww::train
