#!/usr/bin/env python3
"""Writes tests/fixtures/optimizer/reference.json: what torch.optim and transformers' schedules do.

Four small parameters (two take weight decay, two do not, as a model's matrices and its biases /
LayerNorm weights) are updated for 20 steps from fixed random gradients by torch.optim.AdamW,
Adam and SGD (momentum, Nesterov, dampening), with get_cosine_schedule_with_warmup and
clip_grad_norm_, the way a fine-tuning loop does it:

    clip_grad_norm_ -> optimizer.step() -> scheduler.step()

The fixture holds the initial parameters and gradients (flattened in registration order, as
ww::models::ParameterStore lays them out), and per case the learning rate and pre-clip gradient
norm of every step, the final parameters and the final optimizer state. It also holds learning-rate
curves of transformers' linear, cosine and constant-with-warmup schedules.
tests/train/optimizer_test.cpp replays the same steps and compares within 1e-6 relative.

Usage: python3 scripts/make_optimizer_fixtures.py [--out tests/fixtures/optimizer/reference.json]
"""
import argparse
import json
import math
import os

import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

STEPS = 20
WARMUP_STEPS = 3
MAX_GRAD_NORM = 7.0
# name, shape, weight decay: the order is the flat-buffer order. The two decayed tensors are not
# adjacent, so the optimizer sees two decay ranges.
PARAMS = [("w1", [6, 5], True), ("b1", [5], False), ("w2", [5, 3], True), ("ln", [3], False)]

CASES = [
    {"name": "adamw", "optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.1,
     "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    {"name": "adam_l2", "optimizer": "adam", "lr": 1e-2, "weight_decay": 0.05,
     "beta1": 0.8, "beta2": 0.99, "eps": 0.3},  # large eps: its placement shows
    {"name": "sgd_momentum", "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.01,
     "momentum": 0.9, "dampening": 0.0, "nesterov": False},
    {"name": "sgd_nesterov", "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.01,
     "momentum": 0.9, "dampening": 0.0, "nesterov": True},
    {"name": "sgd_dampening", "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.0,
     "momentum": 0.5, "dampening": 0.25, "nesterov": False},
    {"name": "sgd_plain", "optimizer": "sgd", "lr": 0.05, "weight_decay": 0.02,
     "momentum": 0.0, "dampening": 0.0, "nesterov": False},
]


def flat(tensors):
    return [float(x) for t in tensors for x in t.detach().reshape(-1).tolist()]


def make_optimizer(case, params):
    decayed = [p for p, (_, _, decay) in zip(params, PARAMS) if decay]
    plain = [p for p, (_, _, decay) in zip(params, PARAMS) if not decay]
    groups = [{"params": decayed, "weight_decay": case["weight_decay"]},
              {"params": plain, "weight_decay": 0.0}]
    if case["optimizer"] in ("adamw", "adam"):
        cls = torch.optim.AdamW if case["optimizer"] == "adamw" else torch.optim.Adam
        # foreach=False: the single-tensor code path, whose float operations the C++ kernel mirrors.
        return cls(groups, lr=case["lr"], betas=(case["beta1"], case["beta2"]), eps=case["eps"],
                   foreach=False)
    return torch.optim.SGD(groups, lr=case["lr"], momentum=case["momentum"],
                           dampening=case["dampening"], nesterov=case["nesterov"], foreach=False)


def run_case(case, initial, grads):
    params = [torch.nn.Parameter(t.clone()) for t in initial]
    optimizer = make_optimizer(case, params)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=WARMUP_STEPS,
                                                num_training_steps=STEPS)
    lrs, norms = [], []
    for step in range(STEPS):
        for p, g in zip(params, grads[step]):
            p.grad = g.clone()
        norm = torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM, foreach=False)
        lrs.append(optimizer.param_groups[0]["lr"])
        norms.append(float(norm))
        optimizer.step()
        scheduler.step()
    state = {}
    for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
        values = [optimizer.state[p].get(key) for p in params]
        if all(v is not None for v in values):
            state[key] = flat(values)
    out = dict(case)
    out.update({"lrs": lrs, "grad_norms": norms, "final_params": flat(params), "state": state})
    return out


def schedule_curves():
    curves = []
    for kind, total, warmup in [("linear", 10, 2), ("linear", 7, 0), ("cosine", 12, 3),
                                ("cosine", 5, 0), ("constant", 6, 2)]:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2e-5)
        if kind == "linear":
            scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        elif kind == "cosine":
            scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total)
        else:
            scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
        lrs = []
        for _ in range(total + 1):  # one past the end: linear stays at 0
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        curves.append({"kind": kind, "learning_rate": 2e-5, "total_steps": total,
                       "warmup_steps": warmup, "lrs": lrs})
    return curves


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "optimizer",
                                                      "reference.json"))
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(1234)
    initial = [torch.randn(shape, generator=generator) for _, shape, _ in PARAMS]
    grads = []
    for _ in range(STEPS):
        # Gradient sizes spread over a factor of ~20 so clipping is active on some steps only.
        scale = math.exp(float(torch.empty(1).uniform_(-1.5, 1.5, generator=generator)))
        grads.append([torch.randn(shape, generator=generator) * scale for _, shape, _ in PARAMS])

    fixture = {
        "generator": "scripts/make_optimizer_fixtures.py",
        "torch_version": torch.__version__,
        "steps": STEPS,
        "warmup_steps": WARMUP_STEPS,
        "max_grad_norm": MAX_GRAD_NORM,
        "params": [{"name": n, "shape": s, "weight_decay": d} for n, s, d in PARAMS],
        "initial_params": flat(initial),
        "grads": [flat(g) for g in grads],
        "cases": [run_case(case, initial, grads) for case in CASES],
        "schedules": schedule_curves(),
    }
    clipped = sum(n > MAX_GRAD_NORM for n in fixture["cases"][0]["grad_norms"])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: {len(CASES)} optimizer cases, {STEPS} steps, "
          f"clipping active on {clipped} steps")


if __name__ == "__main__":
    main()
