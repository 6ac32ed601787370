#!/usr/bin/env python3
"""The PyTorch peer of `wattwise bench`: the same case in PyTorch + Hugging Face transformers.

Random-init BertForSequenceClassification / DistilBertForSequenceClassification with the same config
as wattwise's preset (from --config, the config.json wattwise writes, or built from the same preset
numbers), SDPA attention, random token ids in [1000, vocab), full-length sequences (mask all 1),
random labels. Training: torch.optim.AdamW(fused=True) under torch.autocast (bf16/fp16) with
torch.amp.GradScaler for fp16. Inference: model.half() (fp16) / bfloat16 under torch.inference_mode.
--arch gpt2 (training only): GPT2LMHeadModel from scratch, random ids uniform in [0, vocab) with
labels=input_ids (HF shifts: T-1 scored tokens per sequence, as wattwise), no attention mask (causal
SDPA), use_cache off, fused AdamW lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on the
>= 2-D parameters only (wattwise decays exactly those), gradient clipping at global norm 1.0.
--mode compile wraps the model in torch.compile. Measures what wattwise measures (same JSON fields,
docs/PERFORMANCE.md): samples/s, tokens/s, ms per step and sample, GPU energy from NVML's total
energy counter around the timed region (CPU: RAPL package counters when readable), peak memory
(torch.cuda.max_memory_allocated, reset before the model is built), model FLOPs and MFU.
--serve runs the same build and measurement as a persistent worker for run_harness.py: one request
per case and round over stdin, the case built (and compiled) once (serve() below has the protocol).

  python3 bench/peer_pytorch.py --task train --arch distilbert --preset base --batch 32 --seq-len 256 \
      --precision bf16 --mode eager --json out.json
  python3 bench/peer_pytorch.py --task infer --arch bert --preset tiny --batch 4 --seq-len 16 \
      --precision fp32 --device cpu            # CPU smoke test
  python3 bench/peer_pytorch.py --task train --arch gpt2 --preset small --batch 16 --seq-len 1024 \
      --precision bf16 --mode compile --json out.json    # gpt2-train-bf16
  echo '{"args": ["--task", "infer", "--preset", "tiny", "--device", "cpu"]}' | \
      python3 bench/peer_pytorch.py --serve               # a worker answering one request
"""
import argparse
import ctypes
import gc
import glob
import json
import os
import platform
import sys
import time
import traceback
import types

# wattwise's presets (models::preset_config): hidden, layers (bert, distilbert), heads, intermediate.
PRESETS = {
    "tiny": (64, (2, 2), 2, 256),
    "mini": (256, (4, 4), 4, 1024),
    "small": (512, (4, 4), 8, 2048),
    "minilm": (384, (6, 6), 12, 1536),
    "base": (768, (12, 6), 12, 3072),
}


# wattwise's GPT-2 presets (models::Gpt2Config::preset): hidden, layers, heads, positions.
GPT2_PRESETS = {
    "tiny": (64, 2, 4, 64),
    "mini": (256, 4, 4, 512),
    "small": (768, 12, 12, 1024),
}


def gpt2_config_dict(preset, vocab_size=50257):
    """The config.json wattwise writes for a new GPT-2 of `preset` (Gpt2Config::to_json, same numbers)."""
    if preset not in GPT2_PRESETS:
        raise ValueError(f"GPT-2 preset {preset!r}: expected one of {', '.join(GPT2_PRESETS)}")
    hidden, layers, heads, positions = GPT2_PRESETS[preset]
    eos = min(50256, vocab_size - 1)
    return {"model_type": "gpt2", "vocab_size": vocab_size, "n_positions": positions, "n_embd": hidden,
            "n_layer": layers, "n_head": heads, "n_inner": None, "activation_function": "gelu_new",
            "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "layer_norm_epsilon": 1e-5,
            "initializer_range": 0.02, "bos_token_id": eos, "eos_token_id": eos, "tie_word_embeddings": True,
            "scale_attn_weights": True}


def gpt2_matmul_params(d):
    """wattwise's experiment::gpt2_matmul_params: every parameter but the position embeddings, the tied
    token embedding once (the LM head's weight): V*C + L*(12*C^2 + 13*C) + 2*C."""
    v, c, l = float(d["vocab_size"]), float(d["n_embd"]), float(d["n_layer"])
    return v * c + l * (12 * c * c + 13 * c) + 2 * c


def gpt2_train_flops_per_step(d, batch, seq_len):
    """wattwise's experiment::gpt2_train_flops_per_step: 6*P*B*T + 12*L*C*T*B*T."""
    tokens = float(batch) * float(seq_len)
    return 6 * gpt2_matmul_params(d) * tokens + 12 * float(d["n_layer"]) * float(d["n_embd"]) * float(seq_len) * tokens


def preset_config_dict(arch, preset, vocab_size=30522, num_labels=2):
    """The config.json wattwise writes for `init-model --arch ARCH --preset PRESET` (same numbers)."""
    hidden, layers, heads, inter = PRESETS[preset]
    if arch == "bert":
        return {"model_type": "bert", "vocab_size": vocab_size, "hidden_size": hidden,
                "num_hidden_layers": layers[0], "num_attention_heads": heads, "intermediate_size": inter,
                "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
                "layer_norm_eps": 1e-12, "pad_token_id": 0, "num_labels": num_labels}
    return {"model_type": "distilbert", "vocab_size": vocab_size, "dim": hidden, "n_layers": layers[1],
            "n_heads": heads, "hidden_dim": inter, "activation": "gelu", "dropout": 0.1,
            "attention_dropout": 0.1, "seq_classif_dropout": 0.2, "max_position_embeddings": 512,
            "initializer_range": 0.02, "pad_token_id": 0, "sinusoidal_pos_embds": False,
            "num_labels": num_labels}


def config_numbers(d):
    """(hidden, intermediate, layers, num_labels, vocab, has_token_types) of a BERT/DistilBERT config dict."""
    num_labels = d.get("num_labels") or len(d.get("id2label", {})) or 2
    if d["model_type"] == "bert":
        return (d["hidden_size"], d["intermediate_size"], d["num_hidden_layers"], num_labels, d["vocab_size"],
                d.get("type_vocab_size", 2) > 0)
    return d["dim"], d["hidden_dim"], d["n_layers"], num_labels, d["vocab_size"], False


def model_flops_per_step(hidden, inter, layers, num_labels, batch, seq_len, training):
    """The same count as wattwise's experiment::model_flops_per_step (see include/wattwise/experiment/bench.h)."""
    c, i, l, b, t = float(hidden), float(inter), float(layers), float(batch), float(seq_len)
    forward = 2 * (4 * c * c + 2 * c * i) * l * b * t + 2 * (c * c + c * num_labels) * b + 4 * b * t * t * c * l
    return 3 * forward if training else forward


class NvmlEnergy:
    """Total energy (J) of one GPU from NVML's counter: pynvml when installed, else ctypes."""

    def __init__(self, torch, device_index):
        self.handle = None
        self.provenance = "measured: nvml total energy counter"
        bus_id = None
        try:
            p = torch.cuda.get_device_properties(device_index)
            bus_id = "%08X:%02X:%02X.0" % (p.pci_domain_id, p.pci_bus_id, p.pci_device_id)
        except Exception:
            pass
        try:
            import pynvml
            pynvml.nvmlInit()
            try:
                self.handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id) if bus_id else None
            except Exception:
                self.handle = None
            if self.handle is None:
                self.handle = pynvml.nvmlDeviceGetHandleByIndex(device_index)
            self._read = lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
            return
        except ImportError:
            pass
        except Exception as e:
            print(f"peer: pynvml failed ({e}); trying ctypes", file=sys.stderr)
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        if lib.nvmlInit_v2() != 0:
            raise RuntimeError("nvmlInit_v2 failed")
        handle = ctypes.c_void_p()
        ok = bus_id and lib.nvmlDeviceGetHandleByPciBusId_v2(bus_id.encode(), ctypes.byref(handle)) == 0
        if not ok and lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(device_index), ctypes.byref(handle)) != 0:
            raise RuntimeError(f"nvmlDeviceGetHandleByIndex_v2({device_index}) failed")
        self.handle = handle
        energy = ctypes.c_ulonglong()

        def read():
            rc = lib.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(energy))
            if rc != 0:
                raise RuntimeError(f"nvmlDeviceGetTotalEnergyConsumption returned {rc}")
            return energy.value

        self._read = read

    def joules(self):
        return self._read() / 1e3  # the counter counts millijoules


class RaplEnergy:
    """CPU package energy (J) from /sys/class/powercap/intel-rapl:N (top-level domains only)."""

    def __init__(self):
        self.domains = []
        for d in sorted(glob.glob("/sys/class/powercap/intel-rapl:*")):
            if d.count(":") != 1:
                continue  # sub-domains (core, uncore, dram) are inside the package figure
            try:
                with open(os.path.join(d, "energy_uj")) as f:
                    int(f.read())
                with open(os.path.join(d, "max_energy_range_uj")) as f:
                    self.domains.append((d, int(f.read())))
            except (OSError, ValueError):
                continue
        if not self.domains:
            raise RuntimeError("no readable RAPL package counter")
        self.provenance = "measured: rapl package counters"
        self.last = None
        self.total = 0.0

    def joules(self):
        values = []
        for d, _ in self.domains:
            with open(os.path.join(d, "energy_uj")) as f:
                values.append(int(f.read()))
        if self.last is not None:
            for (d, wrap), now, before in zip(self.domains, values, self.last):
                self.total += (now - before if now >= before else now + wrap - before) / 1e6
        self.last = values
        return self.total


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def parse_args(argv=None):
    """The command line, one-shot or a --serve request's args (a bad one exits through ap.error)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", action="store_true",
                    help="a persistent worker: one JSON request per stdin line, one reply per line (see serve())")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager", help="PyTorch eager or torch.compile")
    ap.add_argument("--task", choices=["train", "infer"], default="train")
    ap.add_argument("--case", default="custom", help="case name written to the JSON")
    ap.add_argument("--arch", choices=["bert", "distilbert", "gpt2"], default="bert")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="base")
    ap.add_argument("--config", help="config.json to use instead of the preset (as wattwise wrote it)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], default="bf16")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-seconds", type=float, default=0.0)
    ap.add_argument("--peak-tflops", type=float, help="matmul rate for MFU (default: MFU omitted)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", help="write the result object to this file")
    args = ap.parse_args(argv)
    if args.steps <= 0 or args.warmup < 0 or args.batch <= 0 or args.seq_len < 2:
        ap.error("--steps and --batch must be positive, --warmup >= 0, --seq-len >= 2")
    if args.arch == "gpt2" and args.task != "train":
        ap.error(f"--task {args.task} is not supported for --arch gpt2 (only train is, as in wattwise bench)")
    if args.arch == "gpt2" and not args.config and args.preset not in GPT2_PRESETS:
        ap.error(f"--preset {args.preset} is not a GPT-2 preset (expected {', '.join(GPT2_PRESETS)})")
    return args


def model_config(args):
    """(cfg_dict, transformers config, lm) of the case: --config (as wattwise wrote it) or the preset's numbers."""
    from transformers import BertConfig, DistilBertConfig, GPT2Config

    if args.config:
        with open(args.config) as f:
            cfg_dict = json.load(f)
    else:
        cfg_dict = gpt2_config_dict(args.preset) if args.arch == "gpt2" else preset_config_dict(args.arch, args.preset)
    if cfg_dict.get("model_type") != args.arch:
        sys.exit(f"peer: {args.config}: model_type {cfg_dict.get('model_type')!r} is not --arch {args.arch}")
    cfg_dict = {k: v for k, v in cfg_dict.items() if k not in ("architectures", "torch_dtype", "dtype")}
    lm = cfg_dict["model_type"] == "gpt2"
    if lm:
        if args.seq_len > cfg_dict["n_positions"]:
            sys.exit(f"peer: --seq-len {args.seq_len} exceeds n_positions {cfg_dict['n_positions']}")
        return cfg_dict, GPT2Config.from_dict(cfg_dict), lm
    return cfg_dict, (BertConfig if cfg_dict["model_type"] == "bert" else DistilBertConfig).from_dict(cfg_dict), lm


def case_device(torch, args):
    """The torch.device of --device; a GPU gets an index ("cuda" has none) and becomes the current one."""
    device = torch.device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", 0 if device.index is None else device.index)
        torch.cuda.set_device(device)
    return device


def new_model(torch, args, config, lm, device):
    """The model from scratch (seeded by --seed: the same weights in every process), in train or eval mode."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(args.seed)
    auto_class = AutoModelForCausalLM if lm else AutoModelForSequenceClassification
    model = auto_class.from_config(config, attn_implementation="sdpa").to(device)
    model.train(args.task == "train")
    return model


def new_optimizer(torch, named_params, lm, fused, decayed=None):
    """AdamW as wattwise's bench sets it up. GPT-2: lr 6e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1
    on what `decayed(name, param)` picks (default: the >= 2-D tensors, the ones wattwise decays: matrices
    and embeddings, not biases or LayerNorm); the classifiers: lr 5e-5, weight decay 0.01 on all."""
    named_params = list(named_params)
    if lm:
        decayed = decayed or (lambda name, p: p.dim() >= 2)
        groups = [{"params": [p for n, p in named_params if decayed(n, p)], "weight_decay": 0.1},
                  {"params": [p for n, p in named_params if not decayed(n, p)], "weight_decay": 0.0}]
        return torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, fused=fused)
    return torch.optim.AdamW([p for _, p in named_params], lr=5e-5, weight_decay=0.01, fused=fused)


def random_inputs(torch, args, cfg_dict, lm, device, stream=0):
    """(inputs, labels) of one batch: random ids, full-length sequences. `stream` shifts the seed (a
    data-parallel rank draws its own rows, as each wattwise rank does)."""
    g = torch.Generator().manual_seed(args.seed + 1 + stream)
    if lm:
        # Labels are the inputs: HF shifts them (position t predicts token t+1), as wattwise does.
        ids = torch.randint(0, cfg_dict["vocab_size"], (args.batch, args.seq_len), generator=g).to(device)
        return {"input_ids": ids, "use_cache": False}, ids
    _, _, _, num_labels, vocab, token_types = config_numbers(cfg_dict)
    low = 1000 if vocab > 2000 else 1
    inputs = {"input_ids": torch.randint(low, vocab, (args.batch, args.seq_len), generator=g),
              "attention_mask": torch.ones(args.batch, args.seq_len, dtype=torch.long)}
    if token_types:
        inputs["token_type_ids"] = torch.zeros(args.batch, args.seq_len, dtype=torch.long)
    labels = torch.randint(0, num_labels, (args.batch,), generator=g).to(device)
    return {k: v.to(device) for k, v in inputs.items()}, labels


def case_flops(args, cfg_dict, lm):
    """Model FLOPs of one step of one process (wattwise's counts)."""
    if lm:
        return gpt2_train_flops_per_step(cfg_dict, args.batch, args.seq_len)
    hidden, inter, layers, num_labels, _, _ = config_numbers(cfg_dict)
    return model_flops_per_step(hidden, inter, layers, num_labels, args.batch, args.seq_len, args.task == "train")


def train_step_function(torch, run, optimizer, inputs, labels, device, half, scaler, clip_grad_norm, last):
    """One training step: forward under autocast (bf16/fp16), backward (scaled for fp16), gradient
    clipping through `clip_grad_norm` (None: none), the optimizer step; the loss goes to last["loss"]."""

    def train_step():
        with torch.autocast(device.type, dtype=half, enabled=half is not None):
            loss = run(**inputs, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                clip_grad_norm()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_grad_norm is not None:
                clip_grad_norm()
            optimizer.step()
        last["loss"] = loss

    return train_step


def half_dtype(torch, precision):
    """The 16-bit type of --precision (None: fp32/tf32); tf32 allows TensorFloat-32 matmuls, fp32 means
    IEEE fp32 matmuls (PyTorch's default)."""
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def build(args):
    """Everything of a case before its first step: model, optimizer, inputs, the step function."""
    import torch

    cfg_dict, config, lm = model_config(args)
    device = case_device(torch, args)
    cuda = device.type == "cuda"
    training = args.task == "train"
    half = half_dtype(torch, args.precision)

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    model = new_model(torch, args, config, lm, device)
    params = sum(p.numel() for p in model.parameters())  # the tied lm_head is wte: counted once
    if training:
        optimizer = new_optimizer(torch, model.named_parameters(), lm, fused=cuda)
        scaler = torch.amp.GradScaler(device.type, init_scale=65536.0, growth_interval=2000) \
            if args.precision == "fp16" else None
    elif half is not None:
        model = model.to(half)  # model.half() for fp16
    run = torch.compile(model) if args.mode == "compile" else model
    inputs, labels = random_inputs(torch, args, cfg_dict, lm, device)
    last = {"loss": None}

    def infer_step():
        with torch.inference_mode():
            last["loss"] = run(**inputs).logits

    if training:
        # GPT-2 clips the global gradient norm at 1.0 (wattwise's bench does the same); the classifiers do not.
        clip = (lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)) if lm else None
        step = train_step_function(torch, run, optimizer, inputs, labels, device, half, scaler, clip, last)
    else:
        step = infer_step
    return types.SimpleNamespace(step=step, last=last, device=device, cuda=cuda, training=training,
                                 cfg_dict=cfg_dict, params=params, flops=case_flops(args, cfg_dict, lm))


def result_object(case, args, tool, steps, elapsed, energy, energy_source, energy_provenance, peak_memory,
                  ranks=1):
    """The JSON object of `wattwise bench --json` (docs/PERFORMANCE.md) for `steps` timed steps of
    `ranks` processes, each on its batch of args.batch: samples, tokens and rates are the job's."""
    import torch
    import transformers
    device = case.device
    samples, tokens = steps * args.batch * ranks, steps * args.batch * args.seq_len * ranks
    training, flops = case.training, case.flops
    achieved = flops * steps * ranks / elapsed / 1e12
    final_loss = float(case.last["loss"].float().item()) if training and case.last["loss"] is not None else None
    return {
        "schema": "wattwise-bench/1", "tool": tool, "case": args.case,
        "arch": case.cfg_dict["model_type"], "preset": args.preset, "mode": args.task,
        "batch": args.batch, "seq_len": args.seq_len, "precision": args.precision, "attention": "sdpa",
        "checkpointing": "none", "optimizer": "adamw (fused)" if training and case.cuda else ("adamw" if training else "none"),
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if case.cuda else cpu_name(),
        "params": case.params, "model_config": case.cfg_dict, "seed": args.seed, "warmup_steps": args.warmup,
        "steps": steps, "elapsed_s": elapsed, "samples": samples, "tokens": tokens, "samples_per_s": samples / elapsed,
        "tokens_per_s": tokens / elapsed, "ms_per_step": 1e3 * elapsed / steps, "ms_per_sample": 1e3 * elapsed / samples,
        "energy_source": energy_source, "energy_measured": energy is not None,
        "energy_provenance": energy_provenance, "energy_j": energy,
        "j_per_sample": energy / samples if energy is not None else None,
        "avg_watts": energy / elapsed if energy is not None else None, "energy_window_s": elapsed,
        "peak_memory_bytes": peak_memory,
        "peak_memory_counts": "torch.cuda.max_memory_allocated" if case.cuda else "not measured on the CPU",
        "model_flops_per_step": flops, "model_flops_per_sample": flops / args.batch,
        "achieved_tflops": achieved, "peak_tflops": args.peak_tflops,
        "mfu": achieved / args.peak_tflops if args.peak_tflops else None,
        "final_loss": final_loss, "torch": torch.__version__, "transformers": transformers.__version__,
    }


def print_result(result):
    energy = result["energy_j"]
    print(f"{result['tool']} {result['case']}: {result['samples_per_s']:.1f} samples/s, "
          f"{result['tokens_per_s']:.0f} tokens/s, "
          f"{result['ms_per_sample']:.4f} ms/sample, "
          f"{'-' if energy is None else '%.4f' % result['j_per_sample']} J/sample ({result['energy_source']}), "
          f"peak {'-' if result['peak_memory_bytes'] is None else result['peak_memory_bytes'] >> 20} MiB",
          file=sys.stderr)


def measure(case, args):
    """One measurement of a built case: args.warmup untimed steps, then at least args.steps (and
    args.min_seconds) timed ones inside the energy counter. Returns the result object."""
    import torch
    device, cuda = case.device, case.cuda

    def wait():
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        case.step()
    wait()

    meter, source, note = None, "none", ""
    try:
        meter, source = (NvmlEnergy(torch, device.index), "gpu") if cuda else (RaplEnergy(), "cpu")
    except Exception as e:
        note = f"no energy counter: {e}"
        print(f"peer: {note}", file=sys.stderr)
    e0 = meter.joules() if meter else None
    start = time.perf_counter()
    done = 0
    while done < args.steps or time.perf_counter() - start < args.min_seconds:
        case.step()
        done += 1
    wait()
    elapsed = time.perf_counter() - start
    energy = meter.joules() - e0 if meter else None
    result = result_object(case, args, f"pytorch-{args.mode}", done, elapsed, energy, source,
                           meter.provenance if meter else note,
                           torch.cuda.max_memory_allocated(device) if cuda else None)
    print_result(result)
    return result


def write_json(path, result):
    """One JSON object and a newline, written atomically."""
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
        f.write("\n")
    os.replace(path + ".tmp", path)


# What a round may change without rebuilding the case: the rest of the arguments name the build.
PER_ROUND = ("steps", "warmup", "min_seconds", "peak_tflops", "json", "serve")


def serve():
    """A persistent worker (run_harness.py starts one per mode). Reads one JSON line per request from
    stdin, {"args": [the one-shot arguments]}, and answers each with one JSON line on the stdout it
    was started with: {"ok": true, "result": {...}, "build_s": s} or {"ok": false, "error": "..."}.
    Its fd 1 is pointed at stderr first, so prints and warnings (Python's or a C library's) go to the
    log and cannot corrupt the replies. The case's model, optimizer and compiled function stay built
    while the requests name the same case (all but PER_ROUND equal); a new case frees the old one
    first. Every request runs its own warm-up and timed region; peak memory is reset at its start,
    so it covers what the case holds (weights, optimizer state) plus that request's peak. The first
    line it writes, {"ready": true, "import_s": s}, says that torch and transformers are imported."""
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    started = time.perf_counter()
    import torch
    import transformers  # noqa: F401 (imported once here, not by the first request)
    replies.write(json.dumps({"ready": True, "import_s": time.perf_counter() - started, "pid": os.getpid()}) + "\n")
    case, key = None, None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            args = parse_args(json.loads(line)["args"])
            build_s = 0.0
            if key != case_key(args):
                case = key = None
                free_case(torch)
                t = time.perf_counter()
                case, key = build(args), case_key(args)
                build_s = time.perf_counter() - t
            if case.cuda:
                torch.cuda.reset_peak_memory_stats(case.device)
            reply = {"ok": True, "result": measure(case, args), "build_s": build_s}
            # The other tools run before this worker's next round: hand them the cached blocks
            # (activations); what the case holds stays.
            empty_cache(torch)
        except (Exception, SystemExit) as e:
            if isinstance(e, SystemExit):  # a request argparse rejected (message in the log), or sys.exit(message)
                error = e.code if isinstance(e.code, str) else f"arguments rejected (exit status {e.code})"
            else:
                traceback.print_exc()
                error = f"{type(e).__name__}: {e}"
            print(f"peer: request failed: {error}", file=sys.stderr)
            reply = {"ok": False, "error": error}
            case = key = None  # the next request builds afresh (and frees this one's memory first)
        replies.write(json.dumps(reply) + "\n")
    return 0


def case_key(args):
    return tuple(sorted((k, v) for k, v in vars(args).items() if k not in PER_ROUND))


def free_case(torch):
    """Releases the previous case's memory before the next is built (its tensors, compiled graphs)."""
    if "torch._dynamo" in sys.modules:  # imported by torch.compile (importing it costs seconds)
        torch._dynamo.reset()  # each case compiles afresh with static shapes, as in its own process
    gc.collect()
    empty_cache(torch)


def empty_cache(torch):
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv=None):
    args = parse_args(argv)
    if args.serve:
        return serve()
    result = measure(build(args), args)
    if args.json:
        write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
