"""Tests of dltk2.io.paths: ids from tables are names, and joined paths stay in their folder."""

import os

import pytest

from dltk2.errors import DataError
from dltk2.io.paths import check_name, path_inside


@pytest.mark.parametrize("name", ["../../../outside/9999", "..", ".", "", "  ", "a/b", "a\\b", "x\x00y"])
def test_ids_that_are_not_plain_names_are_refused_naming_the_table(name):
    with pytest.raises(DataError, match=r"^train-abnormal.csv: exam id .* is not a plain name"):
        check_name(name, "train-abnormal.csv", "exam id")


@pytest.mark.parametrize("name", ["0001", "IXI002", "img0001", "a.b", "...x"])
def test_plain_names_pass(name):
    assert check_name(name, "t.csv") == name


def test_joined_paths_stay_inside_their_folder(tmp_path):
    assert path_inside(tmp_path, "a", "b.npy", source="t.csv") == tmp_path / "a" / "b.npy"
    for parts in (("..", "x.npy"), ("a", "..", "..", "x"), (str(tmp_path.parent / "x"),), (".",)):
        with pytest.raises(DataError, match="t.csv: .* names a path outside"):
            path_inside(tmp_path, *parts, source="t.csv")


def test_a_data_folder_that_is_a_symbolic_link_still_works(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    assert path_inside(tmp_path / "link", "x.npy", source="t.csv") == tmp_path / "link" / "x.npy"
