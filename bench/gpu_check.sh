#!/usr/bin/env bash
# GPU check: one command for a machine with a CUDA GPU and no internet. From the repository root it
#   1. data                 counts the paintings and photos it was given
#   2. install              makes a virtualenv over the machine's own torch, installs the wheels the
#                           machine lacks (from the wheels folder) and painter (editable), prints versions
#   3. tests                pytest -m cuda (junit XML and log)
#   4. train_throughput     bench/train_throughput.py: DCGAN at 64 and 256 px against the tutorial's loop
#   5. cyclegan_throughput  bench/cyclegan_throughput.py: against the reference loop, with MFU
#   6. score_throughput     bench/score_throughput.py: 10,000 images generated and scored
#   7. ray_sweep            painter sweep --backend ray: two CUT trials side by side on the GPU, ranked
#                           (needs Ray Tune: its wheel, bench/wheels-ray/, travels on its own; without
#                           it the phase is "unavailable" and the others still count)
#   8. cut                  configs/cut.toml at 256 px, trained for the time left, generated and scored
# Each phase has its own timeout; a phase that fails or times out is recorded and the next one runs.
# Everything lands in the output folder: <phase>.log, the benchmarks' JSON, tests.xml, cut/ (grids,
# scores), ray_sweep/ (the sweep's report), summary.json (every phase with its status, seconds and
# headline number) and gpu_check.log (what was printed, ending in a table). About 8 minutes on one
# H100/H200 (--budget, seconds).
#
# Usage: bench/gpu_check.sh [--out DIR] [--wheels DIR] [--data DIR] [--budget S] [--pack] [--dry-run]
#   --out DIR     output folder, new or empty (env GPU_CHECK_OUT; default $OUT when set)
#   --wheels DIR  wheels made by bench/fetch_wheels.sh (env GPU_CHECK_WHEELS; default bench/wheels), and
#                 those of DIR-ray/ beside it (Ray's); only those whose package the machine lacks are
#                 installed; torch & co. never are
#   --data DIR    monet_jpg/ and photo_jpg/ (env GPU_CHECK_DATA; default bench/data when it exists,
#                 the small copy `bench/fetch_wheels.sh --data-copy N` makes, else ../shared/data)
#   --budget S    seconds for everything (env GPU_CHECK_BUDGET; default 470, dry run 420)
#   --pack        leave only summary.json, gpu_check.log and gpu_check.tar.gz (all the rest) in the
#                 output folder, for transports that bring back few files (env GPU_CHECK_PACK=1)
#   --dry-run     every phase on the CPU at tiny sizes, so that the script cannot rot between GPU
#                 runs (env GPU_CHECK_DRY_RUN=1; tests/test_gpu_check.py runs it); without --data it
#                 paints a tiny data set
# env: PYTHON (default python3: the machine's Python, the one that has torch), PAINTER_INCEPTION_WEIGHTS
#      (a local Inception weights file: then FID/KID are scored too; without it, SWD only, since
#      there is nothing to download from), GPU_CHECK_KEEP=1 (keep the scratch folder: venv, workdir).

set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$REPO/bench/gpu_check.sh"
TOOLS="$REPO/bench/gpu_check_tools.py"
PHASES=(data install tests train_throughput cyclegan_throughput score_throughput ray_sweep cut)
UNAVAILABLE=3  # a phase's exit code when what it needs is not installed: recorded, not a failure

now_s() { date +%s; }

# Record a phase's command in its log and in the summary, then run it.
run_cmd() {
    printf '%q ' "$@" >>"$STATE/$PHASE.cmd"
    printf '\n' >>"$STATE/$PHASE.cmd"
    echo "+ $*"
    "$@"
}

# ---------------------------------------------------------------------------------------------
# the phases; each runs as `gpu_check.sh --phase NAME` under `timeout`, with the settings exported

phase_data() {
    if [[ $MAKE_TINY_DATA == 1 ]]; then
        run_cmd "$PYTHON" "$TOOLS" tiny-data "$DATA" || return
    fi
    run_cmd "$PYTHON" "$TOOLS" data-info "$DATA" "$OUT_DIR/data.json"
}

phase_install() {
    run_cmd "$PYTHON" -m venv --system-site-packages --without-pip "$VENV" || return
    # The machine's Python may itself be a virtualenv (the GPU image's is): --system-site-packages then
    # reaches its base interpreter's packages, not its own. So the new environment adds every site
    # folder the machine's Python sees, after its own: torch & co. come from the machine, untouched,
    # and what is installed here (into the new environment only) comes first.
    local site
    site=$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') || return
    "$PYTHON" - "$site/_machine_site.pth" <<'EOF' || return
import sys
dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
with open(sys.argv[1], "w") as fh:
    fh.write("import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")
print("machine site folders:", ", ".join(dirs))
EOF
    "$VPY" "$TOOLS" pick-wheels "$OUT_DIR/install.wheels.json" "$WHEELS" "$WHEELS-ray" >"$STATE/wheels.txt" || return
    local -a wheels
    mapfile -t wheels <"$STATE/wheels.txt"
    local -a pip=("$VPY" -m pip install --no-index --no-deps --no-build-isolation --disable-pip-version-check)
    if ((${#wheels[@]})); then
        run_cmd "${pip[@]}" "${wheels[@]}" || return
    fi
    run_cmd "${pip[@]}" -e "$REPO" || return
    # bench/score_throughput.py runs torch-fidelity's `fidelity` command from beside its Python; when the
    # machine, not a wheel, provides torch-fidelity, that command lives elsewhere, so make one here.
    if [[ ! -x $VENV/bin/fidelity ]]; then
        printf '#!%s\nimport sys\nfrom torch_fidelity.fidelity import main\nsys.exit(main())\n' "$VPY" \
            >"$VENV/bin/fidelity" && chmod +x "$VENV/bin/fidelity" || return
    fi
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    run_cmd "$VPY" "$TOOLS" env-report "$VENV" "$OUT_DIR/install.json"
}

phase_tests() {
    # A test module that fails to import (someone's work in progress) must not keep the others from running.
    # shellcheck disable=SC2086  # CUDA_TEST_PATHS is a list of paths
    run_cmd "$VPY" -m pytest -m cuda $CUDA_TEST_PATHS -q -rs -p no:cacheprovider --continue-on-collection-errors \
        --junitxml="$OUT_DIR/tests.xml" -o junit_family=xunit2
}

phase_train_throughput() {
    local -a size=(--device cuda --resolutions 64 256 --steps-64 300 --steps-256 100)  # batch 64, 64 channels
    [[ $DRY == 1 ]] && size=(--device cpu --resolutions 64 --steps-64 3 --batch 4 --channels 4)
    run_cmd "$VPY" "$REPO/bench/train_throughput.py" "${size[@]}" --data "$DATA" \
        --out "$OUT_DIR/train_throughput.json"
}

phase_cyclegan_throughput() {
    local -a size=(--device cuda --steps 120)  # the GPU defaults otherwise: 256 px crops, 64 channels, 9 blocks
    [[ $DRY == 1 ]] && size=(--device cpu --steps 3 --crop 32 --channels 4 --blocks 1)
    run_cmd "$VPY" "$REPO/bench/cyclegan_throughput.py" "${size[@]}" --data "$DATA" \
        --out "$OUT_DIR/cyclegan_throughput.json"
}

phase_score_throughput() {
    local -a size=(--device cuda --count 10000 --score-count 10000)
    [[ $DRY == 1 ]] && size=(--device cpu --count 4 --score-count 4)
    [[ -n ${PAINTER_INCEPTION_WEIGHTS:-} ]] && size+=(--inception-weights "$PAINTER_INCEPTION_WEIGHTS")
    run_cmd "$VPY" "$REPO/bench/score_throughput.py" "${size[@]}" --data "$DATA" \
        --out "$OUT_DIR/score_throughput.json"
}

phase_ray_sweep() {
    if ! "$VPY" -c "import ray.tune" 2>/dev/null; then
        echo "ray_sweep: Ray Tune is not installed: carry bench/wheels-ray/ (bench/fetch_wheels.sh makes it)"
        return $UNAVAILABLE
    fi
    # Two CUT trials (PatchNCE weight 1 and 2) under Ray Tune, each on half the GPU, for one minute of
    # training; translating and scoring 500 photos each; the sweep's report lands in the output folder.
    local minutes=1 count=500
    local -a backend=(--backend ray --gpus-per-trial 0.5 --cpus-per-trial 4)
    local -a set=('"train.eval_every" = 200')
    if [[ $DRY == 1 ]]; then
        # Ray's workers take minutes to start beside four other phases on two cores: the dry run checks
        # this phase's spec, report and headline with the local backend (tests/test_sweep_ray.py: Ray's).
        minutes=0.05 count=16 backend=(--backend local)
        set=('"data.resolution" = 32' '"model.g_channels" = 4' '"model.d_channels" = 4' '"cut.blocks" = 1'
             '"cut.crop" = 32' '"cut.num_patches" = 16' '"cut.nce_features" = 8' '"train.eval_images" = 16'
             '"train.eval_every" = 5')
    fi
    [[ -n ${PAINTER_INCEPTION_WEIGHTS:-} ]] || set+=('"score.inception" = false')
    local spec=$SCRATCH/ray-spec.toml
    {
        printf '[sweep]\npresets = ["cut"]\nbudget = { minutes = %s }\nname = "gpu-check"\n' "$minutes"
        printf '[grid]\n"cut.lambda_nce" = [1.0, 2.0]\n[set]\n"data.source" = "%s"\n"run.device" = "%s"\n' \
            "$DATA" "$DEVICE"
        printf '"generate.count" = %s\n"score.max_images" = %s\n' "$count" "$count"
        printf '%s\n' "${set[@]}"
    } >"$spec"
    cat "$spec"
    run_cmd "$VPY" -m pipeline sweep "${backend[@]}" --spec "$spec" --workdir "$SCRATCH/ray-work" \
        --report "$OUT_DIR/ray_sweep"
}

phase_cut() {
    local work="$SCRATCH/cut-work" run=gpu-check-cut
    local -a args=(--config "$REPO/configs/cut.toml" --source "$DATA" --workdir "$work"
                   --set "run.name=$run" --set "run.device=$DEVICE")
    # Seconds kept after training (its start-up and last evaluation, translating every photo, scoring),
    # the least worth training, and the most (the dry run only checks that it works).
    local after=60 least=20 most=100000
    if [[ $DRY == 1 ]]; then
        args+=(--set data.resolution=32 --set model.g_channels=4 --set model.d_channels=4 --set cut.blocks=1
               --set cut.crop=32 --set cut.num_patches=16 --set cut.nce_features=8 --set train.eval_images=16
               --set train.log_every=5)
        after=25 least=2 most=3
    fi
    # Offline, torch-fidelity has no Inception weights to download: SWD only, unless a file is given.
    [[ -n ${PAINTER_INCEPTION_WEIGHTS:-} ]] || args+=(--set score.inception=false)
    run_cmd "$VPY" -m pipeline run "${args[@]}" --until prepare || return

    local left=$((PHASE_DEADLINE - $(now_s) - after))
    if ((left < least)); then
        echo "cut: only ${left} s left to train (at least ${least} s wanted)"
        return 1
    fi
    local minutes
    minutes=$(awk -v s="$((left < most ? left : most))" 'BEGIN { printf "%.3f", s / 60 }')
    echo "cut: training for ${minutes} min (train.max_minutes), then translating and scoring"
    local status=0
    run_cmd "$VPY" -m pipeline run "${args[@]}" --set "train.max_minutes=$minutes" --until score || status=$?

    # What a reader wants back, whatever happened: the grids, the curves, the scores.
    local runs="$work/runs/$run" dest="$OUT_DIR/cut"
    mkdir -p "$dest"
    local pair
    for pair in train/summary.json:train_summary.json train/metrics.csv:metrics.csv train/samples.png:samples.png \
                train/losses.png:losses.png train/config.toml:config.toml train/best.json:best.json \
                score/score.json:score.json score/nearest.png:nearest.png; do
        [[ -f $runs/${pair%%:*} ]] && cp "$runs/${pair%%:*}" "$dest/${pair##*:}"
    done
    return $status
}

if [[ ${1:-} == --phase ]]; then
    PHASE=$2
    cd "$REPO" || exit 1
    "phase_$2"
    exit $?
fi

# ---------------------------------------------------------------------------------------------
# the driver

OUT_DIR=${GPU_CHECK_OUT:-${OUT:-}}
WHEELS=${GPU_CHECK_WHEELS:-$REPO/bench/wheels}
DATA=${GPU_CHECK_DATA:-}
BUDGET=${GPU_CHECK_BUDGET:-}
DRY=${GPU_CHECK_DRY_RUN:-0}
PACK=${GPU_CHECK_PACK:-0}
PYTHON=${PYTHON:-python3}
while (($#)); do
    case $1 in
        --out) OUT_DIR=$2; shift 2 ;;
        --wheels) WHEELS=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --pack) PACK=1; shift ;;
        --dry-run) DRY=1; shift ;;
        -h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$SELF"; exit 0 ;;
        *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z $OUT_DIR ]]; then
    echo "gpu_check: give the output folder: --out DIR (or set OUT)" >&2
    exit 2
fi
mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd) || exit 2
if [[ -n $(ls -A "$OUT_DIR") ]]; then
    echo "gpu_check: $OUT_DIR is not empty; results of two runs must not mix" >&2
    exit 2
fi

# Phase time caps (seconds) and what must stay for the CUT run at the end; the real timeout of each
# phase is its cap or the time left before the budget's end less that reserve, whichever is smaller.
# The benchmarks come first; the CUT run gets whatever they leave (at least the reserve).
if [[ $DRY == 1 ]]; then
    # Side by side on a busy 2-core machine a phase can take several times its idle time: the caps are
    # there to stop a hang, not to time anything.
    BUDGET=${BUDGET:-420}
    declare -A CAP=([data]=30 [install]=90 [tests]=240 [train_throughput]=240 [cyclegan_throughput]=240
                    [score_throughput]=240 [ray_sweep]=240)
    CUT_RESERVE=0 DEVICE=cpu CUDA_TEST_PATHS="tests/test_cuda.py"  # collecting all of tests/ costs 15 s on 2 cores
else
    BUDGET=${BUDGET:-470}
    declare -A CAP=([data]=30 [install]=120 [tests]=180 [train_throughput]=150 [cyclegan_throughput]=150
                    [score_throughput]=180 [ray_sweep]=180)
    CUT_RESERVE=100 DEVICE=cuda CUDA_TEST_PATHS="tests"  # CUT: prepare, 20 s of training, what follows
fi
END_RESERVE=10   # the summary and the packing
MIN_PHASE=5      # a phase that would get less is skipped

MAKE_TINY_DATA=0
if [[ -z $DATA ]]; then
    if [[ $DRY == 1 ]]; then
        MAKE_TINY_DATA=1
    elif [[ -d $REPO/bench/data/monet_jpg ]]; then
        DATA=$REPO/bench/data
    else
        DATA=$REPO/../shared/data
    fi
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || exit 2
[[ $MAKE_TINY_DATA == 1 ]] && DATA=$SCRATCH/data
DATA=$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")
STATE=$SCRATCH/state
VENV=$SCRATCH/venv
VPY=$VENV/bin/python
mkdir -p "$STATE" "$SCRATCH/tmp"
cleanup() { [[ ${GPU_CHECK_KEEP:-0} == 1 ]] || rm -rf "$SCRATCH"; }
trap cleanup EXIT
LOG=$OUT_DIR/gpu_check.log
say() { printf '%s\n' "$*" | tee -a "$LOG"; }

# The phases see these; TMPDIR keeps the benchmarks' and pytest's temporary folders in the scratch folder.
export REPO TOOLS OUT_DIR WHEELS DATA DRY PYTHON VENV VPY SCRATCH STATE DEVICE CUDA_TEST_PATHS MAKE_TINY_DATA
export TMPDIR=$SCRATCH/tmp PYTHONUNBUFFERED=1 MPLBACKEND=Agg

START=$(now_s)
DEADLINE=$((START + BUDGET))
say "gpu_check: $(date -u +%FT%TZ), $( ((DRY)) && echo 'DRY RUN on the CPU' || echo 'GPU run'), budget ${BUDGET} s"
say "  repo $REPO"
say "  data $DATA$( ((MAKE_TINY_DATA)) && echo ' (tiny, made now)')"
say "  wheels $WHEELS$([[ -d $WHEELS ]] || echo ' (missing: installing none)')"
say "  output $OUT_DIR"

run_phase() {
    local name=$1 cap=${CAP[$1]:-0} reserve=$CUT_RESERVE
    local now left timeout
    now=$(now_s)
    if [[ $name == cut ]]; then
        reserve=0 cap=$BUDGET
    fi
    left=$((DEADLINE - now - END_RESERVE - reserve))
    timeout=$((cap < left ? cap : left))
    if ((timeout < MIN_PHASE)); then
        say "== $name: skipped (${left} s left)"
        printf '%s\tskipped\t\t0\t\t\n' "$name" >>"$STATE/phases.tsv"
        return
    fi
    say "== $name (timeout ${timeout} s)"
    local t0=${EPOCHREALTIME/./} rc status
    PHASE_DEADLINE=$((now + timeout)) timeout -k 10 "$timeout" bash "$SELF" --phase "$name" \
        >"$OUT_DIR/$name.log" 2>&1
    rc=$?
    local seconds
    seconds=$(awk -v a="$t0" -v b="${EPOCHREALTIME/./}" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')
    case $rc in
        0) status=ok ;;
        "$UNAVAILABLE") status=unavailable ;;
        124 | 137) status=timeout ;;
        *) status=failed ;;
    esac
    local cmd=""
    [[ -f $STATE/$name.cmd ]] && cmd=$(paste -sd'|' "$STATE/$name.cmd")
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$seconds" "$timeout" "$cmd" >>"$STATE/phases.tsv"
    say "== $name: $status (exit $rc) in ${seconds} s: $("$PYTHON" "$TOOLS" key "$name" "$OUT_DIR")"
    if [[ $name == install ]]; then
        grep -E '^(python |torch from|GPU|PROBLEM|install: )' "$OUT_DIR/install.log" | tee -a "$LOG"
    fi
    if [[ $status != ok ]]; then
        say "-- last lines of $name.log:"
        tail -n 15 "$OUT_DIR/$name.log" | tee -a "$LOG"
    fi
}

if [[ $DRY == 1 ]]; then
    # The dry run checks that every phase works, not how fast: after the install the phases run side by
    # side, which roughly halves its time on two cores, each on one thread (five processes spinning
    # two threads each on two cores waste most of it). On a GPU they run one after the other.
    run_phase data
    run_phase install
    export OMP_NUM_THREADS=1
    for phase in score_throughput ray_sweep cut cyclegan_throughput train_throughput tests; do  # the longest first
        run_phase "$phase" &
    done
    wait
else
    for phase in "${PHASES[@]}"; do
        run_phase "$phase"
    done
fi

"$PYTHON" "$TOOLS" summary "$OUT_DIR" "$STATE/phases.tsv" "$BUDGET" "$DRY" "$(($(now_s) - START))" 2>&1 \
    | tee -a "$LOG"
ok=$(grep -cE $'\t(ok|unavailable)\t' "$STATE/phases.tsv")

if [[ $PACK == 1 ]]; then
    # Everything but the summary and the log goes into one archive.
    (cd "$OUT_DIR" && find . -mindepth 1 -maxdepth 1 ! -name summary.json ! -name gpu_check.log -printf '%P\n' \
        | tar -czf "$SCRATCH/gpu_check.tar.gz" -T - && find . -mindepth 1 -maxdepth 1 ! -name summary.json \
        ! -name gpu_check.log -exec rm -rf {} + && mv "$SCRATCH/gpu_check.tar.gz" .)
    say "packed into $OUT_DIR/gpu_check.tar.gz"
fi
[[ $ok == "${#PHASES[@]}" ]]
