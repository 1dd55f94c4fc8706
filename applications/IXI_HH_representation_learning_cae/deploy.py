"""Reconstructs held-out IXI subjects with a trained autoencoder and probes its codes for sex and age.

Each held-out subject (those the run did not train on) goes through the exported SavedModel's own
``serving_default`` and prints::

    Id=IXI092; MSE=0.1388 (T1 0.1175, T2 0.1901, PD 0.1088); time=0.25 secs;

(mean squared error of the box, in whitened units); every subject is encoded by the ``encode``
signature, and a linear probe fitted on the training subjects' codes (logistic regression for sex,
ridge regression for age, scikit-learn) scores the held-out ones against chance. Written:
``OUTPUT/metrics.csv``, ``OUTPUT/codes.csv``, ``OUTPUT/probe.json``, ``OUTPUT/panels/<id>.png`` and
``OUTPUT/report.html``.

Example:
    python applications/IXI_HH_representation_learning_cae/deploy.py -p models/ixi_cae \\
        --data_csv data/IXI_HH/demographic_HH.csv -e cae
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Trained model folder.", short_name="p")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv the run was trained from.")
flags.DEFINE_alias("csv", "data_csv")
flags.DEFINE_string("output_dir", None, "Folder for metrics.csv, codes.csv, probe.json and the report.", short_name="e")
flags.mark_flags_as_required(["model_path", "data_csv", "output_dir"])


def main(argv):
    del argv
    from dltk2.apps import representation

    representation.deploy(FLAGS.model_path, FLAGS.data_csv, FLAGS.output_dir)


if __name__ == "__main__":
    run(main)
