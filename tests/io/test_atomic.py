"""Tests of dltk2.io.atomic: a killed write leaves the previous file and no temporary."""

import pandas as pd
import pytest

from dltk2.io.atomic import write_bytes_atomically, write_csv_atomically


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
