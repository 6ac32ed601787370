#!/usr/bin/env bash
# A short diagnostic call on prebuilt binaries (.gpu-carry/packed/prebuilt.tar.xz, see
# session_prebuilt.sh): every cuBLASLt candidate for GPT-2's LM-head weight gradient
# (bench/cuda/lm_head_gemm.cu) and for its MLP's epilogue GEMMs (bench/cuda/mlp_epilogue_gemm.cu),
# where one GPT-2 training step goes (Nsight Compute, kernel durations), then the per-kernel
# profiles of WW_PROFILE_CASES ("case:skip:count ...", default the batch-1, 32 and 256 BERT
# inference graphs and MiniLM training) while WW_DEADLINE_S lasts. Carry .deps and .gpu-carry.
set -uo pipefail
source "$(dirname "$0")/session_common.sh"
bin=.gpu-carry/prebuilt
tar -C .gpu-carry -xJf .gpu-carry/packed/prebuilt.tar.xz
say "prebuilt: $(cat $bin/COMMIT)"
run_cuda_probe lm_head_gemm 10
run_cuda_probe mlp_epilogue_gemm 10
WW_BIN=$bin/wattwise profile_gpt2_step $(( start + ${WW_DEADLINE_S:-400} - $(date +%s) ))
for spec in ${WW_PROFILE_CASES:-bert-infer-fp16-b1:300:140 bert-infer-fp16-b256:300:140 bert-infer-fp16-b32:300:140 minilm-train-bf16:1200:400}; do
  IFS=: read -r c skip count <<< "$spec"
  WW_BIN=$bin/wattwise profile_bench_case "$c" "$skip" "$count" $(( start + ${WW_DEADLINE_S:-400} - $(date +%s) ))
done
say "total: $(( $(date +%s) - start )) s"
pack_outputs
