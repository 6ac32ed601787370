#!/usr/bin/env python3
"""CPU cost of each NVML query the energy sampler makes (process CPU time per call, 200 calls each)."""
import time

import pynvml

pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
calls = {
    "GetTotalEnergyConsumption": lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h),
    "GetPowerUsage": lambda: pynvml.nvmlDeviceGetPowerUsage(h),
    "GetUtilizationRates": lambda: pynvml.nvmlDeviceGetUtilizationRates(h),
    "GetMemoryInfo": lambda: pynvml.nvmlDeviceGetMemoryInfo(h),
    "GetClockInfo(SM)": lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
    "GetTemperature": lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
}
for name, fn in calls.items():
    fn()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(200):
        fn()
    c1, w1 = time.process_time(), time.perf_counter()
    print(f"{name:28s} cpu {1e3 * (c1 - c0) / 200:.3f} ms/call  wall {1e3 * (w1 - w0) / 200:.3f} ms/call")
