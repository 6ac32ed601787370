#!/usr/bin/env python3
"""Cross-checks wattwise's safetensors reader and writer against Python's safetensors.

  python3 safetensors_python_check.py SAFETENSORS_TOOL WORK_DIR

1. Python writes a file (random bit patterns in every dtype, NaN/inf/subnormals, empty and 0-d
   tensors, metadata); `safetensors_tool dump` must report the same names (in header order),
   dtypes, shapes and bytes, and read_into(F32) must widen F16/BF16 exactly.
2. `safetensors_tool write` saves tensors given as raw bytes, as they are and converted to
   F32/F16/BF16; Python's (Rust) reader must accept each file and find the same bytes, or the
   values numpy/torch get when they round the same inputs to nearest even.
3. Every truncation and many single-bit flips of a small valid file: wattwise must accept exactly
   the mutants the reference parser accepts (except dtypes wattwise has no type for, like F64).
"""
import json
import os
import subprocess
import sys

import numpy as np
from safetensors import deserialize, safe_open

try:
    import torch
except ImportError:  # bf16 needs torch on the Python side; the rest runs without it
    torch = None

tool, work = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(20240611)
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def random_bits(shape, bits):
    return rng.integers(0, 2**bits, size=shape, dtype=np.uint64).astype(np.uint32 if bits == 32 else np.uint16)


special_f32 = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 1e-40, 3.4e38, 65504.0,
                        65519.99, 65520.0, 1.0 / 3.0, 6.1e-5, 5.96e-8, 2.98e-8, 1.00048828125,
                        1.0009765625 + 2**-11], dtype=np.float32)

# name -> (safetensors dtype, numpy array holding the raw values; BF16 held as uint16 bits)
arrays = {
    "f32_random": ("F32", random_bits((5, 7), 32).view(np.float32)),
    "f32_special": ("F32", special_f32),
    "f16_random": ("F16", random_bits((3, 4, 5), 16).view(np.float16)),
    "bf16_random": ("BF16", random_bits((2, 9), 16)),
    "i32": ("I32", rng.integers(-2**31, 2**31, size=(6,), dtype=np.int64).astype(np.int32)),
    "i64": ("I64", rng.integers(-2**62, 2**62, size=(2, 3), dtype=np.int64)),
    "u8": ("U8", rng.integers(0, 256, size=(4,), dtype=np.uint8)),
    "i8": ("I8", rng.integers(-128, 128, size=(3,), dtype=np.int8)),
    "mask": ("BOOL", rng.integers(0, 2, size=(5,)).astype(np.bool_)),
    "empty": ("F32", np.zeros((0, 4), dtype=np.float32)),
    "scalar": ("F32", np.array(2.5, dtype=np.float32)),
}
if torch is None:
    print("note: torch is missing, so BF16 is not cross-checked")
    del arrays["bf16_random"]


def raw(array):
    return array.tobytes()  # C order, 0-d arrays included


def widened_bits(dtype, array):
    """The f32 bit patterns an exact widening to F32 gives."""
    if dtype == "BF16":
        return array.astype(np.uint32) << 16
    return array.astype(np.float32).view(np.uint32)


# (exponent mask, mantissa mask) per float format, to recognise NaNs.
NAN_MASKS = {"f32": (0x7F800000, 0x007FFFFF), "f16": (0x7C00, 0x03FF), "bf16": (0x7F80, 0x007F)}


def same_floats(got_bits, want_bits, fmt):
    """Bitwise equality, except that any NaN matches any NaN (payload rules differ between libraries)."""
    got_bits, want_bits = np.asarray(got_bits, dtype=np.uint64), np.asarray(want_bits, dtype=np.uint64)
    exponent, mantissa = NAN_MASKS[fmt]
    nan_got = ((got_bits & exponent) == exponent) & ((got_bits & mantissa) != 0)
    nan_want = ((want_bits & exponent) == exponent) & ((want_bits & mantissa) != 0)
    return bool(np.all(nan_got == nan_want) and np.all(got_bits[~nan_want] == want_bits[~nan_want]))


# --- 1. Python writes, wattwise reads ------------------------------------------------------------
python_file = os.path.join(work, "from_python.safetensors")
metadata = {"format": "pt", "origin": "python safetensors"}
if torch is not None:
    from safetensors.torch import save_file

    def to_torch(dtype, array):
        if dtype == "BF16":
            return torch.from_numpy(array.astype(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(array.copy())  # copy() keeps 0-d shapes; ascontiguousarray would not

    save_file({name: to_torch(dtype, a) for name, (dtype, a) in arrays.items()}, python_file, metadata=metadata)
else:
    from safetensors.numpy import save_file

    save_file({name: a for name, (dtype, a) in arrays.items()}, python_file, metadata=metadata)

dump = json.loads(subprocess.run([tool, "dump", python_file], check=True, capture_output=True, text=True).stdout)
with open(python_file, "rb") as f:
    header_length = int.from_bytes(f.read(8), "little")
    header_order = [k for k in json.loads(f.read(header_length)) if k != "__metadata__"]
check([t["name"] for t in dump["tensors"]] == header_order, "dump: tensors not in header order")
check(dump["metadata"] == metadata, f"dump: metadata {dump['metadata']} != {metadata}")
for t in dump["tensors"]:
    dtype, array = arrays[t["name"]]
    where = f"dump of {t['name']}"
    check(t["dtype"] == dtype, f"{where}: dtype {t['dtype']} != {dtype}")
    check(t["shape"] == list(array.shape), f"{where}: shape {t['shape']} != {list(array.shape)}")
    check(t["raw_hex"] == raw(array).hex(), f"{where}: bytes differ")
    if dtype in ("F32", "F16", "BF16"):
        check(same_floats(t["f32_bits"], widened_bits(dtype, array).reshape(-1), "f32"),
              f"{where}: read_into F32 does not widen exactly")
check(len(dump["tensors"]) == len(arrays), "dump: tensor count differs")


# --- 2. wattwise writes, Python reads ------------------------------------------------------------
def rounded_bits(src_dtype, array, store):
    """Bits of `array` rounded to `store` by numpy/torch (round to nearest even)."""
    as_f32 = widened_bits(src_dtype, array).view(np.float32)
    if store == "F32":
        return as_f32.view(np.uint32), "f32"
    if store == "F16":
        with np.errstate(over="ignore"):  # values past 65520 round to inf, as intended
            return as_f32.astype(np.float16).view(np.uint16), "f16"
    return torch.from_numpy(as_f32.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16), "bf16"


spec = {"metadata": {"format": "pt", "written_by": "wattwise"},
        "tensors": [{"name": n, "dtype": d, "shape": list(a.shape), "raw_hex": raw(a).hex()} for n, (d, a) in arrays.items()]}
spec_path = os.path.join(work, "spec.json")
with open(spec_path, "w") as f:
    json.dump(spec, f)

stores = [None, "F32", "F16"] + (["BF16"] if torch is not None else [])
for store in stores:
    out = os.path.join(work, f"from_wattwise_{store or 'as_is'}.safetensors")
    subprocess.run([tool, "write", spec_path, out] + ([store] if store else []), check=True)
    with open(out, "rb") as f:
        content = f.read()
    check((8 + int.from_bytes(content[:8], "little")) % 8 == 0, f"{out}: data not 8-byte aligned")
    tensors = dict(deserialize(content))  # the reference (Rust) parser: rejects any malformed file
    with safe_open(out, framework="numpy") as f:
        check(f.metadata() == spec["metadata"], f"{out}: metadata {f.metadata()} != {spec['metadata']}")
    check(set(tensors) == set(arrays), f"{out}: names differ")
    for name, (dtype, array) in arrays.items():
        got = tensors[name]
        where = f"{out}: {name}"
        check(list(got["shape"]) == list(array.shape), f"{where}: shape {got['shape']}")
        floating = dtype in ("F32", "F16", "BF16")
        if store is None or not floating:
            check(got["dtype"] == dtype, f"{where}: dtype {got['dtype']} != {dtype}")
            check(bytes(got["data"]) == raw(array), f"{where}: bytes differ")
            continue
        check(got["dtype"] == store, f"{where}: dtype {got['dtype']} != {store}")
        want, fmt = rounded_bits(dtype, array, store)
        got_bits = np.frombuffer(bytes(got["data"]), dtype=np.uint32 if store == "F32" else np.uint16)
        check(same_floats(got_bits, want.reshape(-1), fmt), f"{where}: values differ from round-to-nearest-even")


# --- 3. Same verdicts as the reference parser on mutated files -----------------------------------
small = [(n, d, a) for n, (d, a) in arrays.items() if n in ("f16_random", "i32", "empty", "scalar")]
small_spec = dict(spec, tensors=[t for t in spec["tensors"] if t["name"] in {n for n, _, _ in small}])
with open(spec_path, "w") as f:
    json.dump(small_spec, f)
base_path = os.path.join(work, "mutant_base.safetensors")
subprocess.run([tool, "write", spec_path, base_path], check=True)
with open(base_path, "rb") as f:
    base = f.read()
header_end = 8 + int.from_bytes(base[:8], "little")
mutants = [base[:n] for n in range(len(base))]
for i in range(header_end + 8):
    for mask in (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80):
        mutants.append(base[:i] + bytes([base[i] ^ mask]) + base[i + 1:])
mutant_dir = os.path.join(work, "mutants")
os.makedirs(mutant_dir)
paths = []
for k, m in enumerate(mutants):
    paths.append(os.path.join(mutant_dir, f"{k}.safetensors"))
    with open(paths[-1], "wb") as f:
        f.write(m)
verdicts = [json.loads(line) for line in
            subprocess.run([tool, "check"] + paths, check=True, capture_output=True, text=True).stdout.splitlines()]
accepted = refused = 0
for path, data, verdict in zip(paths, mutants, verdicts):
    try:
        deserialize(data)
        reference_ok = True
    except Exception:
        reference_ok = False
    accepted += reference_ok
    refused += not reference_ok
    if verdict["ok"] != reference_ok and "not supported by wattwise" not in verdict["error"]:
        check(False, f"{path}: wattwise {'accepts' if verdict['ok'] else 'refuses'} it ({verdict['error']}), "
                     f"the reference {'accepts' if reference_ok else 'refuses'} it")
check(len(verdicts) == len(mutants), "check: verdict count differs")
check(accepted > 0 and refused > 0, f"mutants: {accepted} accepted, {refused} refused; expected both kinds")
print(f"{len(mutants)} mutants: the reference parser accepts {accepted} and refuses {refused}")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print(f"safetensors cross-check passed: {len(arrays)} tensors read from Python, {len(stores)} files read by Python")
