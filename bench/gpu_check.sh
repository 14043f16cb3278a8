#!/usr/bin/env bash
# Every GPU check of the project in one command (≈ 9 minutes on an H100/H200), for a machine with a CUDA GPU:
#   1. the gpu-marked tests (fp16 IF prediction vs fp32, bf16 vs fp32 training and sampling, resumable training);
#   2. IF-I-XL at real size with random weights: loop overhead vs the bare batched UNet call and vs IFPipeline's own
#      loop (bench/deepfloyd_loop.py), peak GPU memory of stage I, T5 and stage II against lib.backends.if_memory's plan
#      (bench/deepfloyd_memory.py);
#   2b. PixNerd-XXL (the flow edition's part A) at real size with random weights: seconds per CFG Euler step at 512²
#      and peak GPU memory in fp32 and bf16 against lib.backends.pixnerd.memory's plan (bench/pixnerd_real_size.py);
#   3. part B on CUDA: the B3 grid (bench/sampling.py) and training throughput (bench/train_throughput.py);
#   4. the model server under 1, 4 and 16 sessions, batching on and off (bench/model_server.py), where Ray is installed.
# Every step has its own time limit; the whole log goes to $OUT (or bench/out), and the RESULT lines, dated, are
# appended to bench/RESULTS.md (§ 6) by bench/record_results.py.
#
# On the device machine (see bench/README.md): first `bash bench/gpu_prepare.sh` here, then run
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
#   && PYTHONPATH=/tmp/site bash bench/gpu_check.sh
# carrying .whl and .gpu; fetch $OUT/gpu_check.txt and run `python3 bench/record_results.py FILE` here if the
# device's copy of RESULTS.md does not come back.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out}
mkdir -p "$out"
log=$out/gpu_check.txt
: > "$log"
export PYTHONUNBUFFERED=1
[ -d .gpu/mnist-raw ] && export DIFFUSION_LAB_MNIST_RAW=$PWD/.gpu/mnist-raw

step() {  # step SECONDS COMMAND…: one check, its output into the log, never more than SECONDS
  local limit=$1; shift
  echo "### $*" | tee -a "$log"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$log"
  echo "### exit ${PIPESTATUS[0]}" | tee -a "$log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$log"
step 150 python3 -m pytest -m gpu -q -p no:cacheprovider tests/test_deepfloyd.py tests/test_precision.py tests/test_resume.py
step 120 python3 bench/deepfloyd_loop.py --device cuda --quick
step 90 python3 bench/deepfloyd_memory.py --device cuda
step 90 python3 bench/pixnerd_real_size.py --device cuda
step 60 python3 bench/sampling.py --device cuda --quick
step 60 python3 bench/train_throughput.py --device cuda --quick
if python3 -c "import ray.serve" 2>/dev/null; then  # the model server's load bench (computes on the GPU when there is one)
  step 150 python3 bench/model_server.py --sessions 1,4,16
else
  echo "### model server bench skipped: ray[serve] is not installed here (its wheel is over the device tool's carry limit)" | tee -a "$log"
fi
python3 bench/record_results.py "$log" | tee -a bench/RESULTS.md
cp bench/RESULTS.md "$out/RESULTS.md"
