"""Tests of data_scripts/make_synthetic_chest_xray.py: layout, determinism, classes, patients, nodules."""

import json

import cv2
import numpy as np

import make_synthetic_chest_xray as synthetic


def test_layout_classes_and_patients(tmp_path):
    synthetic.make_dataset(tmp_path / "a", num_images=40, seed=7, size=64, nodule_fraction=0.4)
    records = json.loads((tmp_path / "a" / "metadata.json").read_text())["images"]
    assert len(records) == 40
    for record in records:
        image = cv2.imread(str(tmp_path / "a" / record["class"] / f"{record['name']}.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (64, 64) and image.dtype == np.uint8 and image.std() > 10
        assert (record["class"] == "nodule") == bool(record["nodules"])
    patients = {}
    for record in records:
        patients.setdefault(record["patient"], set()).add(record["class"])
    assert len(patients) < 40 and all(len(classes) == 1 for classes in patients.values())  # 2 views, one class
    assert 0.15 < np.mean([r["class"] == "nodule" for r in records]) < 0.7


def test_same_seed_same_images(tmp_path):
    synthetic.make_dataset(tmp_path / "a", num_images=5, seed=3, size=32)
    synthetic.make_dataset(tmp_path / "b", num_images=5, seed=3, size=32)
    for path in sorted((tmp_path / "a").rglob("*.png")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_a_nodule_is_a_local_opacity():
    rng = np.random.default_rng(0)
    anatomy = synthetic.random_anatomy(rng)
    nodule = {"y": anatomy["lung_y"], "x": 0.5 - anatomy["lung_gap"], "radius": 0.03, "contrast": 0.8}
    with_nodule = synthetic.draw_chest(128, anatomy, [nodule], np.random.default_rng(1)).astype(float)
    without = synthetic.draw_chest(128, anatomy, [], np.random.default_rng(1)).astype(float)
    difference = with_nodule - without
    changed = difference > 5
    assert difference.max() > 30
    assert changed.sum() < 2 * np.pi * (0.03 * 128) ** 2  # about the nodule's own area, nothing else
    centre = np.argwhere(changed).mean(axis=0) / 128  # within the exposure's shift/rotation of its place
    assert np.hypot(centre[0] - nodule["y"], centre[1] - nodule["x"]) < 0.1
