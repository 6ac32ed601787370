#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/ablate.h"

namespace ww::cli {

Command ablate_command(CLI::App& app) {
  auto o = std::make_shared<experiment::AblateOptions>();
  auto spec = std::make_shared<std::string>();
  auto resume = std::make_shared<std::string>();
  auto runs_dir = std::make_shared<std::string>("runs");
  CLI::App* cmd = app.add_subcommand(
      "ablate",
      "Train a baseline and one-factor changes over seeds: deltas with 95% intervals, time and energy to target, "
      "the frontier, energy saved (docs/ABLATIONS.md)");
  cmd->add_option("spec", *spec, "The ablation spec (TOML): [baseline] config, seeds, target, [[change]] tables")
      ->option_text("SPEC.toml");
  cmd->add_option("--resume", *resume,
                      "Continue the ablation in ABLATION_DIR with its plan: completed runs are skipped, interrupted "
                      "ones continue from their checkpoint, missing ones run")
      ->option_text("ABLATION_DIR");
  CLI::Option* runs_option = cmd->add_option("--runs-dir", *runs_dir, "Folder that receives the ablation folder")->capture_default_str();
  CLI::Option* name_option = cmd->add_option("--name", o->name, "Ablation name (the folder is <UTC>_<name>; default: the spec's name, else its file name)");
  CLI::Option* seeds_option =
      cmd->add_option("--seeds", o->seeds, "Run seeds 1..N instead of the spec's seeds")
          ->check(integer_in({1, 1000}, "seeds per arm"));
  CLI::Option* set_option = cmd->add_option(
      "--set", o->sets, "Override a training config key of the baseline, so of every change too: --set run.device=cpu (repeatable)")
      ->option_text("KEY=VALUE ...");
  cmd->add_flag("--dry-run", o->dry_run, "Validate the spec (or the folder) and show the runs; write and train nothing");
  return {cmd, [o, spec, resume, runs_dir, runs_option, name_option, seeds_option, set_option] {
            if (!resume->empty()) {
              if (!spec->empty()) fail("ablate --resume: give no spec file with it (the ablation's plan is ", *resume, "/ablation_plan.json)");
              for (CLI::Option* option : {runs_option, name_option, seeds_option, set_option})
                if (option->count() > 0)
                  fail("ablate --resume: ", option->get_name(), " cannot be given with it (the ablation's plan is ", *resume,
                       "/ablation_plan.json)");
              o->resume = *resume;
            } else {
              if (spec->empty()) fail("ablate: give a spec file (wattwise ablate SPEC.toml) or --resume ABLATION_DIR");
              o->spec = *spec;
            }
            o->runs_dir = *runs_dir;
            const experiment::AblateResult r = experiment::run_ablation(*o);
            // Interrupted: the library said how to continue; the exit code says which signal.
            return r.signal != 0 ? 128 + r.signal : 0;
          }};
}

}  // namespace ww::cli
