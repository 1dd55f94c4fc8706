"""Converts a dataset folder to TFRecord shards, split into train / validation / test by patient.

``--need_split``: ``None`` (one set, ``<name>-*.tfrecord``), ``tt_split`` (train and test) or
``tvt_split`` (train, validation, test), with sizes from ``--val_fraction`` and ``--test_fraction``,
shuffled with ``--seed``, stratified by class, and no patient in two splits; or ``folds``, for
cross-validation: a ``test`` split of ``--test_fraction`` (0 for none) and ``--num_folds`` folds
``fold0`` .. ``fold<k-1>`` of the rest, by patient and stratified (``train.py --fold k`` trains on
the other folds and validates on fold k). Writes one record set
(:mod:`dltk2.io.record_set`): ``<output_dir>/<name>_<split>-NNNNN-of-NNNNN-<set>.tfrecord`` and
``<name>.manifest.json`` (every shard with its size, checksum and example count, each split's
examples per class and patients, the split's parameters), with ``labels.txt`` (``index:class``) and
``split.csv`` (which image went where). Converting again into the same folder replaces the set in
one rename: training never reads shards of two conversions. Feature keys: ``image/encoded``,
``image/format``, ``image/height``, ``image/width``, ``image/channels``, ``image/class/label``,
``image/class/text``, ``image/filename`` (and ``image/patient_id``, the pseudonym).

Example:
    python applications/dicom_bodypart/tf_convert_data.py --data_dir data/fetched --output_dir data/tfrecords \\
        --need_split tvt_split

The original's flag names (``--dataset_dir``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

from absl import app, flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Dataset folder: images/, labels/, index.csv.")
flags.DEFINE_alias("dataset_dir", "data_dir")
flags.DEFINE_string("output_dir", None, "Folder for the shards.")
flags.DEFINE_string("output_name", "bodypart", "Shard name prefix.")
flags.DEFINE_enum("need_split", "tvt_split", ["None", "tt_split", "tvt_split", "folds"], "Which splits to make.")
flags.DEFINE_integer("num_folds", 5, "Folds of --need_split folds (cross-validation by patient).")
flags.DEFINE_float("val_fraction", 0.15, "Share of the validation split (tvt_split).")
flags.DEFINE_float("test_fraction", 0.15, "Share of the test split (tt_split, tvt_split).")
flags.DEFINE_integer("seed", 0, "Seed of the split.")
flags.DEFINE_integer("num_shards", 1, "Shards per split.")
flags.mark_flags_as_required(["data_dir", "output_dir"])


def main(argv):
    del argv
    import pandas as pd

    from dltk2.datasets import bodypart
    from dltk2.datasets.images2d import class_coverage
    from dltk2.io.atomic import write_bytes_atomically, write_csv_atomically
    from dltk2.io.locks import locked_folder

    table = bodypart.list_dataset(FLAGS.data_dir)
    if FLAGS.need_split == "None":
        parts = {"": table}
    elif FLAGS.need_split == "folds":
        if not (0 <= FLAGS.test_fraction < 1 and FLAGS.num_folds >= 2):
            raise app.UsageError("--need_split folds needs --num_folds >= 2 and --test_fraction in [0, 1)")
        parts = bodypart.fold_parts(table, FLAGS.num_folds, FLAGS.seed, FLAGS.test_fraction)
    else:
        test = FLAGS.test_fraction
        val = FLAGS.val_fraction if FLAGS.need_split == "tvt_split" else 0.0
        if not (0 < test < 1 and 0 <= val < 1 and val + test < 1):
            raise app.UsageError(f"--val_fraction {val} and --test_fraction {test} must leave a training split")
        names = ["train", "validation", "test"] if val > 0 else ["train", "test"]
        fractions = [1 - val - test, val, test] if val > 0 else [1 - test, test]
        parts = dict(zip(names, bodypart.split_by_patient(table, fractions, FLAGS.seed)))
    output_dir = Path(FLAGS.output_dir)
    parts = {split: part.sample(frac=1.0, random_state=FLAGS.seed).reset_index(drop=True)
             for split, part in parts.items()}
    records = pd.concat([part.assign(split=split or "all")[["name", "body_part", "patient", "split"]]
                         for split, part in parts.items()])
    description = {"source": str(Path(FLAGS.data_dir).resolve()), "need_split": FLAGS.need_split,
                   "val_fraction": FLAGS.val_fraction, "test_fraction": FLAGS.test_fraction, "seed": FLAGS.seed,
                   **({"num_folds": FLAGS.num_folds} if FLAGS.need_split == "folds" else {}),
                   "num_shards": FLAGS.num_shards, "stratified_by": "class", "grouped_by": "patient",
                   "classes": list(bodypart.CLASSES)}
    with locked_folder(output_dir, "record set folder"):  # the tables and the set: one conversion at a time
        labels = "".join(f"{index}:{name}\n" for index, name in enumerate(bodypart.CLASSES))
        write_bytes_atomically(output_dir / "labels.txt", labels.encode())
        write_csv_atomically(records, output_dir / "split.csv")
        record_set = bodypart.write_record_set(parts, output_dir, FLAGS.output_name, FLAGS.num_shards, description,
                                               tables=[output_dir / "labels.txt", output_dir / "split.csv"])
    for split, part in parts.items():
        counts = part["body_part"].value_counts().to_dict()
        print(f"{split or 'all'}: {len(part)} images of {part['patient'].nunique()} patients -> "
              f"{len(record_set.files(split))} shard(s); {counts}")
    for split, part in parts.items():
        counts = part["body_part"].map(bodypart.CLASS_INDEX).value_counts().to_dict()
        coverage = class_coverage(counts, bodypart.CLASSES, f"{FLAGS.data_dir}: the {split or 'all'} split's images")
        if coverage:
            print(f"warning: {coverage}")
    from dltk2.io.record_set import manifest_path  # TensorFlow: a refused split above never loads it

    print(f"record set {record_set.manifest['set_id']}: {manifest_path(output_dir, FLAGS.output_name)}; "
          "no patient is in two splits")


if __name__ == "__main__":
    run(main)
