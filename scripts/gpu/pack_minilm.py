#!/usr/bin/env python3
"""Packs the verified all-MiniLM-L6-v2 checkpoint for the GPU machine's 64 MiB carry: the weights as
fp16 safetensors (wattwise and transformers read them into f32), plus config and tokenizer files.
  python3 scripts/gpu/pack_minilm.py [SRC] [DST]   (defaults: fetch_minilm.py's folder, .gpu-carry/minilm)
"""
import os
import shutil
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
src = sys.argv[1] if len(sys.argv) > 1 else subprocess.run(
    [sys.executable, os.path.join(root, "scripts", "fetch_minilm.py")], check=True, capture_output=True,
    text=True).stdout.strip()
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, ".gpu-carry", "minilm")
os.makedirs(dst, exist_ok=True)
tensors = load_file(os.path.join(src, "model.safetensors"))
save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()},
          os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
# tokenizer.json stays behind (456 KB): both sides build the same tokenizer from vocab.txt.
for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(os.path.join(src, name), os.path.join(dst, name))
print(dst)
