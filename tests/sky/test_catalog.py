"""What `agri sky import` collects from a path: items, item folders, plain GeoTIFFs, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sky.catalog import collect
from sky.errors import InputError
from sky.items import scene_from_item
from tests.sky.synth import s2_scene, write_tif


def test_a_folder_of_item_folders(tmp_path: Path) -> None:
    s2_scene(tmp_path / "scenes", "S2_A", size10=64)
    s2_scene(tmp_path / "scenes", "S2_B", size10=64, baseline="03.01")
    got = collect(
        str(tmp_path / "scenes"), home=tmp_path, profile=None, bands=None, when=None, processing_baseline=None
    )
    assert sorted(i.id for i, _ in got) == ["S2_A", "S2_B"]  # their GeoTIFFs are assets, not items
    offsets = {i.id: scene_from_item(i).s2_offset for i, _ in got}
    assert offsets == {"S2_A": True, "S2_B": False}


def test_plain_geotiffs_band_order_and_errors(tmp_path: Path) -> None:
    data = np.ones((4, 20, 20), dtype=np.uint16)
    (tmp_path / "tifs").mkdir()
    write_tif(tmp_path / "tifs" / "dji.tif", data, 0.05, tags={"TIFFTAG_DATETIME": "2026:06:03 10:20:00"})
    got = collect(
        str(tmp_path / "tifs"),
        home=tmp_path,
        profile="dji-ms",
        bands=None,
        when=None,
        processing_baseline=None,
    )
    ((item, href),) = got
    assert Path(href) == tmp_path / "sky" / "items" / "dji.json" and Path(href).exists()
    scene = scene_from_item(item)
    assert sorted(scene.bands) == ["green", "nir", "red", "rededge"] and scene.bands["nir"].band == 4
    with pytest.raises(InputError, match="has 4 band\\(s\\) but profile/bands give 5"):
        collect(str(tmp_path / "tifs"), home=tmp_path, profile="drone-ms", bands=None, when=None,
                processing_baseline=None)  # fmt: skip
    with pytest.raises(InputError, match="unknown profile 'nope'"):
        collect(
            str(tmp_path / "tifs"),
            home=tmp_path,
            profile="nope",
            bands=None,
            when=None,
            processing_baseline=None,
        )
    write_tif(tmp_path / "notime.tif", data, 0.05)
    with pytest.raises(InputError, match=r"no acquisition time .* give --datetime"):
        collect(str(tmp_path / "notime.tif"), home=tmp_path, profile="dji-ms", bands=None, when=None,
                processing_baseline=None)  # fmt: skip
    with pytest.raises(InputError, match="no such file"):
        collect(str(tmp_path / "missing.json"), home=tmp_path, profile=None, bands=None, when=None,
                processing_baseline=None)  # fmt: skip
