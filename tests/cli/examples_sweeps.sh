#!/usr/bin/env bash
# examples/cpu_tiny.sh (the CPU-tiny variant of every documented study: Phase 1 training, the
# three Phase 2 sweeps, the DistilBERT study) runs on generated SST-2-shaped data, and each sweep
# leaves pareto.csv with the product of its config file's axes, plots and report.html.
# Usage (ctest): bash examples_sweeps.sh <wattwise-binary> <source-dir> <shared-data-dir>
source "$(dirname "$0")/../cli_common.sh"
printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' '[MASK]' a the film movie was is very really plot acting \
  good great fine bad awful poor > vocab.txt
python3 "$src/tests/tools/make_sst2_like.py" glue/SST-2 5 256 64
start=$(date +%s)
(cd "$src" && bash examples/cpu_tiny.sh "$bin" "$work/out" "$work/glue" "$work/vocab.txt") >log.txt 2>&1
rc=$?
check "examples/cpu_tiny.sh runs every study ($(($(date +%s) - start)) s)" '[ $rc -eq 0 ]'
[ $rc -eq 0 ] || tail -20 log.txt
rows() { python3 -c "import csv, sys; r = list(csv.DictReader(open(sys.argv[1]))); print(len(r), sum(x['status'] == 'ok' for x in r))" "$1/pareto.csv"; }
for spec in "sst2_length 16" "sst2_layers 4" "sst2_precision 12" "study_sst2_sweep 10"; do
  read -r name want <<< "$spec"
  run=$(ls -d "$work/out/runs/"*_"$name" 2>/dev/null | tail -1)
  check "$name: pareto.csv with $want configurations (some measured), report.html and plots" \
    '[ -n "$run" ] && [ "$(rows "$run" | cut -d" " -f1)" = "$want" ] && [ "$(rows "$run" | cut -d" " -f2)" -ge 1 ] && [ -s "$run/report.html" ] && ls "$run"/energy_accuracy_*.png >/dev/null 2>&1'
done
check "the study's report over its sweeps" '[ -n "$(ls "$work/out/runs/"*_report/report.html 2>/dev/null)" ] || [ -s "$(ls -d "$work/out/runs/"*_study_sst2_sweep | tail -1)/report.html" ]'
echo "$fails failed"
[ $fails -eq 0 ]
