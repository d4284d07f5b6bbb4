#!/usr/bin/env bash
# The main job on embedded defaults: install, then roll out the scripted experts on the four
# simulated tasks, writing MP4 videos and HDF5 demos to runs/quickstart and printing success rates.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OMP_WAIT_POLICY=PASSIVE
python sim/record.py task=all episodes=20 out=runs/quickstart "$@"
