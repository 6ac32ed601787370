#!/usr/bin/env python3
"""Replays a wattwise fine-tuning run in PyTorch + Hugging Face transformers, for the side-by-side
comparison of docs/RESULTS.md.

Input: a wattwise run folder made with `--run.export_plan true`. It holds config.toml (every
hyperparameter of the run) and plan/: initial_model/ (the checkpoint with the freshly initialised
head, so both sides start from the same weights), train.jsonl / eval.jsonl / test.jsonl (the
examples, HTML already stripped) and batches.jsonl (every micro-batch's example indices, in order).
This script trains on exactly those batches with the same optimizer (AdamW, fused on a GPU, weight
decay off for biases and LayerNorm weights as in wattwise), the same schedule (linear or cosine with
warmup), gradient clipping, label smoothing, class weights, dropout and precision (bf16/fp16 autocast), evaluates on
eval.jsonl after every epoch, keeps the best epoch's weights and scores test.jsonl with them.
Dropout masks differ between the frameworks (their random streams differ): that is the seed-level
noise the comparison is judged against.

Usage: python3 bench/minilm_pytorch.py RUN_DIR [--out result.json] [--device cuda]
Writes a JSON result (accuracy per epoch, test accuracy, seconds, GPU joules from NVML's counter).
"""
import argparse
import json
import math
import os
import sys
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

started = time.perf_counter()


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def lr_lambda_for(kind, warmup, total):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if kind == "constant":
            return 1.0
        raise SystemExit(f"minilm_pytorch: train.schedule '{kind}' is not replayed by this script")
    return f


def warmup_steps_of(train_cfg, total_steps):
    """train.warmup_steps, else train.warmup_ratio of the total (rounded up), as wattwise resolves it."""
    warmup = int(train_cfg.get("warmup_steps", 0) or 0)
    return warmup or math.ceil(total_steps * float(train_cfg.get("warmup_ratio", 0.0)))


def optimizer_step(torch, model, opt, sched, scaler, max_grad_norm):
    """One optimizer step after the accumulated backward passes: unscale (fp16), clip, step, schedule."""
    if scaler:
        scaler.unscale_(opt)
    if max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    if scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", default="")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args(argv)

    plan = os.path.join(args.run_dir, "plan")
    cfg_path = os.path.join(args.run_dir, "config.toml")
    for p in (cfg_path, os.path.join(plan, "batches.jsonl"), os.path.join(plan, "initial_model")):
        if not os.path.exists(p):
            raise SystemExit(f"minilm_pytorch: {p} is missing (was the run made with --run.export_plan true?)")
    with open(cfg_path, "rb") as f:
        cfg = tomllib.load(f)
    train_cfg, data_cfg = cfg["train"], cfg["data"]

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from peer_pytorch import NvmlEnergy

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    meter = NvmlEnergy(torch, device.index or 0) if cuda else None
    e0 = meter.joules() if meter else None
    t0 = time.perf_counter()

    model_dir = os.path.join(plan, "initial_model")
    with open(os.path.join(model_dir, "config.json")) as f:
        model_json = json.load(f)
    pooling = model_json.get("wattwise_pooling", "cls-pooler")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, attn_implementation="sdpa")
    # Dropout comes from the checkpoint's config on both sides; a run that overrides it is not replayed.
    for key in ("hidden_dropout", "attention_dropout", "classifier_dropout"):
        if float(train_cfg.get(key, -1.0)) >= 0:
            raise SystemExit(f"minilm_pytorch: train.{key} is set in {cfg_path}; this script replays checkpoint dropout only")
    model.to(device)
    base = getattr(model, model.base_model_prefix)

    def logits_of(input_ids, attention_mask):
        if pooling == "cls-pooler":
            return model(input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = base(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if pooling == "mean":
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        else:  # cls
            pooled = hidden[:, 0]
        return model.classifier(model.dropout(pooled))

    max_length = int(data_cfg.get("max_length", 128))

    def encode(rows):
        texts = [r["text"] for r in rows]
        pairs = [r.get("text_pair") for r in rows]
        enc = tokenizer(texts, pairs if any(p is not None for p in pairs) else None, truncation=True,
                        max_length=max_length)
        return enc["input_ids"]

    def collate(ids_list):
        T = max(len(x) for x in ids_list)
        T = (T + 7) // 8 * 8
        ids = torch.full((len(ids_list), T), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(ids_list), T), dtype=torch.long)
        for i, x in enumerate(ids_list):
            ids[i, :len(x)] = torch.tensor(x)
            mask[i, :len(x)] = 1
        return ids.to(device, non_blocking=True), mask.to(device, non_blocking=True)

    train_rows = read_jsonl(os.path.join(plan, "train.jsonl"))
    train_ids = encode(train_rows)
    train_labels = torch.tensor([r["label"] for r in train_rows])
    batches = read_jsonl(os.path.join(plan, "batches.jsonl"))
    eval_path, test_path = os.path.join(plan, "eval.jsonl"), os.path.join(plan, "test.jsonl")
    eval_rows = read_jsonl(eval_path) if os.path.exists(eval_path) else []
    test_rows = read_jsonl(test_path) if os.path.exists(test_path) else []
    eval_ids, test_ids = encode(eval_rows) if eval_rows else [], encode(test_rows) if test_rows else []

    precision = train_cfg.get("precision", "fp32")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if precision == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    grad_accum = int(train_cfg.get("grad_accum", 1))
    total_steps = len(batches) // grad_accum
    warmup = warmup_steps_of(train_cfg, total_steps)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": float(train_cfg.get("weight_decay", 0.0))},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=float(train_cfg["lr"]), betas=(float(train_cfg.get("beta1", 0.9)), float(train_cfg.get("beta2", 0.999))),
                            eps=float(train_cfg.get("eps", 1e-8)), fused=cuda)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda_for(train_cfg.get("schedule", "linear"), warmup, total_steps))
    max_grad_norm = float(train_cfg.get("max_grad_norm", 1.0))
    smoothing = float(train_cfg.get("label_smoothing", 0.0))
    # train.class_weights as wattwise resolves it: balanced = n / (labels x count) over train.jsonl.
    weights_spec = str(train_cfg.get("class_weights", "none"))
    class_weights = None
    if weights_spec == "balanced":
        counts = torch.bincount(train_labels, minlength=model.config.num_labels).double()
        class_weights = len(train_rows) / (model.config.num_labels * counts)
    elif weights_spec != "none":
        class_weights = torch.tensor([float(w) for w in weights_spec.split(",")])
    if class_weights is not None:
        class_weights = class_weights.float().to(device)

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    @torch.no_grad()
    def accuracy(ids_list, rows, batch_size):
        model.eval()
        correct = 0
        for s in range(0, len(ids_list), batch_size):
            ids, mask = collate(ids_list[s:s + batch_size])
            with autocast():
                pred = logits_of(ids, mask).argmax(-1).cpu()
            correct += int((pred == torch.tensor([r["label"] for r in rows[s:s + batch_size]])).sum())
        model.train()
        return correct / max(1, len(rows))

    batch_size = int(train_cfg.get("batch_size", 32))
    history, best, best_state = [], None, None
    train_seconds = eval_seconds = 0.0
    model.train()
    epoch_of = [b["epoch"] for b in batches]
    t_train = time.perf_counter()
    step = 0
    for i, b in enumerate(batches):
        ids, mask = collate([train_ids[j] for j in b["indices"]])
        labels = train_labels[b["indices"]].to(device, non_blocking=True)
        with autocast():
            logits = logits_of(ids, mask)
        loss = F.cross_entropy(logits.float(), labels, weight=class_weights, label_smoothing=smoothing) / grad_accum
        (scaler.scale(loss) if scaler else loss).backward()
        if (i + 1) % grad_accum == 0:
            optimizer_step(torch, model, opt, sched, scaler, max_grad_norm)
            step += 1
        epoch_end = i + 1 == len(batches) or epoch_of[i + 1] != epoch_of[i]
        if epoch_end and eval_rows:
            if cuda:
                torch.cuda.synchronize()
            train_seconds += time.perf_counter() - t_train
            t_eval = time.perf_counter()
            acc = accuracy(eval_ids, eval_rows, 2 * batch_size)
            eval_seconds += time.perf_counter() - t_eval
            history.append({"epoch": epoch_of[i] + 1, "step": step, "accuracy": acc, "last_batch_loss": float(loss) * grad_accum})
            print(f"pytorch: epoch {epoch_of[i] + 1} eval accuracy {acc:.4f}", file=sys.stderr)
            if best is None or acc > best:
                best = acc
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            t_train = time.perf_counter()
    if cuda:
        torch.cuda.synchronize()
    if not eval_rows:
        train_seconds += time.perf_counter() - t_train
    test_acc = None
    if test_rows:
        if best_state is not None:
            model.load_state_dict(best_state)
        t_test = time.perf_counter()
        test_acc = accuracy(test_ids, test_rows, 2 * batch_size)
        eval_seconds += time.perf_counter() - t_test
        print(f"pytorch: test accuracy {test_acc:.4f}", file=sys.stderr)
    if cuda:
        torch.cuda.synchronize()
    result = {
        "framework": f"pytorch {torch.__version__} + transformers eager (sdpa, fused AdamW, autocast {precision})",
        "run_dir": args.run_dir, "pooling": pooling, "steps": step, "train_examples": len(train_rows),
        "eval_history": history, "best_eval_accuracy": best, "test_accuracy": test_acc,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        "work_seconds": time.perf_counter() - t0, "process_seconds": time.perf_counter() - started,
        "gpu_energy_j": (meter.joules() - e0) if meter else None,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
