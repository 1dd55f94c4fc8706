"""Trains DLTK's 3D convolutional autoencoder on IXI's T1, T2 and PD, three channels of one box around the brain.

The sequences of each subject of ``--data_csv`` (``demographic_HH.csv``; ``<s>mm/<ID>/{T1,T2,PD}_<s>mm.nii.gz``
beside it) are whitened each and stacked; the box of ``--example_size`` at the volume's centre (moved
by up to ``--max_shift`` voxels and flipped left-right at random in training) goes through strided
convolutions down to a code of ``--num_hidden_units`` and back, with mean squared error. The first
``--num_train`` subjects train, the rest validate. An existing ``--model_path`` is resumed;
``--restart`` starts over. At the end: ``<model_path>/model.keras`` and a SavedModel whose
``serving_default`` takes ``image`` (float32 (z, y, x, 3): T1, T2, PD on the training grid) and returns
``reconstruction``, ``code`` and ``corner``, and whose ``encode`` signature returns the ``code`` alone.
On a CPU use ``--flagfile applications/IXI_HH_representation_learning_cae/cpu_preset.flags``.

Example:
    python applications/IXI_HH_representation_learning_cae/train.py -p models/ixi_cae \\
        --data_csv data/IXI_HH/demographic_HH.csv
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv, with T1, T2 and PD in its <s>mm folders.")
flags.DEFINE_alias("train_csv", "data_csv")
flags.DEFINE_float("spacing_mm", 4.0, "Which <s>mm folders to read.")
flags.DEFINE_integer("num_train", 80, "The first num_train subjects train, the rest validate.")
flags.DEFINE_list("example_size", ["40", "48", "40"], "Box z,y,x around the brain, divisible by the strides' product.")
flags.DEFINE_list("filters", ["16", "32", "64"], "Filters per level.")
flags.DEFINE_list("strides", ["2", "2", "2"], "Stride of each level.")
flags.DEFINE_integer("num_hidden_units", 64, "Length of the code.")
flags.DEFINE_integer("max_shift", 2, "Random shift of the box in training, voxels.")
flags.DEFINE_integer("batch_size", 8, "Subjects per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning-rate schedule over max_steps.")
flags.DEFINE_integer("max_steps", 10000, "Total optimizer steps.")
flags.DEFINE_integer("steps_per_epoch", 500, "Steps between checkpoints and validation.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_csv"])


def main(argv):
    del argv
    from dltk2.apps import representation

    integers = {name: [int(v) for v in FLAGS[name].value] for name in ("example_size", "filters", "strides")}
    config = from_flags(representation.TrainingConfig, **integers)
    representation.check_settings(config)  # one line for bad settings, before TensorFlow loads
    representation.run_training(run_settings(), config)


if __name__ == "__main__":
    run(main)
