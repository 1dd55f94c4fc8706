"""Applies one preprocessing method to every image of a dataset folder, into a folder named after it.

Reads ``D/images/*.png`` and writes ``D/<method>/images/*.png`` (lossless, same bit depth), copying
``labels/`` and ``index.csv``, so ``D/<method>`` is a dataset folder ``tf_convert_data.py`` reads.
Methods and ranges (values outside are clamped): ``bitwise_downsampling`` (1-8 bits kept),
``contrast_enhancing`` (CLAHE clip limit 1-10), ``color_quantization`` (k-means, 2-10 clusters),
``target_segmentation`` (Otsu, the 1-10 largest regions kept).

Example:
    python applications/dicom_bodypart/preprocess_image.py --data_dir data/fetched --preprocess contrast_enhancing --value 3

The original's flag names (``--directory``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

from absl import flags

from dltk2.cli import run
from dltk2.preprocessing2d import METHODS, clamp_value

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Dataset folder with images/ and labels/.")
flags.DEFINE_alias("directory", "data_dir")
flags.DEFINE_enum("preprocess", None, sorted(METHODS), "Method.")
flags.DEFINE_float("value", None, "The method's strength (clamped to its range).")
flags.mark_flags_as_required(["data_dir", "preprocess", "value"])


def main(argv):
    del argv
    from tqdm import tqdm

    from dltk2.datasets import bodypart
    from dltk2.io.atomic import write_bytes_atomically
    from dltk2.io.locks import locked_folder

    source = Path(FLAGS.data_dir)
    target = source / FLAGS.preprocess
    value = clamp_value(FLAGS.preprocess, FLAGS.value)
    if value != FLAGS.value:
        print(f"--value {FLAGS.value:g} is outside {FLAGS.preprocess}'s range: using {value}")
    images = sorted((source / "images").glob("*.png"))
    if not images:
        raise FileNotFoundError(f"{source / 'images'}: no .png images")
    method = METHODS[FLAGS.preprocess]
    with locked_folder(target, "preprocessing folder"):  # one writer at a time; every file atomic
        for image_path in tqdm(images, desc=FLAGS.preprocess, unit="image"):
            bodypart.write_png(target / "images" / image_path.name, method(bodypart.read_png(image_path), value))
        for label in sorted((source / "labels").glob("*.txt")):
            write_bytes_atomically(target / "labels" / label.name, label.read_bytes())
        if (source / "index.csv").exists():
            write_bytes_atomically(target / "index.csv", (source / "index.csv").read_bytes())
    print(f"wrote {len(images)} images to {target / 'images'} ({FLAGS.preprocess}, value {value})")


if __name__ == "__main__":
    run(main)
