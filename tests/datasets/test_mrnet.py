"""MRNet exams: CSVs, the validation split, oversampling, reading series and the tf.data input."""

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from dltk2.cli import data_error_message
from dltk2.datasets import mrnet
from dltk2.inference import series_input
from dltk2.io.reader import CsvError, ReaderError
from dltk2.preprocessing import whitening


def write_exams(root, split, labels, header=False, slices=6, size=16, first=0):
    rows = ["id,label\n"] if header else []
    for number, label in enumerate(labels, start=first):
        path = root / split / "sagittal" / f"{number:04d}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.full((slices, size, size), 40 + 100 * label, np.uint8)
                + np.random.default_rng(number).integers(0, 20, (slices, size, size), dtype=np.uint8))
        rows.append(f"{number:04d},{label}\n")
    (root / f"{split}-abnormal.csv").write_text("".join(rows))


@pytest.mark.parametrize("header", [False, True])
def test_load_exams_reads_mrnets_csv_with_or_without_a_header(tmp_path, header):
    write_exams(tmp_path, "train", [0, 1, 1], header=header)
    if not header:  # MRNet's ids as integers lose their zeros in some exports
        (tmp_path / "train-abnormal.csv").write_text("0,0\n1,1\n2,1\n")
    exams = mrnet.load_exams(tmp_path, "train")
    assert list(exams["id"]) == ["0000", "0001", "0002"] and list(exams["label"]) == [0, 1, 1]
    assert exams["path"].iloc[1].endswith("train/sagittal/0001.npy")


def test_load_exams_names_a_missing_series_and_a_bad_label(tmp_path):
    write_exams(tmp_path, "train", [0, 1])
    (tmp_path / "train" / "sagittal" / "0001.npy").unlink()
    with pytest.raises(FileNotFoundError, match="0001.npy: no such series"):
        mrnet.load_exams(tmp_path, "train")
    (tmp_path / "train-abnormal.csv").write_text("0000,0\n0001,yes\n")
    with pytest.raises(CsvError, match="train-abnormal.csv: label must be 0 or 1; exam 0001 has 'yes'"):
        mrnet.load_exams(tmp_path, "train")
    with pytest.raises(CsvError, match="valid-abnormal.csv: no such CSV file"):
        mrnet.load_exams(tmp_path, "valid")


def test_load_exam_list_takes_paths_relative_to_the_csv(tmp_path):
    write_exams(tmp_path, "train", [0, 1])
    (tmp_path / "list.csv").write_text("path,label\ntrain/sagittal/0000.npy,0\ntrain/sagittal/0001.npy,1\n")
    exams = mrnet.load_exam_list(tmp_path / "list.csv")
    assert list(exams["id"]) == ["0000", "0001"] and all(pd.Series(exams["path"]).map(lambda p: p.startswith(str(tmp_path))))
    (tmp_path / "bad.csv").write_text("file,label\nx.npy,0\n")
    with pytest.raises(CsvError, match="lacks column"):
        mrnet.load_exam_list(tmp_path / "bad.csv")


def exam_table(labels):
    return pd.DataFrame({"id": [f"{i:04d}" for i in range(len(labels))], "path": [f"/x/{i}.npy" for i in range(len(labels))],
                         "label": labels})


def test_no_exam_is_in_training_and_validation_after_oversampling():
    exams = exam_table([1] * 41 + [0] * 9)
    train, validation = mrnet.split_exams(exams, 0.2, seed=3)
    oversampled = mrnet.oversample_minority(train, seed=3)
    assert not set(oversampled["id"]) & set(validation["id"])
    assert set(oversampled["id"]) == set(train["id"])  # every training exam kept, none added from elsewhere
    assert sorted(validation["label"]) == [0, 0] + [1] * 8  # stratified: 20 % of each class
    counts = oversampled["label"].value_counts()
    assert counts[0] == counts[1] == 33
    copies = oversampled[oversampled["label"] == 0]["id"].value_counts()
    assert copies.max() - copies.min() <= 1  # each normal 4 or 5 times, none favoured further
    assert oversampled["copy"].max() == 4 and (oversampled.loc[oversampled["label"] == 1, "copy"] == 0).all()


def test_split_keeps_rows_of_one_exam_together():
    exams = pd.concat([exam_table([0, 1, 1, 0, 1, 1]), exam_table([0, 1, 1, 0, 1, 1])], ignore_index=True)
    train, validation = mrnet.split_exams(exams, 0.34, seed=0)
    assert not set(train["id"]) & set(validation["id"]) and len(train) + len(validation) == 12


def test_read_series_reports_bad_files_in_one_line(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((3, 4, 4), np.uint8))
    assert mrnet.read_series(good).shape == (3, 4, 4)
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(good.read_bytes()[:60])
    flat = tmp_path / "flat.npy"
    np.save(flat, np.zeros((4, 4), np.uint8))
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((2, 2, 2), np.nan, np.float32))
    text = tmp_path / "text.npy"
    text.write_text("not an array")
    for path, problem in ((tmp_path / "missing.npy", "no such file"), (truncated, "not a readable .npy series"),
                          (flat, "expected (slices, height, width), got shape (4, 4)"),
                          (nan, "8 NaN or infinite values"), (text, "not a readable .npy series")):
        with pytest.raises(ReaderError) as error:
            mrnet.read_series(path)
        assert str(error.value).startswith(f"reading [{path}]: {problem}"), str(error.value)
        assert "\n" not in str(error.value)


def test_series_input_equals_scipy_resampling_and_whitening():
    series = np.random.default_rng(0).random((5, 6, 6)).astype(np.float32) * 100
    ours = series_input(series, 10, 12).numpy()
    assert ours.shape == (10, 12, 12, 1)
    reference = whitening(ndimage.zoom(series, 2, order=1, grid_mode=True, mode="nearest"))
    np.testing.assert_allclose(ours[..., 0], reference, atol=1e-5)
    same = series_input(series, 5, 6).numpy()[..., 0]
    np.testing.assert_allclose(same, whitening(series), atol=1e-5)
    # Shrinking is antialiased: a checkerboard becomes nearly flat, not aliased stripes.
    checkerboard = (np.indices((4, 32, 32)).sum(axis=0) % 2).astype(np.float32)
    assert np.ptp(series_input(checkerboard + np.linspace(0, 1, 32), 4, 8).numpy()) < 10


def test_series_dataset_batches_training_and_evaluation(tmp_path):
    write_exams(tmp_path, "train", [0, 1, 1, 0, 1], slices=7, size=20)
    exams = mrnet.load_exams(tmp_path, "train")
    train = mrnet.series_dataset(exams, 4, 8, batch_size=2, training=True, seed=1, cache=True,
                                 augment=lambda batch: batch * 0.0)
    for images, labels in train.take(4):
        assert images.shape == (2, 4, 8, 8, 1) and labels.shape == (2,)
        assert float(np.abs(images).max()) == 0.0  # the augmentation ran on every batch
    evaluation = list(mrnet.series_dataset(exams, 4, 8, batch_size=2, with_ids=True))
    assert [len(batch[0]) for batch in evaluation] == [2, 2, 1]
    assert train.options().autotune.enabled is False  # dltk2.io.pipeline's options
    ids = np.concatenate([batch[2].numpy() for batch in evaluation]).astype(str)
    labels = np.concatenate([batch[1].numpy() for batch in evaluation])
    assert list(ids) == list(exams["id"]) and list(labels) == list(exams["label"])
    np.testing.assert_allclose(evaluation[0][0][1], series_input(np.load(exams["path"][1]), 4, 8), atol=1e-6)


def test_a_corrupt_series_in_the_dataset_is_reported_with_its_file(tmp_path):
    write_exams(tmp_path, "train", [0, 1])
    exams = mrnet.load_exams(tmp_path, "train")
    broken = tmp_path / "train" / "sagittal" / "0001.npy"
    broken.write_bytes(broken.read_bytes()[:100])  # after the exams were checked: found in the pipeline
    dataset = mrnet.series_dataset(exams, 4, 8, batch_size=2)
    with pytest.raises(Exception) as error:
        list(dataset)
    assert data_error_message(error.value).startswith(f"reading [{broken}]: not a readable .npy series")
    with pytest.raises(ReaderError, match=r"not a readable .npy series \(ValueError: EOF: reading array header"):
        mrnet.load_exams(tmp_path, "train")  # checked before anything is built


def test_held_out_exams_come_from_splits_csv(tmp_path):
    pd.DataFrame({"split": ["train", "train", "validation"], "id": ["0001", "0001", "0002"], "label": [0, 0, 1],
                  "copy": [0, 1, 0], "path": ["a", "a", "b"]}).to_csv(tmp_path / "splits.csv", index=False)
    held_out = mrnet.held_out_exams(tmp_path)
    assert list(held_out["id"]) == ["0002"] and list(held_out["label"]) == [1]
