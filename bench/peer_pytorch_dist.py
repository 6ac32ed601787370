#!/usr/bin/env python3
"""The data-parallel PyTorch peer of `wattwise launch --nproc N -- bench`: one training case on N ranks.

Started by torchrun, one process per GPU (or CPU rank), each on its own batch of --batch rows (weak
scaling, as `wattwise bench` under a launcher):

  python3 -m torch.distributed.run --standalone --nproc-per-node 4 bench/peer_pytorch_dist.py \\
      --dist ddp --case gpt2-train-bf16 --arch gpt2 --preset small --batch 16 --seq-len 1024 \\
      --precision bf16 --min-seconds 4 --json ddp.json
  python3 bench/peer_pytorch_dist.py --dist fsdp ...      # one process: a group of one rank
  python3 -m torch.distributed.run --standalone --nproc-per-node 2 bench/peer_pytorch_dist.py \\
      --dist ddp --device cpu --arch gpt2 --preset tiny --batch 2 --seq-len 16 --steps 3 --warmup 1

The model, inputs, optimizer, training step, energy counter and result fields are bench/peer_pytorch.py's
(imported, not copied): random-init transformers model with SDPA attention, fused AdamW, autocast.
--dist ddp: torch.nn.parallel.DistributedDataParallel with its defaults (bucket_cap_mb 25) and
gradient_as_bucket_view; fp32 gradients all-reduced, as wattwise sums its f32 gradients.
--dist fsdp: FullyShardedDataParallel, ShardingStrategy.SHARD_GRAD_OP (ZeRO-2: optimizer state and
gradients sharded, parameters gathered for forward and kept through backward), one FSDP unit per
transformer layer (the usual auto-wrap policy), use_orig_params=True (so GPT-2's weight decay picks
the >= 2-D tensors by name, as for one process, and fused AdamW runs on the shards), and
MixedPrecision(param_dtype=bf16|fp16, reduce_dtype=fp32): parameters all-gathered in 16 bits (FSDP's
standard mixed-precision setup, what it is meant to be run with), gradients reduce-scattered in fp32
like DDP's and wattwise's sums (--fsdp-reduce-dtype bf16 halves those bytes, at the gradients'
precision); the forward still runs under autocast as the one-process peer's, so the same ops run in
fp32 (softmax, LayerNorm, the loss). GPT-2 clips the global gradient norm at 1.0 (FSDP:
clip_grad_norm_ of the wrapper, over the shards).

Measurement: warm-up, a barrier, each rank reads its own GPU's NVML energy counter (by PCI bus id), the
timed steps (rank 0's clock decides how many, every rank takes the same number), synchronize and a
barrier, the counters again. Rank 0 gathers every rank's joules, peak memory
(torch.cuda.max_memory_allocated) and model-state bytes (parameters, gradients and optimizer state
held on that rank, counted from the tensors' storages, each once) and writes one JSON object with
`wattwise bench`'s fields: samples, tokens and rates are the job's, energy_j the sum over the ranks'
GPUs, peak_memory_bytes rank 0's, final_loss the ranks' mean; "distributed" holds the rest.
"""
import argparse
import datetime
import os
import socket
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_pytorch as peer  # noqa: E402 (the folder above is this script's)

FSDP_PREFIX = "_fsdp_wrapped_module."


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dist", choices=["ddp", "fsdp"], default="ddp",
                    help="DistributedDataParallel, or FSDP with SHARD_GRAD_OP (ZeRO-2)")
    ap.add_argument("--case", default="custom", help="case name written to the JSON")
    ap.add_argument("--arch", choices=["bert", "distilbert", "gpt2"], default="gpt2")
    ap.add_argument("--preset", choices=sorted(peer.PRESETS), default="small")
    ap.add_argument("--config", help="config.json to use instead of the preset (as wattwise wrote it)")
    ap.add_argument("--batch", type=int, default=16, help="rows per rank and step (weak scaling)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], default="bf16")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                    help="cuda: each rank the GPU of its LOCAL_RANK (NCCL); cpu: Gloo")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.0)
    ap.add_argument("--peak-tflops", type=float, help="matmul rate for MFU (default: MFU omitted)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--bucket-cap-mb", type=float, default=25.0, help="DDP's gradient buckets (its default 25)")
    ap.add_argument("--fsdp-reduce-dtype", choices=["fp32", "bf16"], default="fp32",
                    help="FSDP: the type gradients are reduce-scattered in (default fp32, as DDP and wattwise)")
    ap.add_argument("--json", help="rank 0 writes the result object to this file")
    args = ap.parse_args(argv)
    if args.steps <= 0 or args.warmup < 0 or args.batch <= 0 or args.seq_len < 2:
        ap.error("--steps and --batch must be positive, --warmup >= 0, --seq-len >= 2")
    if args.arch == "gpt2" and not args.config and args.preset not in peer.GPT2_PRESETS:
        ap.error(f"--preset {args.preset} is not a GPT-2 preset (expected {', '.join(peer.GPT2_PRESETS)})")
    # What peer_pytorch's helpers read besides these: training, eager.
    args.task, args.mode = "train", "eager"
    return args


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def join(torch, args):
    """The process group: torchrun's variables, or a group of one when started without a launcher."""
    import torch.distributed as dist
    if "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = args.device == "cuda"
    if cuda:
        if local >= torch.cuda.device_count():
            sys.exit(f"peer: LOCAL_RANK {local} but {torch.cuda.device_count()} GPU(s) visible")
        args.device = f"cuda:{local}"
    device = peer.case_device(torch, args)
    timeout = datetime.timedelta(minutes=10)
    if cuda:
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
        # Barriers and the loop's agreement go through Gloo: host-side, so they never wait for the GPU.
        control = dist.new_group(backend="gloo", timeout=timeout)
    else:
        dist.init_process_group("gloo", timeout=timeout)
        control = dist.new_group(backend="gloo", timeout=timeout)
    return device, dist.get_rank(), dist.get_world_size(), local, control


def layer_class(model, arch):
    """The class of the model's transformer layers: FSDP's wrapping unit."""
    layers = {"gpt2": lambda m: m.transformer.h, "distilbert": lambda m: m.distilbert.transformer.layer,
              "bert": lambda m: m.bert.encoder.layer}[arch](model)
    return type(layers[0])


def wrap(torch, args, model, device, half, lm):
    """(module to run, (name, parameter) pairs for the optimizer, weight-decay choice, clipping, scaler)."""
    from torch.nn.parallel import DistributedDataParallel
    cuda = device.type == "cuda"
    fp16 = args.precision == "fp16"
    if args.dist == "ddp":
        run = DistributedDataParallel(model, device_ids=[device.index] if cuda else None,
                                      bucket_cap_mb=args.bucket_cap_mb, gradient_as_bucket_view=True)
        clip = lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # noqa: E731
        scaler = torch.amp.GradScaler(device.type, init_scale=65536.0, growth_interval=2000) if fp16 else None
        return run, list(model.named_parameters()), None, clip, scaler
    from torch.distributed.fsdp import FullyShardedDataParallel, MixedPrecision, ShardingStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy
    # Decided before wrapping: with use_orig_params the shards FSDP hands the optimizer are 1-D views.
    dims = {name: p.dim() for name, p in model.named_parameters()}
    reduce = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.fsdp_reduce_dtype]
    # device_id on the CPU too: without it FSDP looks for an accelerator and refuses a CPU-only machine.
    mixed = MixedPrecision(param_dtype=half, reduce_dtype=reduce) if half is not None else None
    run = FullyShardedDataParallel(model, sharding_strategy=ShardingStrategy.SHARD_GRAD_OP,
                                   auto_wrap_policy=ModuleWrapPolicy({layer_class(model, args.arch)}),
                                   mixed_precision=mixed, device_id=device,
                                   use_orig_params=True, limit_all_gathers=True)
    named = [(name.replace(FSDP_PREFIX, ""), p) for name, p in run.named_parameters()]
    unknown = [n for n, _ in named if n not in dims]
    if unknown:
        sys.exit(f"peer: FSDP parameter names not in the model: {unknown[:3]}")
    clip = lambda: run.clip_grad_norm_(1.0)  # noqa: E731 (the global norm over every rank's shard)
    scaler = None
    if fp16:
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler
        scaler = ShardedGradScaler(device.type, init_scale=65536.0, growth_interval=2000)
    return run, named, lambda name, p: dims[name] >= 2, clip, scaler


def storage_bytes(tensors):
    """Bytes of the storages behind `tensors`, each storage once (views of one buffer: DDP's gradient
    buckets, FSDP's flat parameters and their shards)."""
    seen = {}
    for t in tensors:
        if t is None:
            continue
        s = t.untyped_storage()
        key = (str(t.device), s.data_ptr())
        seen[key] = max(seen.get(key, 0), s.nbytes())
    return sum(seen.values())


def model_state(torch, params, optimizer):
    """Parameter, gradient and optimizer-state bytes this rank holds (after a step: gradients present)."""
    state = [v for per_param in optimizer.state.values() for v in per_param.values() if torch.is_tensor(v)]
    parameter_bytes = storage_bytes(params)
    gradient_bytes = storage_bytes(p.grad for p in params)
    optimizer_bytes = storage_bytes(state)
    return {"parameter_bytes": parameter_bytes, "gradient_bytes": gradient_bytes,
            "optimizer_state_bytes": optimizer_bytes,
            "model_state_bytes": parameter_bytes + gradient_bytes + optimizer_bytes}


def bus_id(torch, device):
    try:
        p = torch.cuda.get_device_properties(device.index)
        return "%08X:%02X:%02X.0" % (p.pci_domain_id, p.pci_bus_id, p.pci_device_id)
    except Exception:
        return None


def main(argv=None):
    args = parse_args(argv)
    import torch
    import torch.distributed as dist

    device, rank, world, local, control = join(torch, args)
    cuda = device.type == "cuda"
    cfg_dict, config, lm = peer.model_config(args)
    half = peer.half_dtype(torch, args.precision)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    model = peer.new_model(torch, args, config, lm, device)
    params = sum(p.numel() for p in model.parameters())
    run, named, decayed, clip, scaler = wrap(torch, args, model, device, half, lm)
    optimizer = peer.new_optimizer(torch, named, lm, fused=cuda, decayed=decayed)
    inputs, labels = peer.random_inputs(torch, args, cfg_dict, lm, device, stream=rank)
    last = {"loss": None}
    step = peer.train_step_function(torch, run, optimizer, inputs, labels, device, half, scaler,
                                    clip if lm else None, last)
    case = types.SimpleNamespace(step=step, last=last, device=device, cuda=cuda, training=True, cfg_dict=cfg_dict,
                                 params=params, flops=peer.case_flops(args, cfg_dict, lm))

    def wait():
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    wait()

    # Each rank meters its own GPU; on CPUs the first rank of each machine its packages (RAPL sees the
    # whole machine, so one reading per machine).
    meter, source, note = None, "none", ""
    meters = cuda or local == 0
    try:
        if cuda:
            meter, source = peer.NvmlEnergy(torch, device.index), "gpu"
        elif meters:
            meter, source = peer.RaplEnergy(), "cpu"
    except Exception as e:
        note = f"no energy counter: {e}"
        print(f"peer (rank {rank}): {note}", file=sys.stderr)
    dist.barrier(group=control)
    e0 = meter.joules() if meter else None
    start = time.perf_counter()

    # Rank 0's clock decides whether step k runs; the decision for step k+1 travels (Gloo, on its own
    # thread) while step k's kernels are launched, so the agreement adds no wait to a step.
    def decide(k):
        here = rank == 0 and (k < args.steps or time.perf_counter() - start < args.min_seconds)
        flag = torch.tensor([1 if here else 0], dtype=torch.int32)
        return flag, dist.all_reduce(flag, group=control, async_op=True)

    done = 0
    flag, work = decide(0)
    while True:
        work.wait()
        if flag.item() == 0:
            break
        flag, work = decide(done + 1)
        step()
        done += 1
    wait()
    dist.barrier(group=control)
    elapsed = time.perf_counter() - start
    energy = meter.joules() - e0 if meter else None

    mine = {"rank": rank, "host": socket.gethostname(), "bus_id": bus_id(torch, device) if cuda else None,
            "meters": meters, "energy_j": energy, "energy_source": source, "energy_note": note,
            "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
            "final_loss": float(last["loss"].float().item()), "steps": done}
    mine.update(model_state(torch, [p for _, p in named], optimizer))
    everyone = [None] * world
    dist.all_gather_object(everyone, mine, group=control)
    if rank == 0:
        # A sum only when every rank that meters (each GPU; on CPUs one rank per machine) could: a
        # partial sum would pass for the job's.
        missing = [r for r in everyone if r["meters"] and r["energy_j"] is None]
        total = sum(r["energy_j"] for r in everyone if r["energy_j"] is not None) if not missing else None
        provenance = ("measured: nvml total energy counter of every rank's GPU" if cuda else
                      "measured: rapl package counters, one reading per machine") if total is not None else \
            "; ".join(sorted({f"rank {r['rank']}: {r['energy_note']}" for r in missing}))
        tool = f"pytorch-{args.dist}"
        result = peer.result_object(case, args, tool, done, elapsed, total, source if total is not None else "none",
                                    provenance, mine["peak_memory_bytes"], ranks=world)
        result["final_loss"] = sum(r["final_loss"] for r in everyone) / world
        result["optimizer"] = "adamw (fused)" if cuda else "adamw"
        strategy = (f"DistributedDataParallel, bucket_cap_mb {args.bucket_cap_mb:g}, gradient_as_bucket_view"
                    if args.dist == "ddp" else
                    f"FullyShardedDataParallel SHARD_GRAD_OP, one unit per layer, use_orig_params, "
                    f"param_dtype {args.precision if half is not None else 'fp32'}, "
                    f"reduce_dtype {args.fsdp_reduce_dtype if half is not None else 'fp32'}")
        result["distributed"] = {
            "ranks": world, "backend": dist.get_backend(), "strategy": strategy,
            "samples_per_s_per_rank": result["samples_per_s"] / world,
            "tokens_per_s_per_rank": result["tokens_per_s"] / world,
            "energy_scope": "every rank's GPU, summed" if cuda else "each machine's CPU packages, summed",
            "energy_per_rank": [{"rank": r["rank"], "host": r["host"], "bus_id": r["bus_id"], "energy_j": r["energy_j"]}
                                for r in everyone],
            "final_loss_per_rank": [r["final_loss"] for r in everyone],
            "memory_per_rank": [{k: r[k] for k in ("rank", "peak_memory_bytes", "parameter_bytes", "gradient_bytes",
                                                   "optimizer_state_bytes", "model_state_bytes")} for r in everyone],
        }
        peer.print_result(result)
        print(f"{tool} {args.case}: {world} rank(s), model state per rank "
              f"{', '.join('%.0f MiB' % (r['model_state_bytes'] / 2**20) for r in everyone)}", file=sys.stderr)
        if args.json:
            peer.write_json(args.json, result)
    dist.barrier(group=control)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
