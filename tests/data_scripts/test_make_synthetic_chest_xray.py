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
    with_nodule, (placed,) = synthetic.draw_chest(128, anatomy, [nodule], np.random.default_rng(1))
    without, nothing = synthetic.draw_chest(128, anatomy, [], np.random.default_rng(1))
    difference = with_nodule.astype(float) - without
    changed = difference > 5
    assert difference.max() > 30 and nothing == []
    assert changed.sum() < 2 * np.pi * (0.03 * 128) ** 2  # about the nodule's own area, nothing else
    # Where the exposure put it, as recorded: the opacity's centre within a pixel or two, its size as said.
    centre = np.argwhere(changed).mean(axis=0)
    assert np.hypot(centre[0] - placed["row"], centre[1] - placed["column"]) < 1.5
    assert np.pi * (0.5 * placed["radius_px"]) ** 2 < changed.sum() < np.pi * placed["radius_px"] ** 2 * 1.2


def test_metadata_places_every_nodule_in_its_image(tmp_path):
    synthetic.make_dataset(tmp_path / "a", num_images=12, seed=5, size=64, nodule_fraction=1.0)
    for record in json.loads((tmp_path / "a" / "metadata.json").read_text())["images"]:
        for nodule in record["nodules"]:
            assert 0 <= nodule["row"] < 64 and 0 <= nodule["column"] < 64 and nodule["radius_px"] > 0
            # Within the exposure's shift (4 %), rotation (5 degrees) and scale (8 %) of its place on the chest.
            assert abs(nodule["row"] / 64 - nodule["y"]) < 0.1 and abs(nodule["column"] / 64 - nodule["x"]) < 0.1
