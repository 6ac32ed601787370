#!/usr/bin/env python3
"""Checks a metrics.json of `wattwise train` or `wattwise eval` against the schema in docs/METRICS.md.

Usage: check_metrics_json.py train|eval|sweep METRICS_JSON METRICS_MD

Two checks: every key the schema below requires is there with its type (and no key the schema does not
know), and every key found is documented in METRICS_MD (written there in backticks, with the names
this script uses: `run.name` for the train file's sections, bare names for metric and energy-window
keys, `sources[].energy_j`, `carbon.pue`, `baseline.gpu_w`). Exit 0 when both hold; otherwise every
problem is printed, one per line, and the exit code is 1.
"""
import json
import re
import sys

NUM = (int, float)
NULLABLE_NUM = (int, float, type(None))

CLASSIFICATION = {
    "num_examples": int, "accuracy": NUM, "precision": NUM, "recall": NUM, "f1": NUM,
    "precision_macro": NUM, "recall_macro": NUM, "f1_macro": NUM, "matthews_correlation": NUM,
    "confusion_matrix": list, "loss": NUM,
}
REGRESSION = {"num_examples": int, "pearson": NULLABLE_NUM, "spearman": NULLABLE_NUM, "mse": NUM, "loss": NUM}
LANGUAGE_MODELLING = {"num_sequences": int, "num_tokens": int, "loss": NUM, "perplexity": NUM, "tokens_per_s": NUM}

WINDOW = {
    "name": str, "duration_s": NUM, "energy_j": NUM, "gpu_j": NULLABLE_NUM, "cpu_j": NUM, "ram_j": NUM,
    "kwh": NUM, "gco2e": NUM, "avg_w": NUM, "gpu_present": bool, "notes": list,
    "sources": [{"source": str, "device": str, "name": str, "energy_j": NUM, "avg_w": NUM,
                 "measured": bool, "provenance": str}],
    "carbon": {"intensity_g_per_kwh": NUM, "pue": NUM, "region": str, "region_name": str, "year": int,
               "provenance": str},
    "baseline": None,  # null, or the object below
}
WINDOW_OPTIONAL = {"gpu_absent_reason": str, "samples": int, "j_per_sample": NUM}
BASELINE = {"gpu_w": NUM, "cpu_w": NUM, "ram_w": NUM, "net_energy_j": NUM}

problems = []
found = set()  # documented names of every key seen


def type_name(t):
    if isinstance(t, tuple):
        return " or ".join(type_name(x) for x in t)
    return {int: "integer", float: "number", str: "string", bool: "boolean", list: "array",
            dict: "object", type(None): "null"}.get(t, str(t))


def check_value(path, value, expected):
    allowed = expected if isinstance(expected, tuple) else (expected,)
    # bool is an int in Python: keep them apart.
    ok = any(isinstance(value, bool) if t is bool else isinstance(value, t) and not isinstance(value, bool)
             for t in allowed)
    if not ok:
        problems.append(f"{path}: expected {type_name(expected)}, got {json.dumps(value)}")


def check_object(path, obj, required, optional=None, name=lambda k: k):
    optional = optional or {}
    if not isinstance(obj, dict):
        problems.append(f"{path}: expected an object, got {json.dumps(obj)[:80]}")
        return
    for key, expected in required.items():
        if key not in obj:
            problems.append(f"{path}: missing key '{key}'")
    for key, value in obj.items():
        found.add(name(key))
        if key in required:
            expected = required[key]
        elif key in optional:
            expected = optional[key]
        else:
            problems.append(f"{path}: key '{key}' is not in the schema")
            continue
        where = f"{path}.{key}"
        if isinstance(expected, dict):
            check_object(where, value, expected, name=lambda k, key=key: f"{name(key)}.{k}")
        elif isinstance(expected, list):
            if not isinstance(value, list):
                problems.append(f"{where}: expected an array")
                continue
            for i, item in enumerate(value):
                check_object(f"{where}[{i}]", item, expected[0], name=lambda k, key=key: f"{name(key)}[].{k}")
        elif expected is not None:
            check_value(where, value, expected)


def check_window(path, window):
    required = dict(WINDOW)
    del required["baseline"]
    check_object(path, {k: v for k, v in window.items() if k != "baseline"}, required, WINDOW_OPTIONAL)
    if "baseline" not in window:
        problems.append(f"{path}: missing key 'baseline'")
    else:
        found.add("baseline")
        if window["baseline"] is not None:
            check_object(path + ".baseline", window["baseline"], BASELINE, name=lambda k: f"baseline.{k}")
    if window.get("samples", 0) > 0 and "j_per_sample" not in window:
        problems.append(f"{path}: samples without j_per_sample")
    if not window.get("gpu_present", True) and "gpu_absent_reason" not in window:
        problems.append(f"{path}: gpu_present is false but gpu_absent_reason is missing")


def check_metrics(path, metrics, extra=None):
    if not isinstance(metrics, dict):
        problems.append(f"{path}: expected a metrics object, got {json.dumps(metrics)[:80]}")
        return
    kind = REGRESSION if "pearson" in metrics else LANGUAGE_MODELLING if "perplexity" in metrics else CLASSIFICATION
    check_object(path, metrics, {**kind, **(extra or {})})


def check_energy(path, energy, phase_pattern):
    check_object(path, {k: v for k, v in energy.items() if k not in ("phases", "total")}, {})
    for key in ("phases", "total"):
        if key not in energy:
            problems.append(f"{path}: missing key '{key}'")
    found.update(f"energy.{k}" for k in energy)
    check_window(path + ".total", energy.get("total", {}))
    for phase, window in energy.get("phases", {}).items():
        if not re.fullmatch(phase_pattern, phase):
            problems.append(f"{path}.phases: unexpected phase '{phase}' (expected {phase_pattern})")
        check_window(f"{path}.phases.{phase}", window)


def check_train(m):
    sections = {
        "run": {"name": str, "dir": str, "device": str, "seed": int, "status": str, "resumes": int,
                "checkpoint": (str, type(None)), "interruption": None},
        "model": {"arch": str, "layers": int, "hidden_size": int, "parameters": int, "from": str},
        "data": {"path": str, "train_split": str, "train_examples": int, "eval_split": str,
                 "eval_examples": int, "test_split": str, "derived_splits": list},
        "train": {"steps": int, "batch_size": int, "epochs": NUM, "examples": int, "seconds": NUM, "samples_per_s": NUM,
                  "final_loss": NUM, "stopped_early": bool, "stopped_at_target": bool, "model_flops": NUM,
                  "model_flops_per_step": NUM, "achieved_tflops": NUM, "peak_tflops": NULLABLE_NUM,
                  "peak_source": str, "mfu": NULLABLE_NUM},
        "execution": {"precision": str, "attention": str, "checkpointing": str, "cuda_graphs": bool, "skipped_steps": int,
                      "final_loss_scale": NUM, "activation_bytes": int, "peak_memory_bytes": int},
    }
    # Language-modelling runs (model.arch gpt2) add these; classification runs add train.class_weights.
    optional = {
        "data": {"format": str, "block_size": int, "train_tokens": int, "eval_tokens": int,
                 "token_cache": [{"file": str, "status": str}]},
        # train.checkpointing auto; model.attention fastest, run.cuda_graphs or train.bucket_mb auto
        "execution": {"checkpointing_plan": dict, "overhead_guards": dict},
        "train": {"tokens": int, "grad_accum": (int, str), "tokens_per_step": int, "tokens_per_s": NUM,
                  # train.grad_accum auto (any task)
                  "adaptive_accumulation": dict,
                  # classification
                  "class_weights": (list, type(None))},
    }
    top = set(sections) | {"best", "eval", "eval_history", "test", "energy", "target"}
    for key in top - set(m):
        problems.append(f"missing top-level key '{key}'")
    for key in set(m) - top - {"distributed"}:
        problems.append(f"top-level key '{key}' is not in the schema")
    target = m.get("target")
    if target is not None:
        check_object("target", target, {"condition": str, "stop_at_target": bool, "reached": bool},
                     {"step": int, "epoch": NUM, "evaluation": int, "value": NUM, "seconds": NUM, "energy_j": NUM,
                      "kwh": NUM, "gco2e": NUM, "examples": int, "tokens": int},
                     name=lambda k: f"target.{k}")
        if target.get("reached") and "step" not in target:
            problems.append("target: reached without the figures to target")
    # Data-parallel runs (several ranks) add this.
    if "distributed" in m:
        check_object("distributed", m["distributed"],
                     {"ranks": int, "backend": str, "launcher": str, "rows_per_rank": list, "communication_s": NUM,
                      "communication_share": NUM, "samples_per_s_per_rank": NUM,
                      "zero": int, "gradient_buckets": int, "optimizer_state_bytes": int, "memory_per_rank": list,
                      "energy_by_machine": [{"host": str, "ranks": list, "duration_s": NUM, "energy_j": NUM,
                                             "gpu_j": NULLABLE_NUM, "cpu_j": NUM, "ram_j": NUM, "measured": bool,
                                             "gpus": list, "power_trace": str}],
                      "energy_scope": str},
                     # language modelling; with train.scaling_baseline
                     {"tokens_per_s_per_rank": NUM, "scaling_efficiency": NUM, "scaling_baseline": dict},
                     name=lambda k: f"distributed.{k}")
        for i, machine in enumerate(m["distributed"].get("energy_by_machine") or []):
            for j, gpu in enumerate(machine.get("gpus") or []):
                check_object(f"distributed.energy_by_machine[{i}].gpus[{j}]", gpu,
                             {"pci_bus_id": (str, type(None)), "source": str, "name": str, "energy_j": NUM,
                              "measured": bool, "provenance": str},
                             name=lambda k: f"distributed.energy_by_machine[].gpus[].{k}")
        baseline = m["distributed"].get("scaling_baseline")
        if isinstance(baseline, dict):
            check_object("distributed.scaling_baseline", baseline,
                         {"path": str, "samples_per_s": NUM, "batch_size": (int, type(None))}, {"tokens_per_s": NUM},
                         name=lambda k: f"distributed.scaling_baseline.{k}")
        if ("scaling_baseline" in m["distributed"]) != ("scaling_efficiency" in m["distributed"]):
            problems.append("distributed: scaling_efficiency and scaling_baseline go together")
        rows = m["distributed"].get("memory_per_rank")
        if isinstance(rows, list):
            if len(rows) != m["distributed"].get("ranks"):
                problems.append(f"distributed.memory_per_rank has {len(rows)} rows for {m['distributed'].get('ranks')} ranks")
            for i, row in enumerate(rows):
                check_object(f"distributed.memory_per_rank[{i}]", row,
                             {key: int for key in ("rank", "parameter_bytes", "gradient_bytes", "optimizer_state_bytes",
                                                   "model_state_bytes", "activation_bytes", "peak_memory_bytes")},
                             name=lambda k: f"distributed.memory_per_rank[].{k}")
                if isinstance(row, dict) and all(isinstance(row.get(k), int) for k in (
                        "parameter_bytes", "gradient_bytes", "optimizer_state_bytes", "model_state_bytes")) and \
                        row["model_state_bytes"] != row["parameter_bytes"] + row["gradient_bytes"] + row["optimizer_state_bytes"]:
                    problems.append(f"distributed.memory_per_rank[{i}].model_state_bytes is not the sum of the three")
    for section, spec in sections.items():
        if section in m:
            check_object(section, m[section], spec, optional.get(section), name=lambda k, s=section: f"{s}.{k}")
    plan = m.get("execution", {}).get("checkpointing_plan")
    if plan is not None:
        check_object("execution.checkpointing_plan", plan,
                     {"requested": str, "chosen": str, "budget_bytes": int, "budget_source": str,
                      "model_state_bytes": int, "predicted_activation_bytes": dict, "reason": str},
                     name=lambda k: f"execution.checkpointing_plan.{k}")
    guards = m.get("execution", {}).get("overhead_guards")
    if guards is not None:
        check_object("execution.overhead_guards", guards, {"seconds": NUM, "steps": int, "guards": list},
                     name=lambda k: f"execution.overhead_guards.{k}")
        for i, g in enumerate(guards.get("guards", [])):
            check_object(f"execution.overhead_guards.guards[{i}]", g,
                         {"optimisation": str, "key": str, "measured": bool, "kept": bool, "value": (str, bool, int, float),
                          "reason": str},
                         {"with_s_per_micro_batch": NUM, "without_s_per_micro_batch": NUM, "with_s": list,
                          "without_s": list},
                         name=lambda k: f"execution.overhead_guards.guards[].{k}")
            if g.get("measured") and "with_s_per_micro_batch" not in g:
                problems.append(f"execution.overhead_guards.guards[{i}]: measured without its times")
    adaptive = m.get("train", {}).get("adaptive_accumulation")
    if adaptive is not None:
        check_object("train.adaptive_accumulation", adaptive,
                     {"min": int, "max": int, "lr_scaling": str, "smoothing": NUM, "measurements": int,
                      "noise_scale": NULLABLE_NUM, "gradient_squared_norm": NULLABLE_NUM, "noise_trace": NULLABLE_NUM,
                      "next_grad_accum": int, "mean_grad_accum": NUM, "steps_by_grad_accum": dict},
                     name=lambda k: f"train.adaptive_accumulation.{k}")
        by_k = adaptive.get("steps_by_grad_accum", {})
        if isinstance(by_k, dict) and sum(by_k.values()) != m["train"].get("steps"):
            problems.append("train.adaptive_accumulation.steps_by_grad_accum does not add up to train.steps")
    run = m.get("run", {})
    if isinstance(run, dict):
        status, interruption = run.get("status"), run.get("interruption")
        if status not in ("completed", "interrupted"):
            problems.append(f"run.status: expected completed or interrupted, got {json.dumps(status)}")
        if (status == "interrupted") != (interruption is not None):
            problems.append("run.interruption must be an object exactly when run.status is interrupted")
        if interruption is not None:
            check_object("run.interruption", interruption, {"signal": str, "signal_number": int, "step": int},
                         name=lambda k: f"run.interruption.{k}")
        if status == "interrupted" and m.get("test") is not None:
            problems.append("test: an interrupted run has no test pass (expected null)")
    if m.get("best") is not None:
        check_object("best", m["best"], {"metric": str, "value": NUM, "step": int}, name=lambda k: f"best.{k}")
    if m.get("eval") is not None:
        check_metrics("eval", m["eval"])
    if (m.get("best") is None) != (m.get("eval") is None):
        problems.append("best and eval must both be null (no evaluation split) or both be set")
    history = m.get("eval_history", [])
    if not isinstance(history, list):
        problems.append("eval_history: expected an array")
        history = []
    for i, row in enumerate(history):
        check_metrics(f"eval_history[{i}]", row, {"step": int, "epoch": NUM, "energy_j": NUM})
    if m.get("test") is not None:
        check_metrics("test", m["test"], {"split": str})
    check_energy("energy", m.get("energy", {}), r"training|evaluation_[0-9]+|test")
    if "energy" in m and "training" not in m["energy"].get("phases", {}):
        problems.append("energy.phases: no 'training' phase")


def check_eval(m):
    extra = {"split": str, "model": str, "data": str, "energy": dict, "execution": dict}
    if isinstance(m, dict) and "perplexity" in m:
        extra["block_size"] = int
    check_metrics("(top level)", m, extra)
    check_object("execution", m.get("execution", {}),
                 {"device": str, "precision": str, "attention": str, "peak_memory_bytes": int},
                 {"quantization": str, "calibration_examples": int, "calibration_method": str,
                  "calibration_data": str},  # quantized precisions only
                 name=lambda k: f"execution.{k}")
    execution = m.get("execution", {})
    if isinstance(execution, dict) and "quantization" in execution:
        for key in ("calibration_examples", "calibration_method", "calibration_data"):
            if key not in execution:
                problems.append(f"execution: 'quantization' without '{key}'")
    check_energy("energy", m.get("energy", {}), r"evaluation")


def check_sweep(m):
    sections = {
        "run": {"name": str, "dir": str, "device": str},
        "model": {"path": str, "arch": str, "layers": int, "hidden_size": int},
        "data": {"path": str, "split": str, "examples": int},
        "sweep": {"axes": dict, "swept": list, "configs": int, "ok": int, "skipped": int, "repeats": int,
                  "min_seconds": NUM, "warmup": int, "objectives": str, "seconds": NUM},
    }
    top = set(sections) | {"frontier", "baseline", "configs", "energy"}
    for key in top - set(m):
        problems.append(f"missing top-level key '{key}'")
    for key in set(m) - top:
        problems.append(f"top-level key '{key}' is not in the schema")
    for section, spec in sections.items():
        if section in m:
            check_object(section, m[section], spec, name=lambda k, s=section: f"{s}.{k}")
    check_object("sweep.axes", m.get("sweep", {}).get("axes", {}),
                 {"layers": list, "max_length": list, "precision": list, "attention": list, "batch_size": list,
                  "dynamic_padding": list}, name=lambda k: f"sweep.axes.{k}")
    check_value("frontier", m.get("frontier"), list)
    check_value("baseline", m.get("baseline"), str)
    found.update(("frontier", "baseline", "configs"))
    knobs = {"layers": int, "max_length": int, "precision": str, "attention": str, "batch_size": int,
             "dynamic_padding": bool}
    for i, c in enumerate(m.get("configs", [])):
        check_object(f"configs[{i}]", {k: v for k, v in c.items() if k != "energy"},
                     {"config": str, "status": str, "baseline": bool, "knobs": knobs, "frontier": str},
                     {"reason": str, "quantization": dict, "tied_with": list},
                     name=lambda k: f"configs[].{k}")
        if c.get("status") == "ok":
            if "energy" not in c:
                problems.append(f"configs[{i}]: an ok config without energy")
            else:
                found.add("configs[].energy")
                check_window(f"configs[{i}].energy", c["energy"])
        elif "reason" not in c:
            problems.append(f"configs[{i}]: a skipped config without reason")
        if c.get("frontier") not in ("yes", "tie", "no"):
            problems.append(f"configs[{i}].frontier: expected yes, tie or no, got {json.dumps(c.get('frontier'))}")
        if (c.get("frontier") == "tie") != bool(c.get("tied_with")):
            problems.append(f"configs[{i}]: tied_with goes with frontier tie, and only with it")
    check_energy("energy", m.get("energy", {}), r"c[0-9]{3,}")


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("train", "eval", "sweep"):
        sys.exit(__doc__)
    kind, metrics_path, doc_path = sys.argv[1:]
    with open(metrics_path, encoding="utf-8") as f:
        m = json.load(f)
    {"train": check_train, "eval": check_eval, "sweep": check_sweep}[kind](m)
    with open(doc_path, encoding="utf-8") as f:
        documented = set(re.findall(r"`([^`\s]+)`", f.read()))
    for name in sorted(found - documented):
        problems.append(f"key `{name}` of the {kind} metrics.json is not documented in {doc_path}")
    for p in problems:
        print(f"{metrics_path}: {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
