"""colcon (ament_python) build of the ROS 2 package `real`.

This folder is also the Python package `real` of toto-robot, so `package_dir` maps the package
onto the folder itself. Paths are relative to this folder (colcon and pip run setup.py from
here). The node executables come from entry_points.py, the one list a test checks the launch
file against. Learning code (policies, encoder, sim.robots kinematics) comes from the toto-robot
install. `colcon build --symlink-install` is not supported: colcon symlinks each package_dir
entry into the build folder, and "." is that folder itself (plain `colcon build` takes ~3 s).
"""
import os
import runpy
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "real"
HERE = os.path.dirname(os.path.abspath(__file__))
NODES = runpy.run_path(os.path.join(HERE, "entry_points.py"))["NODES"]

setup(
    name=PACKAGE,
    version="0.1.0",
    package_dir={PACKAGE: "."},
    packages=[PACKAGE] + [f"{PACKAGE}.{p}" for p in find_packages(".", exclude=["test", "test.*"])],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", sorted(glob("launch/*.launch.py"))),
        (f"share/{PACKAGE}/params", sorted(glob("params/*.yaml"))),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="toto-robot",
    maintainer_email="toto-robot@example.com",
    description="Franka cube picking with a frozen Toto encoder over ROS 2 (franky)",
    license="MIT",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in NODES.items()]},
)
