"""Scores a trained super-resolution network against linear and cubic upsampling on held-out IXI subjects.

Each subject's T1 (those the run did not train on; ``--subjects all`` for every one) is averaged down
by the run's factors and brought back three ways: by the exported SavedModel's own
``serving_default``, and by linear and cubic interpolation of the same low-resolution volume. Each
prints::

    Id=IXI092; PSNR=25.76 dB (linear 23.19, cubic 24.13); SSIM=0.6290 (linear 0.5566, cubic 0.5899); time=0.57 secs; ...

then the mean of each method; ``OUTPUT/<id>_sr.nii.gz`` (the network's volume on the original grid),
``OUTPUT/metrics.csv``, ``OUTPUT/panels/<id>.png`` (input, linear, cubic, network, original) and
``OUTPUT/report.html``.

Example:
    python applications/IXI_HH_superresolution/deploy.py -p models/ixi_sr --data_csv data/IXI_HH/demographic_HH.csv -e sr
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Trained model folder.", short_name="p")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv the run was trained from.")
flags.DEFINE_alias("csv", "data_csv")
flags.DEFINE_string("output_dir", None, "Folder for <id>_sr.nii.gz, metrics.csv, panels and the report.", short_name="e")
flags.DEFINE_enum("subjects", "held_out", ["held_out", "all"], "Which subjects of the CSV.")
flags.mark_flags_as_required(["model_path", "data_csv", "output_dir"])


def main(argv):
    del argv
    from dltk2.apps import super_resolution

    super_resolution.deploy(FLAGS.model_path, FLAGS.data_csv, FLAGS.output_dir, FLAGS.subjects)


if __name__ == "__main__":
    run(main)
