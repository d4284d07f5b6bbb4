"""real/ is a colcon-buildable ament_python package named `real` (checked without colcon)."""
import configparser
import xml.etree.ElementTree as ET

from tests.real.package_files import REAL, setup_kwargs


def test_package_xml_is_format_3_named_real():
    root = ET.parse(REAL / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "real"
    assert root.findtext("export/build_type") == "ament_python"
    depends = {e.text for e in root.iter("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "std_srvs", "ament_index_python"} <= depends


def test_setup_maps_the_folder_onto_package_real(monkeypatch):
    kwargs = setup_kwargs(monkeypatch)
    assert kwargs["name"] == "real"
    assert kwargs["package_dir"] == {"real": "."}
    assert kwargs["packages"][0] == "real"
    assert all(p.startswith("real.") for p in kwargs["packages"][1:])


def test_setup_installs_launch_config_and_marker(monkeypatch):
    data = {dest: files for dest, files in setup_kwargs(monkeypatch)["data_files"]}
    assert data["share/ament_index/resource_index/packages"] == ["resource/real"]
    assert data["share/real"] == ["package.xml"]
    assert "launch/cube_pick.launch.py" in data["share/real/launch"]
    assert "params/cube_pick.yaml" in data["share/real/params"]
    for files in data.values():
        assert all((REAL / f).is_file() for f in files)
    assert (REAL / "resource/real").read_bytes() == b""  # the ament index marker is empty


def test_scripts_go_where_ros2_launch_looks():
    cfg = configparser.ConfigParser()
    cfg.read(REAL / "setup.cfg")
    assert cfg["develop"]["script_dir"] == "$base/lib/real"
    assert cfg["install"]["install_scripts"] == "$base/lib/real"
