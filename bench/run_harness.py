#!/usr/bin/env python3
"""The side-by-side harness: wattwise against PyTorch eager and torch.compile on one GPU.

Builds nothing. For each case it runs `wattwise bench` (A), bench/peer_pytorch.py --mode eager (B)
and --mode compile (C) alternately, A B C A B C ..., for --rounds rounds, on the same shapes,
precision, random-init weights and random token ids. Ours is a new process every run. Each peer mode
is one persistent worker for the whole harness (peer_pytorch.py --serve: Python, torch and
transformers imported once); it builds a case's model and optimizer (and compiles it) on the case's
first round and keeps them for the others, and every round runs its own warm-up steps and then its
timed region inside the energy counter, as a one-shot run does. Peak memory is reset at the start of
each round: it covers what the case holds (weights, optimizer state) plus that round's peak. A worker
that dies or times out fails that run (its last stderr lines logged) and is started again for the
next; --one-shot-peers makes every peer run its own process instead. --compile-cases picks the cases
that get torch.compile (its compilation is most of a case's time). It measures the GPU's bf16 matmul
rate once (8192³ matmuls, best of 10) for MFU, then writes

  <out>/bench_<gpu>_<date>.json   every run's JSON object, the medians, ratios and targets, timings
  <out>/bench_<gpu>_<date>.md     the Markdown tables (also printed)
  <out>/bench_<gpu>_<date>.peer-{eager,compile}.log   the workers' stderr

with medians and spread (min–max) per case and tool, the ratios ours/eager and ours/compile for
samples/s, J/sample and peak memory (language-model cases, gpt2-*: tokens/s and J/token), MFU against
the measured matmul rate, and the targets (TARGETS below) with met/missed per row. Its log (stderr) times
the worker starts, each run (a worker's: build, warm-up with any compilation, timed region) and each
case, and ends with the total seconds.

  python3 bench/run_harness.py --wattwise build/wattwise --out results          # GPU, every case
  python3 bench/run_harness.py --wattwise build/wattwise \
      --compile-cases distilbert-train-bf16,gpt2-train-bf16 --out results      # compile where targeted
  python3 bench/run_harness.py --wattwise build/wattwise --device cpu --preset tiny --batch 4 \
      --seq-len 16 --precision fp32 --quick --rounds 1 --no-compile --matmul-tflops 1   # smoke test
  python3 bench/run_harness.py --wattwise build/wattwise --cases gpt2-train-bf16 --out results  # GPT-2 alone
"""
import argparse
import datetime
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer_pytorch.py")

# The targets each case is held to (docs/PERFORMANCE.md). A check: (label, metric, against, op, bound). against "eager"/"compile" compares
# the ratio ours/peer of the medians; None compares our median itself.
TARGETS = {
    "distilbert-train-bf16": [("samples/s >= 2.0x eager", "samples_per_s", "eager", ">=", 2.0),
                              ("samples/s >= 1.5x compile", "samples_per_s", "compile", ">=", 1.5),
                              ("J/sample <= 0.5x eager", "j_per_sample", "eager", "<=", 0.5)],
    "distilbert-train-fp16": [("samples/s >= 2.0x eager", "samples_per_s", "eager", ">=", 2.0)],
    "distilbert-train-fp32": [("samples/s >= 2.0x eager", "samples_per_s", "eager", ">=", 2.0)],
    "bert-train-bf16": [("samples/s >= 2.5x eager", "samples_per_s", "eager", ">=", 2.5)],
    "bert-infer-fp16-b1": [("ms/example <= 0.5", "ms_per_sample", None, "<=", 0.5),
                           ("J/example <= 0.1", "j_per_sample", None, "<=", 0.1)],
    "bert-infer-fp16-b32": [("throughput >= 1.5x eager", "samples_per_s", "eager", ">=", 1.5),
                            ("J/example <= 0.7x eager", "j_per_sample", "eager", "<=", 0.7)],
    "bert-infer-fp16-b256": [("throughput >= 1.2x eager", "samples_per_s", "eager", ">=", 1.2),
                             ("J/example <= 0.8x eager", "j_per_sample", "eager", "<=", 0.8)],
    "distilbert-infer-fp16-b32": [("throughput >= 1.5x eager", "samples_per_s", "eager", ">=", 1.5)],
    # Whole IMDB fine-tuning runs are measured by bench/minilm_side_by_side.py; this is their step.
    "minilm-train-bf16": [("samples/s >= 2.0x eager", "samples_per_s", "eager", ">=", 2.0),
                          ("J/sample <= 0.5x eager", "j_per_sample", "eager", "<=", 0.5)],
    "gpt2-train-bf16": [("tokens/s >= 400,000", "tokens_per_s", None, ">=", 400000.0),
                        ("J/token <= 0.75x compile", "j_per_token", "compile", "<=", 0.75)],
}
# Every case: peak memory no more than each peer's.
MEMORY_TARGETS = [("peak memory <= eager", "peak_memory_bytes", "eager", "<=", 1.0),
                  ("peak memory <= compile", "peak_memory_bytes", "compile", "<=", 1.0)]

METRICS = ["samples_per_s", "tokens_per_s", "ms_per_step", "ms_per_sample", "j_per_sample", "j_per_token",
           "peak_memory_bytes", "achieved_tflops"]


def is_lm(case_def):
    """Language-model cases are quoted per token (tokens/s, J/token), the classifiers per sample."""
    return case_def.get("arch") == "gpt2"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def measure_matmul(device, size):
    """Best-of-10 TFLOP/s of size³ matmuls (bf16 on a GPU, f32 on the CPU). Runs in a child process."""
    import torch
    if device.startswith("cuda"):
        dev, dtype = torch.device(device), torch.bfloat16
    else:
        dev, dtype = torch.device("cpu"), torch.float32
    a = torch.randn(size, size, device=dev, dtype=dtype)
    b = torch.randn(size, size, device=dev, dtype=dtype)
    reps = 10 if dev.type == "cuda" else 2
    best = 0.0
    for trial in range(11):  # the first is warm-up (cuBLAS heuristics, clocks)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        rate = 2.0 * size ** 3 * reps / (time.perf_counter() - t) / 1e12
        if trial:
            best = max(best, rate)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    result = {"tflops": best, "dtype": str(dtype).replace("torch.", ""), "size": size, "device_name": name,
              "torch": torch.__version__}
    if dev.type == "cuda":
        result.update(matmul_energy(torch, dev, a, b, reps))
    print(json.dumps(result))


def matmul_energy(torch, dev, a, b, reps, seconds=3.0):
    """The GPU's draw and energy per FLOP over `seconds` of back-to-back matmuls (NVML's counter):
    the energy floor of work done at the matmul rate. {} when NVML cannot be read."""
    try:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from peer_pytorch import NvmlEnergy
        meter = NvmlEnergy(torch, dev.index or 0)
        torch.cuda.synchronize(dev)
        count, e0, t0 = 0, meter.joules(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for _ in range(reps):
                torch.matmul(a, b)
            torch.cuda.synchronize(dev)
            count += reps
        elapsed, joules = time.perf_counter() - t0, meter.joules() - e0
    except Exception as e:  # no NVML: the report says so by leaving the fields out
        log(f"matmul energy: not measured ({e})")
        return {}
    flops = 2.0 * a.shape[0] * a.shape[1] * b.shape[1] * count
    return {"watts": joules / elapsed, "pj_per_flop": joules / flops * 1e12, "energy_seconds": elapsed}


def run_json(cmd, timeout, what):
    """Runs one measurement process; returns its JSON object (written to a temporary file) or None."""
    with tempfile.TemporaryDirectory(prefix="ww-harness-") as tmp:
        path = os.path.join(tmp, "result.json")
        cmd = [c.replace("{json}", path) for c in cmd]
        t = time.time()
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"  {what}: timed out after {timeout} s")
            return None
        if p.returncode != 0 or not os.path.exists(path):
            log(f"  {what}: failed (exit {p.returncode}):\n" + "\n".join(p.stdout.splitlines()[-15:]))
            return None
        with open(path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        r = lines[0]
        r["wall_s"] = time.time() - t
        return finish_run(r, what, f"{r['wall_s']:.1f} s")


def finish_run(r, what, timing):
    """Adds what the harness derives to a run's object and logs the run."""
    # Derived here, not a bench field: the energy of the timed region over its tokens.
    r["j_per_token"] = r["energy_j"] / r["tokens"] if r.get("energy_j") is not None and r.get("tokens") else None
    log(f"  {what}: {r['samples_per_s']:.1f} samples/s, {r['tokens_per_s']:.0f} tokens/s, "
        f"J/sample {fmt(r.get('j_per_sample'), '.4f')}, J/token {fmt(r.get('j_per_token'), '.3g')}, "
        f"peak {fmt(mib(r.get('peak_memory_bytes')), '.0f')} MiB ({timing})")
    return r


class PeerWorker:
    """One persistent `peer_pytorch.py --serve` (protocol: its serve()). Started on first use and
    again after it died or timed out; its stderr goes to log_path."""

    def __init__(self, mode, python, log_path):
        self.mode, self.cmd, self.log_path = mode, [python, PEER, "--serve"], log_path
        self.proc = None
        self.pending = b""
        self.mark = 0  # where the log stood when the current start or request began
        self.start_s = []  # wall seconds of every start (Python, torch and transformers imports)

    def request(self, argv, timeout, what):
        """Sends one case and round; returns the result object, or None after logging why."""
        if self.proc is None:
            return None  # its start failed
        t = time.time()
        self.mark = os.path.getsize(self.log_path)
        try:
            self.proc.stdin.write((json.dumps({"args": argv}) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died: reading the reply says so
        reply, why = self.read(timeout)
        if reply is None:
            self.fail(f"{what}: {self.mode} worker {why}")
            return None
        if not reply["ok"]:
            self.log_with_tail(f"{what}: failed: {reply['error']}")
            return None
        r = reply["result"]
        r["wall_s"], r["build_s"] = time.time() - t, reply["build_s"]
        # Round 1's warm-up includes torch.compile's compilation (the first call compiles).
        rest = r["wall_s"] - r["build_s"] - r["elapsed_s"]
        return finish_run(r, what, f"{r['wall_s']:.1f} s: build {r['build_s']:.1f} s, warm-up {rest:.1f} s, "
                                   f"timed {r['elapsed_s']:.1f} s")

    def start(self, timeout):
        t = time.time()
        with open(self.log_path, "a") as err:
            self.mark = err.tell()
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        reply, why = self.read(timeout)
        if reply is None:
            self.fail(f"{self.mode} worker start: {why}")
            return
        self.start_s.append(time.time() - t)
        log(f"  {self.mode} worker started (pid {reply['pid']}) in {self.start_s[-1]:.1f} s, "
            f"imports {reply['import_s']:.1f} s")

    def read(self, timeout):
        """The next reply line: (object, None), or (None, why) when the worker exits or time runs out."""
        fd, deadline = self.proc.stdout.fileno(), time.time() + timeout
        while b"\n" not in self.pending:
            left = deadline - time.time()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None, f"timed out after {timeout} s"
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None, f"exited (status {self.proc.wait()})"
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line), None

    def fail(self, message):
        """Logs a lost worker and kills it: the next round starts a new one."""
        self.log_with_tail(message)
        self.proc.kill()
        self.proc.wait()
        self.proc, self.pending = None, b""

    def log_with_tail(self, message, n=15):
        """Logs the message and the last n lines the worker wrote to stderr since the request began."""
        with open(self.log_path, errors="replace") as f:
            f.seek(self.mark)
            tail = f.read().splitlines()[-n:]
        log("\n    | ".join([f"  {message}"] + tail))

    def close(self):
        """At the end of the harness: closing its stdin ends the worker's loop."""
        if self.proc is None:
            return
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def fmt_value(v):
    """A target's measured value: a ratio or small figure with 3 decimals, a rate with thousands separators."""
    return "-" if v is None else format(v, ",.0f") if abs(v) >= 1000 else format(v, ".3f")


def mib(v):
    return None if v is None else v / 2 ** 20


def median_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarise(runs, matmul_tflops):
    """{case: {tool: {metric: {median, min, max, n}}}} plus MFU from the median achieved TFLOP/s."""
    out = {}
    for r in runs:
        out.setdefault(r["case"], {}).setdefault(r["tool"], []).append(r)
    summary = {}
    for case, tools in out.items():
        summary[case] = {}
        for tool, rs in tools.items():
            s = {m: median_spread([r.get(m) for r in rs]) for m in METRICS}
            if matmul_tflops and s["achieved_tflops"]:
                s["mfu"] = {k: (v / matmul_tflops if k != "n" else v) for k, v in s["achieved_tflops"].items()}
            summary[case][tool] = s
    return summary


def ratio(summary, case, metric, peer):
    ours = summary.get(case, {}).get("wattwise", {}).get(metric)
    theirs = summary.get(case, {}).get(f"pytorch-{peer}", {}).get(metric)
    if not ours or not theirs or not theirs["median"]:
        return None
    return ours["median"] / theirs["median"]


def check_targets(summary, cases):
    rows = []
    for case in cases:
        for label, metric, against, op, bound in TARGETS.get(case, []) + MEMORY_TARGETS:
            if against is None:
                m = summary.get(case, {}).get("wattwise", {}).get(metric)
                value = m["median"] if m else None
            else:
                value = ratio(summary, case, metric, against)
            met = None if value is None else (value >= bound if op == ">=" else value <= bound)
            if met is None:
                status = "no data"
            elif met:
                status = "met"
            elif op == ">=":
                status = f"missed by {100 * (1 - value / bound):.0f}%"
            else:
                status = f"missed by {100 * (value / bound - 1):.0f}%"
            rows.append({"case": case, "target": label, "value": value, "met": met, "status": status})
    return rows


# The columns of the per-tool and ratio tables: (metric key, column title, format) for the headline
# rate, the time per item and the energy per item, classifiers and language models.
PER_SAMPLE = (("samples_per_s", "samples/s", ".1f"), ("ms_per_sample", "ms/sample", ".4f"),
              ("j_per_sample", "J/sample", ".4f"))
PER_TOKEN = (("tokens_per_s", "tokens/s", ",.0f"), ("ms_per_step", "ms/step", ".2f"),
             ("j_per_token", "J/token", ".3g"))


def tables(report, cases, columns, lines):
    s = report["summary"]
    (rate, rate_title, rate_fmt), (per, per_title, per_fmt), (energy, energy_title, energy_fmt) = columns
    lines.append(f"| case | tool | {rate_title} median (min–max) | {per_title} | {energy_title} median (min–max) "
                 "| peak MiB | MFU |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for case in cases:
        for tool, m in sorted(s.get(case, {}).items(), key=lambda kv: kv[0] != "wattwise"):
            r, j = m[rate], m[energy]
            lines.append(
                f"| {case} | {tool} | "
                + (f"{r['median']:{rate_fmt}} ({r['min']:{rate_fmt}}–{r['max']:{rate_fmt}})" if r else "-") + " | "
                + (f"{m[per]['median']:{per_fmt}}" if m[per] else "-") + " | "
                + (f"{j['median']:{energy_fmt}} ({j['min']:{energy_fmt}}–{j['max']:{energy_fmt}})" if j else "-")
                + " | " + (f"{mib(m['peak_memory_bytes']['median']):.0f}" if m["peak_memory_bytes"] else "-") + " | "
                + (f"{100 * m['mfu']['median']:.1f}%" if m.get("mfu") else "-") + " |")
    lines.append("")
    lines.append(f"| case | {rate_title} ours/eager | ours/compile | {energy_title} ours/eager | ours/compile | "
                 "peak memory ours/eager | ours/compile |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for case in cases:
        cells = [fmt(ratio(s, case, metric, peer), ".2f") for metric in (rate, energy, "peak_memory_bytes")
                 for peer in ("eager", "compile")]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines.append("")


def energy_floors(summary, matmul, lm_cases):
    """{case: {flops_per_item, floor_j, per: sample|token}}: a case's model FLOPs per sample (token)
    times the energy per FLOP of the GPU's own matmuls, the least energy that work can take at the
    matmul rate; from wattwise's runs (their FLOP count). Empty without pj_per_flop."""
    pj = matmul.get("pj_per_flop")
    floors = {}
    if not pj:
        return floors
    for case, tools in summary.items():
        ours = tools.get("wattwise", {})
        lm = case in lm_cases
        rate = ours.get("tokens_per_s" if lm else "samples_per_s")
        achieved = ours.get("achieved_tflops")
        if not rate or not achieved or not rate["median"]:
            continue
        flops = achieved["median"] * 1e12 / rate["median"]
        floors[case] = {"flops_per_item": flops, "floor_j": flops * pj * 1e-12, "per": "token" if lm else "sample"}
    return floors


def floor_table(report, lines):
    floors = report.get("energy_floors") or {}
    if not floors:
        return
    lines.append("Energy floor: the case's model FLOPs per item at the measured matmul's energy per FLOP.")
    lines.append("")
    lines.append("| case | GFLOP per item | floor J/item | wattwise J/item | eager | compile | wattwise / floor |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    for case, f in floors.items():
        metric = "j_per_token" if f["per"] == "token" else "j_per_sample"
        tools = report["summary"].get(case, {})

        def median(tool):
            m = tools.get(tool, {}).get(metric)
            return m["median"] if m else None

        def g(v):
            return "-" if v is None else f"{v:.3g}"

        ours = median("wattwise")
        cells = [g(median(t)) for t in ("wattwise", "pytorch-eager", "pytorch-compile")]
        lines.append(f"| {case} | {f['flops_per_item'] / 1e9:.3g} | {g(f['floor_j'])} | " + " | ".join(cells)
                     + f" | {g(ours / f['floor_j'] if ours else None)} |")
    lines.append("")


def host_cpu():
    """The host CPU's model name and logical core count: the PyTorch peers are bound by their host's
    Python launch rate (the same H100 ran eager DistilBERT at 1,376 and 2,490 samples/s on two
    hosts), so the report says which host it was."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count() or '?'} logical cores"


def markdown(report):
    lines = []
    mm = report["matmul"]
    rate = (f"matmul rate given: {fmt(mm['tflops'], '.1f')} TFLOP/s" if mm["dtype"] == "given" else
            f"{mm['dtype']} matmul ({mm['size']}³, best of 10): {fmt(mm['tflops'], '.1f')} TFLOP/s · "
            f"torch {mm.get('torch', '?')}")
    if mm.get("watts"):
        rate += f" · matmuls draw {mm['watts']:.0f} W: {mm['pj_per_flop']:.3f} pJ/FLOP"
    elif mm.get("pj_per_flop"):
        rate += f" · {mm['pj_per_flop']:.3f} pJ/FLOP given"
    lines.append(f"GPU: {report['gpu']} · date {report['date']} · rounds {report['rounds']} · {rate}")
    if report.get("host_cpu"):
        lines.append("")
        lines.append(f"Host: {report['host_cpu']} (the PyTorch peers' speed depends on it)")
    lines.append("")
    lines.append(f"Command: `{report['command']}`")
    lines.append("")
    lm_cases = set(report.get("lm_cases", []))
    classifiers = [c for c in report["cases"] if c not in lm_cases]
    lms = [c for c in report["cases"] if c in lm_cases]
    if classifiers or not lms:
        tables(report, classifiers, PER_SAMPLE, lines)
    if lms:
        tables(report, lms, PER_TOKEN, lines)
    floor_table(report, lines)
    lines.append("| case | target | measured | status |")
    lines.append("| --- | --- | --- | --- |")
    for t in report["targets"]:
        lines.append(f"| {t['case']} | {t['target']} | {fmt_value(t['value'])} | {t['status']} |")
    met = sum(1 for t in report["targets"] if t["met"])
    lines.append("")
    lines.append(f"Targets met: {met} of {len(report['targets'])}.")
    if report.get("not_run"):
        lines.append(f"Not run (time budget): {', '.join(report['not_run'])}.")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wattwise", help="the built wattwise binary (e.g. build/wattwise)")
    ap.add_argument("--cases", default="all", help="comma-separated case names, or all")
    ap.add_argument("--rounds", type=int, default=3, help="A B C rounds per case (at least 3 for a median with a spread)")
    ap.add_argument("--out", default="results", help="folder for the JSON and Markdown files")
    ap.add_argument("--quick", action="store_true", help="few steps, no minimum duration (a smoke run)")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile peer")
    ap.add_argument("--compile-cases",
                    help="comma-separated cases that get the torch.compile peer, or all (the default)")
    ap.add_argument("--one-shot-peers", action="store_true",
                    help="every peer run its own process (default: one persistent worker per peer mode)")
    ap.add_argument("--no-peers", action="store_true",
                    help="ours only: leave out both PyTorch peers (no torch needed with --matmul-tflops)")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (smoke test)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the peers")
    ap.add_argument("--min-seconds", type=float, default=6.0,
                    help="each timed region lasts at least this long: NVML's energy counter spread GPT-2's "
                         "J/token over 5%% of its median in 2 s regions, 0.6%% in 6 s (H100); --quick: 0")
    ap.add_argument("--steps", type=int, help="timed steps for every case (default: each case's)")
    ap.add_argument("--warmup", type=int, help="warm-up steps for every case (default: each case's)")
    for flag in ("--preset", "--batch", "--seq-len", "--precision", "--arch"):
        ap.add_argument(flag, help="replace this field of every case (smoke tests: --preset tiny)")
    ap.add_argument("--matmul-size", type=int, default=8192)
    ap.add_argument("--matmul-tflops", type=float, help="skip the matmul measurement and use this rate")
    ap.add_argument("--matmul-pj-per-flop", type=float,
                    help="with --matmul-tflops: the energy per FLOP at that rate (for the energy-floor table)")
    ap.add_argument("--timeout", type=int, default=420,
                    help="seconds one measurement (process, worker start or worker request) may take")
    ap.add_argument("--budget-s", type=float,
                    help="start no case that would end after this many seconds (estimate: per tool, the longest "
                         "case so far, plus the start of a worker not running)")
    ap.add_argument("--measure-matmul", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure_matmul:
        measure_matmul(args.device, args.matmul_size)
        return 0
    if not args.wattwise:
        ap.error("--wattwise is required")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    started = time.time()
    command = " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:]))

    overrides = []
    for flag in ("preset", "batch", "seq_len", "precision", "arch"):
        if getattr(args, flag) is not None:
            overrides += ["--" + flag.replace("_", "-"), str(getattr(args, flag))]
    steps, warmup, min_seconds = args.steps, args.warmup, args.min_seconds
    if args.quick:
        steps, warmup, min_seconds = steps or 3, 1 if warmup is None else warmup, 0.0

    # The case definitions come from wattwise itself (one source of truth).
    with tempfile.TemporaryDirectory(prefix="ww-harness-") as tmp:
        listing = os.path.join(tmp, "cases.jsonl")
        subprocess.run([args.wattwise, "bench", "--case", "list", "--json", listing] + overrides, check=True,
                       stdout=subprocess.DEVNULL)
        with open(listing) as f:
            defined = {c["case"]: c for c in (json.loads(l) for l in f if l.strip())}
    names = list(defined) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in defined]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; expected: {', '.join(defined)}")
    invalid = [defined[n]["error"] for n in names if "error" in defined[n]]
    if invalid:
        ap.error("; ".join(invalid))
    compile_cases = set(names)
    if args.compile_cases not in (None, "all"):
        compile_cases = {c.strip() for c in args.compile_cases.split(",") if c.strip()}
        unknown = compile_cases - set(defined)
        if unknown:
            ap.error(f"--compile-cases: unknown case(s) {', '.join(sorted(unknown))}")

    t = time.time()
    if args.matmul_tflops:
        matmul = {"tflops": args.matmul_tflops, "dtype": "given", "size": 0, "device_name": args.device}
        if args.matmul_pj_per_flop:
            matmul["pj_per_flop"] = args.matmul_pj_per_flop
    else:
        p = subprocess.run([args.python, os.path.abspath(__file__), "--measure-matmul", "--device", args.device,
                            "--matmul-size", str(args.matmul_size)], stdout=subprocess.PIPE, text=True, check=True)
        matmul = json.loads(p.stdout.strip().splitlines()[-1])
        log(f"matmul rate: {matmul['tflops']:.1f} TFLOP/s ({matmul['dtype']}, {matmul['size']}³, best of 10; "
            f"{time.time() - t:.1f} s)")
    matmul_s = time.time() - t

    gpu = matmul.get("device_name") if args.device.startswith("cuda") else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", str(gpu).lower()).strip("-") or "unknown"
    date = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"bench_{slug}_{date}")
    peers = [] if args.no_peers else ["eager"] + ([] if args.no_compile else ["compile"])
    workers = {} if args.one_shot_peers else {mode: PeerWorker(mode, args.python, f"{base}.peer-{mode}.log")
                                               for mode in peers}

    def tools_of(name):
        return ["wattwise"] + [m for m in peers if m != "compile" or name in compile_cases]

    runs, not_run = [], []
    timing = {"matmul_s": matmul_s, "worker_starts_s": {m: w.start_s for m, w in workers.items()}, "cases": {}}
    report = {"gpu": gpu, "host_cpu": host_cpu(), "date": date, "rounds": args.rounds, "command": command,
              "matmul": matmul,
              "cases": [], "lm_cases": [n for n in names if is_lm(defined[n])], "runs": runs, "summary": {},
              "targets": [], "not_run": not_run, "peers": "one process per run" if args.one_shot_peers else
              "one persistent worker per mode", "timing": timing}

    def write():
        report["summary"] = summarise(runs, matmul["tflops"])
        report["targets"] = check_targets(report["summary"], report["cases"])
        report["energy_floors"] = energy_floors(report["summary"], matmul, set(report["lm_cases"]))
        timing["total_s"] = time.time() - started
        with open(base + ".json", "w") as f:
            json.dump(report, f, indent=1)
        with open(base + ".md", "w") as f:
            f.write(markdown(report))

    def estimate(name):
        """Seconds the case will take: per tool, its longest case so far (builds and compiles included),
        plus the last start of each worker it needs that is not running."""
        tools = tools_of(name)
        return sum(longest_s.get(tool, 0.0) for tool in tools) + sum(
            w.start_s[-1] for mode, w in workers.items() if mode in tools and w.proc is None and w.start_s)

    longest_s = {}  # per tool: the most seconds it took in one case (all rounds)
    try:
        for name in names:
            guess = estimate(name)
            if args.budget_s and time.time() - started + guess > args.budget_s:
                not_run.append(name)
                continue
            case_started = time.time()
            c = defined[name]
            report["cases"].append(name)
            n_steps, n_warmup = steps or c["steps"], c["warmup"] if warmup is None else warmup
            tools = tools_of(name)
            tool_s = dict.fromkeys(tools, 0.0)
            with tempfile.TemporaryDirectory(prefix="ww-harness-") as tmp:
                config = os.path.join(tmp, "config.json")
                with open(config, "w") as f:
                    json.dump(c["model_config"], f)
                common = ["--steps", str(n_steps), "--warmup", str(n_warmup), "--min-seconds", str(min_seconds),
                          "--device", args.device]
                ours = [args.wattwise, "bench", "--case", name] + overrides + common + ["--json", "{json}"]
                peer_args = {mode: ["--mode", mode, "--case", name, "--task", c["mode"], "--arch", c["arch"],
                                    "--preset", c["preset"], "--batch", str(c["batch"]), "--seq-len",
                                    str(c["seq_len"]), "--precision", c["precision"], "--config", config] + common
                             for mode in peers}
                log(f"{name}: {c['arch']} {c['preset']} {c['mode']}, batch {c['batch']}, len {c['seq_len']}, "
                    f"{c['precision']}; {n_steps} steps after {n_warmup}, at least {min_seconds} s; "
                    f"{', '.join(tools)}; estimate {guess:.0f} s")
                for rnd in range(1, args.rounds + 1):
                    for tool in tools:
                        what = f"round {rnd} {tool}"
                        if tool in workers and workers[tool].proc is None:
                            workers[tool].start(args.timeout)  # not counted in the case: see estimate()
                        t = time.time()
                        if tool == "wattwise":
                            r = run_json(ours, args.timeout, what)
                        elif tool in workers:
                            r = workers[tool].request(peer_args[tool], args.timeout, what)
                        else:
                            r = run_json([args.python, PEER] + peer_args[tool] + ["--json", "{json}"], args.timeout,
                                         what)
                        tool_s[tool] += time.time() - t
                        if r is not None:
                            r["round"] = rnd
                            runs.append(r)
                    write()  # after every round, so a cut-off run keeps what it measured
            for tool, s in tool_s.items():
                longest_s[tool] = max(longest_s.get(tool, 0.0), s)
            timing["cases"][name] = {"s": time.time() - case_started, "estimate_s": guess, "tools_s": tool_s}
            log(f"{name}: {timing['cases'][name]['s']:.0f} s (" +
                ", ".join(f"{tool} {s:.0f} s" for tool, s in tool_s.items()) + ")")
    finally:
        for w in workers.values():
            w.close()

    write()
    text = markdown(report)
    print(text)
    if not_run:
        log(f"not run (time budget): {','.join(not_run)}")
    log(f"wrote {base}.json and {base}.md")
    log(f"total: {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
