"""Tests of dltk2.io.atomic: a killed write leaves the previous file and no temporary."""

import os

import pandas as pd
import pytest

from dltk2.io.atomic import (atomic_destination, current_umask, default_mode, write_bytes_atomically,
                             write_csv_atomically, write_text_atomically)


def test_writes_and_replaces(tmp_path):
    path = write_bytes_atomically(tmp_path / "sub" / "a.txt", b"one")
    assert path.read_bytes() == b"one"
    write_csv_atomically(pd.DataFrame({"x": [1, 2]}), path, sep="\t")
    assert path.read_text() == "x\n1\n2\n"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_bytes_atomically(tmp_path / "a.txt", b"old")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomically(path, b"new")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_destination_keeps_the_suffix_and_renames_only_on_success(tmp_path):
    path = write_text_atomically(tmp_path / "model.weights.h5", "old")
    with atomic_destination(path, suffix=".weights.h5") as temporary:
        assert temporary.parent == tmp_path and temporary.name.endswith(".weights.h5") and temporary != path
        temporary.write_text("new")
        assert path.read_text() == "old"  # not replaced before the block ends
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_destination(path, suffix=".weights.h5") as temporary:
            temporary.write_text("half")
            raise RuntimeError("killed half-way")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model.weights.h5"]


def test_replace_atomically_gives_keras_its_suffix_and_cleans_up_a_failed_save(tmp_path):
    from dltk2.training import replace_atomically

    names = []

    def save(filepath):
        names.append(filepath)
        with open(filepath, "w") as stream:
            stream.write("weights")

    path = replace_atomically(save, tmp_path / "ckpt-0001.weights.h5")
    assert path.read_text() == "weights" and names[0].endswith(".weights.h5")

    def crash(filepath):
        save(filepath)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(crash, tmp_path / "last.keras")
    assert names[-1].endswith(".keras")
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-0001.weights.h5"]


def test_files_get_the_permissions_of_a_plain_open_under_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert default_mode() == 0o640 and default_mode(directory=True) == 0o750
        path = write_bytes_atomically(tmp_path / "a.bin", b"x")
        (tmp_path / "plain.bin").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == (tmp_path / "plain.bin").stat().st_mode & 0o777 == 0o640
