"""Atomic writes: all or nothing, usual permissions."""

import os
import stat

import pytest

from noisemod.io import CorruptFileError, atomic_write, read_json, write_json


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


def test_a_yaml_file_names_the_line_of_each_part_and_of_a_syntax_error(tmp_path):
    from noisemod.io import read_yaml

    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ngrids:\n  - {model: [mlp]}\n  - model: 3\n    beta: [1]\nbudgets:\n  cpu: 5\n")
    doc = read_yaml(path)
    assert doc.value["grids"][1] == {"model": 3, "beta": [1]}
    lines = {w: doc.line(w) for w in ("top level", "name", "grids[0]", "grids[1].model", "grids[1].beta[0]")}
    assert lines == {"top level": 1, "name": 1, "grids[0]": 3, "grids[1].model": 4, "grids[1].beta[0]": 5}
    assert doc.line("budgets.cpu") == 7 and doc.line("budgets.gpu") == 7  # missing: its parent's line
    assert doc.where("grids[1].model") == f"{path}, line 4"
    path.write_text("name: x\ngrids: [{model: [mlp}]\n")
    with pytest.raises(CorruptFileError, match=r"spec.yaml, line 2, column 21: not valid YAML: .*line 2\)$"):
        read_yaml(path)
    path.write_bytes(b"name: \xff\n")
    with pytest.raises(CorruptFileError, match="not a UTF-8 text file"):
        read_yaml(path)
