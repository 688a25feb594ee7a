#!/usr/bin/env bash
# The H100 runs still missing (benchmarks/NOTES.md, "Next GPU session"), one device call per step:
#
#   bash benchmarks/h100_runs.sh call1   # demo, gpu_check (40 cases), e2e smoke, sparsity sweep
#   bash benchmarks/h100_runs.sh call2   # kernel table, D=64, 8K and 32K
#   bash benchmarks/h100_runs.sh call3   # mask cost at 1M, then kernel table, D=64, 128K
#   bash benchmarks/h100_runs.sh s3a     # quick mode on a fresh machine (timed), gpu_check, dQ modes at D=128
#   bash benchmarks/h100_runs.sh s3c     # FlexAttention's generated backward kernel, dK/dV tiles at D=128, D=256
#   bash benchmarks/h100_runs.sh s3d     # gpu_check on the new backward defaults, dK/dV and dQ tiles per head dim
#   bash benchmarks/h100_runs.sh s3e     # gpu_check D=128, kernel table D=128 at 8K and 32K (new defaults)
#   bash benchmarks/h100_runs.sh s3f     # kernel table D=256 at 8K; D=128 8K again for 5 masks (2-stage forward)
#   bash benchmarks/h100_runs.sh s3g     # forward tiles on the masks that load 2-4 vectors per tile
#   bash benchmarks/h100_runs.sh s3h     # kernel table D=64 at 8K (new backward defaults), D=256 random_eviction
#   bash benchmarks/h100_runs.sh s3i     # kernel table D=128 at 128K, four masks, new backward defaults
#   bash benchmarks/h100_runs.sh s3b     # quick mode (2 masks) timed, backward profile and ncu, dQ modes at D=64
#   bash benchmarks/h100_runs.sh s4a     # gpu_check and compute-sanitizer (memcheck, racecheck) on the defaults
#   bash benchmarks/h100_runs.sh s4b     # forward tiles that fit two programs per SM (D=64, 128, 256); dQ modes
#   bash benchmarks/h100_runs.sh s4c     # forward tiles on all 12 masks: D=128 at 8K and 32K, D=64 at 8K
#   bash benchmarks/h100_runs.sh s4d     # gpu_check and memcheck on the session-4 forward defaults
#   bash benchmarks/h100_runs.sh s4e     # racecheck; kernel table D=128 8K/32K for the masks whose forward moved
#   bash benchmarks/h100_runs.sh s4f     # kernel table D=64 at 8K and 32K (new forward tiles)
#   bash benchmarks/h100_runs.sh s4g     # kernel table D=64 at 128K
#   bash benchmarks/h100_runs.sh s4h     # kernel table D=256 at 32K
#   bash benchmarks/h100_runs.sh s4i     # kernel table D=128 at 128K for the masks whose forward moved
#   bash benchmarks/h100_runs.sh s4j     # D=64 full, 32K (B=4) against 128K (B=1): per-kernel times, L2 (ncu)
#   bash benchmarks/h100_runs.sh s5a     # D=64 full at 32K/128K in both storage layouts; dK/dV tiles + dQ modes
#   bash benchmarks/h100_runs.sh s5b     # D=128 backward: per-kernel times on causal and full, stall reasons (ncu)
#   bash benchmarks/h100_runs.sh s5c     # A/B: tile index loaded one iteration ahead (FLASHMASK_INDEX_PREFETCH)
#   bash benchmarks/h100_runs.sh s5d     # gpu_check, memcheck and racecheck on the session-5 defaults
#   bash benchmarks/h100_runs.sh s5e     # kernel table D=128 at 8K and 32K
#   bash benchmarks/h100_runs.sh s5f     # kernel table D=64 at 8K and 32K; D=128 forward tiles on 3 masks
#   bash benchmarks/h100_runs.sh s5g     # gpu_check D=128 (forward variant chosen on the GPU); table D=128 128K
#   bash benchmarks/h100_runs.sh s5h     # kernel table D=64 at 128K
#   bash benchmarks/h100_runs.sh s5i     # kernel table D=128 8K/32K for the masks with a GPU-chosen forward
#   bash benchmarks/h100_runs.sh s6a     # gpu_check; A/B: empty intervals out of the partial bounds; table, 2 masks
#   bash benchmarks/h100_runs.sh s6b     # kernel table D=256 at 8K and 32K (current kernels)
#   bash benchmarks/h100_runs.sh s6c     # D=64 full at 32K against 128K (and causal at 128K): stalls, L2 (ncu)
#   bash benchmarks/h100_runs.sh s6d     # gpu_check; A/B: element mask of partial tiles, old against new
#   bash benchmarks/h100_runs.sh s6e     # memcheck; kernel table D=128 at 8K (session-6 kernels)
#   bash benchmarks/h100_runs.sh s6f     # A/B of s6d on full and causal; kernel table D=128 at 32K
#   bash benchmarks/h100_runs.sh s7a     # D=64 backward tiles with longer iterations: full at 128K and 8K, causal
#   bash benchmarks/h100_runs.sh s7b     # D=64 dQ-pass tiles and depth at 128K and 32K, dK/dV beside the best
#   bash benchmarks/h100_runs.sh s7c     # D=64 dQ pass, 2 against 3 stages (and 256x64) over masks and lengths
#   bash benchmarks/h100_runs.sh s7d     # D=64 full: 32x256 dK/dV tiles beside the 3-stage dQ pass at 64K and 128K
#   bash benchmarks/h100_runs.sh s7e     # full/causal as column masks against no mask: D=128 8K, D=64 8K and 128K
#   bash benchmarks/h100_runs.sh s7f     # gpu_check (with the no-mask cases), sanitizers on the long-call configs;
#                                        # table full/causal (now called without a column mask), D=64
#   bash benchmarks/h100_runs.sh s7g     # table full/causal without a column mask, D=128 and D=256
#   bash benchmarks/h100_runs.sh s7h     # table D=64 at 128K, the ten column masks (session-6/7 kernels)
#   bash benchmarks/h100_runs.sh s7i     # table D=128 at 128K, the ten column masks (session-6/7 kernels)
#   bash benchmarks/h100_runs.sh s7j     # D=128 full forward at 32K and 128K, [B, S, H, D] against head-major
#   bash benchmarks/h100_runs.sh s7k     # ncu: D=128 full forward (no column mask) at 32K against 128K
#   bash benchmarks/h100_runs.sh s8a     # gpu_check (the forward-fix and key-sweep cases first); key sweeps A/B
#   bash benchmarks/h100_runs.sh s8b     # where the key sweeps pay: column masks at D=128 128K, D=64, 64K / 96K keys
#   bash benchmarks/h100_runs.sh s8c     # gpu_check, memcheck and racecheck on the defaults with key sweeps
#   bash benchmarks/h100_runs.sh s8d     # table D=128 full / causal (no column mask) at 8K, 32K, 128K
#   bash benchmarks/h100_runs.sh s8e     # D=128 backward tiles without a column mask (dK/dV spills at 64x64/4/2)
#   bash benchmarks/h100_runs.sh s8f     # D=128 dQ pass: default against 128x64/8/3, alternating
#   bash benchmarks/h100_runs.sh s8g     # gpu_check and the D=128 full / causal table on the s8f dQ pass
#   bash benchmarks/h100_runs.sh s8h     # table D=64 at 8K and 32K, the ten column masks (session-6/7 kernels)
#   bash benchmarks/h100_runs.sh s8i     # D=128 dQ pass 128x64/8/3 on the column masks, alternating
#   (s9a-s9k: session 9, the Gluon forward; s10a-: session 10, the Gluon backward; s11-s13: see each step's
#   comment)
#
# Run from the repository root. Everything goes under $OUT (default ./h100_out): one log per command, each
# bench's results.json (saved after every case, so a timeout keeps what finished), and steps.log with the
# start, end, exit status and seconds of every command. PNGs and results.md are deleted at the end (the device
# returns at most 8 files; re-render them with `flashmask bench --render`).
#
# Each command runs under `timeout`, capped so that the whole step ends within BUDGET seconds (default 570)
# of its start. DRY=1 prints the plan: bench commands get --dry-run, the rest is only echoed.
# Overrides: MC_LIMIT (call3's mask-cost cap, 150 s), K128_MASKS (call3's --masks, default all).
set -u -o pipefail

STEP=${1:?usage: h100_runs.sh call1|call2|call3|s3a..s3i|s4a..s4j|s5a..s5i|s6a..s6f|s7a..s7k|s8a..s8i}
OUT=${OUT:-./h100_out}
BUDGET=${BUDGET:-570}
DRY=${DRY:-}
START=$SECONDS
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
STEPS="$OUT/steps.log"
FM=(python3 -m flashmask.cli)
BENCH_DRY=()
[[ -n $DRY ]] && BENCH_DRY=(--dry-run)

now() { date -u +%FT%TZ; }
left() { echo $((BUDGET - (SECONDS - START))); }

# run NAME LIMIT_S LOGFILE CMD...: CMD under timeout (at most LIMIT_S, less if the budget is short), its
# output appended to $OUT/LOGFILE; the last lines echoed for the device's output tail.
run() {
    local name=$1 limit=$2 log=$3 rc t0 rem
    shift 3
    rem=$(($(left) - 15))
    ((limit > rem)) && limit=$rem
    if ((limit < 20)); then
        echo "$(now) $name SKIPPED: ${rem}s of the budget left" | tee -a "$STEPS"
        return 0
    fi
    echo "$(now) $name start (limit ${limit}s): $*" | tee -a "$STEPS"
    t0=$SECONDS
    if [[ -n $DRY && " $* " != *" bench "* ]]; then
        echo "(dry run: not run)"
        rc=0
    else
        # Appended: several commands may share one log (the device returns at most 8 files).
        echo "== $name: $*" >>"$OUT/$log"
        timeout -k 10 "$limit" "$@" >>"$OUT/$log" 2>&1
        rc=$?
        tail -n 25 "$OUT/$log"
    fi
    echo "$(now) $name end rc=$rc$( ((rc == 124 || rc == 137)) && echo ' (timed out)') after $((SECONDS - t0))s" |
        tee -a "$STEPS"
}

# correctness GPU_CHECK_S MEMCHECK_S RACECHECK_S: the whole gpu_check matrix, then compute-sanitizer's memcheck
# and racecheck over every case of sanitize.py.
correctness() {
    run gpu_check "$1" gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    local san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    run memcheck "$2" memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py
    run racecheck "$3" racecheck.txt "${san[@]}" --tool racecheck python3 benchmarks/sanitize.py
}

setup() {
    {
        # The device's copy of the tree may carry a stale .git: the hash of the package's sources names what ran
        # (compare with the same command run here).
        echo "$(now) step $STEP, budget ${BUDGET}s, commit $(git rev-parse HEAD 2>/dev/null || echo '?') (.git may be" \
            "stale), src sha256 $(find src -name '*.py' | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
        python3 -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' 2>&1
    } | tee -a "$STEPS"
    if [[ -z $DRY ]]; then
        timeout 90 python3 -m pip install -q --no-deps --no-build-isolation -e . >>"$STEPS" 2>&1 ||
            echo "$(now) pip install -e . failed (rc=$?); using PYTHONPATH=src" | tee -a "$STEPS"
    fi
}

# The kernel tables at D=128 (each implementation timed alone): 8K every mask, 32K the ten column masks.
# gpu_check's D=128 cases with every launch-cache reuse checked against Triton's own binding.
gpu_check_d128_launches() {
    run gpu_check_d128 200 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" --out "$OUT/gpu_check_d128.json"
}
table_8k() {
    run k128_8k 570 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --out "$OUT/k128_8k"
}
table_32k() {
    run k128_32k 570 k128_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --masks sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/k128_32k"
}
# base_and_patch NAME: on the device's copy of the tree only (not in a dry run): the committed package copied to
# benchmarks/_base (as flashmask_base, for ab_setting.py --base), then benchmarks/experiments/NAME.patch applied.
base_and_patch() {
    [[ -n $DRY ]] && return 0
    rm -rf benchmarks/_base && mkdir -p benchmarks/_base && cp -r src/flashmask benchmarks/_base/flashmask_base
    git apply "benchmarks/experiments/$1.patch" || exit 1
}
# s22e's A/B (session 22): the lead pieces with and without the forward-built backward lists, by the timer.
lead_and_lists_ab() {
    local ab=(python3 benchmarks/ab_setting.py --public --timer --reps 60 --seqlen 8192 --batch 16
        --masks sliding_window,causal_document)
    run ab_plan_lead1 60 ab.txt "${ab[@]}" PLAN_BACKWARD_IN_FORWARD False,True --set BWD_PIECES_LEAD=1
    run ab_lead_plan 60 ab.txt "${ab[@]}" BWD_PIECES_LEAD 1,2 --set PLAN_BACKWARD_IN_FORWARD=True
    run ab_lead_noplan 60 ab.txt "${ab[@]}" BWD_PIECES_LEAD 1,2
}
cleanup() {
    find "$OUT" \( -name '*.png' -o -name 'results.md' -o -name '*.tmp' \) -delete
    echo "$(now) step $STEP done after $((SECONDS - START))s; files:" | tee -a "$STEPS"
    find "$OUT" -type f | sort | tee -a "$STEPS"
}

setup
case $STEP in
call1)
    run demo 120 demo.log "${FM[@]}" demo
    run gpu_check 240 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run e2e_smoke 150 e2e_smoke.log "${FM[@]}" bench "${BENCH_DRY[@]}" --e2e --e2e-seqlens 8K --e2e-layers 2 \
        --e2e-steps 3 --e2e-warmup 1 --out "$OUT/e2e_smoke"
    run sparsity 600 sparsity.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part sparsity --out "$OUT/sparsity"
    ;;
call2)
    run k64 600 k64.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 64 \
        --out "$OUT/k64"
    ;;
call3)
    # Mask cost first, capped: its 1M row did not finish in the 150 s of the last run (which also ran
    # 8K-512K); the kernel table keeps what finishes (results.json is saved after every case).
    run mc1m "${MC_LIMIT:-150}" mc1m.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part mask-cost \
        --mask-cost-seqlens 1M --out "$OUT/mc1m"
    run k64_128k 600 k64_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 64 ${K128_MASKS:+--masks "$K128_MASKS"} --out "$OUT/k64_128k"
    ;;
s3a)
    # First on the fresh machine: the quick mode's wall time is its own check (must be under 2 minutes).
    run quick 240 quick.log "${FM[@]}" bench "${BENCH_DRY[@]}" --quick --out "$OUT/q"
    run gpu_check 240 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run tune128 300 tune128.txt python3 benchmarks/tune.py --head-dim 128 --masks full,causal,causal_document \
        --no-fwd --no-dq-configs
    ;;
s3b)
    run quick 240 quick.log "${FM[@]}" bench "${BENCH_DRY[@]}" --quick --out "$OUT/q"
    run profile 150 profile.txt python3 benchmarks/profile_bwd.py --head-dim 128 --seqlen 8192 --batch 8 --mask full
    NCU=(ncu --clock-control none --section SpeedOfLight --section Occupancy --section LaunchStats
        --section WarpStateStats --section ComputeWorkloadAnalysis)
    PROF=(python3 benchmarks/profile_bwd.py --ncu --head-dim 128 --seqlen 8192 --batch 2 --mask full)
    run ncu_dkdv 120 ncu_dkdv.txt "${NCU[@]}" --kernel-name regex:bwd_dkdv_kernel --launch-count 3 "${PROF[@]}"
    run ncu_dq 90 ncu_dq.txt "${NCU[@]}" --kernel-name regex:bwd_dq_kernel --launch-count 1 "${PROF[@]}"
    run ncu_flex 90 ncu_flex.txt "${NCU[@]}" --kernel-name regex:triton_tem --launch-skip 1 --launch-count 1 \
        "${PROF[@]}"
    run tune64 150 tune64.txt python3 benchmarks/tune.py --head-dim 64 --masks full,causal,causal_document \
        --no-fwd --no-dq-configs
    ;;
s3c)
    run flex_src 120 flex_src.log bash -c "python3 benchmarks/profile_bwd.py --ncu --batch 2 && \
        grep -rl 'def triton_tem_fused_flex_attention_backward' /tmp/torchinductor_* | head -1 | \
        xargs -I{} cp {} '$OUT/flex_bwd_kernel.py'"
    run tune128 200 tune128.txt python3 benchmarks/tune.py --head-dim 128 --masks full,causal_document --no-fwd \
        --no-dq-configs --dq-modes pass --dkdv '64,128,8,2;64,128,8,3;32,64,4,3;64,64,4,2'
    run tune256 200 tune256.txt python3 benchmarks/tune.py --head-dim 256 --masks full,causal,causal_document \
        --no-fwd --no-dq-configs
    ;;
s3d)
    run gpu_check 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    T=(python3 benchmarks/tune.py --masks full,causal,causal_document --no-fwd)
    run tune128 160 tune128.txt "${T[@]}" --head-dim 128 --dq-modes pass --dkdv '64,64,4,2;32,64,4,2;64,32,4,2' \
        --dq '128,128,8,2,1;64,64,4,2,1;128,64,8,2,1'
    run tune64 120 tune64.txt "${T[@]}" --head-dim 64 --dq-modes pass,atomic --no-dq-configs \
        --dkdv '64,128,8,2;64,64,4,2;64,64,4,3'
    run tune256 120 tune256.txt "${T[@]}" --head-dim 256 --dq-modes pass --dkdv '32,32,4,2' \
        --dq '128,32,8,2,1;32,32,4,2,1;64,32,4,2,1'
    ;;
s3e)
    run gpu_check128 90 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --only D=128 \
        --out "$OUT/gpu_check.json"
    run k128 600 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --out "$OUT/k128"
    ;;
s3f)
    run k256 330 k256.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 256 \
        --out "$OUT/k256"
    run k128m 240 k128m.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --masks global_sliding_window,causal_blockwise,qk_sparse,document,causal_document --out "$OUT/k128m"
    ;;
s3g)
    run tune_fwd 300 tune_fwd.txt python3 benchmarks/tune.py --head-dim 128 --no-dq-configs --dq-modes pass \
        --dkdv 64,64,4,2 --masks global_sliding_window,causal_blockwise,qk_sparse,document,causal_document \
        --fwd '128,128,8,3,1;128,128,8,2,1;128,64,8,3,1;128,64,8,4,1;128,64,4,3,1'
    ;;
s3h)
    run k64 330 k64.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 64 --out "$OUT/k64"
    run k256re 150 k256re.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 256 \
        --masks random_eviction --out "$OUT/k256re"
    ;;
s3i)
    run k128_128k 540 k128_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 128 --masks full,causal,causal_document,share_question --out "$OUT/k128_128k"
    ;;
s4a)
    correctness 240 150 150
    ;;
s4b)
    MASKS=full,causal,causal_document,global_sliding_window
    run fwd128 170 tune128.txt python3 benchmarks/tune.py --head-dim 128 --masks $MASKS --no-dq-configs \
        --fwd '128,128,8,3,1;128,128,8,2,1;64,64,4,2,1;64,64,4,3,1;64,128,4,1,1' --dkdv '64,64,4,2'
    run fwd64 130 tune64.txt python3 benchmarks/tune.py --head-dim 64 --masks $MASKS --no-dq-configs \
        --dq-modes pass --fwd '128,64,4,3,1;128,128,4,3,1;128,128,4,2,1;64,128,4,3,1' --dkdv '64,64,4,2'
    run fwd256 130 tune256.txt python3 benchmarks/tune.py --head-dim 256 --masks $MASKS --no-dq-configs \
        --dq-modes pass --fwd '128,64,8,2,1;64,32,4,2,1;64,32,4,3,1' --dkdv '32,32,4,2'
    ;;
s4c)
    ALL=full,causal,sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise
    ALL=$ALL,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction
    F128='128,128,8,3,1;128,128,8,2,1;64,64,4,2,1'
    run fwd128_8k 170 tune128_8k.txt python3 benchmarks/tune.py --head-dim 128 --masks $ALL --no-bwd --fwd "$F128"
    run fwd128_32k 170 tune128_32k.txt python3 benchmarks/tune.py --head-dim 128 --seqlen 32768 --batch 2 \
        --masks $ALL --no-bwd --fwd "$F128"
    run fwd64_8k 170 tune64_8k.txt python3 benchmarks/tune.py --head-dim 64 --masks $ALL --no-bwd \
        --fwd '128,64,4,3,1;128,128,4,2,1;64,64,4,2,1'
    ;;
s4d)
    run gpu_check 240 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run memcheck 420 memcheck.txt env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 \
        --tool memcheck python3 benchmarks/sanitize.py
    ;;
s4e)
    run racecheck 260 racecheck.txt env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 \
        --tool racecheck python3 benchmarks/sanitize.py
    run k128 290 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s4f)
    run k64 555 k64.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 64 \
        --out "$OUT/k64"
    ;;
s4g)
    run k64_128k 555 k64_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K --head-dims 64 \
        --out "$OUT/k64_128k"
    ;;
s4h)
    run k256_32k 555 k256_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 256 \
        --out "$OUT/k256_32k"
    ;;
s4i)
    run k128_128k 540 k128_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 128 --masks global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128_128k"
    ;;
s4j)
    run prof32k 110 profile_d64_32k.txt python3 benchmarks/profile_bwd.py --head-dim 64 --seqlen 32768 --batch 4
    run prof128k 130 profile_d64_128k.txt python3 benchmarks/profile_bwd.py --head-dim 64 --seqlen 131072 --batch 1
    NCU=(ncu --clock-control none --section SpeedOfLight --section MemoryWorkloadAnalysis
        --kernel-name regex:bwd_dkdv_kernel --launch-count 1)
    run ncu32k 130 ncu_dkdv_d64_32k.txt "${NCU[@]}" python3 benchmarks/profile_bwd.py --ncu --head-dim 64 \
        --seqlen 32768 --batch 4
    run ncu128k 150 ncu_dkdv_d64_128k.txt "${NCU[@]}" python3 benchmarks/profile_bwd.py --ncu --head-dim 64 \
        --seqlen 131072 --batch 1
    ;;
s5a)
    # Does each head's rows being spread over the whole [B, S, H, D] tensor (1 GB at 128K) cost at 128K?
    L64=(python3 benchmarks/tune.py --head-dim 64 --masks full --fwd '128,128,4,2,1' --dkdv '64,64,4,2;64,64,4,3'
        --dq-modes pass --no-dq-configs --rep 200)
    run l128k 150 layout_d64_128k.txt "${L64[@]}" --seqlen 131072 --batch 1
    run l128k_hm 150 layout_d64_128k_hm.txt "${L64[@]}" --seqlen 131072 --batch 1 --head-major
    run l32k 60 layout_d64_32k.txt "${L64[@]}" --seqlen 32768 --batch 4
    run l32k_hm 60 layout_d64_32k_hm.txt "${L64[@]}" --seqlen 32768 --batch 4 --head-major
    # dQ inside the dK/dV kernel on 8 warps: 64x64 tiles fit without spills (offline: 246 registers with
    # atomics, 228 with the bulk reduce-add), where the 4-warp ones spill 368 / 208 bytes.
    run bwd128 120 bwd_d128.txt python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs \
        --dkdv '64,64,4,2;64,64,8,2;64,128,8,2'
    run bwd64 100 bwd_d64.txt python3 benchmarks/tune.py --head-dim 64 --no-fwd --no-dq-configs \
        --dkdv '64,64,4,2;64,128,8,2;64,64,8,2'
    ;;
s5b)
    # Which backward kernel loses on causal (6% less efficient than on full; Flex loses nothing), and what the
    # dK/dV kernel waits on.
    run prof_causal 120 profile_d128_causal.txt python3 benchmarks/profile_bwd.py --mask causal --calls 3
    run prof_full 120 profile_d128_full.txt python3 benchmarks/profile_bwd.py --mask full --calls 3
    NCU=(ncu --clock-control none --section WarpStateStats --section SchedulerStats --section Occupancy
        --section ComputeWorkloadAnalysis --launch-count 1)
    run ncu_dkdv 100 ncu_stalls_d128.txt "${NCU[@]}" --kernel-name regex:bwd_dkdv_kernel \
        python3 benchmarks/profile_bwd.py --ncu --batch 2
    run ncu_dq 100 ncu_stalls_dq_d128.txt "${NCU[@]}" --kernel-name regex:bwd_dq_kernel \
        python3 benchmarks/profile_bwd.py --ncu --batch 2
    run tma128 120 bwd_tma_d128.txt python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs \
        --dq-modes pass --dkdv '64,64,4,2;64,64,4,2,1;64,64,4,3'
    ;;
s5c)
    # The tile index of the next iteration loaded one iteration ahead, against loading it in the iteration
    # (its latency sat in front of the next tile's copies). Same machine, same inputs, both orders.
    # Record only: the FLASHMASK_INDEX_PREFETCH switch was removed once measured (the read-ahead is always on),
    # so a rerun times the same code twice.
    M4=full,causal,causal_document,global_sliding_window
    T128=(python3 benchmarks/tune.py --head-dim 128 --masks $M4 --fwd default --dq-modes pass --no-dq-configs
        --dkdv '64,64,4,2;64,64,4,2,1')
    T64=(python3 benchmarks/tune.py --head-dim 64 --masks $M4 --fwd default --dq-modes pass --no-dq-configs
        --dkdv '64,64,4,2;64,64,4,2,1')
    for p in 1 0; do
        run ab128_$p 75 ab_d128.txt env FLASHMASK_INDEX_PREFETCH=$p "${T128[@]}"
        run ab64_$p 60 ab_d64.txt env FLASHMASK_INDEX_PREFETCH=$p "${T64[@]}"
    done
    run ab128_1_again 75 ab_d128.txt env FLASHMASK_INDEX_PREFETCH=1 "${T128[@]}"
    L64=(python3 benchmarks/tune.py --head-dim 64 --masks full --fwd default --dkdv '64,64,4,2' --dq-modes pass
        --no-dq-configs --rep 200 --seqlen 131072 --batch 1)
    run ab64_128k_1 100 ab_d64_128k.txt env FLASHMASK_INDEX_PREFETCH=1 "${L64[@]}"
    run ab64_128k_0 100 ab_d64_128k.txt env FLASHMASK_INDEX_PREFETCH=0 "${L64[@]}"
    ;;
s5d)
    correctness 150 260 140
    ;;
s5e)
    run k128 575 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --out "$OUT/k128"
    ;;
s5f)
    run k64 470 k64.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 64 \
        --out "$OUT/k64"
    # With the index read ahead the 8-warp 128x128 forward gained 7%, the 4-warp 64x64 one nothing: does
    # 64x64 still win on the masks that load 2-4 vectors per partial tile?
    F=(python3 benchmarks/tune.py --head-dim 128 --no-bwd --fwd '64,64,4,2,1;128,128,8,2,1'
        --masks global_sliding_window,causal_blockwise,qk_sparse)
    run fwd_8k 50 fwd_small_tiles_d128.txt "${F[@]}"
    run fwd_32k 50 fwd_small_tiles_d128.txt "${F[@]}" --seqlen 32768 --batch 2
    ;;
s5g)
    run gpu_check128 90 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --only D=128 \
        --out "$OUT/gpu_check.json"
    run k128_128k 540 k128_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 128 --out "$OUT/k128_128k"
    ;;
s5h)
    run k64_128k 555 k64_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K --head-dims 64 \
        --out "$OUT/k64_128k"
    ;;
s5i)
    run k128 300 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s6a)
    run gpu_check 150 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    # Block bounds whose partial test skips empty intervals (A) against bounds over every column (B). Same
    # machine, same inputs, both orders. Record only: the FLASHMASK_AB_EMPTY_IN_HULL switch is removed once
    # measured, so a rerun times the same code twice.
    T8=(python3 benchmarks/tune.py --head-dim 128 --seqlen 8192 --batch 16 --masks qk_sparse,causal_blockwise
        --fwd '64,64,4,2,1;128,128,8,2,1' --dkdv default --dq-modes pass --no-dq-configs)
    T32=(python3 benchmarks/tune.py --head-dim 128 --seqlen 32768 --batch 4 --masks qk_sparse
        --fwd '64,64,4,2,1;128,128,8,2,1' --dkdv default --dq-modes pass --no-dq-configs)
    for p in 0 1 0; do
        run ab8k_$p 70 ab_empty_8k.txt env FLASHMASK_AB_EMPTY_IN_HULL=$p "${T8[@]}"
    done
    for p in 0 1; do
        run ab32k_$p 70 ab_empty_32k.txt env FLASHMASK_AB_EMPTY_IN_HULL=$p "${T32[@]}"
    done
    run k128 200 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s6b)
    run k256 555 k256.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 256 \
        --out "$OUT/k256"
    ;;
s6c)
    # Only D=64 full loses efficiency from 32K (B=4) to 128K (B=1): causal at 128K and D=128 full do not.
    # Forward first (the simplest kernel), then dK/dV; warp stalls and the L2 tables of each.
    SEC=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables
        --section WarpStateStats --section SchedulerStats)
    P=(python3 benchmarks/profile_bwd.py --ncu --no-flex --head-dim 64)
    for k in fwd_kernel bwd_dkdv_kernel; do
        NCU=(ncu --clock-control none "${SEC[@]}" --kernel-name "regex:^$k" --launch-count 1)
        run ${k}_32k 90 ncu_$k.txt "${NCU[@]}" "${P[@]}" --seqlen 32768 --batch 4
        run ${k}_128k 120 ncu_$k.txt "${NCU[@]}" "${P[@]}" --seqlen 131072 --batch 1
        run ${k}_128k_causal 100 ncu_$k.txt "${NCU[@]}" "${P[@]}" --seqlen 131072 --batch 1 --mask causal
    done
    ;;
s6d)
    run gpu_check 150 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    # The element mask of partially masked tiles: new (A, the working tree) against the kernels of the commit
    # before it (B), whose files the call carries in AB_BEFORE (not committed). Order A B A. Record only: a
    # rerun needs those files back.
    KDIR=src/flashmask/kernels
    [[ -n $DRY ]] && KDIR=$(mktemp -d)  # a dry run must not swap the working tree's files
    AFTER=$(mktemp -d)
    cp src/flashmask/kernels/{_common,forward,backward,__init__}.py "$AFTER"/
    M8=global_sliding_window,share_question,document,random_eviction,qk_sparse
    T8=(python3 benchmarks/tune.py --head-dim 128 --seqlen 8192 --batch 16 --masks $M8
        --fwd '64,64,4,2,1;128,128,8,2,1' --dkdv default --dq-modes pass --no-dq-configs)
    T64=(python3 benchmarks/tune.py --head-dim 64 --seqlen 8192 --batch 16 --masks global_sliding_window,document
        --fwd default --dkdv default --dq-modes pass --no-dq-configs)
    for v in A B A; do
        if [[ $v == B ]]; then cp "${AB_BEFORE:-benchmarks/ab_before_s6}"/*.py $KDIR/; else cp "$AFTER"/*.py $KDIR/; fi
        run ab128_$v 90 ab_mask_d128.txt "${T8[@]}"
        run ab64_$v 45 ab_mask_d64.txt "${T64[@]}"
    done
    cp "$AFTER"/*.py $KDIR/
    ;;
s6e)
    run memcheck 270 memcheck.txt env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 \
        --tool memcheck python3 benchmarks/sanitize.py
    run k128_8k 280 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --out "$OUT/k128_8k"
    ;;
s6f)
    # Does the session-6 element mask cost the masks without partial tiles? full and causal, A B A as in s6d.
    KDIR=src/flashmask/kernels
    [[ -n $DRY ]] && KDIR=$(mktemp -d)
    AFTER=$(mktemp -d)
    cp src/flashmask/kernels/{_common,forward,backward,__init__}.py "$AFTER"/
    T8=(python3 benchmarks/tune.py --head-dim 128 --seqlen 8192 --batch 16 --masks full,causal --fwd default
        --dkdv default --dq-modes pass --no-dq-configs)
    for v in A B A; do
        if [[ $v == B ]]; then cp "${AB_BEFORE:-benchmarks/ab_before_s6}"/*.py $KDIR/; else cp "$AFTER"/*.py $KDIR/; fi
        run ab_full_$v 60 ab_full_causal_d128.txt "${T8[@]}"
    done
    cp "$AFTER"/*.py $KDIR/
    run k128_32k 330 k128_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --out "$OUT/k128_32k"
    ;;
s7a)
    # D=64 full loses 15% of its backward efficiency at 128K (Flex: none). Key tiles of 128 or 256 keys (one
    # 8-warp program per SM, no spills offline) and a 256-query dQ pass against the defaults.
    DK='64,64,4,2,1;64,128,8,2,1;64,128,8,3,1;32,256,8,3,1;32,128,8,3,1'
    DQ='128,128,8,2,1;256,64,8,2,1;256,64,8,3,1'
    T=(python3 benchmarks/tune.py --head-dim 64 --no-fwd --dq-modes pass)
    run full_128k 260 tiles_d64_bwd.txt "${T[@]}" --seqlen 131072 --batch 1 --masks full --dkdv "$DK" --dq "$DQ"
    run full_8k 100 tiles_d64_bwd.txt "${T[@]}" --seqlen 8192 --batch 16 --masks full --dkdv "$DK" --dq "$DQ"
    run causal_128k 150 tiles_d64_bwd.txt "${T[@]}" --seqlen 131072 --batch 1 --masks causal \
        --dkdv '64,64,4,2,1;64,128,8,2,1;32,256,8,3,1' --dq "$DQ"
    ;;
s7b)
    # s7a: a deeper dQ pass (256x64/8/3) gained 8% of the backward on full at 128K and 5.5% on causal, lost 4% at
    # 8K. Its neighbours (two 8-warp programs per SM on 128x64; 4 stages), and 32x256 dK/dV beside the best.
    DQ='128,128,8,2,1;256,64,8,3,1;256,64,8,4,1;128,128,8,3,1;128,64,8,3,1;128,64,8,4,1'
    T=(python3 benchmarks/tune.py --head-dim 64 --no-fwd --dq-modes pass)
    run full_128k 230 tiles_d64_dq.txt "${T[@]}" --seqlen 131072 --batch 1 --masks full --dq "$DQ" \
        --dkdv '64,64,4,2,1;32,256,8,3,1' --base-dq 256,64,8,3,1
    run causal_128k 110 tiles_d64_dq.txt "${T[@]}" --seqlen 131072 --batch 1 --masks causal --dq "$DQ" --dkdv skip
    run full_32k 200 tiles_d64_dq.txt "${T[@]}" --seqlen 32768 --batch 4 --masks full \
        --dq '128,128,8,2,1;256,64,8,3,1;128,64,8,4,1' --dkdv '64,64,4,2,1;32,256,8,3,1' --base-dq 256,64,8,3,1
    ;;
s7c)
    # s7b: a third stage on the default 128x128 dQ tiles gains as much as 256x64 at 128K. Does it cost anything
    # at 8K, or on the masked forms?
    DQ='128,128,8,2,1;128,128,8,3,1;256,64,8,3,1'
    T=(python3 benchmarks/tune.py --head-dim 64 --no-fwd --dq-modes pass --dkdv skip --dq "$DQ")
    run dq_8k 150 tiles_d64_dq_stages.txt "${T[@]}" --seqlen 8192 --batch 16 \
        --masks full,causal,document,causal_document,global_sliding_window,random_eviction
    run dq_32k 160 tiles_d64_dq_stages.txt "${T[@]}" --seqlen 32768 --batch 4 --masks full,causal,document
    run dq_128k 160 tiles_d64_dq_stages.txt "${T[@]}" --seqlen 131072 --batch 1 \
        --masks document,causal_document,global_sliding_window
    ;;
s7d)
    # 32x256 dK/dV tiles won at 128K (-4.5%) and lost at 32K (+7%) and 8K (+8%) on full: where between?
    T=(python3 benchmarks/tune.py --head-dim 64 --no-fwd --dq-modes pass --masks full --dq skip
        --dkdv '64,64,4,2,1;32,256,8,3,1;64,64,4,2,1;32,256,8,3,1' --base-dq 128,128,8,3,1)
    run full_64k 150 tiles_d64_dkdv_64k.txt "${T[@]}" --seqlen 65536 --batch 2
    run full_128k 200 tiles_d64_dkdv_64k.txt "${T[@]}" --seqlen 131072 --batch 1
    ;;
s7e)
    # The benchmark's full and causal rows pass column masks ([LTS=N, UTE=0], [LTS=N] causal), so they run the
    # HAS_MASK kernels, not the mask-free ones that session 6 checked byte for byte. Both, on today's kernels.
    T=(python3 benchmarks/tune.py --masks full,causal --fwd default --dkdv default --dq-modes pass --no-dq-configs)
    run d128_8k_colmask 90 plain_vs_colmask.txt "${T[@]}" --head-dim 128 --seqlen 8192 --batch 16
    run d128_8k_plain 90 plain_vs_colmask.txt "${T[@]}" --head-dim 128 --seqlen 8192 --batch 16 --plain
    run d64_8k_colmask 90 plain_vs_colmask.txt "${T[@]}" --head-dim 64 --seqlen 8192 --batch 16
    run d64_8k_plain 90 plain_vs_colmask.txt "${T[@]}" --head-dim 64 --seqlen 8192 --batch 16 --plain
    run d64_128k_colmask 120 plain_vs_colmask.txt "${T[@]}" --head-dim 64 --seqlen 131072 --batch 1
    run d64_128k_plain 120 plain_vs_colmask.txt "${T[@]}" --head-dim 64 --seqlen 131072 --batch 1 --plain
    ;;
s7f)
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    run memcheck 60 sanitizer.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases 24:26
    run racecheck 60 sanitizer.txt "${san[@]}" --tool racecheck python3 benchmarks/sanitize.py --cases 24:26
    run k64_plain 300 k64_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 64 --masks full,causal --out "$OUT/k64_plain"
    ;;
s7g)
    run k128_plain 330 k128_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 128 --masks full,causal --out "$OUT/k128_plain"
    run k256_plain 200 k256_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K \
        --head-dims 256 --masks full,causal --out "$OUT/k256_plain"
    ;;
s8b)
    # Where the key sweeps pay (s8a: D=128 full / causal at 128K, -7.6% / -7.9% with sweeps of 65536 keys; D=64
    # level or worse with 32768): the single-grid column-mask forms at D=128 128K, D=64 with 65536-key sweeps,
    # and D=128 at 64K / 96K keys.
    T=(python3 benchmarks/tune.py --no-bwd --fwd default)
    MASKS=sliding_window,causal_document,document,share_question,prefix_lm_document,prefix_lm_causal,random_eviction
    run sweeps_masked 200 sweeps.txt "${T[@]}" --head-dim 128 --masks $MASKS --seqlen 131072 --batch 1 \
        --sweep-keys 0,65536
    run sweeps_d64 90 sweeps.txt "${T[@]}" --head-dim 64 --masks full,causal --plain --seqlen 131072 --batch 1 \
        --sweep-keys 0,65536
    run sweeps_64k 60 sweeps.txt "${T[@]}" --head-dim 128 --masks full,causal --plain --seqlen 65536 --batch 2 \
        --sweep-keys 0,32768
    run sweeps_96k 60 sweeps.txt "${T[@]}" --head-dim 128 --masks full,causal --plain --seqlen 98304 --batch 1 \
        --sweep-keys 0,65536,49152
    ;;
s8c)
    # Correctness on the defaults with key sweeps (gpu_check: two 140K-key cases; sanitize.py: 28 cases, two in
    # sweeps); memcheck and racecheck over every case (racecheck's last full run: session 5).
    correctness 180 260 130
    ;;
s8d)
    # D=128 full / causal without a column mask at 8K, 32K, 128K on the current kernels (128K: forward in two
    # sweeps of 65536 keys).
    run k128_plain 560 k128_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 128 --masks full,causal --out "$OUT/k128_plain"
    ;;
s8e)
    # D=128 backward without a column mask: the default dK/dV kernel (64x64, 4 warps, 2 stages) spills at 255
    # registers (offline: 56 B stores / 76 B loads); 8-warp, 32-query and 3-stage variants do not. dQ pass: a
    # third stage, 128-query tiles.
    DKDV='64,64,4,2,1;32,128,8,3,1;64,64,8,2,1;64,64,8,3,1;32,64,4,3,1;32,64,4,4,1'
    DQ='64,64,4,2,1;64,64,4,3,1;128,64,8,2,1;128,64,8,3,1;128,128,8,2,1;64,128,8,2,1'
    T=(python3 benchmarks/tune.py --head-dim 128 --masks full,causal --plain --no-fwd --dq-modes pass --dkdv "$DKDV"
        --dq "$DQ")
    run bwd128_8k 180 bwd128.txt "${T[@]}" --seqlen 8192 --batch 16
    run bwd128_32k 130 bwd128.txt "${T[@]}" --seqlen 32768 --batch 4
    run bwd128_128k 230 bwd128.txt "${T[@]}" --seqlen 131072 --batch 1 --rep 5000
    ;;
s8f)
    # s8e: the dQ pass on 128x64 tiles, 8 warps, 3 stages was the fastest at 8K and 32K on full and causal, by
    # 2-5%, but identical configs differed by up to 6% in that run. Here default and candidate alternate, twice.
    DQ='64,64,4,2,1;128,64,8,3,1;64,64,4,2,1;128,64,8,3,1'
    T=(python3 benchmarks/tune.py --head-dim 128 --masks full,causal --plain --no-fwd --dkdv skip --dq "$DQ")
    run dq128_8k 120 dq128.txt "${T[@]}" --seqlen 8192 --batch 16
    run dq128_32k 120 dq128.txt "${T[@]}" --seqlen 32768 --batch 4
    run dq128_128k 250 dq128.txt "${T[@]}" --seqlen 131072 --batch 1 --rep 3000
    ;;
s8g)
    # The D=128 dQ pass without a column mask on 128x64 tiles, 8 warps, 3 stages (s8f): gpu_check (its no-mask
    # cases at D=96 and 128 run it), then the D=128 full / causal table again.
    run gpu_check 160 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run k128_plain 400 k128_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 128 --masks full,causal --out "$OUT/k128_plain"
    ;;
s8h)
    # D=64 at 8K and 32K, the ten column masks on the current kernels (those rows are session 5's).
    MASKED=sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise
    MASKED=$MASKED,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction
    run k64_masked 540 k64_masked.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K \
        --head-dims 64 --masks $MASKED --out "$OUT/k64_masked"
    ;;
s8i)
    # The s8f dQ pass (128x64 tiles, 8 warps, 3 stages; offline no spills at 1-4 vectors) on the column masks at
    # D=128, alternated with their default (64x64/4/2). qk_sparse at 8K is the one D=128 case behind Flex.
    MASKED=sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise
    MASKED=$MASKED,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction
    DQ='64,64,4,2,1;128,64,8,3,1;64,64,4,2,1;128,64,8,3,1'
    T=(python3 benchmarks/tune.py --head-dim 128 --no-fwd --dkdv skip --dq "$DQ")
    run dq128_masked_8k 330 dq128_masked.txt "${T[@]}" --masks $MASKED --seqlen 8192 --batch 16
    run dq128_masked_32k 200 dq128_masked.txt "${T[@]}" --masks qk_sparse,document,causal_document,prefix_lm_causal \
        --seqlen 32768 --batch 4
    ;;
s7h | s7i)
    MASKED=sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise
    MASKED=$MASKED,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction
    D=64
    [[ $STEP == s7i ]] && D=128
    run k${D}_128k 560 k${D}_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims $D --masks $MASKED --out "$OUT/k${D}_128k"
    ;;
s7j)
    # The D=128 full forward runs 12% slower per FLOP at 128K than at 32K (cuDNN 2%, Flex 3%, both on head-major
    # copies). One head's K/V rows are 8 KB apart in [B, S, H, D]: 1 GB of address space per tensor at 128K.
    T=(python3 benchmarks/tune.py --head-dim 128 --masks full --plain --no-bwd --fwd default)
    for hm in "" --head-major; do
        run fwd_32k$hm 60 layout_fwd_d128.txt "${T[@]}" --seqlen 32768 --batch 4 $hm
        run fwd_128k$hm 60 layout_fwd_d128.txt "${T[@]}" --seqlen 131072 --batch 1 $hm
    done
    ;;
s7k)
    # The mask-free 3-stage forward loses 7.8% per FLOP from 32K to 128K, the 2-stage column-mask one did not
    # (session 5: 146.7 / 586.8 ms). L2 and DRAM traffic, stall reasons, at both lengths.
    SEC=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables
        --section WarpStateStats --section SchedulerStats)
    NCU=(ncu --clock-control none "${SEC[@]}" --kernel-name "regex:^fwd_kernel" --launch-count 1)
    P=(python3 benchmarks/profile_bwd.py --ncu --no-flex --plain --head-dim 128 --calls 1)
    run fwd_32k 120 ncu_fwd_d128.txt "${NCU[@]}" "${P[@]}" --seqlen 32768 --batch 4
    run fwd_128k 150 ncu_fwd_d128.txt "${NCU[@]}" "${P[@]}" --seqlen 131072 --batch 1
    ;;
s8a)
    # Prepared in session 7, not run yet. The key sweeps and the running-max fix of the forward, on the GPU.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    T=(python3 benchmarks/tune.py --head-dim 128 --masks full,causal --plain --no-bwd --fwd default)
    run sweeps_128k 150 sweeps.txt "${T[@]}" --seqlen 131072 --batch 1 --sweep-keys 0,16384,32768,65536
    run sweeps_32k 90 sweeps.txt "${T[@]}" --seqlen 32768 --batch 4 --sweep-keys 0,16384
    run sweeps_d64_128k 120 sweeps.txt python3 benchmarks/tune.py --head-dim 64 --masks full,causal,document \
        --plain --no-bwd --fwd default --seqlen 131072 --batch 1 --sweep-keys 0,32768
    ;;
s9a)
    # The warp-specialized Gluon forward (D=128, no column mask): the mask-free gpu_check cases (it is now their
    # default), then its forward against the Triton one (8 warps, 3 stages) at 8K and 32K, full and causal.
    run gpu_check_ws 170 gpu_check_ws.log python3 benchmarks/gpu_check.py --workers 4 --only "no mask" \
        --out "$OUT/gpu_check_ws.json"
    T=(python3 benchmarks/tune.py --head-dim 128 --masks full,causal --plain --no-bwd)
    WS='128,128,4,2,1,1;128,128,4,3,1,1;128,128,8,3,1'
    run fwd_8k 120 ws_fwd.txt "${T[@]}" --seqlen 8192 --batch 16 --fwd "$WS"
    run fwd_32k 150 ws_fwd.txt "${T[@]}" --seqlen 32768 --batch 4 --fwd "$WS"
    ;;
s9b)
    # The Gluon forward as the D=128 default without a column mask: every gpu_check case, then the D=128 full /
    # causal table (FlexAttention, cuDNN in the same run).
    run gpu_check 160 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run k128_plain 400 k128_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 128 --masks full,causal --out "$OUT/k128_plain"
    ;;
s9c)
    # memcheck and racecheck on the sanitize.py cases the Gluon forward takes (D=128 without a column mask: 18,
    # 22, and 26 in key sweeps).
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 18:19 22:23 26:27; do
        run "memcheck_$c" 120 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
        run "racecheck_$c" 120 racecheck.txt "${san[@]}" --tool racecheck python3 benchmarks/sanitize.py --cases $c
    done
    ;;
s9d)
    # Racecheck's hazards on the Gluon forward (s9c) sit in the compiler's partition hand-off; the same check on
    # a minimal warp-specialized kernel with no shared memory of its own tells whether they come from there.
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for v in 0 1 2 3; do
        run "racecheck_probe_$v" 90 racecheck_probe.txt "${san[@]}" --tool racecheck python3 benchmarks/sanitize.py \
            --ws-probe $v
    done
    ;;
s9e)
    # The Gluon forward on the column masks with two limits per key column (causal C=1, non-causal C=2): every
    # gpu_check case (their D=128 cases now take it), then its forward against the Triton one (128x128, 8 warps,
    # 2 stages, their previous default) on the seven masks of those forms at 8K and 32K.
    run gpu_check 160 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    M=sliding_window,causal_document,document,share_question,prefix_lm_document,prefix_lm_causal,random_eviction
    T=(python3 benchmarks/tune.py --head-dim 128 --masks $M --no-bwd --fwd '128,128,4,3,1,1;128,128,8,2,1')
    run fwd_8k 150 ws_fwd_masks.txt "${T[@]}" --seqlen 8192 --batch 16
    run fwd_32k 150 ws_fwd_masks.txt "${T[@]}" --seqlen 32768 --batch 4
    ;;
s9f)
    # The Gluon forward on the two-limit column masks (s9e), its correctness and the 128K table: gpu_check (66
    # cases, four new with GQA and per-head masks on its forms), memcheck on the sanitize.py cases it takes with a
    # column mask (2: causal C=1, 10: non-causal C=2), then D=128 at 128K on the seven masks of those forms.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 10:11; do
        run "memcheck_$c" 90 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    M=sliding_window,causal_document,document,share_question,prefix_lm_document,prefix_lm_causal,random_eviction
    run k128_128k 300 k128_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 128 --masks $M --out "$OUT/k128_128k"
    ;;
s9g)
    # D=128 at 8K and 32K on the seven masks the Gluon forward now takes.
    M=sliding_window,causal_document,document,share_question,prefix_lm_document,prefix_lm_causal,random_eviction
    run k128 560 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks $M --out "$OUT/k128"
    ;;
s9h)
    # The Gluon forward on the causal two-vector forms (causal_blockwise, qk_sparse; three limits per key column,
    # no spills offline): gpu_check with it as their default, then its forward against the Triton ones they had
    # (64x64/4/2 alone below 16K keys; 128x128/8/2 beside it, gated, from 16K) at 8K, 32K and 128K.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    T=(python3 benchmarks/tune.py --head-dim 128 --masks causal_blockwise,qk_sparse --no-bwd
        --fwd '128,128,4,3,1,1;64,64,4,2,1;128,128,8,2,1')
    run fwd_8k 90 ws_fwd_causal2.txt "${T[@]}" --seqlen 8192 --batch 16
    run fwd_32k 90 ws_fwd_causal2.txt "${T[@]}" --seqlen 32768 --batch 4
    run fwd_128k 120 ws_fwd_causal2.txt "${T[@]}" --seqlen 131072 --batch 1
    ;;
s9i)
    # causal_blockwise and qk_sparse on the Gluon forward (s9h): memcheck on sanitize.py case 6 (causal C=2 at
    # D=128), then their D=128 rows at 8K, 32K and 128K with FlexAttention.
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    run memcheck_6 90 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases 6:7
    run k128_c2 400 k128_c2.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 128 --masks causal_blockwise,qk_sparse --out "$OUT/k128_c2"
    ;;
s9j)
    # The Gluon forward on the four-vector form (global_sliding_window), whose four limits per key column spill
    # 540 B offline: against the two Triton variants it has (64x64/4/2 alone below 16K keys, 128x128/8/2 gated
    # beside it from 16K), then the whole gpu_check. Run with that form routed to the Gluon kernel and made its
    # default (an experiment, reverted after: it lost at 8K; benchmarks/NOTES.md, session 9).
    T=(python3 benchmarks/tune.py --head-dim 128 --masks global_sliding_window --no-bwd
        --fwd '128,128,4,3,1,1;128,128,4,2,1,1;64,64,4,2,1;128,128,8,2,1')
    run fwd_8k 90 ws_fwd_c4.txt "${T[@]}" --seqlen 8192 --batch 16
    run fwd_32k 90 ws_fwd_c4.txt "${T[@]}" --seqlen 32768 --batch 4
    run fwd_128k 120 ws_fwd_c4.txt "${T[@]}" --seqlen 131072 --batch 1
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    ;;
s9k)
    # gpu_check on the final session-9 tree.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    ;;
s10a)
    # The warp-specialized Gluon backward (D=128: dK, dV and dQ in one kernel, dQ by bulk reduce-adds): the D=128
    # gpu_check cases (their non-deterministic mode now takes it), then its backward against the Triton dK/dV
    # kernel + dQ pass (the previous default) at 8K (B=16) on full, causal and causal_document.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    T=(python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs --dq-modes pass)
    run bwd_8k 200 ws_bwd.txt "${T[@]}" --masks full,causal,causal_document --plain --seqlen 8192 --batch 16 \
        --dkdv '64,128,4,2,1,1;64,64,4,2,1'
    ;;
s10b)
    # Experiment: schedule B (dQ before dK, the dQ tile stored and sent while dK runs) against A, alternating, then
    # the D=128 gpu_check cases on B.
    T=(python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs --dkdv 64,128,4,2,1,1 --seqlen 8192
       --batch 16 --masks full,causal,causal_document,document --plain)
    for r in 1 2; do
        run "bwd_a_$r" 60 ws_bwd_sched.txt env FLASHMASK_BWD_SCHED_B=0 "${T[@]}"
        run "bwd_b_$r" 60 ws_bwd_sched.txt env FLASHMASK_BWD_SCHED_B=1 "${T[@]}"
    done
    run gpu_check_d128_b 200 gpu_check.log env FLASHMASK_BWD_SCHED_B=1 python3 benchmarks/gpu_check.py --workers 4 \
        --only "D=128" --out "$OUT/gpu_check_d128.json"
    ;;
s10c)
    # The Gluon backward as the D=128 default: every gpu_check case, then the D=128 full / causal table
    # (FlexAttention, cuDNN in the same run).
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run k128_plain 390 k128_plain.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K,128K \
        --head-dims 128 --masks full,causal --out "$OUT/k128_plain"
    ;;
s10d | s10e)
    # The ten column masks at D=128, 8K and 32K, five per step.
    M=sliding_window,causal_document,document,share_question,prefix_lm_document
    [[ $STEP == s10e ]] && M=prefix_lm_causal,random_eviction,global_sliding_window,causal_blockwise,qk_sparse
    run k128 550 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks $M --out "$OUT/k128"
    ;;
s10f)
    # The ten column masks at D=128, 128K; memcheck on one Gluon backward per mask form.
    run k128_128k 420 k128_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 128 --out "$OUT/k128_128k" --masks \
        sliding_window,causal_document,document,share_question,prefix_lm_document,prefix_lm_causal,random_eviction,global_sliding_window,causal_blockwise,qk_sparse
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 6:7 10:11 14:15 18:19 22:23; do
        run "memcheck_$c" 60 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    ;;
s10g)
    # The final session-10 tree (the Gluon backward's column-mask limits now through _common._column_limits):
    # gpu_check, memcheck on one Gluon backward per mask form, racecheck on two of them.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 6:7 10:11 14:15 18:19 22:23; do
        run "memcheck_$c" 60 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    for c in 14:15 18:19; do
        run "racecheck_$c" 90 racecheck.txt "${san[@]}" --tool racecheck python3 benchmarks/sanitize.py --cases $c
    done
    ;;
s10h)
    # Experiments on the Gluon backward at 8K: 2 against 3 Q/dO stages (the ring position now carried, so a third
    # stage no longer spills), and the dS barrier removed (dQ wrong: timing only, the most that breaking the
    # consumers' lock-step could give), alternating twice.
    T=(python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs --seqlen 8192 --batch 16 --plain
       --masks full,causal,sliding_window,causal_document)
    for r in 1 2; do
        run "stages_$r" 120 ws_bwd_exp.txt "${T[@]}" --dkdv '64,128,4,2,1,1;64,128,4,3,1,1'
        run "no_ds_sync_$r" 60 ws_bwd_exp.txt env FLASHMASK_NO_DS_SYNC=1 "${T[@]}" --dkdv '64,128,4,2,1,1'
    done
    ;;
s10i)
    # Experiment (its tree is not kept: FLASHMASK_BWD_OLD selected a copy of the committed kernel): a persistent
    # Gluon backward (one program per SM, items taken round-robin) against one program per key block, alternating
    # twice, at 8K on the masks short of 1.3x and full / causal; then its correctness on the D=128 cases.
    T=(python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs --seqlen 8192 --batch 16 --plain
       --dkdv 64,128,4,2,1,1 --masks full,causal,sliding_window,causal_document,global_sliding_window,causal_blockwise)
    for r in 1 2; do
        run "old_$r" 90 ws_bwd_persistent.txt env FLASHMASK_BWD_OLD=1 "${T[@]}"
        run "persistent_$r" 90 ws_bwd_persistent.txt "${T[@]}"
    done
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    ;;
s10j)
    # Where the Gluon backward's time goes on the sparse masks short of 1.3x at 8K (B=16): per-kernel CUDA times,
    # ours (dQ pass; Gluon) and FlexAttention's.
    for m in sliding_window causal_document global_sliding_window; do
        run "profile_$m" 150 profile_bwd_s10.txt python3 benchmarks/profile_bwd.py --head-dim 128 --seqlen 8192 \
            --batch 16 --mask $m
    done
    ;;
s10k)
    # Experiment (its tree is not kept): the dQ accumulator zeroed inside the preprocess and converted by a Triton
    # kernel (s10j: the separate fill and torch's copy took 0.65 + 1.05 ms at 8K): the D=128 gpu_check cases, the
    # per-kernel profile on sliding_window, then the five masks short of 1.3x at 8K and 32K against Flex.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    run profile_sw 60 profile_bwd_s10k.txt python3 benchmarks/profile_bwd.py --head-dim 128 --seqlen 8192 \
        --batch 16 --mask sliding_window --no-flex
    run k128 300 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks sliding_window,causal_document,global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s10l)
    # Experiment (its tree is not kept): the preprocess with heads fastest in its grid (s10j: 0.74 ms for 1.1 GB
    # read at 8K): every gpu_check case,
    # the per-kernel profile on sliding_window, then the five masks short of 1.3x at 8K and 32K against Flex.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run profile_sw 60 profile_bwd_s10l.txt python3 benchmarks/profile_bwd.py --head-dim 128 --seqlen 8192 \
        --batch 16 --mask sliding_window --no-flex
    run k128 300 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks sliding_window,causal_document,global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s11a)
    # The Gluon forward for the four-vector form (global_sliding_window; its limits now packed one byte each per
    # column and warpgroup, no spills offline): the D=128 gpu_check cases (two more four-vector ones), its forward
    # against the two Triton grids that form ran (8K B=16, 32K B=4), then the kernel table against Flex.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    T=(python3 benchmarks/tune.py --head-dim 128 --no-bwd --masks global_sliding_window
       --fwd '128,128,4,3,1,1;128,128,8,2,1;64,64,4,2,1')
    run fwd_8k 60 ws_fwd_c4.txt "${T[@]}" --seqlen 8192 --batch 16
    run fwd_32k 60 ws_fwd_c4.txt "${T[@]}" --seqlen 32768 --batch 4
    run k128 200 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks global_sliding_window --out "$OUT/k128"
    ;;
s11b)
    # How much of the benchmark's per-call time is the host's (its timer starts on an idle GPU): ours on three
    # sparse masks at 8K (B=16) and FlexAttention on the first.
    run host_8k 240 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 --flex \
        --masks sliding_window,causal_document,global_sliding_window
    ;;
s11c)
    # The host's time per call (s11b: 1.5-3 ms per pass, about 1 ms of it with the GPU idle): a Python profile of
    # 50 forward and 50 backward calls on sliding_window at 8K.
    run cprofile 120 host_cprofile.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --cprofile 50
    ;;
s11d)
    # The host's time of each step of our call path on sliding_window at 8K (no profiler: s11c's cProfile
    # counted 2.6x the host's real time).
    run ops 150 host_ops.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 --masks sliding_window --ops
    ;;
s11e)
    # Less host time per call (s11d: ~45 us per torch op and ~80 us per launch on this host; the benchmark's timer
    # starts on an idle GPU): the tile lists in one allocation and two launches (the order by a rank kernel, not
    # argsort), the capability and the descriptors' layouts looked up once, and the backward's dQ zero fill queued
    # with the preprocess. Every gpu_check case, the host table again, then the five masks short of 1.3x at 8K.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    run host_8k 100 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,global_sliding_window
    run ops 60 host_ops.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 --masks sliding_window --ops
    run k128 240 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --masks sliding_window,causal_document,global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s11f)
    # A persistent Gluon forward (one program per SM; the producer claims work items in grid order from a counter
    # and hands them to the consumers through shared memory, so one item's loads overlap the previous one's tail):
    # the D=128 gpu_check cases on it, then its forward against one program per item, alternating twice, at 8K
    # (B=16) and 32K (B=4).
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    M=full,causal,sliding_window,causal_document,document,global_sliding_window,causal_blockwise,qk_sparse
    T=(python3 benchmarks/tune.py --head-dim 128 --no-bwd --fwd default --plain --masks $M)
    for r in 1 2; do
        for p in 0 1; do
            run "fwd_8k_p${p}_$r" 60 ws_fwd_persistent.txt env FLASHMASK_FWD_PERSISTENT=$p "${T[@]}" --seqlen 8192 \
                --batch 16
        done
    done
    for p in 0 1; do
        run "fwd_32k_p$p" 60 ws_fwd_persistent.txt env FLASHMASK_FWD_PERSISTENT=$p "${T[@]}" --seqlen 32768 --batch 4
    done
    ;;
s11g)
    # The Gluon forward with every form's row limits packed (no spills left with the persistent grid): every
    # gpu_check case, memcheck on one forward + backward per mask form at D=128, its forward on the masks of s11f
    # (compare with s11f's persistent rows), then the five masks short of 1.3x at 8K and 32K against Flex.
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 6:7 10:11 14:15 18:19 22:23; do
        run "memcheck_$c" 60 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    M=full,causal,sliding_window,causal_document,document,global_sliding_window,causal_blockwise,qk_sparse
    T=(python3 benchmarks/tune.py --head-dim 128 --no-bwd --fwd default --plain --masks $M)
    run fwd_8k 40 ws_fwd_packed.txt "${T[@]}" --seqlen 8192 --batch 16
    run fwd_32k 40 ws_fwd_packed.txt "${T[@]}" --seqlen 32768 --batch 4
    run k128 240 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks sliding_window,causal_document,global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s11h)
    # The session's final forward (packed row limits except for the one-vector form, which keeps its two limits per
    # column: faster in s11g): the D=128 gpu_check cases, memcheck on one forward + backward per mask form at D=128,
    # then the five masks short of 1.3x at 8K and 32K against Flex.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 6:7 10:11 14:15 18:19 22:23; do
        run "memcheck_$c" 60 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    run k128 240 k128.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K --head-dims 128 \
        --masks sliding_window,causal_document,global_sliding_window,causal_blockwise,qk_sparse --out "$OUT/k128"
    ;;
s11i)
    # The session's final kernels on the other five column masks at 8K and 32K, and qk_sparse at 32K (s11h ran
    # out of its time limit there), against Flex.
    run k128_other 330 k128_other.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K,32K \
        --head-dims 128 --masks document,share_question,prefix_lm_document,prefix_lm_causal,random_eviction \
        --out "$OUT/k128_other"
    run k128_qk 150 k128_qk.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --masks qk_sparse --out "$OUT/k128_qk"
    ;;
s11j)
    # global_sliding_window at 128K on the session's final kernels (its forward is now the Gluon one), against Flex.
    run k128_128k_gsw 300 k128_128k_gsw.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 128 --masks global_sliding_window,sliding_window --out "$OUT/k128_128k_gsw"
    ;;
s11k)
    # Experiment (its tree is not kept): a persistent Gluon backward (one program per SM; the producer claims key blocks in grid order from the lists'
    # counter and loads the next one's K/V as soon as both consumers' last dQ has read the current K, under the
    # dK/dV stores): the D=128 gpu_check cases on it, then its backward against one program per key block,
    # alternating twice, at 8K (B=16) on the masks short of 1.3x and full.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    M=full,sliding_window,causal_document,document,global_sliding_window,causal_blockwise,prefix_lm_causal
    T=(python3 benchmarks/tune.py --head-dim 128 --no-fwd --no-dq-configs --dkdv 64,128,4,2,1,1 --seqlen 8192
       --batch 16 --plain --masks $M)
    for r in 1 2; do
        for p in 0 1; do
            run "bwd_8k_p${p}_$r" 75 ws_bwd_persistent.txt env FLASHMASK_BWD_PERSISTENT=$p "${T[@]}"
        done
    done
    ;;
s12a)
    # Less host time per call: eager calls take an autograd.Function instead of the custom ops' dispatch, unused
    # output gradients are no longer materialised as zeros, and the backward reuses the forward's block bounds.
    # The D=128 gpu_check cases (the default modes now pass the forward's bounds), the host's time per step, and
    # timer against GPU time on three sparse masks at 8K.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    run ops 90 host_ops.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 --masks sliding_window --ops
    run host_8k 120 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,global_sliding_window
    ;;
s12b)
    # The masks short of 1.3x at 8K (and causal_document at 32K) against Flex on s12a's host path.
    run k128_short 300 k128_short.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K \
        --head-dims 128 --masks sliding_window,causal_document,document,global_sliding_window,causal_blockwise,prefix_lm_causal \
        --out "$OUT/k128_short"
    ;;
s12c)
    # Experiment (its tree is not kept; benchmarks/NOTES.md, session 12): dQ converted inside the Gluon backward.
    # The consumers report each tile's reduce-adds performed, the producer warp counts them per quarter tile over
    # all programs, and the program that adds a tile's last contribution converts it, so the fp32 accumulator is no
    # longer read back by a separate pass (1.05 ms at 128K tokens x 32 heads). The D=128 gpu_check cases, memcheck
    # on two forms, then the backward's kernels on three sparse masks at 8K (compare with s12a).
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 22:23; do
        run "memcheck_$c" 60 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    run host_8k 120 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,global_sliding_window
    ;;
s12d)
    # Experiment (its tree is not kept), after s12c, whose kernel was 30% slower: per tile its producer's
    # acquire-release atomic cost a GPU-wide memory barrier and an L1 invalidation, and the consumers' proxy fence
    # another invalidation. Now the counters are relaxed atomics and the consumers wait for completion only. The
    # backward's kernels on three masks at 8K, then the D=128 gpu_check cases.
    run host_8k 120 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,global_sliding_window
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    ;;
s12e)
    # The kernel table at 8K, every mask, against Flex (and cuDNN / FA2 for full and causal), on the session-12 host
    # path (kernels unchanged since s11h).
    run k128_8k 560 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --out "$OUT/k128_8k"
    ;;
s12f)
    # The same at 32K, the ten column masks (full and causal: session 10, host-bound parts below 1%).
    run k128_32k 560 k128_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --masks sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/k128_32k"
    ;;
s12g)
    # Experiment, after s12d: the dQ counting and conversion in a fourth, one-warp partition, so that the producer's
    # loads never wait on it (s12d: the producer did it, 2.2-3.0 ms slower backward at 8K). The backward's kernels
    # on three masks at 8K, then the D=128 gpu_check cases.
    run host_8k 120 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,global_sliding_window
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    ;;
s12h)
    # Diagnostic (experiment tree): where s12g's backward loses its time. FLASHMASK_DQ_MODE=0: the committed
    # consumers (no completion waits) with the idle fourth partition and its shared memory, conversion pass;
    # 1: the consumers wait for each reduce-add's completion one tile later, conversion pass; 2: s12g.
    for mode in 0 1 2; do
        run "host_8k_mode$mode" 90 host_overhead.txt env FLASHMASK_DQ_MODE=$mode python3 benchmarks/host_overhead.py \
            --seqlen 8192 --batch 16 --masks sliding_window,causal_document
    done
    ;;
s12i)
    # Diagnostic (experiment tree), after s12h: mode 3 = s12g without the conversions (counting only), mode 4 =
    # the consumers' reports and the fourth warp's barrier waits only (no counting).
    for mode in 3 4; do
        run "host_8k_mode$mode" 90 host_overhead.txt env FLASHMASK_DQ_MODE=$mode python3 benchmarks/host_overhead.py \
            --seqlen 8192 --batch 16 --masks sliding_window,causal_document
    done
    ;;
s12j)
    # Triton's concurrency sanitizer (ConSan: it follows the mbarriers, TMA and wgmma that compute-sanitizer's
    # racecheck cannot see) on the Gluon kernels: every D=128 sanitize.py case (each form, one forward and three
    # backwards; 26 and 27 run the forward in key sweeps).
    for c in 2:3 6:7 10:11 14:15 18:19 22:23 26:28; do
        run "consan_$c" 120 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
            python3 benchmarks/sanitize.py --consan --cases $c
    done
    ;;
s12k)
    # s12j timed out compiling: under ConSan (debug mode, 40 KB of instrumentation stack) the Gluon backward takes
    # 2.5 min to compile offline here and the forward 1 min. One case (18: causal, no column mask, D=128) with the
    # whole call's time.
    run consan_18 560 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 18:19
    ;;
s12l)
    # ConSan as s12k (no race reported on case 18) on case 14: four vectors, non-causal, D=128 (the forward's
    # packed row limits pass through shared memory; the backward's partial tiles).
    run consan_14 560 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 14:15
    ;;
s13a)
    # Block bounds, tile lists and their order in one launch (one program per (batch, mask head) row) where rows
    # have at most 2^16 tiles, instead of three; the backward queues its first GPU work before allocating its
    # gradients. The D=128 gpu_check cases, then the host's time per step and timer against GPU time at 8K.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    run ops 90 host_ops.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 --masks sliding_window --ops
    run host_8k 120 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,global_sliding_window
    ;;
s13b)
    # The masks short of 1.3x at 8K against Flex on s13a's host path.
    run k128_short 560 k128_short.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K \
        --head-dims 128 --masks sliding_window,causal_document,global_sliding_window,qk_sparse,causal_blockwise \
        --out "$OUT/k128_short"
    ;;
s13c)
    # Where the timer's idle time goes: one timed call of each pass with host activity profiled (runtime calls and
    # kernels against the start event), ours on two masks and Flex on the first; then the 32K table on the masks
    # at or near 1.3x.
    run timeline 150 host_timeline.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document --flex --timeline
    run k128_32k 400 k128_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --masks qk_sparse,sliding_window,causal_document,prefix_lm_causal --out "$OUT/k128_32k"
    ;;
s13d)
    # The tile lists as flat tensors cut from their allocation by one split (no per-list views) and the plan
    # kernel's compile-time arguments cached: the D=128 gpu_check cases, then the kernel table at 8K, every mask.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    run k128_8k 560 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --out "$OUT/k128_8k"
    ;;
s13e)
    # The one-launch plan runs before every kernel at every head dim: every gpu_check case, memcheck on one forward
    # + backward per mask form at D=128, racecheck on the plan kernel alone (its steps hand data over through
    # global memory behind a CTA barrier; the reductions and scans through shared memory).
    run gpu_check 170 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --out "$OUT/gpu_check.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 2:3 6:7 10:11 14:15 18:19 22:23; do
        run "memcheck_$c" 60 memcheck.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --cases $c
    done
    for c in 0:1 2:3 14:15; do
        run "racecheck_plan_$c" 60 racecheck_plan.txt "${san[@]}" --tool racecheck --kernel-name kns=_row_plan \
            python3 benchmarks/sanitize.py --cases $c
    done
    ;;
s13e3)
    # (Run as a direct command in session 13, recorded here.) racecheck over every kernel of case 0 (D=64: the
    # Triton kernels and the plan kernel; no Gluon kernel, whose async-proxy traffic racecheck cannot follow).
    run racecheck_case0 60 racecheck_case0_all.txt env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer \
        --tool racecheck --print-level info python3 benchmarks/sanitize.py --cases 0:1
    ;;
s13f)
    # The kernel table at 32K, the ten column masks, on the session's code.
    run k128_32k 560 k128_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --masks sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/k128_32k"
    ;;
s13e2)
    # s13e's racecheck commands had an ill-formed kernel filter (regex:); kns= is compute-sanitizer's substring key.
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    for c in 0:1 2:3 14:15; do
        run "racecheck_plan_$c" 60 racecheck_plan.txt "${san[@]}" --tool racecheck --kernel-name kns=_row_plan \
            python3 benchmarks/sanitize.py --cases $c
    done
    ;;
s13g)
    # Our backward at 32K on qk_sparse read 153 ms when it ran first in a call (s13c) and 173 ms as the 9th of ten
    # masks (s13f; s12f: 168 ms, also 9th), while Flex's stayed at 208-210 ms. Is the GPU slowing down under a long
    # run (power or thermal limits)? The SM clock, power and temperature logged every second (read-only queries)
    # while two masks run first, then the ten-mask table.
    q=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active
    { nvidia-smi --query-gpu=$q --format=csv -lms 1000 2>&1 ||
        nvidia-smi --query-gpu=${q/clocks_event_reasons/clocks_throttle_reasons} --format=csv -lms 1000; } \
        >"$OUT/clocks.csv" &
    smi=$!
    run k128_32k_first 150 k128_32k_first.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K \
        --head-dims 128 --masks qk_sparse,prefix_lm_causal --out "$OUT/first"
    run k128_32k_all 400 k128_32k_all.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K \
        --head-dims 128 \
        --masks sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/all"
    kill $smi 2>/dev/null
    ;;
s13h)
    # ConSan (as s12k, s12l) on case 6: causal, two vectors, D=128 (the Gluon kernels' partial tiles of that form).
    run consan_6 560 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 6:7
    ;;
s13i)
    # ConSan on case 2: causal, one vector, D=128.
    run consan_2 560 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 2:3
    ;;
s13j)
    # s13g: our qk_sparse backward at 32K was ~10% slower as the ninth of ten masks than first in its call. Heat or
    # process state? A: qk_sparse alone in a fresh process on a cool card; B: after random_eviction and
    # prefix_lm_causal in the same process (hot card, few allocations before it); a 90 s pause; C: alone again in a
    # fresh process. Clocks, power and temperature logged every second.
    q=timestamp,clocks.sm,power.draw,temperature.gpu,clocks_event_reasons.active
    nvidia-smi --query-gpu=$q --format=csv -lms 1000 >"$OUT/clocks.csv" 2>&1 &
    smi=$!
    B32=("${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128)
    run qk_a 120 qk_a.log "${B32[@]}" --masks qk_sparse --out "$OUT/a"
    run qk_b 200 qk_b.log "${B32[@]}" --masks random_eviction,prefix_lm_causal,qk_sparse --out "$OUT/b"
    sleep 90
    run qk_c 120 qk_c.log "${B32[@]}" --masks qk_sparse --out "$OUT/c"
    kill $smi 2>/dev/null
    ;;
s14a)
    # Experiment (its diff is not in the tree; NOTES.md, session 14): the Gluon backward on a persistent grid (one
    # program per SM taking key blocks from the lists' counter, switch configs.PERSISTENT_BACKWARD): the D=128
    # gpu_check cases, then its GPU time against one program per key block, call by call in turn, at 8K.
    run gpu_check_d128 200 gpu_check.log python3 benchmarks/gpu_check.py --workers 4 --only "D=128" \
        --out "$OUT/gpu_check_d128.json"
    run ab_8k 330 ab_persistent.txt python3 benchmarks/ab_setting.py PERSISTENT_BACKWARD True,False --pass bwd \
        --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,causal_blockwise,global_sliding_window,causal,qk_sparse,full
    ;;
s14b)
    # Why the timer's idle time per call (timer minus GPU time, ~0.85 ms per forward at 8K) is about twice the host's
    # time of the call measured with the GPU busy (~0.4 ms): the same calls timed with the host polling the end event
    # instead of blocking on it, ours and Flex's; then the host's Python profile of our calls.
    run host_8k 200 host_overhead.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document --flex
    run cprofile 90 host_cprofile.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --cprofile 30
    ;;
s14c)
    # Experiment (f228934, reverted; NOTES.md, session 14): the kernel table at 8K, every mask, with Flex and ours
    # timed call by call in turn (the ratio over Flex from those times; ours alone recorded too).
    run k128_8k 570 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --out "$OUT/k128_8k"
    ;;
s14d)
    # The kernel table at 32K, the ten column masks (each implementation timed alone, as before s14c).
    run k128_32k 570 k128_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 128 \
        --masks sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/k128_32k"
    ;;
s14e)
    # Lead 1 of session 13: heat or process state? Our qk_sparse backward at 32K, GPU time alone, on a cool card,
    # right after 60 s of bf16 matmuls at the power cap, and after 60 s of rest; prefix_lm_causal (same density,
    # no position effect in s13g) beside it.
    run heat 400 heat_probe.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal --soak-s 60 --rest-s 60
    ;;
s14f)
    # ConSan's positive control (a shared-memory read before / after a bulk copy's barrier: the first must stop with
    # a device-side assertion, the second run clean), then ConSan on case 10 (non-causal, two vectors, D=128).
    run consan_control_race 80 consan_control.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --consan-control race
    run consan_control_clean 80 consan_control.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --consan-control clean
    run consan_10 420 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 10:11
    ;;
s14g)
    # ConSan on case 22 (non-causal, no column mask, D=128): the last of the six D=128 forms.
    run consan_22 560 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 22:23
    ;;
s14h)
    # Experiment (not kept; NOTES.md, session 14): the Gluon backward restructured as in s14a but on its usual grid (one program per key block; the
    # item's work in a helper, its coordinates computed in each partition): offline 4 / 0 spill instructions on the
    # two-vector causal / four-vector forms against 8 / 24. GPU time against the committed kernel, in turn.
    run ab_8k 300 ab_restructured.txt python3 benchmarks/ab_setting.py BACKWARD_ORIGINAL True,False --pass bwd \
        --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,causal_blockwise,global_sliding_window,document,causal,qk_sparse,full
    run ab_32k 200 ab_restructured.txt python3 benchmarks/ab_setting.py BACKWARD_ORIGINAL True,False --pass bwd \
        --seqlen 32768 --batch 4 --reps 7 --masks qk_sparse,global_sliding_window
    ;;
s14i)
    # Experiment (not kept; NOTES.md, session 14): the s14a kernel with its key-block loop kept (one pass of it on the usual grid: with it the consumers keep
    # the allocation of s14h's 'False' variant, 4 / 0 spill instructions on the two-vector causal / four-vector
    # forms against 8 / 24) and the persistent grid's barrier released only on that grid (0 on the one-vector
    # causal form, as the committed kernel; s14h's 4 there cost 3%). GPU time against the committed kernel.
    run ab_8k 300 ab_restructured.txt python3 benchmarks/ab_setting.py BACKWARD_ORIGINAL True,False --pass bwd \
        --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,causal_blockwise,global_sliding_window,document,causal,qk_sparse,full
    run ab_32k 200 ab_restructured.txt python3 benchmarks/ab_setting.py BACKWARD_ORIGINAL True,False --pass bwd \
        --seqlen 32768 --batch 4 --reps 7 --masks qk_sparse,global_sliding_window,prefix_lm_causal
    ;;
s14j)
    # The kernel table at 8K, every mask, each implementation timed alone (the method since session 1), on the
    # session's code (kernels as in session 13): a second sample of the masks near 1.3x.
    run k128_8k 570 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --out "$OUT/k128_8k"
    ;;
s14k)
    # The 32K position effect without heat (s14e: heat is 1-2%): qk_sparse's passes fresh, after our passes on the
    # eight masks the ten-mask table runs before it, and after torch.cuda.empty_cache().
    run position 400 position_probe.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal \
        --after-masks sliding_window,causal_document,document,share_question,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal
    ;;
s14l)
    # s14k: our passes on the other masks do not slow qk_sparse at 32K. Now FlexAttention (compiled, measured as the
    # benchmark does) on prefix_lm_causal and qk_sparse in the same process, then our rows again.
    run position_flex 400 position_probe.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal --soak-s 0 --rest-s 0 --after-flex prefix_lm_causal,qk_sparse
    ;;
s14m)
    # The table's qk_sparse at 32K (171-173 ms) against the probes' (154-155): with other tensors holding 8, 24 and
    # 48 GiB, as the table's inputs, copies and outputs do.
    run position_memory 300 position_probe.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal --hold-gb 8,24,48
    ;;
s14n)
    # Lead 1 of session 14: where the one-vector causal masks' backward goes at 8K. GPU time with every tile, with the
    # partial tiles dropped and with none (the memory passes, launches and per-key-block work), per mask.
    run tile_cost 200 tile_cost.txt python3 benchmarks/tile_cost.py --seqlen 8192 --batch 16 \
        --masks full,causal,sliding_window,causal_document,causal_blockwise,global_sliding_window
    ;;
s14o)
    # s14n again with the three variants taking turns call by call (s14n timed them one after the other, and on full,
    # where "unmasked only" is the same work, they read 2% apart).
    run tile_cost 200 tile_cost.txt python3 benchmarks/tile_cost.py --seqlen 8192 --batch 16 \
        --masks full,causal,sliding_window,causal_document,causal_blockwise,global_sliding_window
    ;;
s15a)
    # Session 15: the forward's host path (timer minus GPU time 0.96 ms against Flex's 0.29 at 8K, s14b). Host time of
    # each launch of one forward and backward, split into the JIT's binder and cache key and the compiled launcher;
    # and each step of the call path, as s13a.
    run launch_parts 200 host_launch.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --launch
    run host_ops 200 host_launch.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --ops
    ;;
s15b)
    # The launch cache (kernels._host.CachedKernel) and plain-integer grids: every gpu_check case, each reuse of a
    # compiled kernel checked against Triton's own binding; then the host's share of each pass, this tree against
    # the committed one (benchmarks/_base, not in git), in turn. Predicted: timer minus GPU time of the forward
    # at 8K 0.96 -> ~0.6 ms, the backward's down by 0.1-0.3 ms.
    run gpu_check 240 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --out "$OUT/gpu_check.json"
    run host_compare 300 host_compare.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document --compare benchmarks/_base
    ;;
s15c)
    # The Gluon backward skips a warpgroup's half of a partial tile whose rows lie below every one of its keys'
    # causal limit (causal diagonals): D=128 gpu_check, then backward GPU time against the committed kernel
    # (benchmarks/_base), in turn. Predicted at 8K: sliding_window -2 to -3%, causal_document -1.5 to -2.5%,
    # causal_blockwise and causal -0.5 to -1%, full and global_sliding_window level; dK and dV bit-identical.
    gpu_check_d128_launches
    run ab_dead_half 330 ab_dead_half.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,causal,global_sliding_window,full
    ;;
s15d)
    # The kernel table at 8K, every mask, each implementation timed alone, on the launch cache (s15b); each record
    # now also carries the GPU's time alone (fwd_gpu_ms / bwd_gpu_ms) beside the timer's.
    table_8k
    ;;
s15e)
    # The kernel table at 32K, the ten column masks, with the GPU's time alone in each record: is qk_sparse's
    # backward late in the table (171 ms against 155 in every probe) slower on the GPU or on the host?
    table_32k
    ;;
s15f)
    # s15e: late in the 32K table our heavy backwards read 10-19 ms above their GPU time alone (qk_sparse 171.3
    # against 153.6; Flex's 0.3-10.6). The same table with two more figures per record: the backward right
    # behind another call (GPU never idle: steady clocks under the power cap) and the caching allocator's calls
    # to the driver while the backward was timed (a cudaMalloc / cudaFree or retry inside a timed call stalls it).
    table_32k
    ;;
s15g)
    # s15f: late in the table our heavy backwards read 5-13 ms above the same call right behind another (qk_sparse
    # 167.9 against 157.1), with no allocator traffic; Flex's do not. Power under the cap on a hot card? Our
    # backward by the benchmark's timer and back to back, cool, right after 60 s of matmuls at the cap, rested.
    run heat_timers 400 heat_timers.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal --soak-s 60 --rest-s 30 --timers
    ;;
s15h)
    # s15g: in a fresh process our qk_sparse backward reads the same by the timer and back to back (159.4 / 159.3
    # ms cool, 161.5 / 160.3 hot), so s15f's 167.9 late in the table is neither heat nor the GPU. Its median comes
    # from 3 timed calls, and late in the table the heap holds every compiled peer: the 32K table again with the
    # cyclic garbage collector paused while calls are timed (as timeit does). Predicted: our heavy backwards read
    # within ~2 ms of back to back (qk_sparse ~159 ms, 1.33x), Flex's and the light masks' unchanged.
    table_32k
    ;;
s15i)
    # s15h: pausing the garbage collector did not help (qk_sparse 175.3 by the timer, 163.1 back to back). s15g's
    # probe called the kernels' entry points, the table the public call under autograd: both, cool and hot.
    run heat_public 400 heat_public.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal --soak-s 60 --rest-s 0 --timers --public
    ;;
s15j)
    # s15i: fresh process, qk_sparse at 32K: timer and back to back agree through both call paths (155-164 ms), hot
    # or cool. The table also compiles and runs FlexAttention before: the timers again after Flex on two masks.
    run flex_timers 400 flex_timers.txt python3 benchmarks/heat_probe.py --seqlen 32768 --batch 4 \
        --masks qk_sparse,prefix_lm_causal --after-flex prefix_lm_causal,qk_sparse --timers --public
    ;;
s15k)
    # A second sample of s15d (the 8K table on the launch cache), for the masks near 1.3x.
    table_8k
    ;;
s16a)
    # Session 16 had no device time, and the kind lent since is an H200. The first call there: gpu_check at D=128
    # with every launch-cache reuse checked against Triton's binding (the cache is keyed by device since s16), then
    # the 32K table, whose bwd_allocator now counts the timer's timed runs alone. Predicted: 23/23; no driver call
    # in the light masks' timed backwards; the ratios on this card are new figures, not comparable to the H100's.
    gpu_check_d128_launches
    table_32k
    ;;
s17a)
    # Session 17's first call, on the H200 lent since session 16. gpu_check at D=128 with every launch-cache reuse
    # checked against Triton's binding (the cache is keyed by device since s16; the Gluon backward's startup
    # reordered: the first query block read beside the counts, K/V waited for after the lists' and limits' loads).
    # Then that backward against the committed one (benchmarks/_base, not in git), GPU time in turn at 8K.
    # Predicted: 23/23, dK/dV bit-identical; sliding_window and causal_document -0.5% to -1.5% (~0.4 us less per
    # program, ~250 waves of programs), full level. Then where our forward's host time goes on this host, with
    # Flex's beside it.
    gpu_check_d128_launches
    run ab_startup 150 ab_startup.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,full
    run host_flex 120 host.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document --flex
    run host_ops 60 host.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 --masks sliding_window --ops
    ;;
s17b)
    # gpu_check at D=128 with launch checks, on the Gluon descriptors built without their checks; then the 8K table
    # on the H200. Predicted: 23/23.
    gpu_check_d128_launches
    table_8k
    ;;
s17c)
    # The 32K table on the H200 (ten column masks), bwd_allocator counting the timer's timed runs alone. (Session 17
    # ran this command by hand on the machine s17b left warm, with 412 s of device time left: the host compare of
    # the unchecked descriptors planned before it did not fit and was not run.)
    table_32k
    ;;
s18a)
    # Session 18's first call. The Gluon backward's startup from per-program slots written by the plan (its key
    # block, the first head's counts and first query block in one row: the first tile's copies wait on one load
    # instead of a chain of three) and its epilogue's reduce-add wait moved after the dK/dV stores. gpu_check at
    # D=128 with launch checks, then GPU time in turn at 8K against the committed kernels (benchmarks/_base) and
    # against the committed kernels with the epilogue change alone (benchmarks/_base_epi; both not in git).
    # Predicted: 23/23, dK/dV bit-identical; epilogue -0.2% to -0.6%, slots -0.5% to -1.5% on sliding_window and
    # causal_document, full level. Ran (results/s18a_*): 23/23, but slots +1.9% on both: reverted, with the
    # epilogue change (noise-level); the kernels' diff is not in the tree (benchmarks/NOTES.md, session 18).
    gpu_check_d128_launches
    run ab_all 150 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,full
    run ab_slots 150 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base_epi --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,full
    ;;
s18b)
    # The 8K table on s18a's kernels (the Gluon backward's slots and epilogue), to run right after s18a; not run
    # (s18a's kernels were slower).
    table_8k
    ;;
s18c)
    # (Measured in session 25 by s19b: s19a landed, s18c dropped; their patches are gone and this step no longer
    # runs; kept as the record of what ran.)
    # Prepared in session 18, not run (no device was lent after s18a). On the device's copy of the tree: the
    # committed package copied to benchmarks/_base, then benchmarks/experiments/s18c_kv_prefetch.patch applied:
    # the Gluon backward's producer, once its loads are issued, asks L2 for the K/V of the program
    # BWD_KV_PREFETCH_WAVES waves of programs later (per-lane prefetch.global.L2, 256 rows of 256 B; offline the
    # same spills as the committed kernel on all six forms). gpu_check at D=128 with launch checks; GPU time in
    # turn at 8K for 0 (off), 1 and 2 waves (one compiled kernel: a runtime argument), then the default (2)
    # against the committed kernels. Predicted: 23/23; 2 waves against 0: -1% to -3% on sliding_window and
    # causal_document (an HBM round trip of ~1-1.5 us out of ~49 us per program), full level; 1 wave about half
    # of that (its target starts as the prefetch is issued).
    base_and_patch s18c_kv_prefetch
    gpu_check_d128_launches
    run ab_waves 200 ab.txt python3 benchmarks/ab_setting.py BWD_KV_PREFETCH_WAVES 0,1,2 --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,full
    run ab_base 120 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document
    ;;
s18d)
    # Prepared in session 18, not run. Where a Gluon backward program's time goes at 8K: per-program timestamps
    # (benchmarks/experiments/probe_bwd_phases.patch, applied here on the device's copy): K/V wait, first tile
    # wait, tile loop, epilogue and the switch between programs on each SM, summed as shares of the SMs' time,
    # with the stamps' own cost (backward time with and without them). Expected from s14o / s17: on
    # sliding_window and causal_document the phases outside the tile loop take ~8-10% of the SM time.
    [[ -n $DRY ]] || git apply benchmarks/experiments/probe_bwd_phases.patch || exit 1
    run probe 300 probe.txt python3 benchmarks/experiments/probe_bwd_phases.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,causal_blockwise,full
    ;;
s19a)
    # (Measured in session 25 by s19b: s19a landed, s18c dropped; their patches are gone and this step no longer
    # runs; kept as the record of what ran.)
    # Prepared in session 19, not run (no device was lent). On the device's copy of the tree: the committed package
    # copied to benchmarks/_base, then benchmarks/experiments/s19a_dkv_tma_epilogue.patch applied: each consumer
    # warpgroup of the Gluon backward writes its dK / dV to shared memory it no longer needs (its own V buffer,
    # its dQ staging buffer) and sends them by two bulk copies, instead of 64 scattered 4-byte global stores per
    # thread (offline: spills 0/0/0/8/0/28 B on the six forms against 0/0/0/8/4/24; STG 128 -> 4). gpu_check at D=128
    # with launch checks (odd lengths: the copy engine must drop the rows past Sk), then GPU time in turn at 8K
    # against the committed kernels. Predicted: 23/23, dK/dV bit-identical; -0.5% to -1.5% on sliding_window and
    # causal_document (~0.3-0.8 us of ~49 us per program), full level. The sign is not certain: a program now
    # waits for its bulk copies to read shared memory before it ends.
    base_and_patch s19a_dkv_tma_epilogue
    gpu_check_d128_launches
    run ab_base 150 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,full
    ;;
s19b)
    # (Measured in session 25 by s19b: s19a landed, s18c dropped; their patches are gone and this step no longer
    # runs; kept as the record of what ran.)
    # Prepared in session 19, not run: s18c (K/V prefetch) and s19a (dK / dV by bulk copies) together, each
    # measured against the others in one call. On the device's copy of the tree: three copies of the package as
    # flashmask_base (the committed one, with s18c alone, with s19a alone; benchmarks/_base*, not in git), then
    # benchmarks/experiments/s19b_prefetch_and_dkv_tma.patch (both) applied. gpu_check at D=128 with launch checks;
    # GPU time in turn at 8K: both against the committed kernels, against s18c alone (what s19a adds) and against
    # s19a alone (what s18c adds); then the prefetch distance (0 and 2 waves) with both. Offline: the spills of s19a
    # alone (0 / 0 / 0 / 8 / 0 / 28 B). Predicted as s18c and s19a: -1.5% to -4.5% on sliding_window and
    # causal_document together, full level. Use it in place of s18c and s19a when one call must do.
    if [[ -z $DRY ]]; then  # (the tree is changed: on the device's copy only)
        for variant in "" s18c_kv_prefetch s19a_dkv_tma_epilogue; do
            dir=benchmarks/_base${variant:+_${variant%%_*}}
            [[ -n $variant ]] && { git apply "benchmarks/experiments/$variant.patch" || exit 1; }
            rm -rf "$dir" && mkdir -p "$dir" && cp -r src/flashmask "$dir/flashmask_base"
            [[ -n $variant ]] && { git apply -R "benchmarks/experiments/$variant.patch" || exit 1; }
        done
        git apply benchmarks/experiments/s19b_prefetch_and_dkv_tma.patch || exit 1
    fi
    gpu_check_d128_launches
    for base in benchmarks/_base benchmarks/_base_s18c benchmarks/_base_s19a; do
        run "ab_vs_${base##*/}" 120 ab.txt python3 benchmarks/ab_setting.py --base "$base" --seqlen 8192 \
            --batch 16 --masks sliding_window,causal_document,full
    done
    run ab_waves 120 ab.txt python3 benchmarks/ab_setting.py BWD_KV_PREFETCH_WAVES 0,2 --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document
    ;;
s19c)
    # (Landed in session 21: the patch is gone and this step no longer runs; kept as the record of what ran.)
    # Prepared in session 19, not run. On the device's copy of the tree: the committed package copied to
    # benchmarks/_base, then benchmarks/experiments/s19c_fused_mask_predicates.patch applied: both Gluon kernels'
    # element mask of partial tiles through the Triton kernels' inline-PTX helpers (_common: both conditions in one
    # predicate, one select per element) instead of boolean tiles. Offline (SASS of the tile loops, committed ->
    # patched): backward one-vector forms 603 -> 569 instructions (FSEL 64 -> 32), causal two-vector form
    # (causal_blockwise, qk_sparse) 884 -> 619 in one warpgroup (242 LOP3 gone: the predicates were packed into
    # bitmasks, as the Triton kernels' were before session 6), four vectors 686 -> 653 with 36 B of spills (24
    # before); forward one vector 956 / 870 -> 827 / 792, two and four vectors ~1030 -> ~965 (FSEL 130 -> 66),
    # spills unchanged. gpu_check at D=128 with launch checks, then GPU time in turn at 8K against the committed
    # kernels, backward then forward. Predicted: 23/23, outputs bit-identical (the same test); backward -0.5% to
    # -1.5% on sliding_window and causal_document (a fifth of their tiles are partial), -1% to -4% on
    # causal_blockwise and qk_sparse; forward -1% to -3% on the masked ones; full level (no partial tiles).
    base_and_patch s19c_fused_mask_predicates
    gpu_check_d128_launches
    run ab_bwd 200 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,qk_sparse,full
    run ab_fwd 150 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --pass fwd --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,global_sliding_window,full
    ;;
s20a)
    # Session 20, in the tree (configs.BWD_PIECES = 1: off until measured): the dQ-accumulating backward in pieces
    # of (batch x kv head) rows (kernels/_pieces.py). Zero fill + preprocess (one kernel now) of pieces 1.. and the
    # dQ conversion of pieces ..N-2 run on two high-priority side streams with BWD_SIDE_PROGRAMS programs each,
    # beside the other pieces' main kernels (alternating between two streams); piece 0's prepare and the last
    # piece's conversion run on the whole grid. First gpu_check D=128 with every atomic-mode backward in 3 pieces
    # (Gluon and, with use_tma=False, the Triton dK/dV kernel) and launch checks; then backward GPU time at 8K,
    # BWD_PIECES 1 / 4 / 8 / 16 in turn. Predicted: 23/23; sliding_window and causal_document -0.5 to -1.0 ms of
    # their ~13.4 ms (-4% to -7%: of the 1.7 ms of memory passes only piece 0's prepare, the last conversion
    # and about a third of the rest stay), full -0.5 to -1.0 ms of ~78 ms. Against: the side programs may share
    # SMs (fewer SMs streaming), the block scheduler may interleave the alternating mains, and the pieces'
    # launches add host time (hidden behind the GPU from the second piece on).
    run gpu_check_pieces 230 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py \
        --workers 8 --only "D=128" --backward-pieces 3 --out "$OUT/gpu_check_pieces.json"
    run ab_pieces 240 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 1,4,8,16 --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,full,causal_blockwise
    # The same as the benchmark's timer sees it (host time included: the pieces' launches, the first piece's
    # short prepare in front of the host's setup).
    run ab_pieces_timer 100 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 1,8 --timer --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document
    ;;
s20b)
    # Session 20, after s20a: the pieces' side passes and streams at 8K, BWD_PIECES=8 throughout (sliding_window,
    # causal_document): side programs 4 / 8 / 16 / 32; rows per block 128 / 256 (32 warps); 16 warps (two side
    # programs may then share an SM) against 32; the mains all on the current stream (tails between pieces)
    # against alternating; the first whole-grid prepare over 1 or 2 pieces (timer). Predicted: a minimum near 8-16 programs; 256 rows and 32 warps ahead; alternate ahead by
    # ~(N-1) x 25 us = ~0.15 ms unless the block scheduler interleaves the mains.
    AB=(python3 benchmarks/ab_setting.py --seqlen 8192 --batch 16 --masks sliding_window,causal_document)
    run ab_side_programs 200 ab.txt "${AB[@]}" BWD_SIDE_PROGRAMS 4,8,16,32 --set BWD_PIECES=8
    run ab_side_block 120 ab.txt "${AB[@]}" BWD_SIDE_BLOCK_M 128,256 --set BWD_PIECES=8
    run ab_side_warps 120 ab.txt "${AB[@]}" BWD_SIDE_WARPS 16,32 --set BWD_PIECES=8 --set BWD_SIDE_BLOCK_M=128
    run ab_alternate 120 ab.txt "${AB[@]}" BWD_PIECES_ALTERNATE False,True --set BWD_PIECES=8
    # The first prepare over 1 or 2 pieces on the whole grid, as the timer sees it (GPU work in front of the host's
    # setup of the main kernel; s20a's --timer run tells whether that shows).
    run ab_lead 100 ab.txt "${AB[@]}" BWD_PIECES_LEAD 1,2 --timer --set BWD_PIECES=8
    ;;
s20c)
    # Session 20: compute-sanitizer's memcheck over sanitize.py's 28 cases with the dQ-accumulating backwards in 3
    # pieces (the prepare / convert passes' row ranges, the main kernels' row offsets, four streams). Predicted:
    # clean. (racecheck sees no global memory, and ConSan checks the kernels' barriers, which the pieces leave
    # as they were.)
    run memcheck_pieces 560 memcheck.txt env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 \
        --tool memcheck python3 benchmarks/sanitize.py --backward-pieces 3
    ;;
s20d)
    # Session 20: the 8K kernel table (every mask, timer and GPU time, both peers) with the backward in pieces, set
    # on the device's copy of the tree only (PIECES, default 8; LEAD, default 1), so that a good s20a can be seen in
    # the benchmark's own numbers before the default moves. Predicted (if s20a shows -0.5 to -1.0 ms per backward):
    # sliding_window 1.246x -> ~1.28-1.31x over Flex, every mask at 8K up by about as much.
    if [[ -z $DRY ]]; then
        sed -i -e "s/^BWD_PIECES = 1$/BWD_PIECES = ${PIECES:-8}/" -e "s/^BWD_PIECES_LEAD = 1$/BWD_PIECES_LEAD = ${LEAD:-1}/" \
            src/flashmask/kernels/configs.py
        grep -n "^BWD_PIECES" src/flashmask/kernels/configs.py | tee -a "$STEPS"
    fi
    table_8k
    ;;
s21a)
    # (s19c landed after this ran: its patch is gone, so the step's second half no longer runs.)
    # Session 21. s20a (H100): the backward in 8 pieces took 0.69 ms off sliding_window's GPU time at 8K (13.82 ->
    # 13.12 ms) and 0.46 ms off its --timer time, but s20d's table with 8 pieces (H100) gave sliding_window 1.20x
    # (bwd 15.14 ms timed against 13.48 GPU alone), below the s15 H100 table's 1.22x of an older tree. No baseline
    # of this tree on the H100 in the benchmark's own timer: here the kernel table (Flex only, 4x the repetitions)
    # on three masks with BWD_PIECES / BWD_PIECES_LEAD = 1/1, 8/1, 8/2, 1/1 again (drift), set on the device's copy.
    # Predicted: 8/1 against 1/1 -0.3 to -0.6 ms of bwd (timer); 8/2 a little better than 8/1 if the short first
    # prepare shows. Then, with the pieces off again, s19c's fused mask predicates against the committed kernels
    # (GPU time; outputs must be bit-identical).
    B8=("${FM[@]}" bench --part kernel --seqlens 8K --head-dims 128 --peers flex --rep-ms 400
        --masks sliding_window,causal_document,global_sliding_window)
    i=0
    for pl in "1 1" "8 1" "8 2" "1 1"; do
        read -r p l <<<"$pl"
        i=$((i + 1))
        [[ -n $DRY ]] || sed -i -e "s/^BWD_PIECES = .*/BWD_PIECES = $p/" -e "s/^BWD_PIECES_LEAD = .*/BWD_PIECES_LEAD = $l/" \
            src/flashmask/kernels/configs.py
        run "bench_${i}_pieces${p}_lead${l}" 110 bench.log "${B8[@]}" --out "$OUT/b${i}_p${p}_l${l}"
    done
    base_and_patch s19c_fused_mask_predicates
    run ab_bwd 130 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise,qk_sparse
    run ab_fwd 80 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --pass fwd --seqlen 8192 \
        --batch 16 --masks sliding_window,causal_document,causal_blockwise
    ;;
s21b)
    # Session 21, after s21a: in the tree now, the backward in 8 pieces (configs.BWD_PIECES = 8) and s19c's fused
    # mask predicates in both Gluon kernels. gpu_check D=128 with launch checks (predicted 23/23), the pieces at 32K
    # against whole (GPU time, two masks; predicted -2% to -4%, as at 8K), then the 8K kernel table. Predicted
    # (H100): sliding_window ~1.27-1.29x over Flex (s21a: 1.24x whole, 1.26-1.27x in 8 pieces; s19c another ~1%).
    gpu_check_d128_launches
    run ab_pieces_32k 90 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 1,8 --seqlen 32768 --batch 4 \
        --masks sliding_window,causal_document --reps 7
    table_8k
    ;;
s22a)
    # Session 21, for the next device call. The backward in 8 pieces gains ~0.7 ms of GPU time at 8K but gives
    # ~0.4-0.5 ms back to the timer: only the lead piece's prepare (~0.16 ms on an H100) is queued in front of the
    # host's setup of the main kernel (tile lists, descriptors, launcher; ~0.65-0.7 ms right after the timer's sync,
    # by a fit of s21a's two leads). First the backward's timeline (runtime calls and kernels from the start event)
    # whole and in 8 pieces, to see the setup's host time directly; then BWD_PIECES_LEAD 1 / 2 / 4 / 8 by the timer
    # (30 calls each); then the benchmark itself (Flex only, three masks) with lead 4 and lead 2 (the default since
    # session 21), set on the device's copy. Predicted: lead 4 ~0.3 ms faster than lead 1 by the timer on
    # sliding_window and causal_document, lead 2 about halfway, lead 8 near lead 4 (no prepare overlap, no exposed
    # setup).
    run timeline_whole 60 timeline.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --timeline --set BWD_PIECES=1
    run timeline_pieces 60 timeline.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --timeline --set BWD_PIECES=8
    run ab_lead 150 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES_LEAD 1,2,4,8 --timer --reps 30 \
        --seqlen 8192 --batch 16 --masks sliding_window,causal_document --set BWD_PIECES=8
    B8=("${FM[@]}" bench --part kernel --seqlens 8K --head-dims 128 --peers flex --rep-ms 400
        --masks sliding_window,causal_document,global_sliding_window)
    # (The first run compiles Flex for the three masks: s21a's first took over 110 s.)
    for ll in "4 150" "2 110"; do
        read -r l limit <<<"$ll"
        [[ -n $DRY ]] || sed -i -e "s/^BWD_PIECES_LEAD = .*/BWD_PIECES_LEAD = $l/" src/flashmask/kernels/configs.py
        run "bench_lead$l" "$limit" bench.log "${B8[@]}" --out "$OUT/b_lead$l"
    done
    ;;
s22b)
    # Session 21, for a two-GPU call (kind nvidia-h100-x2 or nvidia-h200-x2): the kernels' entry points now make
    # q's device current before launching (Triton launches on the current device; a model split across GPUs calls
    # layers on another). With cuda:0 current, forward and backward on cuda:1 tensors against the same on cuda:0:
    # D=128 (Gluon, whole and in 3 pieces) and D=64 (Triton). Predicted: PASS x3 (bit-identical out, LSE, dK, dV).
    run other_device 120 other_device.txt python3 benchmarks/other_device_check.py
    ;;
s22c)
    # Session 21: the forward and backward captured in a CUDA graph and replayed on new inputs and a new mask
    # (benchmarks/graph_check.py: the public call with autograd at 8K, where the backward runs in 8 pieces on side
    # streams; the kernels at D=128 in 3 pieces and at D=64). Predicted: PASS x3 (out, LSE, dK, dV bit-identical to
    # eager calls on the same inputs). Then s20c's memcheck with the backward in 3 pieces (the default since
    # session 21 and not yet run under compute-sanitizer) in what is left of the budget.
    run graph_check 150 graph_check.txt python3 benchmarks/graph_check.py
    run memcheck_pieces 560 memcheck.txt env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 \
        --tool memcheck python3 benchmarks/sanitize.py --backward-pieces 3
    ;;
s22d)
    # Session 22: two host-side changes, both on by default and switchable (configs), for the time before the GPU
    # gets its first kernel. PLAN_BACKWARD_IN_FORWARD: the forward builds the Gluon backward's tile lists once its
    # main kernel is queued (host idle then), so the backward's setup skips their allocation, views and launch.
    # ENCODED_LAUNCH: Gluon launches reuse the CUtensorMaps encoded for equal descriptors (Triton encodes 7 per
    # backward launch, 3 per forward, in Python). gpu_check D=128 with launch checks (predicted 23/23), then each
    # switch off / on through the public call with autograd, as the benchmark times it (--public --timer),
    # variants taking turns. Predicted (H100, 8K): PLAN bwd -0.1 to -0.25 ms, fwd +0 to +0.03 (lists built under
    # the forward's GPU time, +15 us of GPU); ENCODED fwd -0.01 to -0.03 ms, bwd -0.03 to -0.07. Then the lead
    # pieces with both on (shorter setup: lead 1-2 predicted best), the backward's timeline in pieces, and the
    # CUDA graph check (s22c's first half; predicted PASS x3).
    gpu_check_d128_launches
    AB=(python3 benchmarks/ab_setting.py --public --timer --reps 30 --seqlen 8192 --batch 16
        --masks sliding_window,causal_document)
    for pass in bwd fwd; do
        run "ab_plan_$pass" 60 ab.txt "${AB[@]}" PLAN_BACKWARD_IN_FORWARD False,True --pass "$pass"
        run "ab_encoded_$pass" 60 ab.txt "${AB[@]}" ENCODED_LAUNCH False,True --pass "$pass"
    done
    run ab_lead 80 ab.txt "${AB[@]}" BWD_PIECES_LEAD 1,2,4
    run timeline_pieces 60 timeline.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --timeline
    run graph_check 150 graph_check.txt python3 benchmarks/graph_check.py
    ;;
s22e)
    # Session 22, after s22d: PLAN_BACKWARD_IN_FORWARD read +0.4% / +1.1% on the backward by the timer with lead 2
    # (predicted -0.1 to -0.25 ms), and s22d's timeline shows why: the lead-2 prepare (~0.39 ms profiled) already
    # covers the setup (0.2 ms without the lists). With one lead piece (~0.19 ms) the lists' host time would show.
    # The lead sweep was inconsistent between the masks (lead 1 best on causal_document, 2 on sliding_window). Here
    # twice the calls: lead 1 / 2 with the lists built by the forward and without, and the lists A/B at lead 1.
    # Predicted: with the lists, lead 1 within 0.1 ms of lead 2; without them, lead 2 ahead of lead 1.
    lead_and_lists_ab
    ;;
s23a)
    # Sessions 22-23: the backward's end pieces. A smaller last piece (configs.BWD_LAST_PIECE_SHARE: its dQ conversion
    # runs alone on the whole GPU after every main kernel, ~0.13 ms at 8K with 8 pieces), then a smaller first piece
    # (BWD_FIRST_PIECE_SHARE) with one lead piece, so that less prepare runs alone before the first main kernel (~0.2
    # ms a piece of 8), with and without the forward-built lists (PLAN_BACKWARD_IN_FORWARD), by the timer through the
    # public call. Predicted: last share 0.5 -0.05 to -0.07 ms; first share 0.25 with the lists -0.1 to -0.25 ms
    # against share 1 (the host's setup, ~0.1-0.17 ms, exposed instead). Then the host profile of both passes.
    # Ran (H100, results/s23a_*): both missed, +0.8% to +8.8% (the side passes fall behind; NOTES session 23).
    run ab_last_timer 60 ab.txt python3 benchmarks/ab_setting.py BWD_LAST_PIECE_SHARE 1.0,0.5,0.25 --public --timer \
        --reps 40 --seqlen 8192 --batch 16 --masks sliding_window,causal_document
    ab1=(python3 benchmarks/ab_setting.py --public --timer --reps 40 --seqlen 8192 --batch 16
        --masks sliding_window,causal_document BWD_FIRST_PIECE_SHARE 1.0,0.5,0.25 --set BWD_PIECES_LEAD=1)
    run ab_first_plan 60 ab.txt "${ab1[@]}" --set PLAN_BACKWARD_IN_FORWARD=True
    run ab_first_noplan 60 ab.txt "${ab1[@]}"
    run cprofile 60 ab.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --cprofile 40
    # The benchmark itself (Flex only, the three 8K masks nearest the line): the defaults, then the candidate written
    # into this copy's configs.py (checked by gpu_check D=128 first), then both again if there is time (drift).
    # (The table's figures are H100 ones: on another card SKIP_BENCH=1 leaves the benchmarks out.)
    B3=("${FM[@]}" bench --part kernel --seqlens 8K --head-dims 128 --peers flex --rep-ms 800
        --masks sliding_window,causal_document,document)
    candidate() {
        [[ -n $DRY ]] || sed -i -e "s/^BWD_PIECES_LEAD = .*/BWD_PIECES_LEAD = ${1:-1}/" \
            -e "s/^BWD_FIRST_PIECE_SHARE = .*/BWD_FIRST_PIECE_SHARE = ${2:-0.25}/" \
            -e "s/^BWD_LAST_PIECE_SHARE = .*/BWD_LAST_PIECE_SHARE = ${3:-0.5}/" \
            -e "s/^PLAN_BACKWARD_IN_FORWARD = .*/PLAN_BACKWARD_IN_FORWARD = ${4:-True}/" src/flashmask/kernels/configs.py
        grep -E '^(BWD_PIECES_LEAD|BWD_FIRST_PIECE_SHARE|BWD_LAST_PIECE_SHARE|PLAN_BACKWARD_IN_FORWARD) =' \
            src/flashmask/kernels/configs.py | tr '\n' ' ' | tee -a "$STEPS"
        echo | tee -a "$STEPS"
    }
    defaults() { candidate 2 1.0 1.0 False; }
    if [[ -z ${SKIP_BENCH:-} ]]; then
        run bench_defaults_1 150 bench.log "${B3[@]}" --out "$OUT/b3_defaults_1"
        candidate
        # In 3 pieces (the end pieces' shares then cut rows unevenly). Its log goes with the benchmarks': the device
        # returns at most 8 files.
        run gpu_check_d128 200 bench.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
            --only "D=128" --backward-pieces 3 --out "$OUT/gpu_check_d128.json"
        run bench_candidate_1 100 bench.log "${B3[@]}" --out "$OUT/b3_candidate_1"
        defaults
        run bench_defaults_2 100 bench.log "${B3[@]}" --out "$OUT/b3_defaults_2"
        candidate
        run bench_candidate_2 100 bench.log "${B3[@]}" --out "$OUT/b3_candidate_2"
        defaults
    fi
    ;;
s23b)
    # Session 23, after s23a: the tree as committed (its defaults), checked and benchmarked: gpu_check D=128 with
    # launch checks, the CUDA graph check, timeline of one timed call of each pass, then the whole 8K table.
    gpu_check_d128_launches
    run graph_check 150 graph_check.txt python3 benchmarks/graph_check.py
    run timeline 60 timeline.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --timeline
    run k128_8k 420 bench.log "${FM[@]}" bench --part kernel --seqlens 8K --head-dims 128 --out "$OUT/k128_8k"
    ;;
s24a)
    # Session 24: where the forward's timer excess goes (sliding_window 0.70 ms against Flex's 0.20 at 8K): the
    # forward cut at each layer (public call, no autograd, kernels' entry, plan built outside, main launch alone),
    # in turns with FlexAttention's forward; causal_document without Flex.
    run layers_sw 150 layers.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --layers --flex
    run layers_cd 90 layers.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks causal_document --layers
    ;;
s24b)
    # Session 24: the Gluon kernels at D=64 (configs.GLUON_FORWARD_D64 / GLUON_BACKWARD_D64, off in the tree), switched
    # on in this copy's configs.py: gpu_check's D=64 cases with launch checks, then each pass against D=64's Triton
    # kernels on GPU time (8K, B=16, 64 heads). Predicted: forward -15% to -25% (FA3's schedule against lock-step
    # warpgroups), backward -10% to -20% (5 matmuls a tile against the dQ pass's 7); dK / dV within bf16 rounding of
    # the Triton kernels', dQ too (reduce-adds in any order).
    [[ -n $DRY ]] || sed -i -e "s/^GLUON_FORWARD_D64 = .*/GLUON_FORWARD_D64 = True/" \
        -e "s/^GLUON_BACKWARD_D64 = .*/GLUON_BACKWARD_D64 = True/" src/flashmask/kernels/configs.py
    grep -E '^GLUON_(FORWARD|BACKWARD)_D64 =' src/flashmask/kernels/configs.py | tr '\n' ' ' | tee -a "$STEPS"
    echo | tee -a "$STEPS"
    run gpu_check_d64 240 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" --out "$OUT/gpu_check_d64.json"
    D64_MASKS=full,sliding_window,causal_document,global_sliding_window,qk_sparse
    run ab_fwd_d64 90 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_D64 False,True --pass fwd \
        --head-dim 64 --seqlen 8192 --batch 16 --reps 8 --masks "$D64_MASKS"
    run ab_bwd_d64 150 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_D64 False,True --pass bwd \
        --head-dim 64 --seqlen 8192 --batch 16 --reps 8 --masks "$D64_MASKS"
    ;;
s24c)
    # After s24b: the D=64 Gluon kernels' pipeline depth (GPU time, switched on in this copy): forward 3 / 4 / 5 K/V
    # stages, backward 2 / 3 Q/dO stages. Predicted: within +-3% (the D=128 kernels gained nothing past 3 / 2).
    [[ -n $DRY ]] || sed -i -e "s/^GLUON_FORWARD_D64 = .*/GLUON_FORWARD_D64 = True/" \
        -e "s/^GLUON_BACKWARD_D64 = .*/GLUON_BACKWARD_D64 = True/" src/flashmask/kernels/configs.py
    D64_MASKS=full,sliding_window,causal_document,global_sliding_window
    run ab_fwd_stages 120 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_D64_STAGES 3,4,5 --pass fwd \
        --head-dim 64 --seqlen 8192 --batch 16 --reps 10 --masks "$D64_MASKS"
    run ab_bwd_stages 150 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_D64_STAGES 2,3 --pass bwd \
        --head-dim 64 --seqlen 8192 --batch 16 --reps 10 --masks "$D64_MASKS"
    ;;
s24d)
    # The D=64 kernel table at 8K (every mask, all peers) on the tree's defaults (record for the README).
    run k64_8k 570 k64_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 64 \
        --out "$OUT/k64_8k"
    ;;
s24e)
    # The D=64 Gluon kernels (default since session 24) under the sanitizers: memcheck and racecheck over the eight
    # D=64 cases of sanitize.py (every form, the long-call configs), the backward whole and in 3 pieces, then ConSan
    # (barrier protocol) on the four forms' first cases; the CUDA graph check (its D=64 kernels now Gluon). Then the
    # D=64 32K table.
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1)
    run memcheck_d64 150 sanitize_d64.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py --head-dim 64
    run memcheck_d64_pieces 150 sanitize_d64.txt "${san[@]}" --tool memcheck python3 benchmarks/sanitize.py \
        --head-dim 64 --backward-pieces 3
    run racecheck_d64 120 sanitize_d64.txt "${san[@]}" --tool racecheck python3 benchmarks/sanitize.py --head-dim 64
    run consan_d64 120 sanitize_d64.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --head-dim 64 --cases 0:13
    run graph_check 150 graph_check.txt python3 benchmarks/graph_check.py
    run k64_32k 570 k64_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 64 \
        --out "$OUT/k64_32k"
    ;;
s24f)
    # The D=64 kernel table at 128K (every mask, all peers), the Gluon kernels' first figures at that length.
    run k64_128k 570 k64_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K --head-dims 64 \
        --out "$OUT/k64_128k"
    ;;
s25c)
    # Session 25, after s19b: s19a (dK / dV out by bulk copies) landed alone, on by default (s18c's prefetch read
    # +0.5% to +0.9% slower in s19b and stays out). Needs the committed package before it as
    # benchmarks/_base/flashmask_base (made here from git, carried to the device). gpu_check's D=128 and D=64 cases
    # with launch checks, memcheck over both head dims' cases, the backward against the committed one in turn at
    # D=128 and D=64 (predicted from s19b: -4% to -5.5% on sliding_window and causal_document, -2% on full, dK / dV
    # bit-identical), then the 8K table's three masks nearest 1.3x (Flex only).
    gpu_check_d128_launches
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" --out "$OUT/gpu_check_d64.json"
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 --tool memcheck)
    run memcheck_d128 100 memcheck.txt "${san[@]}" python3 benchmarks/sanitize.py --head-dim 128
    run memcheck_d64 90 memcheck.txt "${san[@]}" python3 benchmarks/sanitize.py --head-dim 64
    for d in 128 64; do
        run "ab_base_d$d" 60 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --head-dim "$d" \
            --seqlen 8192 --batch 16 --masks sliding_window,causal_document,full
    done
    run k128_8k_3 570 k128_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
        --masks sliding_window,causal_document,document --peers flex --out "$OUT/k128_8k_3"
    ;;
s25d)
    # First the forward's layers again (s24a), now with each variant's host time right after the sync and the main
    # launch alone without its counter's zero_: whether the main launch's 0.28 ms over a trivial op's floor (s24a) is
    # the host's Python or the launch reaching the GPU. Then the D=128 32K table (the ten column masks) on the
    # session-25 backward (dK / dV by bulk copies, -4% to -6% GPU time at 8K). Predicted: qk_sparse from 1.27x
    # (session 22) to 1.31x-1.33x by the timer; the others +2-4%.
    run layers_sw 120 layers.txt python3 benchmarks/host_overhead.py --seqlen 8192 --batch 16 \
        --masks sliding_window --layers --flex
    table_32k
    ;;
s25e)
    # gpu_check's D=64 cases with launch checks (23 since session 25: every column-mask form with Sq != Sk both ways at
    # GQA ratios 1 and 8 added), then the six D=64 32K masks that s24e's table did not reach in session 25 (the Gluon
    # kernels' first figures there).
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" --out "$OUT/gpu_check_d64.json"
    run k64_32k_rest 570 k64_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 64 \
        --masks global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/k64_32k_rest"
    ;;
s26a)
    # Session 26: s25d's layers found the Gluon forward's launch alone 0.44 ms over its GPU-alone time with 0.06 ms of
    # host time after the sync. Whether the timer's excess is the card's clocks (power cap) rather than the host:
    # each pass timed by the timer, back to back and behind a sleep, with the SM clock sampled. Then s25e.
    run clocks_sw 150 clocks.txt python3 benchmarks/clock_probe.py --seqlen 8192 --batch 16 --mask sliding_window
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" --out "$OUT/gpu_check_d64.json"
    run k64_32k_rest 570 k64_32k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 32K --head-dims 64 \
        --masks global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction \
        --out "$OUT/k64_32k_rest"
    ;;
s26b)
    # The D=64 kernel tables at 8K and 128K (every mask, all peers) on the Gluon kernels (s24d and s24f in one call:
    # 8K took ~200 s and 128K ~330 s on the Triton kernels in session 1).
    run k64_8k 240 k64_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 64 \
        --out "$OUT/k64_8k"
    run k64_128k 570 k64_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K --head-dims 64 \
        --out "$OUT/k64_128k"
    ;;
s27a)
    # The D=64 128K table's seven masks that session 26 did not reach (the Gluon kernels' first figures there; the
    # table's rows for them are still the Triton kernels' of sessions 7-8).
    run k64_128k_rest 570 k64_128k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 128K \
        --head-dims 64 --out "$OUT/k64_128k_rest" \
        --masks document,global_sliding_window,causal_blockwise,prefix_lm_document,prefix_lm_causal,qk_sparse,random_eviction
    ;;
s27b)
    # The whole gpu_check matrix (76 cases since session 25) in one call with launch checks, then D=64 8K
    # prefix_lm_document, whose session-26 run lost its record to the step's cap.
    run gpu_check_all 330 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --out "$OUT/gpu_check_all.json"
    run k64_8k_pld 200 k64_8k.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 64 \
        --masks prefix_lm_document --out "$OUT/k64_8k_pld"
    ;;
s27c)
    # Session 26's GLUON_BACKWARD_DQ_SCALE_IN_CONVERT (dQ's softmax scale applied by the conversion of the fp32
    # accumulator, not per tile in the Gluon kernel: 32 fewer FMULs per thread per tile at D=128, fewer spills):
    # gpu_check's D=128 and D=64 cases with it on and launch checks, then the backward A/B in turn, back to back
    # with energy per call and behind the sleep. Predicted: -0.5% to -1.5% backward at 8K on sliding_window and
    # causal_document, less on full; dK / dV bit-identical, dQ within fp32 rounding.
    on=(--set GLUON_BACKWARD_DQ_SCALE_IN_CONVERT=True)
    run gpu_check_d128 200 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${on[@]}" --out "$OUT/gpu_check_d128.json"
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" "${on[@]}" --out "$OUT/gpu_check_d64.json"
    for d in 128 64; do
        run "ab_loop_d$d" 120 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_DQ_SCALE_IN_CONVERT False,True \
            --pass bwd --head-dim "$d" --masks sliding_window,causal_document,full --loop 1.0 --reps 4
        run "ab_alone_d$d" 90 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_DQ_SCALE_IN_CONVERT False,True \
            --pass bwd --head-dim "$d" --masks sliding_window,causal_document,full
    done
    ;;
s27d)
    # The backward's piece settings were tuned on GPU time behind a sleep (sessions 21-23), which at the power cap
    # reads a rested card; re-run back to back with energy per call, and by the timer through the public call (host
    # included). Predicted: 8 pieces stay best by the timer; back to back 1 piece within +1% to +3% of 8 (the side
    # passes' overlap buys less when the card is power-bound). Then ConSan over the D=64 Gluon kernels' causal
    # one-vector case (sliding_window's form), never run to the end (~6 min at D=128).
    for m in sliding_window,causal_document; do
        run "ab_pieces_loop_$m" 90 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 8,4,1 --pass bwd \
            --masks "$m" --loop 1.0 --reps 3
    done
    run ab_pieces_timer 60 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 8,4,1 --pass bwd --public --timer \
        --masks sliding_window,causal_document --reps 30
    run ab_side_loop 70 ab.txt python3 benchmarks/ab_setting.py BWD_SIDE_PROGRAMS 8,16 --pass bwd \
        --masks sliding_window --loop 1.0 --reps 3
    run consan_d64_0 480 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases 0:1
    ;;
s28a)
    # 16 pieces, never timed back to back: session 27 found that fewer pieces cost energy per call as well as time
    # (1 piece +5.6% J on sliding_window), so more overlap may save some. Predicted: within +-1% of 8 (session 21,
    # behind the sleep, read 16 a little behind 8). By the timer with 150 calls per variant (30 were too few).
    run ab_pieces16_loop 90 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 8,16 --pass bwd \
        --masks sliding_window,causal_document --loop 1.0 --reps 4
    run ab_pieces16_timer 60 ab.txt python3 benchmarks/ab_setting.py BWD_PIECES 8,16 --pass bwd --public --timer \
        --masks sliding_window,causal_document --reps 150
    ;;
s28b | s28c | s28d | s28e | s28f)
    # ConSan over the D=64 Gluon kernels, one (causal, C) form per call (~6 min each; case 0, causal one vector,
    # ran clean in session 27): cases 4 (causal, two vectors), 8 (two), 12 (four), 16 (causal, none), 20 (none).
    declare -A consan_case=([s28b]=4 [s28c]=8 [s28d]=12 [s28e]=16 [s28f]=20)
    c=${consan_case[$STEP]}
    run "consan_d64_$c" 540 consan.txt env TRITON_INSTRUMENTATION_MODE=consan CUDA_LAUNCH_BLOCKING=1 \
        python3 benchmarks/sanitize.py --consan --cases "$c:$((c + 1))"
    ;;
s28g)
    # The Gluon forward's lazy rescale (configs.GLUON_FORWARD_RESCALE_THRESHOLD = 8: the accumulator is rescaled
    # only on tiles where some row's maximum grows by more than 2^8; -1 = every tile, as before). gpu_check's whole
    # matrix with launch checks (80 cases: four new ones with keys spread over e^4, where the maxima jump), then the
    # forward A/B back to back with energy per call and behind the sleep. Predicted: back to back -2% to -4% at
    # D=128 on sliding_window, causal_document and full (64 of ~470 instructions per thread and tile gone, ~15 added,
    # and at the power cap the clock follows the energy); behind the sleep -0% to -2%; D=64 about half of that.
    # (Measured +4% to +11%; the setting was removed again, so this step records what ran: NOTES, session 28.)
    run gpu_check_all 300 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --out "$OUT/gpu_check_all.json"
    ab=(python3 benchmarks/ab_setting.py GLUON_FORWARD_RESCALE_THRESHOLD "(-1.0),8.0" --pass fwd)
    run ab_rescale_loop 120 ab.txt "${ab[@]}" --masks sliding_window,causal_document,full --loop 1.0 --reps 4
    run ab_rescale_sleep 60 ab.txt "${ab[@]}" --masks sliding_window,causal_document,full --reps 30
    run ab_rescale_loop_d64 90 ab.txt "${ab[@]}" --head-dim 64 --masks sliding_window,full --loop 1.0 --reps 4
    ;;
s28j)
    # The Gluon backward converting dQ itself (configs.GLUON_BACKWARD_FUSED_DQ_CONVERT: each (batch, key/value head)
    # row's last program converts the row's fp32 accumulator from L2; no conversion passes). s28i's upper bound
    # (the pass skipped, dQ wrong): -4.5% back to back on sliding_window. Predicted: -2% to -4% back to back on
    # sliding_window and causal_document (the in-kernel conversion costs part of what the pass did, from L2), less
    # on full; dQ equal to the pass's within its reduce-add order. Then gpu_check's D=128 and D=64 cases with it on
    # and launch checks, and the D=128 ones again in 3 pieces.
    fused=(--set GLUON_BACKWARD_FUSED_DQ_CONVERT=True)
    ab=(python3 benchmarks/ab_setting.py GLUON_BACKWARD_FUSED_DQ_CONVERT False,True --pass bwd)
    run ab_fused_loop 120 ab.txt "${ab[@]}" --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    run ab_fused_timer 60 ab.txt "${ab[@]}" --public --timer --masks sliding_window,causal_document --reps 60
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${fused[@]}" --out "$OUT/gpu_check_d128.json"
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" "${fused[@]}" --out "$OUT/gpu_check_d64.json"
    run gpu_check_d128_pieces 150 gpu_check.log python3 benchmarks/gpu_check.py --workers 8 --only "D=128" \
        --backward-pieces 3 "${fused[@]}" --out "$OUT/gpu_check_d128_pieces.json"
    ;;
s29a)
    # The side passes' shape, back to back (sessions 21-23 tuned it behind the sleep or by the timer): the conversion
    # passes cost up to 4.5% of the 8K sliding_window backward (s28i), part of it their side programs' SMs and power
    # beside the main kernels. Predicted: within +-1% each (4 programs or 16 warps stream as many bytes, longer).
    for setting in "BWD_SIDE_PROGRAMS 8,4" "BWD_SIDE_WARPS 32,16"; do
        read -r name values <<<"$setting"
        run "ab_${name,,}_loop" 80 ab.txt python3 benchmarks/ab_setting.py "$name" "$values" --pass bwd \
            --masks sliding_window,causal_document --loop 1.0 --reps 3
    done
    ;;
s29b)
    # (Ran on the first form, since replaced: the conversion in the consumer warpgroups.)
    # dQ converted per 64-row query tile inside the Gluon backward (GLUON_BACKWARD_FUSED_DQ_CONVERT, now per tile:
    # the program whose reduce-adds land last converts the tile from L2, its copies a tile behind). s28i's bound
    # (conversion passes skipped): -4.5% sliding_window, -3.6% causal_document back to back. Predicted: -1.5% to
    # -3.5% on both (the per-tile wait for the reduce-add's writes, the atomics' MEMBAR.GPU and some 250 bytes of
    # spills take part of it); full less. First gpu_check's D=128 cases with it on (launch checks), then the A/B.
    fused=(--set GLUON_BACKWARD_FUSED_DQ_CONVERT=True)
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${fused[@]}" --out "$OUT/gpu_check_d128.json"
    ab=(python3 benchmarks/ab_setting.py GLUON_BACKWARD_FUSED_DQ_CONVERT False,True --pass bwd)
    run ab_fused_loop 120 ab.txt "${ab[@]}" --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    ;;
s29e)
    # (Run in session 30, results/s29e_*: the converter +2.8% / +4.1% / +4.3% in every schedule; without the fences
    # 2 of 26 D=128 cases wrong. The converter is gone (benchmarks/experiments/
    # gluon_backward_dq_converter_and_persistent.patch), so this step no longer runs; kept as the record.)
    # Not run in session 29 (the device was paused); prepared for the next. s29d (converter partition, the
    # "pipelined" schedule with fences, in-place conversion): +2.7% / +2.6% / +1.2% back to back (sliding_window /
    # causal_document / full). Offline SASS: whenever the converter carries a tile's state ("previous",
    # "pipelined") ptxas spills 14 wgmma descriptors of the default warpgroup, reloaded every tile; "immediate"
    # (wait for this tile's adds, count, convert at once) carries none, and its waits fall on the converter only.
    # The completion waits and proxy fences compile to CCTL.IVALL (the SM's L1 dropped). Predicted: fused
    # "immediate" without fences -1% to -3% against the passes on sliding_window and causal_document (bound -4.5% /
    # -3.6%), full within 1%, unless the converter's waits outlast a tile; "previous" and "pipelined" about s29d;
    # fences within 1%. Then gpu_check with the default schedule, both head dims, and D=128 with the fences.
    fused=(--set GLUON_BACKWARD_FUSED_DQ_CONVERT=True)
    run ab_fused_loop 120 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_FUSED_DQ_CONVERT False,True \
        --pass bwd --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    run ab_schedule_loop 150 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_DQ_CONVERTER_SCHEDULE \
        "'immediate','previous','pipelined'" "${fused[@]}" --pass bwd --masks sliding_window,causal_document \
        --loop 1.0 --reps 3
    run ab_fences_loop 100 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_DQ_CONVERTER_FENCES False,True \
        "${fused[@]}" --pass bwd --masks sliding_window,causal_document --loop 1.0 --reps 3
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${fused[@]}" --out "$OUT/gpu_check_d128.json"
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" "${fused[@]}" --out "$OUT/gpu_check_d64.json"
    run gpu_check_fences 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py \
        --workers 8 --only "D=128" "${fused[@]}" --set GLUON_BACKWARD_DQ_CONVERTER_FENCES=True \
        --out "$OUT/gpu_check_fences.json"
    ;;
s29c|s29d)
    # (Ran on the session-29 kernels of the time: s29c converted by scattered stores, s29d in place; the switch
    # now runs the "immediate" schedule, s29e.)
    # s29b's per-tile conversion in the consumers ran 1.58x slower (a stall every tile); the variants (temporary
    # switch, measured 1.62x / 1.56x / 1.37x / 1.36x on full) put 12% on the acq_rel count's MEMBAR.GPU and the
    # rest on the consumers' extra instructions and spills. Now a fifth partition (one warp, the producer's 24
    # registers) issues the reduce-adds, counts relaxed and converts; the consumers only stage dQ. Predicted: -1% to
    # -3.5% back to back on sliding_window and causal_document (bound -4.5% / -3.6%), full within 1%; the
    # default warpgroup's loop reloads 15 spilled invariants per tile (offline SASS), which may eat 1%.
    fused=(--set GLUON_BACKWARD_FUSED_DQ_CONVERT=True)
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${fused[@]}" --out "$OUT/gpu_check_d128.json"
    ab=(python3 benchmarks/ab_setting.py GLUON_BACKWARD_FUSED_DQ_CONVERT False,True --pass bwd)
    run ab_fused_loop 120 ab.txt "${ab[@]}" --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    run gpu_check_d64 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" "${fused[@]}" --out "$OUT/gpu_check_d64.json"
    ;;
s30a)
    # (Run in session 30 on the persistent-capable tree, results/s30a_*; the patch is now redone on the kernel as it
    # is, with its own Probe argument: with the stamps off its SASS differs from the committed kernel's by the
    # argument's offsets.)
    # Prepared in session 30 (no device), s18d redone on today's kernel (the patch no longer applied). Where a Gluon
    # backward program's time goes at 8K: per-program %globaltimer stamps (benchmarks/experiments/
    # probe_bwd_phases.patch, applied here on the device's copy; offline its stamps-off SASS is byte-identical to
    # the committed kernel's, and with them on the one-vector causal form spills 0 B instead of 24+12): K/V wait,
    # first tile wait, tile loop, epilogue and the switch between programs on each SM, as shares of the SMs' time,
    # with the stamps' own cost. s14o put ~2.7 ms of sliding_window's 13.8 ms backward in the per-key-block part;
    # a persistent backward (s11k: -3% against the same code one program per item, but spilling) hides only the
    # switch gap and the K/V / first tile waits. Predicted: sliding_window and causal_document 8-12% of SM time
    # outside the tile loop, full ~1-2%.
    [[ -n $DRY ]] || git apply benchmarks/experiments/probe_bwd_phases.patch || exit 1
    run probe 300 probe.txt python3 benchmarks/experiments/probe_bwd_phases.py --seqlen 8192 --batch 16 \
        --masks sliding_window,causal_document,causal_blockwise,full
    ;;
s30b)
    # (Run in session 30, results/s30b_*: +2.7% / +1.2% / +3.4%, every key-block count per program slower; the
    # persistent grid is gone with the converter, so this step no longer runs; kept as the record.)
    # Prepared in session 30 (no device). The Gluon backward on a persistent grid (configs.GLUON_BACKWARD_PERSISTENT):
    # programs take key blocks in grid order from a counter (the forward's _work_items ring), up to
    # GLUON_BACKWARD_PERSISTENT_ITEMS (8) each, so that SMs still free up for the side passes of the backward in
    # pieces; the consumers release K / V after their last tile and store dK / dV one after the other through their
    # dQ staging buffer, so the next key block's K / V load under that epilogue and its first Q / dO tiles under the
    # last tiles. Sessions 11 and 14 lost 2-4% (per-item values reloaded every tile); here the producer hands each
    # tile's query block through the stage and the tile loops reload 0-2 values (offline, sm_90; compile test).
    # Predicted (s11k's -3% for the overlap alone; s14o's ~2.7 ms per-key-block part at 8K), back to back: backward
    # -1% to -3% on sliding_window and causal_document, full within +-1%; 4 / 16 / unlimited items per program within
    # 1% of 8 on sliding_window, unlimited worse if the side passes starve. gpu_check first (D=128, launch checks).
    pers=(--set GLUON_BACKWARD_PERSISTENT=True)
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${pers[@]}" --out "$OUT/gpu_check_d128.json"
    run ab_persistent_loop 150 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_PERSISTENT False,True \
        --pass bwd --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    run ab_items_loop 120 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_PERSISTENT_ITEMS 8,4,16,0 \
        "${pers[@]}" --pass bwd --masks sliding_window,causal_document --loop 1.0 --reps 3
    run gpu_check_d64 100 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D= 64" "${pers[@]}" --out "$OUT/gpu_check_d64.json"
    ;;
s30d)
    # (Run in session 30, results/s30d_*: +1.2% / +2.8% / +0.4%; its patch is gone, so this step no longer runs.)
    # Session 30: the probe (s30a) put sliding_window's K/V wait at 4.3% of the SMs' time (2.1 us per program before
    # the first tile). Here V gets its own barrier and is requested after the first tile's Q / dO, so the first
    # S^T = K Q^T waits for K and Q only (benchmarks/experiments/s30d_split_kv_wait.patch, applied on the device's
    # copy; offline: +5 instructions per tile, no tile-loop reloads). Predicted: -0.5% to -1% on sliding_window and
    # causal_document back to back, full level. gpu_check D=128 with launch checks, then the A/B against the
    # committed kernels.
    base_and_patch s30d_split_kv_wait
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" --out "$OUT/gpu_check_d128.json"
    run ab_base_loop 200 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --pass bwd \
        --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    ;;
s30e)
    # (Run in session 30 on an H200, the H100 not starting, results/s30e_*: +35.8% / +14.0% / +4.0%; gpu_check
    # 26/26. Its patch is gone, so this step no longer runs; kept as the record.)
    # Session 30. s30b's persistent grid lost ~1.3% per tile on full (its item came from shared memory, so every
    # per-item value sat in vector registers) and ~2% per key block on sliding_window (the claim's atomic and ring).
    # Here each program takes the key blocks program_id * K .. + K - 1 in order (K = GLUON_BACKWARD_PERSISTENT_ITEMS;
    # uniform values, no atomic, no ring; benchmarks/experiments/s30e_persistent_static_items.patch, which also
    # restores the converter code, off). Offline: no tile-loop reloads on any form (2 on full before), the unmasked
    # tile's path +3 instructions over the default. Predicted: -0.5% to -2% on sliding_window and causal_document
    # back to back, full level; K = 2-8 within 1% of each other. gpu_check D=128 with it on, then the A/Bs.
    [[ -n $DRY ]] || git apply benchmarks/experiments/s30e_persistent_static_items.patch || exit 1
    pers=(--set GLUON_BACKWARD_PERSISTENT=True)
    run gpu_check_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" "${pers[@]}" --out "$OUT/gpu_check_d128.json"
    run ab_persistent_loop 200 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_PERSISTENT False,True \
        --set GLUON_BACKWARD_PERSISTENT_ITEMS=4 --pass bwd --masks sliding_window,causal_document,full --loop 1.0 \
        --reps 3
    run ab_items_loop 150 ab.txt python3 benchmarks/ab_setting.py GLUON_BACKWARD_PERSISTENT_ITEMS 4,2,8 \
        "${pers[@]}" --pass bwd --masks sliding_window,causal_document --loop 1.0 --reps 3
    ;;
s31a)
    # Session 31: the Gluon forward's partial tiles load their key block (a list entry) and then their mask limits
    # (32 LTS per thread) only after the tile's scores are waited for: two dependent L2 round trips while both
    # warpgroups (which reach an item's partial tiles together) leave the tensor cores idle. At 8K sliding_window a
    # tile costs ~28% more than on full (2.33 against 1.82 us per SM back to back), 2 of ~9 tiles per item partial.
    # GLUON_FORWARD_EARLY_MASK 1 / 2 issue the key block / both before the scores' wait (unmasked and partial
    # tiles in two loops; offline: no tile-loop reloads, 24-48 B of spills outside them). Predicted: -2% to -5%
    # forward on sliding_window and causal_document back to back, 2 ahead of 1, full level. Then the bound (the
    # element mask and its loads gone, wrong results: benchmarks/experiments/s31a_fwd_no_element_mask.patch) against
    # the committed path. GLUON_FORWARD_RING_LISTS: the producer hands each item's query block and list counts to
    # the consumers in the item ring, so that they do not load them (two dependent L2 loads per item while both
    # warpgroups' tensor work waits); predicted -1% to -3% forward on sliding_window, less on causal_document,
    # ~0 on full (64 tiles per item). Then the whole gpu_check (D=128 and D=64) with both on.
    # (Device starts failed eight times in session 31, so the step runs the A/Bs first, each short; EARLY_MASK=1
    # and the bound go last, run if the budget allows.)
    run ab_early_loop 120 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_EARLY_MASK 0,2 --pass fwd \
        --masks sliding_window,causal_document --loop 1.0 --reps 3
    run ab_ring_loop 120 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_RING_LISTS False,True --pass fwd \
        --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    run gpu_check_early 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --only "D=128" --set GLUON_FORWARD_EARLY_MASK=2 --set GLUON_FORWARD_RING_LISTS=True \
        --out "$OUT/gpu_check_d128.json"
    run ab_early1_loop 90 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_EARLY_MASK 1,2 --pass fwd \
        --masks sliding_window --loop 1.0 --reps 3
    base_and_patch s31a_fwd_no_element_mask
    run ab_bound_loop 90 ab.txt python3 benchmarks/ab_setting.py --base benchmarks/_base --pass fwd \
        --masks sliding_window --loop 1.0 --reps 3
    ;;
s31m)
    # Session 31, s31a cut to what ~200 s of device time allow (ten device starts failed): the two A/Bs on
    # sliding_window, back to back, then causal_document's.
    run ab_early_sw 100 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_EARLY_MASK 0,2 --pass fwd \
        --masks sliding_window --loop 1.0 --reps 3
    run ab_ring_sw 70 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_RING_LISTS False,True --pass fwd \
        --masks sliding_window --loop 1.0 --reps 3
    run ab_both_cd 70 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_EARLY_MASK 0,2 --pass fwd \
        --masks causal_document --loop 1.0 --reps 3 --set GLUON_FORWARD_RING_LISTS=True
    ;;
s31p)
    # Session 31: where the persistent Gluon forward's time goes, per work item (benchmarks/experiments/
    # probe_fwd_phases.patch + .py; ~30 s per mask and setting): item start (its lists, Q, the first scores), the
    # tile loop (with a fit of its time per unmasked and per partial tile), the tail (last P V, output), and the
    # gap between items; the committed path, then with both of s31a's switches on. Predicted on sliding_window:
    # partial tiles ~0.5-1 us dearer than unmasked ones, item start + tail + gap 10-20% of the SMs' time.
    [[ -n $DRY ]] || git apply benchmarks/experiments/probe_fwd_phases.patch || exit 1
    run probe_fwd 120 probe.txt python3 benchmarks/experiments/probe_fwd_phases.py \
        --masks sliding_window,causal_document,full
    run probe_fwd_switches 100 probe.txt python3 benchmarks/experiments/probe_fwd_phases.py \
        --masks sliding_window,causal_document --set GLUON_FORWARD_RING_LISTS=True --set GLUON_FORWARD_EARLY_MASK=2
    ;;
s31b)
    # Session 31, after s31a: the 8K sliding_window row (D=128) three times against Flex on the tree's defaults
    # (each a whole benchmark run, ours and Flex timed alone by the timer), as session 27's four runs were taken.
    for i in 1 2 3; do
        run "sw_8k_$i" 150 bench.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 \
            --masks sliding_window --peers flex --out "$OUT/sw_8k_$i"
    done
    ;;
s32a)
    # Session 32, one call for what s31m + s31b would take two machine starts for: the two forward switches A/B'd
    # back to back on sliding_window (8K, D=128); each that reads under 0.995x is kept (rule fixed before the
    # run), and if any is: the 8K sliding_window row against Flex with those switches on, then gpu_check D=128
    # with them on (correctness before any default changes).
    run ab_early_sw 100 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_EARLY_MASK 0,2 --pass fwd \
        --masks sliding_window --loop 1.0 --reps 3
    run ab_ring_sw 70 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_RING_LISTS False,True --pass fwd \
        --masks sliding_window --loop 1.0 --reps 3
    keep=()
    ratio() { grep -so "^sliding_window $1: [0-9.]* ms ([0-9.]*x)" "$OUT/ab.txt" | tail -1 | sed 's/.*(\(.*\)x)/\1/'; }
    for setting in GLUON_FORWARD_EARLY_MASK=2 GLUON_FORWARD_RING_LISTS=True; do
        r=$(ratio "$setting")
        echo "$(now) $setting: ${r:-no result}x" | tee -a "$STEPS"
        [[ -n $r ]] && python3 -c "import sys; sys.exit(0 if float('$r') < 0.995 else 1)" && keep+=(--set "$setting")
    done
    if ((${#keep[@]})); then
        run sw_8k_switches 150 bench.log python3 benchmarks/bench_with.py "${keep[@]}" -- bench "${BENCH_DRY[@]}" \
            --part kernel --seqlens 8K --head-dims 128 --masks sliding_window --peers flex --out "$OUT/sw_8k_switches"
        run gpu_check_switches 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py \
            --workers 8 --only D=128 "${keep[@]}" --out "$OUT/gpu_check_switches.json"
    fi
    ;;
s33a)
    # Session 33: the Gluon forward's output in 16-byte row pieces (configs.GLUON_FORWARD_ROW_STORES; two in-warp
    # shuffle conversions, 8 STG.128 per thread instead of 32 STG.32). s31p put the tail (last P V, output, LSE) at
    # 17% of the SM time on sliding_window (3.4 us per item). Predicted, forward back to back: sliding_window and
    # causal_document -1.5% to -4%, full -0% to -1%. Then gpu_check D=128 with it on; on an H100, if sliding_window
    # reads under 0.995x (rule fixed before the run), the 8K sliding_window row against Flex with it on; gpu_check
    # D=64; last (it patches the kernel) s31p's phase probe with it on.
    run ab_row_stores 150 ab.txt python3 benchmarks/ab_setting.py GLUON_FORWARD_ROW_STORES False,True --pass fwd \
        --masks sliding_window,causal_document,full --loop 1.0 --reps 3
    run gpu_check_row_d128 150 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py \
        --workers 8 --only D=128 --set GLUON_FORWARD_ROW_STORES=True --out "$OUT/gpu_check_row_d128.json"
    r=$(grep -so "^sliding_window GLUON_FORWARD_ROW_STORES=True: [0-9.]* ms ([0-9.]*x)" "$OUT/ab.txt" | tail -1 |
        sed 's/.*(\(.*\)x)/\1/')
    echo "$(now) GLUON_FORWARD_ROW_STORES=True on sliding_window: ${r:-no result}x" | tee -a "$STEPS"
    if [[ -n $r ]] && python3 -c "import sys; sys.exit(0 if float('$r') < 0.995 else 1)" &&
        nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H100; then
        run sw_8k_row_stores 150 bench.log python3 benchmarks/bench_with.py --set GLUON_FORWARD_ROW_STORES=True -- \
            bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 128 --masks sliding_window --peers flex \
            --out "$OUT/sw_8k_row_stores"
    fi
    run gpu_check_row_d64 100 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py \
        --workers 8 --only D=64 --set GLUON_FORWARD_ROW_STORES=True --out "$OUT/gpu_check_row_d64.json"
    [[ -n $DRY ]] || git apply benchmarks/experiments/probe_fwd_phases.patch || exit 1
    run probe_fwd_row_stores 80 probe.txt python3 benchmarks/experiments/probe_fwd_phases.py \
        --masks sliding_window,causal_document --set GLUON_FORWARD_ROW_STORES=True
    ;;
s33b)
    # Session 33, after the forward's output went to 16-byte row stores (commit ed0a021): memcheck over both Gluon
    # head dims' sanitize.py cases (the change moves values by shuffles and stores each row's 16-byte pieces,
    # masked by row as before; no shared memory), then the whole gpu_check matrix (last run whole in s27b), then
    # the 8K table at D=128 (every mask, every peer) on the current kernels, and D=64's three masks nearest the
    # change (its forward was not timed with the row stores; the tables since session 25 are the comparison).
    san=(env PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --error-exitcode 1 --tool memcheck)
    run memcheck_d128 100 memcheck.txt "${san[@]}" python3 benchmarks/sanitize.py --head-dim 128
    run memcheck_d64 90 memcheck.txt "${san[@]}" python3 benchmarks/sanitize.py --head-dim 64
    run gpu_check_all 200 gpu_check.log env FLASHMASK_CHECK_LAUNCH=1 python3 benchmarks/gpu_check.py --workers 8 \
        --out "$OUT/gpu_check_all.json"
    run k64_8k_3 200 bench.log "${FM[@]}" bench "${BENCH_DRY[@]}" --part kernel --seqlens 8K --head-dims 64 \
        --masks sliding_window,causal_document,full --peers flex --out "$OUT/k64_8k_3"
    table_8k
    ;;
*)
    echo "unknown step $STEP (call1, call2, call3, s3a-s33b; see each step's comment)" >&2
    exit 2
    ;;
esac
cleanup
