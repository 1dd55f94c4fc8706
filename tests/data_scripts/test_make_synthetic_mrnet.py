"""Tests of data_scripts/make_synthetic_mrnet.py: MRNet's layout, determinism, findings that are local."""

import json

import numpy as np

import make_synthetic_mrnet as synthetic
from dltk2.datasets import mrnet


def test_layout_labels_and_planes(tmp_path):
    synthetic.make_dataset(tmp_path, num_exams=10, num_valid=4, seed=2, planes=("sagittal", "coronal", "axial"),
                           min_slices=5, max_slices=7, size=32, abnormal_fraction=0.6)
    train = mrnet.load_exams(tmp_path, "train")
    valid = mrnet.load_exams(tmp_path, "valid", plane="axial")
    assert list(train["id"]) == [f"{i:04d}" for i in range(10)] and list(valid["id"]) == ["0010", "0011", "0012", "0013"]
    assert set(train["label"]) == set(valid["label"]) == {0, 1}
    assert (tmp_path / "train-abnormal.csv").read_text().startswith("0000,0\n0001,1\n")  # MRNet's: no header
    for path in train["path"]:
        series = np.load(path)
        assert series.dtype == np.uint8 and series.shape[1:] == (32, 32) and 5 <= series.shape[0] <= 7
        assert series.std() > 10
    findings = json.loads((tmp_path / "findings.json").read_text())
    assert set(findings) == set(train.loc[train["label"] == 1, "id"]) | set(valid.loc[valid["label"] == 1, "id"])
    assert all(f["oedema"] or f["effusion"] for f in findings.values())


def test_same_seed_same_series(tmp_path):
    for name in ("a", "b"):
        synthetic.make_dataset(tmp_path / name, num_exams=3, num_valid=2, seed=5, min_slices=4, max_slices=6, size=24)
    for path in sorted((tmp_path / "a").rglob("*.npy")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_findings_are_bright_and_only_where_they_are_drawn():
    rng = np.random.default_rng(0)
    normal = synthetic.random_knee(False, rng)
    normal["fluid"] = []
    u, v, w = synthetic.plane_grid("sagittal", 9, 64)
    oedema = {"centre": [0.2, -0.05, -0.06], "radii": [0.1, 0.1, 0.1], "strength": 0.5}
    effusion = {"centre": [0.0, -0.45, 0.45], "radii": [0.3, 0.12, 0.07]}
    base = synthetic.draw_knee(u, v, w, normal)
    for finding in ({**normal, "oedema": [oedema]}, {**normal, "fluid": [effusion]}):
        difference = synthetic.draw_knee(u, v, w, finding) - base
        assert difference.min() >= -1e-3 and difference.max() > 50  # brighter, clearly
        assert (difference > 1).mean() < 0.02  # and local
    # The same knee in all three planes: the series sample one analytic volume.
    assert synthetic.draw_knee(*synthetic.plane_grid("coronal", 9, 64), normal).std() > 10


def test_finding_mask_is_where_the_findings_brighten_the_series(tmp_path):
    synthetic.make_dataset(tmp_path, num_exams=6, num_valid=2, seed=4, min_slices=7, max_slices=9, size=48,
                           abnormal_fraction=1.0, planes=("sagittal", "axial"))
    findings = json.loads((tmp_path / "findings.json").read_text())
    checked = 0
    for exam, finding in findings.items():
        split = "train" if int(exam) < 6 else "valid"
        for plane in ("sagittal", "axial"):
            slices = np.load(tmp_path / split / plane / f"{exam}.npy").shape[0]
            u, v, w = synthetic.plane_grid(plane, slices, 48)
            knee = {"scale": finding["scale"], "shift": finding["shift"], "oedema": [], "fluid": []}
            base = synthetic.draw_knee(u, v, w, knee)
            drawn = synthetic.draw_knee(u, v, w, {**knee, "oedema": finding["oedema"], "fluid": finding["effusion"]})
            brighter = drawn - base > 0.5  # grey levels of 255
            mask = synthetic.finding_mask(finding, plane, slices, 48)
            assert mask.shape == (slices, 48, 48)
            if brighter.any():  # a finding between the slices shows in none
                # Every brightened voxel lies inside the mask, and the mask is small.
                assert mask[brighter].all() and mask.mean() < 0.15, (exam, plane, mask.mean())
                checked += 1
    assert checked >= 10  # of the 16 series (11 with this seed)
