"""Samples a trained 3D DCGAN and checks the samples: not copies of training volumes, the data's intensities.

``--num_samples`` volumes are drawn from the exported SavedModel's own ``sample`` signature
(``--seed``); written: ``OUTPUT/samples.png`` (the central axial slice of each), ``OUTPUT/real.png``
(held-out real volumes the same way), ``OUTPUT/panels.png``, ``OUTPUT/samples/sample_<k>.nii.gz``,
``OUTPUT/checks.json`` and ``OUTPUT/report.html``, and one line::

    32 samples: nearest training volume at 0.444 (median RMS; held-out real volumes 0.324), 0 closer than any
    held-out volume; intensity histogram distance 0.0504 (held-out 0.0088, uniform noise 0.2316)

Example:
    python applications/IXI_HH_DCGAN/deploy.py -p models/ixi_dcgan --data_csv data/IXI_HH/demographic_HH.csv -e gan
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Trained model folder.", short_name="p")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv the run was trained from.")
flags.DEFINE_alias("csv", "data_csv")
flags.DEFINE_string("output_dir", None, "Folder for the sample grids, the samples and checks.json.", short_name="e")
flags.DEFINE_integer("num_samples", 32, "Volumes to draw.")
flags.DEFINE_integer("seed", 0, "Seed of the noise codes (the same seed draws the same samples).")
flags.mark_flags_as_required(["model_path", "data_csv", "output_dir"])


def main(argv):
    del argv
    from dltk2.apps import dcgan

    dcgan.deploy(FLAGS.model_path, FLAGS.data_csv, FLAGS.output_dir, FLAGS.num_samples, FLAGS.seed)


if __name__ == "__main__":
    run(main)
