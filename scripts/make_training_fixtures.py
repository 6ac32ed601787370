#!/usr/bin/env python3
"""Training-trajectory fixtures: 20 optimizer steps of a tiny random-init BERT classifier in
PyTorch + transformers, for wattwise's training parity test.

From the model in tests/fixtures/bert_tiny (HF save_pretrained) and 20 fixed random batches
(written into the fixture), with dropout off in fp32, it runs each optimizer with the scheduler
and clipping transformers' Trainer uses, weight decay off for biases and LayerNorm weights:
  adamw: torch.optim.AdamW, warmup 4 steps + cosine, clip 1.0, wd 0.01
  adam:  torch.optim.Adam (L2 weight decay 0.01), warmup 4 + linear decay, clip 0.5
  sgd:   torch.optim.SGD momentum 0.9 nesterov, constant lr, clip 1.0, wd 0.01
and writes tests/fixtures/training/<optimizer>.safetensors: the batches, the loss of every step,
the learning rates, and every parameter after the last step ("final.<name>").

  python3 scripts/make_training_fixtures.py --model tests/fixtures/bert_tiny --out tests/fixtures/training
"""
import argparse
import os

import torch
from safetensors.torch import save_file
from transformers import (BertForSequenceClassification, get_constant_schedule,
                          get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup)

STEPS, BATCH, SEQ = 20, 4, 9

CASES = {
    "adamw": dict(lr=3e-3, wd=0.01, clip=1.0, schedule="cosine", warmup=4),
    "adam": dict(lr=2e-3, wd=0.01, clip=0.5, schedule="linear", warmup=4),
    "sgd": dict(lr=5e-2, wd=0.01, clip=1.0, schedule="constant", warmup=0),
}


def batches(vocab, num_labels, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(STEPS):
        ids = torch.randint(1, vocab, (BATCH, SEQ), generator=g)
        lengths = torch.randint(3, SEQ + 1, (BATCH,), generator=g)
        mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
        ids = ids * mask
        types = ((torch.arange(SEQ)[None, :] >= (lengths[:, None] // 2)) & mask.bool()).long()
        labels = torch.randint(0, num_labels, (BATCH,), generator=g)
        out.append((ids, mask, types, labels))
    return out


def run(case, model_dir, data):
    cfg = CASES[case]
    model = BertForSequenceClassification.from_pretrained(model_dir).float()
    model.config.hidden_dropout_prob = 0.0
    model.eval()  # dropout off
    decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n]
    groups = [{"params": decay, "weight_decay": cfg["wd"]}, {"params": no_decay, "weight_decay": 0.0}]
    if case == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8, foreach=False)
    elif case == "adam":
        opt = torch.optim.Adam(groups, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8, foreach=False)
    else:
        opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=0.9, nesterov=True, foreach=False)
    if cfg["schedule"] == "cosine":
        sched = get_cosine_schedule_with_warmup(opt, cfg["warmup"], STEPS)
    elif cfg["schedule"] == "linear":
        sched = get_linear_schedule_with_warmup(opt, cfg["warmup"], STEPS)
    else:
        sched = get_constant_schedule(opt)
    losses, lrs = [], []
    for ids, mask, types, labels in data:
        lrs.append(opt.param_groups[0]["lr"])
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(out.loss.item())
    tensors = {"losses": torch.tensor(losses, dtype=torch.float32),
               "lrs": torch.tensor(lrs, dtype=torch.float32)}
    for i, (ids, mask, types, labels) in enumerate(data):
        tensors[f"batch{i}.input_ids"] = ids.to(torch.int32)
        tensors[f"batch{i}.attention_mask"] = mask.to(torch.int32)
        tensors[f"batch{i}.token_type_ids"] = types.to(torch.int32)
        tensors[f"batch{i}.labels"] = labels.to(torch.int32)
    for n, p in model.named_parameters():
        tensors["final." + n] = p.detach().float().contiguous()
    meta = {k: str(v) for k, v in cfg.items()}
    meta["torch"] = torch.__version__
    return tensors, meta, losses


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    os.makedirs(args.out, exist_ok=True)
    probe = BertForSequenceClassification.from_pretrained(args.model)
    data = batches(probe.config.vocab_size, probe.config.num_labels, seed=99)
    for case in CASES:
        tensors, meta, losses = run(case, args.model, data)
        save_file(tensors, os.path.join(args.out, f"{case}.safetensors"), metadata=meta)
        print(f"{case}: loss {losses[0]:.5f} -> {losses[-1]:.5f}")


if __name__ == "__main__":
    main()
