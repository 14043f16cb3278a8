#!/usr/bin/env bash
# The part-B runs that need a GPU, in one go: the flow edition's four shipped runs, the constant-learning-rate sweep of
# B 2.6 ("get rid of the scheduler"), the two beyond-the-spec time-conditioned runs (DDPM and flow: "a better
# time-conditioned UNet"), then the calibrated judge, which ships the best constant-lr run. For one device call of
# at most 8 minutes (TRAIN_SECONDS of training, default 330, then a minute or two of judging):
#
#   mkdir -p .gpu/mnist-raw && cp ../shared/data/MNIST/raw/*.gz .gpu/mnist-raw/    # here, once (.gpu is gitignored)
#   bash scripts/train_gpu.sh .gpu/mnist-raw      # on the device machine, carrying .gpu
#
# The runs, in this order, all scripts/train_models.py with seed 0 in fp32 (the notebook's float32; cuDNN's convolutions
# use TF32 by default), dealt round-robin to LANES processes side by side (default 4; 1 runs them one after another):
#   flow_class, flow_class_constant_lr (lr 3.5e-3), flow_time, pure_noise, then the sweep's other rates (SWEEP_LRS,
#   default "1e-3 2e-3 5e-3"), each into data/sweep/lr-<rate>/, then time_beyond_spec and flow_time_beyond_spec (bf16)
# With 4 lanes: lane 1 flow_class, lr 1e-3, flow_time_beyond_spec; lane 2 the shipped constant-lr run then 2e-3; lane
# 3 flow_time then 5e-3; lane 4 pure_noise then time_beyond_spec. The spec's shipped runs go first, so a deadline that cuts the sweep leaves them whole: at
# TRAIN_SECONDS every run still going gets SIGTERM, saves its state and stops. scripts/judge_runs.py then judges
# every finished run and copies the best constant-lr one over data/models/flow_class_constant_lr.
# Into $OUT (default data/flow_gpu; at most 8 files): the six shipped files, train.log (every lane's output, then the
# judge's) and judge.json. Copy the .safetensors into data/models here; if the picked lr is not
# lib.train.training.FLOW_CONSTANT_LR, set that to it (tests/test_shipped_flow_models.py checks that they agree).
#
# ONLY="NAME …" trains just those shipped runs (e.g. ONLY=time_beyond_spec TRAIN_SECONDS=400: the one run still missing
# from data/models, alone on the GPU, with the whole call's time).
#
# Dry run on a CPU (minutes): DEVICE=cpu EXTRA_ARGS="--steps-per-epoch 1 --sample-stride 50 --threads 1"
#   JUDGE_ARGS="--samples 2 --stride 50 --judge-digits 20000 --judge-epochs 1" bash scripts/train_gpu.sh RAW
set -uo pipefail
cd "$(dirname "$0")/.."
raw=${1:?usage: bash scripts/train_gpu.sh MNIST_RAW_FOLDER}
out=${OUT:-data/flow_gpu}
device=${DEVICE:-cuda}
lanes=${LANES:-4}
read -r -a extra <<< "${EXTRA_ARGS:-}"
read -r -a judge_args <<< "${JUDGE_ARGS:-}"
logs=$(mktemp -d)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
[ "$device" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

# MNIST imported and unpacked once, before the parallel runs (which would race on it); never the offline fallback
python3 - "$raw" <<'PY' || exit 1
import sys
sys.path.insert(0, ".")
from lib.train.data import import_raw_files, load_mnist, mnist_root
import_raw_files(sys.argv[1], mnist_root())
for train in (True, False):
    digits = load_mnist(train, download=False)
    assert digits.source == "mnist", digits.note
    print(digits.note)
PY

runs=("--model flow_class" "--model flow_class_constant_lr" "--model flow_time" "--model pure_noise")
for lr in ${SWEEP_LRS:-1e-3 2e-3 5e-3}; do
  runs+=("--model flow_class_constant_lr --lr $lr --out data/sweep/lr-$lr")
done
# beyond the spec, in bf16 (what they show is the recipe, not the notebook's float32)
runs+=("--model time_beyond_spec --precision bf16" "--model flow_time_beyond_spec --precision bf16")
if [ -n "${ONLY:-}" ]; then  # just the shipped runs named (the sweep's runs write elsewhere and are never kept)
  kept=()
  for r in "${runs[@]}"; do
    read -r -a args <<< "$r"
    [[ " $ONLY " == *" ${args[1]} "* && "$r" != *--out* ]] && kept+=("$r")
  done
  runs=("${kept[@]}")
  [ ${#runs[@]} -gt 0 ] || { echo "ONLY=$ONLY names none of the shipped runs" >&2; exit 2; }
fi
deadline=$((SECONDS + ${TRAIN_SECONDS:-330}))
run() {  # run LOG ARGS…: one scripts/train_models.py run, stopped (its state saved) at the deadline
  local log=$1 left=$((deadline - SECONDS)); shift
  if [ "$left" -le 5 ]; then echo "### not started (deadline): $*" >> "$log"; return; fi
  echo "### start at $SECONDS s: $*" >> "$log"
  timeout -s TERM --kill-after=20 "$left" python3 scripts/train_models.py --device "$device" --precision fp32 \
    "${extra[@]}" "$@" >> "$log" 2>&1
  echo "### exit $? at $SECONDS s: $*" >> "$log"
}
for ((lane = 0; lane < lanes; lane++)); do
  (for ((i = lane; i < ${#runs[@]}; i += lanes)); do
     read -r -a args <<< "${runs[i]}"
     run "$logs/$lane.log" "${args[@]}"
   done) &
done
wait
cat "$logs"/*.log > "$out/train.log"
grep -h "^saved \|^### " "$out/train.log"

timeout 180 python3 scripts/judge_runs.py --models data/models --sweep data/sweep --pick \
  --report "$out/judge.json" --device "$device" "${judge_args[@]}" 2>&1 | tee -a "$out/train.log"
for name in pure_noise flow_time flow_class flow_class_constant_lr time_beyond_spec flow_time_beyond_spec; do
  [ -f "data/models/$name.safetensors" ] && cp "data/models/$name.safetensors" "$out/"
done
ls -l "$out"
echo "### done at $SECONDS s"
