"""Splits labelled chest X-rays by patient, balances the training split by flipped copies, writes TFRecords.

Reads ``DIR/normal/*.png``, ``DIR/nodule/*.png`` and ``DIR/metadata.json`` (patients), as the Open-i
downloader and the synthetic generator write them. Splits train / validation / test (0.7 / 0.15 /
0.15 by default, stratified, seeded, no patient in two splits), then adds left-right flipped copies of
the rare class's **training** images only, and writes ``<name>_{train,validation,test}-*.tfrecord``
and ``splits.csv`` into the output folder. ``--num_folds K``, for cross-validation: a test split of
``--test_fraction`` and K folds of the rest (by patient, stratified), each fold's flipped copies kept
as ``flipped<k>`` beside it (``train.py --fold k`` trains on the other folds and their copies and
validates on fold k's originals).

Example:
    python applications/chest_xray_nodule/prepare.py --data_dir data/chest_synthetic --output_dir data/chest_tfrecords
"""

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder with normal/, nodule/ and optionally metadata.json.")
flags.DEFINE_string("output_dir", None, "Folder for the TFRecord shards, flipped/ and splits.csv.")
flags.DEFINE_string("output_name", "chest", "Shard name prefix.")
flags.DEFINE_float("val_fraction", 0.15, "Fraction of images for validation.")
flags.DEFINE_float("test_fraction", 0.15, "Fraction of images for the test set.")
flags.DEFINE_integer("seed", 0, "Seed of the split and of the choice of flipped images.")
flags.DEFINE_boolean("balance", True, "Add flipped copies of the rare class's training images.")
flags.DEFINE_integer("num_shards", 1, "Shards per split.")
flags.DEFINE_integer("num_folds", None, "Cross-validation: K folds by patient (and a test split) instead of "
                     "train / validation / test.")
flags.mark_flags_as_required(["data_dir", "output_dir"])


def main(argv):
    del argv
    from dltk2.datasets import chest_xray

    fractions = (1.0 - FLAGS.val_fraction - FLAGS.test_fraction, FLAGS.val_fraction, FLAGS.test_fraction)
    splits = chest_xray.prepare(FLAGS.data_dir, FLAGS.output_dir, fractions, FLAGS.seed, FLAGS.balance,
                                FLAGS.output_name, FLAGS.num_shards, FLAGS.num_folds)
    for split in dict.fromkeys(splits["split"]):
        part = splits[splits["split"] == split]
        counts = ", ".join(f"{text} {n}" for text, n in part.groupby("text").size().items())
        print(f"{split}: {len(part)} images of {part['patient'].nunique()} patients ({counts}; "
              f"{int(part['flipped'].sum())} flipped copies)")
    print(f"wrote {FLAGS.output_dir}/{FLAGS.output_name}_*.tfrecord and splits.csv")


if __name__ == "__main__":
    run(main)
