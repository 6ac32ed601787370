#!/usr/bin/env python3
"""A steady bf16 matrix-multiply load on one GPU that reads the NVML total-energy counter itself,
first thing and last thing, and prints its own delta: the reference `wattwise measure` is checked
against (scripts/gpu/validate_energy.py).

Prints one line: ENERGY_LOAD_RESULT {"nvml_delta_j": ..., "seconds": ..., ...}
"""
import argparse
import json
import os
import sys
import time

import pynvml  # before anything slow, so the two counter reads bracket the whole process

os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA index == NVML index


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the load")
    parser.add_argument("--gpu", type=int, default=0, help="NVML / CUDA index")
    parser.add_argument("--size", type=int, default=8192, help="square matrix size")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run the load on the CPU when no CUDA device exists (self-test only)")
    args = parser.parse_args()

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(args.gpu)
    start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    start_s = time.monotonic()

    import torch

    if torch.cuda.is_available():
        device = torch.device("cuda", args.gpu)
        size = args.size
    elif args.allow_cpu:
        device = torch.device("cpu")
        size = min(args.size, 256)
    else:
        sys.exit("energy_load.py: no CUDA device (pass --allow-cpu for a self-test)")
    a = torch.randn(size, size, dtype=torch.bfloat16, device=device)
    b = torch.randn(size, size, dtype=torch.bfloat16, device=device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    c = a @ b  # warm-up (cuBLAS heuristics, clocks)
    sync()
    products = 0
    load_start = time.monotonic()
    while time.monotonic() - load_start < args.seconds:
        for _ in range(20):
            c = a @ b
        sync()
        products += 20
    load_seconds = time.monotonic() - load_start
    del c

    end_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    end_s = time.monotonic()
    result = {
        "nvml_delta_j": (end_mj - start_mj) / 1000.0,
        "seconds": end_s - start_s,
        "load_seconds": load_seconds,
        "tflops": 2.0 * size**3 * products / load_seconds / 1e12,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "gpu": args.gpu,
    }
    print("ENERGY_LOAD_RESULT " + json.dumps(result), flush=True)
    # Exit at once: Python's and torch's teardown after the last counter read would be energy that
    # wattwise sees and this script does not.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
