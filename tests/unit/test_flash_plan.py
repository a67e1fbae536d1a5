"""agri.flash pure parts: build manifest and cache, plan/diff against device state, verification."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agri.flash.build import Artifact, Build, build_firmware, imported_modules
from agri.flash.config import parse_node_config
from agri.flash.errors import FlashError
from agri.flash.plan import DeviceFile, blocks_needed, diff, inspect_roots, make_plan, verify

CONFIG = b'{"farm": "tea-3", "node": "n-7", "broker": {"host": "mqtt.example", "port": 8883}}'


def art(target: str, data: bytes) -> Artifact:
    return Artifact(target, data, "src/" + target, compiled=target.endswith(".mpy"))


def plan_of(*arts: Artifact):  # type: ignore[no-untyped-def]
    build = Build(list(arts), "k", "mpy-cross test", cached=True)
    return make_plan(build, parse_node_config(CONFIG, Path("node.json")), "node.json")


def dev(data: bytes, sha: str | None = None) -> DeviceFile:
    return DeviceFile(len(data), sha if sha is not None else hashlib.sha256(data).hexdigest())


MAIN = art("/main.py", b"import agrinode\n")
INIT = art("/lib/agrinode/__init__.mpy", b"M\x06\x00\x1f" + b"x" * 3000)
UMQTT = art("/lib/umqtt/simple.py", b"class MQTTClient: pass\n")


def test_plan_adds_the_config_and_lists_directories_parents_first() -> None:
    plan = plan_of(MAIN, INIT, UMQTT)
    assert [f.target for f in plan.files] == [
        "/lib/agrinode/__init__.mpy",
        "/lib/umqtt/simple.py",
        "/main.py",
        "/node.json",
    ]
    assert plan.dirs == ["/lib", "/lib/agrinode", "/lib/umqtt"]
    assert plan.owned_dirs == ["/lib/agrinode", "/lib/umqtt"]
    assert inspect_roots(plan) == [
        "/lib/agrinode",
        "/lib/umqtt",
        "/main.py",
        "/node.json",
        "/main.py.part",
        "/node.json.part",
    ]


def test_diff_skips_identical_files_and_removes_only_stale_flashed_files() -> None:
    plan = plan_of(MAIN, INIT)
    device = {
        "/main.py": dev(MAIN.data),  # identical: skipped
        "/lib/agrinode/__init__.mpy": dev(INIT.data, "0" * 64),  # same size, other content
        "/lib/agrinode/old.mpy": dev(b"old"),  # stale module: removed
        "/lib/agrinode/old.py": dev(b"old"),  # would shadow a .mpy of the same name
        "/node.json.part": dev(b"{"),  # left by an interrupted flash
        "/spool/000001.seg": dev(b"readings"),  # the node's data: never touched
        "/seq": dev(b"41"),
    }
    d = diff(plan, device)
    assert [a.target for a in d.same] == ["/main.py"]
    assert [a.target for a in d.copy] == ["/lib/agrinode/__init__.mpy", "/node.json"]
    assert d.remove == ["/lib/agrinode/old.mpy", "/lib/agrinode/old.py", "/node.json.part"]
    assert [a.target for a in diff(plan, device, force=True).copy] == [f.target for f in plan.files]


def test_blocks_needed_counts_the_peak_of_write_then_rename() -> None:
    plan = plan_of(art("/main.py", b"m" * 2500), INIT)  # 3 + 3 blocks of 1024, config 1 block
    fresh = blocks_needed(diff(plan, {}), {}, 1024)
    assert fresh == 3 + 3 + 1 + 4
    same_sizes = {f.target: dev(b"z" * f.size, "0" * 64) for f in plan.files}
    # Replacing files of the same size needs room for one extra copy of the largest at a time.
    assert blocks_needed(diff(plan, same_sizes), same_sizes, 1024) == 3 + 4


def test_verify_names_each_problem() -> None:
    plan = plan_of(MAIN, INIT)
    good = {f.target: dev(f.data) for f in plan.files}
    assert verify(plan, good) == []
    bad = dict(good)
    del bad["/main.py"]
    bad["/node.json"] = dev(b"{}")
    bad["/lib/agrinode/__init__.mpy"] = dev(INIT.data, "ab" * 32)
    bad["/lib/agrinode/stray.mpy"] = dev(b"s")
    assert verify(plan, bad) == [
        f"/lib/agrinode/__init__.mpy: sha256 on the device abababababababab…, expected {INIT.sha256[:16]}…",
        "/main.py: missing on the device",
        f"/node.json: 2 bytes on the device, expected {len(CONFIG)}",
        "/lib/agrinode/stray.mpy: stale file left on the device",
    ]


def test_imported_modules_sees_plain_and_from_imports() -> None:
    src = (
        b"import json, machine\nfrom umqtt.simple import MQTTClient\nfrom . import x\nimport agrinode.spool\n"
    )
    assert imported_modules(src) == {"json", "machine", "umqtt", "agrinode"}
    assert imported_modules(b"@micropython.viper\ndef f(:") == set()


def write_fw(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_build_compiles_the_package_and_caches_by_content(tmp_path: Path) -> None:
    fw = write_fw(
        tmp_path / "fw",
        {
            "main.py": "import agrinode\n",
            "agrinode/__init__.py": "X = 1\n",
            "agrinode/__pycache__/junk.py": "not shipped\n",
            "lib/vendored.py": "Y = 2\n",
            "README.md": "not shipped\n",
        },
    )
    cache = tmp_path / "cache"
    b1 = build_firmware(fw, cache)
    assert not b1.cached
    assert [a.target for a in b1.artifacts] == ["/lib/agrinode/__init__.mpy", "/lib/vendored.py", "/main.py"]
    mpy = b1.artifacts[0]
    assert mpy.compiled and mpy.data[:2] == b"M\x06"  # .mpy version 6
    b2 = build_firmware(fw, cache)
    assert b2.cached and b2.key == b1.key and b2.artifacts == b1.artifacts
    (fw / "agrinode" / "__init__.py").write_text("X = 2\n")
    b3 = build_firmware(fw, cache)
    assert not b3.cached and b3.key != b1.key


def test_build_needs_main_py_and_the_umqtt_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fw = write_fw(tmp_path / "fw", {"agrinode/__init__.py": ""})
    with pytest.raises(FlashError, match=r"main\.py not found"):
        build_firmware(fw, tmp_path / "cache")
    (fw / "main.py").write_text("from umqtt.simple import MQTTClient\n")
    from importlib import metadata

    def missing(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FlashError) as ei:
        build_firmware(fw, tmp_path / "cache")
    assert "imports umqtt but neither firmware/lib/umqtt/ nor the micropython-umqtt.simple package" in str(
        ei.value
    )
    # A vendored copy is used instead of the package.
    write_fw(fw, {"lib/umqtt/simple.py": "class MQTTClient: pass\n"})
    targets = [a.target for a in build_firmware(fw, tmp_path / "cache").artifacts]
    assert "/lib/umqtt/simple.py" in targets


@pytest.mark.parametrize(
    ("partitions", "size", "romfs", "code", "why"),
    [
        (1, 65536, True, "romfs", ""),
        (0, 0, True, "/lib", ""),  # no ROMFS: the CLI says so
        (1, 65536, False, "/lib", "--no-romfs"),
        (1, 0, True, "/lib", "block device"),
        (1, 1024, True, "/lib", "does not fit"),
    ],
)
def test_compiled_code_goes_to_romfs_only_where_it_can(
    partitions: int, size: int, romfs: bool, code: str, why: str
) -> None:
    from mpremote.romfs import VfsRomWriter

    from agri.flash.flasher import FlashOptions, FlashResult, _romfs_split

    plan = plan_of(MAIN, INIT, UMQTT)
    res = FlashResult(romfs_partitions=partitions)
    image, left = _romfs_split(plan, FlashOptions(port="x", romfs=romfs), res, size)
    assert res.code == code and why in res.code_why
    if code == "romfs":
        assert image.startswith(VfsRomWriter.ROMFS_HEADER) and res.romfs_bytes == len(image)
        assert INIT.data in image  # the compiled module, stored verbatim
        assert [f.target for f in left.files] == ["/lib/umqtt/simple.py", "/main.py", "/node.json"]
    else:
        assert image == b"" and left is plan
