"""Preprocesses Synapse (BTCV) CT cases: 2 mm isotropic, HU clipped to [-1000, 800] and scaled to [-1, 1].

Reads ``DATA/img/img<id>.nii.gz`` and ``DATA/label/label<id>.nii.gz`` and writes the resampled
volumes to ``OUT/img`` and ``OUT/label`` (each file atomically), then ``OUT/train.csv`` and
``OUT/val.csv`` (a seeded split without replacement: every case in exactly one) or, with
``--no_split``, ``OUT/no_split.csv``. CSV columns: ``id,imgs,lbls,orig_imgs,orig_lbls`` (the
preprocessed files, relative to the CSV's folder, and the original files, absolute; deploy writes its
label maps on the original grid), so training and deploy work from any working directory.

Example:
    python applications/synapse_ct_seg/preprocessing.py -d data/synapse -p data/synapse_2mm
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with img/ and label/.", short_name="d")
flags.DEFINE_string("output_dir", None, "Folder for the preprocessed cases and the CSVs.", short_name="p")
flags.DEFINE_boolean("no_split", False, "Write one no_split.csv instead of train.csv and val.csv.", short_name="s")
flags.DEFINE_boolean("no_label", False, "Images only (cases to predict).", short_name="n")
flags.DEFINE_float("spacing_mm", 2.0, "Isotropic voxel size to resample to, mm.")
flags.DEFINE_string("orientation", "LPS", "Axis codes every case is transposed and flipped to (DICOM's LPS by "
                    "default); the model and its served graph work in this orientation.")
flags.DEFINE_enum("interpolator", "linear", ["linear", "bspline"], "Image interpolation (labels: nearest).")
flags.DEFINE_float("val_fraction", 0.2, "Share of cases in val.csv.")
flags.DEFINE_integer("seed", 0, "Seed of the train/val split (and of --num_folds' folds).")
flags.DEFINE_integer("num_folds", 0, "Also write folds.csv: every case with its fold (0..K-1) of a K-fold split by "
                     "case, for train.py --fold k; 0: none.")
flags.DEFINE_integer("workers", max(1, min(4, os.cpu_count() or 1)), "Processes resampling cases.")
flags.mark_flags_as_required(["data_dir", "output_dir"])


def _is_orientation(codes: str) -> bool:
    from dltk2.io.orientation import check_codes

    try:
        check_codes(codes)
    except ValueError:
        return False
    return True


flags.register_validator("orientation", _is_orientation,
                         "must be three axis codes, one of L/R, P/A and S/I each (e.g. LPS, RAS)")


def _write_csv(table, path: Path) -> None:
    """The CSV with its preprocessed files relative to its folder and the originals absolute: usable from anywhere."""
    import os

    from dltk2.io.atomic import write_csv_atomically

    table = table.copy()
    for column in ("imgs", "lbls"):
        table[column] = [os.path.relpath(value, path.parent) if value else "" for value in table[column]]
    for column in ("orig_imgs", "orig_lbls"):
        table[column] = [str(Path(value).resolve()) if value else "" for value in table[column]]
    write_csv_atomically(table, path)
    print(f"wrote {path} ({len(table)} cases)")


def main(argv):
    del argv
    import pandas as pd
    from tqdm import tqdm

    from dltk2.datasets import synapse
    from dltk2.io.locks import lock_folder

    output_dir = Path(FLAGS.output_dir)
    cases = synapse.find_cases(FLAGS.data_dir, with_labels=not FLAGS.no_label)
    work = partial(synapse.preprocess_case, output_dir=output_dir, spacing=[FLAGS.spacing_mm] * 3,
                   interpolator=FLAGS.interpolator, orientation=FLAGS.orientation)
    rows = cases.to_dict("records")
    lock_folder(output_dir, "preprocessing folder")  # one preprocessing at a time writes here
    pool = ProcessPoolExecutor(FLAGS.workers)
    try:
        processed = pd.DataFrame(list(tqdm(pool.map(work, rows), total=len(rows), desc="resampling")))
    finally:  # a bad case stops the run now, not after every other case (each file is written atomically)
        pool.shutdown(wait=True, cancel_futures=True)
    if FLAGS.no_split:
        _write_csv(processed, output_dir / "no_split.csv")
        return
    if FLAGS.num_folds:  # cross-validation: every case once in a validation fold (BTCV: one scan per patient)
        from dltk2.cross_validation import assign_folds

        _write_csv(processed.assign(fold=assign_folds(processed["id"], FLAGS.num_folds, seed=FLAGS.seed)),
                   output_dir / "folds.csv")
    train, val = synapse.split_cases(processed, FLAGS.val_fraction, FLAGS.seed)
    _write_csv(train, output_dir / "train.csv")
    _write_csv(val, output_dir / "val.csv")


if __name__ == "__main__":
    run(main)
