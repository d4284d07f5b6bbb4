"""The task-grid script writes a 4 x 2 PNG whose every cell shows a rendered scene.

Why: the grid is the quickest visual check of cameras and scenes; a blank (black or uniform)
cell means a camera or the renderer broke, which pixel-free tests would not notice.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mujoco  # noqa: F401,E402  (a declared dependency: missing it must fail, not skip)

from sim.gl import RenderingUnavailable  # noqa: E402
from sim.make_task_grid import LABEL_PAD, cell_box, main, row_label_width  # noqa: E402
from sim.tasks import CAMERAS, TASKS  # noqa: E402

SIZE = 64
MIN_CELL_STD = 5.0  # uint8 pixel std; a blank or single-colour frame is ~0


def test_grid_png_has_four_rows_two_columns_of_non_blank_frames(tmp_path):
    out = tmp_path / "tasks.png"
    try:
        main(["--out", str(out), "--size", str(SIZE), "--steps", "3"])
    except RenderingUnavailable as error:
        pytest.skip(str(error))

    assert out.exists()
    image = np.asarray(Image.open(out).convert("RGB"))
    rows, cols = len(TASKS), len(CAMERAS)
    assert (rows, cols) == (4, 2)
    assert image.shape == (LABEL_PAD + rows * SIZE, row_label_width(SIZE) + cols * SIZE, 3)
    for row in range(rows):
        for col in range(cols):
            left, top, right, bottom = cell_box(row, col, SIZE)
            cell = image[top:bottom, left:right]
            assert cell.std() > MIN_CELL_STD, f"cell {list(TASKS)[row]}/{CAMERAS[col]} looks blank"
