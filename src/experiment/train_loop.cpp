#include "train_loop.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "wattwise/models/model.h"

namespace ww::experiment {

std::optional<train::StepResult> train_on_rows(train::Trainer& trainer, const models::Batch& batch,
                                               dist::ProcessGroup* group) {
  if (!group || group->size() == 1) return trainer.train_micro_batch(batch);
  const int64_t rows = batch.input_ids.size(0), n = group->size(), rank = group->rank();
  // Every rank's loss terms (they add up over rows): every rank knows the whole micro-batch, so all
  // decide alike whether the ranks' shares are equal (the step may then be recorded in a CUDA graph).
  std::vector<int64_t> rank_terms;
  int64_t terms = 0;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t b = rows * q / n, e = rows * (q + 1) / n;
    rank_terms.push_back(b == e ? 0 : models::loss_terms(models::slice_rows(batch, b, e)));
    terms += rank_terms.back();
  }
  const int64_t begin = rows * rank / n, end = rows * (rank + 1) / n;
  if (begin == end || terms == 0) return trainer.train_micro_batch_shard({}, 0.0, rows);
  const bool same_everywhere =
      rows % n == 0 && std::all_of(rank_terms.begin(), rank_terms.end(), [&](int64_t t) { return t == rank_terms[0]; });
  return trainer.train_micro_batch_shard(models::slice_rows(batch, begin, end),
                                         double(rank_terms[size_t(rank)]) / double(terms), rows, same_everywhere);
}

bool train_epochs(TrainTask& task, train::Trainer& trainer, RunOutcome& r, int64_t total_steps,
                  int64_t checkpoint_every, bool record_plan, const GracefulInterrupt& interrupt,
                  dist::ProcessGroup* group, bool& stop, const LoopHooks& hooks) {
  const TaskSettings& s = task.settings();
  bool interrupted = false, interrupt_agreed = false;
  auto agree = [&] {
    if (!group || group->size() == 1) {
      interrupt_agreed = interrupt.requested();
      return;
    }
    std::vector<double> flags = {stop ? 1.0 : 0.0, interrupt.requested() ? 1.0 : 0.0};
    group->all_reduce_sum(flags);
    stop = flags[0] > 0;
    interrupt_agreed = flags[1] > 0;
  };
  // A resumed run starts inside the epoch it stopped in: the epoch's batches (the same order:
  // shuffled by seed and epoch) are drawn and dropped up to the position it had reached.
  int64_t skip = r.batch_in_epoch;
  stop = r.steps >= total_steps;  // resumed after its last step: only the final evaluation is left
  agree();  // a signal during the set-up stops the run before its first step
  for (uint64_t epoch = r.epoch; !stop; ++epoch) {
    if (interrupt_agreed && trainer.at_step_boundary()) {
      interrupted = true;
      break;
    }
    std::unique_ptr<EpochBatches> batches = task.epoch(epoch, record_plan);
    int64_t batch_index = 0;
    for (; batch_index < skip && batches->next(); ++batch_index) {
    }
    skip = 0;
    while (auto b = batches->next()) {
      hooks.micro_batch(*b);
      auto step = train_on_rows(trainer, b->batch, group);
      r.examples += b->examples;
      r.tokens += b->tokens;
      ++batch_index;
      r.epochs = double(epoch) + double(batch_index) / double(s.batches_per_epoch);
      if (!step) continue;
      r.steps = step->step;
      r.final_loss = step->loss;
      r.micro_batches += step->grad_accum;
      const std::string k = std::to_string(step->grad_accum);
      r.steps_by_grad_accum[k] = r.steps_by_grad_accum.value(k, int64_t(0)) + 1;
      r.epoch = epoch;
      r.batch_in_epoch = batch_index;
      hooks.step(*step);
      if (r.steps >= total_steps) stop = true;
      agree();
      if (stop) break;
      // (Interrupted: the checkpoint written on the way out has the time and energy up to it.)
      if (checkpoint_every > 0 && r.steps % checkpoint_every == 0 && !interrupt_agreed) hooks.checkpoint();
      if (interrupt_agreed) {
        interrupted = true;
        break;
      }
    }
    if (interrupted) break;
    // Epoch end (also when the last step closes the epoch): evaluate unless this step just did.
    if (!stop || r.steps >= total_steps) hooks.epoch_end();
    agree();
  }
  return interrupted;
}

}  // namespace ww::experiment
