#!/usr/bin/env python3
"""Replays a wattwise GPT-2 training run in PyTorch + Hugging Face transformers and compares the
validation-loss curves (the target: wattwise's curve tracks PyTorch's from the same initial
weights and data order within 2%).

Input: a wattwise run folder made with `--run.export_plan true` on a GPT-2 run. It holds config.toml
(every hyperparameter), metrics.json (our evaluation history) and plan/: initial_model/ (the
freshly initialised GPT-2 as a Hugging Face folder), train_tokens.i32 / eval_tokens.i32 (the token
streams, little-endian int32), plan.json (block size, batch size, accumulation, steps, evaluation
interval) and batches.jsonl (every micro-batch's window indices, in order). Window k is tokens
[k*(T-1), k*(T-1)+T) of the stream; the last window is padded (attention mask 0, label -100), as
wattwise packs it. This script trains GPT2LMHeadModel on exactly those micro-batches with the same
optimizer (AdamW, weight decay on >= 2-D tensors only, as wattwise), schedule, clipping, dropout
and precision, evaluates on the first max_eval_sequences evaluation windows at the same steps, and
reports the largest relative difference between the two loss curves. Dropout masks differ between
the frameworks (their random streams differ): that is the noise the 2% is judged against.

Usage: python3 bench/gpt2_replay_pytorch.py RUN_DIR [--device cuda] [--out result.json] [--tolerance 0.02]
Exit status 1 when a compared evaluation differs by more than the tolerance.
"""
import argparse
import array
import json
import os
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from minilm_pytorch import lr_lambda_for, optimizer_step, read_jsonl, warmup_steps_of  # noqa: E402  (the classifier replay's helpers)


def read_tokens(path):
    tokens = array.array("i")
    with open(path, "rb") as f:
        tokens.frombytes(f.read())
    if sys.byteorder != "little":
        tokens.byteswap()
    return tokens


def window_count(n, T):
    return 0 if n < 2 else (n - 2) // (T - 1) + 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="")
    ap.add_argument("--tolerance", type=float, default=0.02, help="largest relative eval-loss difference allowed")
    args = ap.parse_args(argv)

    plan_dir = os.path.join(args.run_dir, "plan")
    need = [os.path.join(args.run_dir, "config.toml"), os.path.join(args.run_dir, "metrics.json"),
            os.path.join(plan_dir, "plan.json"), os.path.join(plan_dir, "batches.jsonl"),
            os.path.join(plan_dir, "initial_model", "config.json")]
    for p in need:
        if not os.path.exists(p):
            raise SystemExit(f"gpt2_replay_pytorch: {p} is missing (was the GPT-2 run made with --run.export_plan true?)")
    with open(need[0], "rb") as f:
        train_cfg = tomllib.load(f)["train"]
    with open(need[1]) as f:
        ours = json.load(f)
    with open(need[2]) as f:
        plan = json.load(f)
    batches = read_jsonl(need[3])

    import torch
    from transformers import GPT2LMHeadModel

    from peer_pytorch import NvmlEnergy

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    T, B = int(plan["block_size"]), int(plan["batch_size"])
    grad_accum, total_steps = int(plan["grad_accum"]), int(plan["total_steps"])
    eval_every, max_eval = int(plan["eval_every"]), int(plan["max_eval_sequences"])
    pad = int(plan["separator_id"])
    train_tokens = read_tokens(os.path.join(plan_dir, plan["train_tokens"]))
    eval_tokens = read_tokens(os.path.join(plan_dir, plan["eval_tokens"])) if plan.get("eval_tokens") else None
    if window_count(len(train_tokens), T) != int(plan["train_windows"]):
        raise SystemExit(f"gpt2_replay_pytorch: {plan['train_tokens']} packs into {window_count(len(train_tokens), T)} "
                         f"windows, plan.json says {plan['train_windows']}")

    overrides = {}
    if float(train_cfg.get("hidden_dropout", -1.0)) >= 0:
        overrides.update(resid_pdrop=float(train_cfg["hidden_dropout"]), embd_pdrop=float(train_cfg["hidden_dropout"]))
    if float(train_cfg.get("attention_dropout", -1.0)) >= 0:
        overrides["attn_pdrop"] = float(train_cfg["attention_dropout"])
    model = GPT2LMHeadModel.from_pretrained(os.path.join(plan_dir, "initial_model"), attn_implementation="sdpa",
                                            use_cache=False, **overrides).to(device)
    if float(train_cfg.get("label_smoothing", 0.0)) != 0.0:
        raise SystemExit("gpt2_replay_pytorch: train.label_smoothing is set; this script replays plain cross-entropy")
    if train_cfg.get("optimizer", "adamw") != "adamw":
        raise SystemExit(f"gpt2_replay_pytorch: train.optimizer {train_cfg.get('optimizer')} is not replayed (adamw only)")

    def window_batch(tokens, windows):
        ids = torch.full((len(windows), T), pad, dtype=torch.long)
        mask = torch.zeros((len(windows), T), dtype=torch.long)
        labels = torch.full((len(windows), T), -100, dtype=torch.long)
        for r, k in enumerate(windows):
            start = k * (T - 1)
            piece = torch.tensor(tokens[start:start + T], dtype=torch.long)
            ids[r, :len(piece)] = piece
            mask[r, :len(piece)] = 1
            labels[r, :len(piece)] = piece
        return ids.to(device), mask.to(device), labels.to(device)

    precision = train_cfg.get("precision", "fp32")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    warmup = warmup_steps_of(train_cfg, total_steps)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": float(train_cfg.get("weight_decay", 0.0))},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=float(train_cfg["lr"]),
                            betas=(float(train_cfg.get("beta1", 0.9)), float(train_cfg.get("beta2", 0.999))),
                            eps=float(train_cfg.get("eps", 1e-8)), fused=cuda)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda_for(train_cfg.get("schedule", "linear"), warmup, total_steps))
    max_grad_norm = float(train_cfg.get("max_grad_norm", 1.0))

    @torch.no_grad()
    def evaluate():
        # As wattwise's evaluate_lm: windows in order, the mean loss over every scored token.
        model.eval()
        windows = window_count(len(eval_tokens), T)
        if max_eval > 0:
            windows = min(windows, max_eval)
        loss_sum, scored = 0.0, 0
        for s in range(0, windows, B):
            ids, mask, labels = window_batch(eval_tokens, list(range(s, min(windows, s + B))))
            with autocast():
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            n = int((labels[:, 1:] != -100).sum())
            loss_sum += float(loss) * n
            scored += n
        model.train()
        return loss_sum / max(1, scored)

    meter = NvmlEnergy(torch, device.index or 0) if cuda else None
    e0 = meter.joules() if meter else None
    t0 = time.perf_counter()
    history, step = [], 0
    model.train()
    for i, b in enumerate(batches):
        ids, mask, labels = window_batch(train_tokens, b["windows"])
        with autocast():
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss / grad_accum
        (scaler.scale(loss) if scaler else loss).backward()
        if (i + 1) % grad_accum:
            continue
        optimizer_step(torch, model, opt, sched, scaler, max_grad_norm)
        step += 1
        if eval_tokens is not None and eval_every > 0 and step % eval_every == 0:
            history.append({"step": step, "loss": evaluate()})
            print(f"pytorch: step {step} eval loss {history[-1]['loss']:.4f}", file=sys.stderr)
    if eval_tokens is not None and (not history or history[-1]["step"] != step):
        history.append({"step": step, "loss": evaluate()})
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0

    ours_by_step = {int(h["step"]): float(h["loss"]) for h in ours.get("eval_history", [])}
    compared = []
    for h in history:
        if h["step"] in ours_by_step:
            w = ours_by_step[h["step"]]
            compared.append({"step": h["step"], "wattwise": w, "pytorch": h["loss"], "relative": abs(w - h["loss"]) / abs(h["loss"])})
    worst = max((c["relative"] for c in compared), default=None)
    result = {
        "framework": f"pytorch {torch.__version__} + transformers (sdpa, AdamW, autocast {precision})",
        "run_dir": args.run_dir, "steps": step, "micro_batches": len(batches), "eval_history": history,
        "compared": compared, "max_relative_difference": worst, "tolerance": args.tolerance,
        "seconds": seconds, "gpu_energy_j": (meter.joules() - e0) if meter else None,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)
    if not compared:
        raise SystemExit("gpt2_replay_pytorch: no evaluation step in common with the wattwise run's eval_history")
    if step != total_steps:
        raise SystemExit(f"gpt2_replay_pytorch: replayed {step} optimizer steps, the plan has {total_steps}")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
