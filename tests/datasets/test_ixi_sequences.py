"""Tests of dltk2.datasets.ixi_sequences: three sequences per subject, whitened, boxed at the centre."""

import numpy as np
import pytest

import make_synthetic_ixi
from dltk2.datasets import ixi_sequences
from dltk2.io.reader import Mode
from dltk2.preprocessing import read_whitened_channels


@pytest.fixture(scope="module")
def three_sequences(tmp_path_factory):
    return make_synthetic_ixi.make_dataset(tmp_path_factory.mktemp("seq"), num_subjects=3, seed=2, spacings=[8.0],
                                           sequences=["T1", "T2", "PD"])


def test_subjects_with_their_sequences_sex_and_age(three_sequences):
    table = ixi_sequences.load_subjects(three_sequences, 8.0)
    assert list(table.columns) == ["id", "T1", "T2", "PD", "sex", "age"]
    assert table["PD"].iloc[0].endswith("8mm/IXI012/PD_8mm.nii.gz") and set(table["sex"]) <= {0, 1}
    assert table["age"].between(20, 87).all()
    (three_sequences.parent / "8mm" / "IXI013" / "T2_8mm.nii.gz").rename(three_sequences.parent / "moved.nii.gz")
    try:
        with pytest.raises(FileNotFoundError, match=r"IXI013/T2_8mm.nii.gz: no such file \(1 of 3 subjects lack"):
            ixi_sequences.load_subjects(three_sequences, 8.0)
    finally:
        (three_sequences.parent / "moved.nii.gz").rename(three_sequences.parent / "8mm" / "IXI013" / "T2_8mm.nii.gz")


def test_the_box_is_central_padded_where_needed_and_shifted_only_in_training(three_sequences, rng):
    volume = rng.normal(size=(5, 6, 7, 2)).astype(np.float32)
    box = ixi_sequences.central_box(volume, (4, 8, 7))
    assert box.shape == (4, 8, 7, 2)
    np.testing.assert_array_equal(box[:, 1:7], volume[0:4])  # corner (0, -1, 0): padded by one in y
    assert not box[:, 0].any() and not box[:, 7].any()
    row = ixi_sequences.load_subjects(three_sequences, 8.0).iloc[0]
    reference = (row["id"], row["T1"], row["T2"], row["PD"])
    params = {"example_size": [16, 24, 16], "channels": 3, "max_shift": 2}
    (evaluated,) = ixi_sequences.read_fn(reference, Mode.EVAL, params)
    whole = read_whitened_channels(reference[1:])
    np.testing.assert_array_equal(evaluated["features"]["x"], ixi_sequences.central_box(whole, [16, 24, 16]))
    np.testing.assert_allclose(whole.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    trained = [next(ixi_sequences.read_fn(reference, Mode.TRAIN, params))["features"]["x"] for _ in range(6)]
    assert any(not np.array_equal(t, evaluated["features"]["x"]) for t in trained)
