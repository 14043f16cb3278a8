#!/usr/bin/env bash
# Run HERE (a machine with pip access), before bench/gpu_check.sh runs on a GPU machine that can reach nothing:
# downloads the wheels the GPU machine lacks (its image has torch, transformers 5.17, safetensors, sentencepiece,
# accelerate; not diffusers, nor this project's pinned transformers / huggingface-hub and their new needs) for
# CPython 3.12 into .whl/, and copies the canonical raw MNIST files into .gpu/mnist-raw/. Both folders are gitignored;
# the device call carries them (64 MiB together at most: this is ≈ 25 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
pin() { python3 -m pip show "$1" 2>/dev/null | awk '/^Version:/ {print $2}'; }
rm -rf .whl && mkdir -p .whl
for name in diffusers transformers huggingface-hub tokenizers httpx2 httpcore2 truststore hf-xet importlib_metadata \
            lazy-importer; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
    -d .whl "$name==$(pin "$name")"
done
mkdir -p .gpu/mnist-raw
cp ../shared/data/MNIST/raw/*.gz .gpu/mnist-raw/
du -sh .whl .gpu
