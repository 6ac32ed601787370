#include "train_loop.h"

#include <optional>
#include <vector>

#include "wattwise/models/model.h"

namespace ww::experiment {
namespace {

// This rank's rows of a micro-batch: contiguous, balanced (the ranks' counts differ by one at most,
// rank r has rows [B r / N, B (r + 1) / N)), so every row is trained on once.
std::optional<train::StepResult> train_on_rows(train::Trainer& trainer, const models::Batch& batch,
                                               dist::ProcessGroup* group) {
  if (!group || group->size() == 1) return trainer.train_micro_batch(batch);
  const int64_t rows = batch.input_ids.size(0), n = group->size(), rank = group->rank();
  const int64_t begin = rows * rank / n, end = rows * (rank + 1) / n;
  const int64_t terms = models::loss_terms(batch);
  if (begin == end || terms == 0) return trainer.train_micro_batch_shard({}, 0.0, rows);
  const models::Batch mine = models::slice_rows(batch, begin, end);
  const int64_t my_terms = models::loss_terms(mine);
  // Whether every rank has the same rows and loss terms (so the same share): every rank knows the
  // whole micro-batch, so all decide alike whether the step may be recorded in a CUDA graph.
  bool same_everywhere = rows % n == 0;
  for (int64_t q = 0; same_everywhere && q < n; ++q)
    same_everywhere = models::loss_terms(models::slice_rows(batch, rows * q / n, rows * (q + 1) / n)) == my_terms;
  return trainer.train_micro_batch_shard(mine, double(my_terms) / double(terms), rows, same_everywhere);
}

}  // namespace

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
      r.epoch = epoch;
      r.batch_in_epoch = batch_index;
      hooks.step(*step);
      if (r.steps >= total_steps) stop = true;
      agree();
      if (stop) break;
      // (Interrupted: the checkpoint written on the way out has the time and energy up to it.)
      if (checkpoint_every > 0 && r.steps % checkpoint_every == 0 && !interrupt_agreed) {
        trainer.optimizer().gather_state();  // sharded state: every rank takes part (a no-op otherwise)
        hooks.checkpoint();
      }
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
  // For the checkpoint rank 0 may write next (at the end, or on an interruption).
  trainer.optimizer().gather_state();
  return interrupted;
}

}  // namespace ww::experiment
