"""IXI subjects as their T1, T2 and PD together: the representation-learning application's reader.

IXI scans every subject in three sequences; ``make_synthetic_ixi.py --sequences T1,T2,PD`` writes
them beside each other (``<s>mm/<ID>/<sequence>_<s>mm.nii.gz``). The reader stacks them as channels,
each whitened over its volume, and crops the brain's box (``example_size``) from the volume's centre,
shifted at random by a few voxels in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from dltk2.augmentation import flip
from dltk2.io.reader import Mode
from dltk2.preprocessing import read_whitened_channels

SEQUENCES = ("T1", "T2", "PD")


def load_subjects(csv_path: str | Path, spacing_mm: float = 4.0, sequences: Sequence[str] = SEQUENCES
                  ) -> pd.DataFrame:
    """``id``, one path column per sequence, ``sex`` (0 male, 1 female) and ``age`` (years, NaN where IXI has none).

    Raises:
        CsvError: A bad demographics CSV (:func:`dltk2.datasets.ixi.load_subjects`).
        FileNotFoundError: A subject without one of its sequences, named.
    """
    from dltk2.datasets import ixi
    from dltk2.io.reader import read_csv_columns

    subjects = ixi.load_subjects(csv_path, "sex", spacing_mm)  # checks the ids, the sexes and the T1s
    data_dir = Path(csv_path).parent
    table = pd.DataFrame({"id": subjects["id"]})
    for sequence in sequences:
        paths = [ixi.sequence_path(data_dir, subject, sequence, spacing_mm) for subject in subjects["id"]]
        missing = [path for path in paths if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: no such file ({len(missing)} of {len(paths)} subjects lack their "
                                    f"{spacing_mm:g} mm {sequence}; make_synthetic_ixi.py --sequences "
                                    f"{','.join(sequences)} writes them)")
        table[sequence] = [str(path) for path in paths]
    table["sex"] = subjects["label"].astype(int).to_numpy()
    ages = read_csv_columns(csv_path, [ixi.ID_COLUMN, ixi.AGE_COLUMN]).set_index(ixi.ID_COLUMN)[ixi.AGE_COLUMN]
    table["age"] = pd.to_numeric(ages.reindex(table["id"]).to_numpy(), errors="coerce")
    return table


def central_box(volume: np.ndarray, example_size: Sequence[int], shift: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """The ``example_size`` (z, y, x) box at the volume's centre moved by ``shift`` voxels, zero-padded outside.

    The corner is ``(size - example) // 2 + shift`` per axis: the served graph's crop
    (:class:`dltk2.inference.autoencoder.AutoencoderPredictor`) for a zero shift.
    """
    out = np.zeros((*example_size, *volume.shape[3:]), np.float32)
    source, target = [], []
    for size, example, move in zip(volume.shape[:3], example_size, shift):
        corner = (size - example) // 2 + int(move)
        low, high = max(corner, 0), min(corner + example, size)
        source.append(slice(low, max(high, low)))
        target.append(slice(low - corner, low - corner + max(high - low, 0)))
    out[tuple(target)] = volume[tuple(source)]
    return out


def read_fn(file_reference: Sequence[str], mode: Mode, params: Mapping[str, Any]) -> Iterator[dict]:
    """Yields each subject's box of its whitened sequences, as input and as target.

    TRAIN: shifted by up to ``max_shift`` voxels per axis at random and flipped left-right at random;
    EVAL and PREDICT: the central box.

    Args:
        file_reference: ``(id, T1 path, T2 path, PD path, ...)`` as :func:`load_subjects` gives.
        params: ``example_size`` (z, y, x), ``channels`` (how many paths follow the id), ``max_shift``.
    """
    channels = int(params.get("channels", len(SEQUENCES)))
    volume = read_whitened_channels(list(file_reference[1:1 + channels]))
    shift = (0, 0, 0)
    if mode == Mode.TRAIN:
        rng = np.random.default_rng()
        reach = int(params.get("max_shift", 2))
        shift = rng.integers(-reach, reach + 1, size=3)
        (volume,) = flip([volume], axis=2, rng=rng)
    box = central_box(volume, params["example_size"], shift)
    if mode == Mode.PREDICT:
        yield {"features": {"x": box}}
        return
    yield {"features": {"x": box}, "labels": {"y": box}}
