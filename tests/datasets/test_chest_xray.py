"""Tests of dltk2.datasets.chest_xray: listing, patient-level splits, balancing inside training only."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import make_synthetic_chest_xray as synthetic
from dltk2.datasets import chest_xray
from dltk2.datasets.images2d import read_png, write_png
from dltk2.io.image import ImageReadError
from dltk2.io.reader import CsvError
from dltk2.errors import DataError
from dltk2.io.tfrecord import image_dataset


@pytest.fixture(scope="module")
def chest_folder(tmp_path_factory):
    return synthetic.make_dataset(tmp_path_factory.mktemp("chest"), num_images=60, seed=5, size=48)


def test_listing_takes_patients_from_the_metadata(chest_folder):
    table = chest_xray.list_labelled_images(chest_folder)
    records = json.loads((chest_folder / "metadata.json").read_text())["images"]
    assert len(table) == 60
    assert dict(zip(table["name"], table["patient"])) == {r["name"]: r["patient"] for r in records}
    assert (table["label"] == table["text"].map({"normal": 0, "nodule": 1})).all()


def test_an_image_missing_from_the_metadata_is_its_own_patient(tmp_path):
    write_png(tmp_path / "nodule" / "a.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "normal" / "b.png", np.zeros((4, 4), np.uint8))
    table = chest_xray.list_labelled_images(tmp_path)
    assert table.set_index("name")["patient"].to_dict() == {"a": "image:a", "b": "image:b"}


def test_bad_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images in normal/, nodule/"):
        chest_xray.list_labelled_images(tmp_path)
    write_png(tmp_path / "normal" / "a.png", np.zeros((4, 4), np.uint8))
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(CsvError, match="metadata.json: not a metadata file"):
        chest_xray.list_labelled_images(tmp_path)
    (tmp_path / "metadata.json").unlink()
    write_png(tmp_path / "nodule" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="'a' is in more than one class folder"):
        chest_xray.list_labelled_images(tmp_path)
    truncated = tmp_path / "broken.png"
    truncated.write_bytes((tmp_path / "normal" / "a.png").read_bytes()[:20])
    with pytest.raises(ImageReadError, match="broken.png: not a readable image"):
        read_png(truncated)


def test_balancing_flips_only_training_images_and_never_leaks(chest_folder, tmp_path):
    splits = chest_xray.prepare(chest_folder, tmp_path, seed=1)
    originals = splits[~splits["flipped"]]
    # Every original once, in one split; no patient in two splits.
    assert sorted(originals["name"]) == sorted(chest_xray.list_labelled_images(chest_folder)["name"])
    assert (originals.groupby("patient")["split"].nunique() == 1).all()
    copies = splits[splits["flipped"]]
    assert len(copies) > 0 and set(copies["split"]) == {"train"}
    train_originals = set(originals.loc[originals["split"] == "train", "name"])
    assert set(copies["source"]) <= train_originals
    held_out = set(originals.loc[originals["split"] != "train", "name"])
    assert not held_out & set(splits.loc[splits["split"] == "train", "source"])
    # The rare class nears the common one in training, and only there.
    train = splits[splits["split"] == "train"]["text"].value_counts()
    before = originals[originals["split"] == "train"]["text"].value_counts()
    assert before["nodule"] < before["normal"] and abs(train["nodule"] - train["normal"]) < before["normal"] - before["nodule"]
    # A copy is its original mirrored left-right.
    copy = copies.iloc[0]
    source = originals.set_index("name").loc[copy["source"], "image"]
    np.testing.assert_array_equal(read_png(copy["image"]), read_png(source)[:, ::-1])
    # The shards hold exactly each split's rows: no validation or test image or copy in training.
    for split in chest_xray.SPLITS:
        files = chest_xray.tfrecord_files(tmp_path, split)
        names = sorted(f["image/filename"].numpy().decode() for f in image_dataset(files))
        expected = sorted(pd.Series(splits.loc[splits["split"] == split, "image"]).map(lambda p: p.split("/")[-1]))
        assert names == expected


def test_folds_by_patient_keep_each_folds_copies_out_of_its_own_validation(chest_folder, tmp_path):
    from dltk2.datasets.images2d import fold_files, fold_of_record_set
    from dltk2.io.record_set import read_record_set

    splits = chest_xray.prepare(chest_folder, tmp_path, (0.7, 0.15, 0.15), seed=2, num_folds=3)
    originals = splits[~splits["flipped"]]
    assert set(splits["split"]) == {"test", "fold0", "fold1", "fold2", "flipped0", "flipped1", "flipped2"}
    assert sorted(originals["name"]) == sorted(chest_xray.list_labelled_images(chest_folder)["name"])
    assert (originals.groupby("patient")["split"].nunique() == 1).all()  # a patient in one fold (or the test)
    assert set(splits.loc[splits["flipped"], "split"]) == {"flipped0", "flipped1", "flipped2"}
    record_set = read_record_set(tmp_path, "chest")

    def names(files):
        return sorted(f["image/filename"].numpy().decode() for f in image_dataset(files))

    def file_names(rows):
        return sorted(rows["image"].map(lambda p: p.split("/")[-1]))

    for fold in range(3):
        training, validation, counts = fold_files(record_set, fold)
        assert names(validation) == file_names(splits[splits["split"] == f"fold{fold}"])
        others = splits[splits["split"].isin([f"{kind}{k}" for k in range(3) if k != fold
                                              for kind in ("fold", "flipped")])]
        assert names(training) == file_names(others)
        assert sum(counts.values()) == len(others)
        # No copy of a validation image trains (a flipped twin would leak it).
        assert not set(others["source"]) & set(splits.loc[splits["split"] == f"fold{fold}", "name"])
        assert fold_of_record_set(record_set, fold) == {"fold": fold, "num_folds": 3, "fold_seed": 2}
    with pytest.raises(DataError, match="has folds 0..2, not 3"):
        fold_files(record_set, 3)
    plain = tmp_path / "plain"
    chest_xray.prepare(chest_folder, plain, seed=2)
    with pytest.raises(DataError, match="has no folds"):
        fold_files(read_record_set(plain, "chest"), 0)
    # A set of folds trained without --fold has no train split: refused, naming the manifest.
    with pytest.raises(DataError, match=r"chest.*has no train split .*--fold k"):
        fold_files(record_set, None)


def test_without_balancing_no_copies(chest_folder, tmp_path):
    splits = chest_xray.prepare(chest_folder, tmp_path, seed=1, balance=False)
    assert not splits["flipped"].any() and not (tmp_path / "flipped").exists()


def test_augmentation_keeps_shape_and_range(rng):
    image = tf.constant(rng.uniform(size=(16, 16, 1)).astype(np.float32))
    out = chest_xray.augment_radiograph(image, seed=3).numpy()
    assert out.shape == (16, 16, 1) and out.min() >= 0.0 and out.max() <= 1.0


def test_missing_shards_name_the_manifest(tmp_path):
    with pytest.raises(DataError, match=r"chest.manifest.json: no such record set manifest"):
        chest_xray.tfrecord_files(tmp_path, "test")


def test_preparing_again_replaces_the_set(chest_folder, tmp_path):
    first = chest_xray.prepare(chest_folder, tmp_path, seed=1, num_shards=3)
    second = chest_xray.prepare(chest_folder, tmp_path, seed=2, num_shards=1)
    assert not first.equals(second)
    files = {split: chest_xray.tfrecord_files(tmp_path, split) for split in chest_xray.SPLITS}
    assert sorted(p.name for p in tmp_path.glob("*.tfrecord")) == sorted(p.name for f in files.values() for p in f)
    for split, shards in files.items():
        names = sorted(f["image/filename"].numpy().decode() for f in image_dataset(shards))
        assert names == sorted(second.loc[second["split"] == split, "image"].map(lambda p: p.split("/")[-1]))


def test_a_one_class_folder_and_an_ambiguous_image_are_refused(chest_folder, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(chest_folder, data)
    first = sorted((data / "normal").glob("*.png"))[0]
    shutil.copy(first, data / "nodule" / first.name)
    with pytest.raises(DataError, match=rf"image '{first.stem}' is in more than one class folder \(normal/, nodule/\)"):
        chest_xray.list_labelled_images(data)
    shutil.rmtree(data / "nodule")
    (data / "nodule").mkdir()
    with pytest.raises(DataError, match=r"nodule: no images .*a classifier needs images of every class"):
        chest_xray.prepare(data, tmp_path / "out")
    assert not (tmp_path / "out").exists()
