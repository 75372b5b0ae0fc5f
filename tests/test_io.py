"""Atomic writes: all or nothing, usual permissions."""

import os
import stat

import pytest

from noisemod.io import atomic_write, read_json, write_json


def test_write_json_round_trip_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_json(tmp_path / "a" / "r.json", {"x": 1})
    finally:
        os.umask(old)
    assert read_json(path) == {"x": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_json(tmp_path / "r.json", {"old": True})

    def fail(f):
        f.write("{half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail, "w")
    assert read_json(path) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
