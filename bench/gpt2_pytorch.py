#!/usr/bin/env python3
"""PyTorch peer for GPT-2 training throughput (issue 8's benchmark): GPT2LMHeadModel from a config
(random init, seeded), batches of B x T tokens from a text file tokenised with the GPT-2 BPE, bf16
autocast, fused AdamW, eager or torch.compile. Times `--steps` optimizer steps after `--warmup`
steps and reads the GPU's NVML energy counter around them.

  python3 bench/gpt2_pytorch.py --text tinyshakespeare/input.txt --tokenizer tokenizers/gpt2 \
      --batch 16 --seq 1024 --steps 20 --warmup 5 [--compile] [--preset small] --out result.json
"""
import argparse
import json
import os
import sys
import time


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", required=True)
    ap.add_argument("--tokenizer", required=True, help="folder with vocab.json and merges.txt")
    ap.add_argument("--preset", default="small", choices=["small", "tiny"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from peer_pytorch import NvmlEnergy

    torch.manual_seed(args.seed)
    device = torch.device("cuda")
    tok = GPT2TokenizerFast(os.path.join(args.tokenizer, "vocab.json"), os.path.join(args.tokenizer, "merges.txt"))
    with open(args.text, encoding="utf-8") as f:
        ids = tok(f.read())["input_ids"]
    data = torch.tensor(ids, dtype=torch.long)
    config = GPT2Config() if args.preset == "small" else GPT2Config(n_embd=128, n_layer=2, n_head=4)
    model = GPT2LMHeadModel(config).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95), fused=True)
    amp = torch.bfloat16 if args.precision == "bf16" else None
    if args.precision == "fp32":
        torch.backends.cuda.matmul.allow_tf32 = False
    step_fn_model = torch.compile(model) if args.compile else model
    g = torch.Generator().manual_seed(args.seed)
    n_tok = args.batch * args.seq

    def batch():
        starts = torch.randint(0, len(data) - args.seq - 1, (args.batch,), generator=g)
        x = torch.stack([data[s:s + args.seq] for s in starts])
        return x.to(device, non_blocking=True)

    def step():
        x = batch()
        with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
            loss = step_fn_model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t_compile = time.perf_counter()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t_compile
    torch.cuda.reset_peak_memory_stats()
    meter = NvmlEnergy(torch, 0)
    e0 = meter.joules()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    joules = meter.joules() - e0
    tokens = n_tok * args.steps
    result = {
        "framework": f"pytorch {torch.__version__} {'torch.compile' if args.compile else 'eager'} (sdpa, fused AdamW, {args.precision})",
        "preset": args.preset, "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup_steps": args.warmup,
        "warmup_seconds": warmup_s, "seconds": seconds, "tokens_per_s": tokens / seconds,
        "joules": joules, "mj_per_token": 1e3 * joules / tokens, "final_loss": float(loss),
        "peak_memory_bytes": torch.cuda.max_memory_allocated(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    text = json.dumps(result, indent=2)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
