"""Trains DLTK's simple 3D super-resolution network on IXI T1 volumes (x4, or per axis for thick slices).

Each T1 of ``--data_csv``'s subjects (``demographic_HH.csv`` and its ``<s>mm`` folders, as the IXI
classification applications read them) is whitened, cut into random crops of ``--example_size``, and
each crop averaged over blocks of ``--factors`` voxels: the network learns to bring the averaged crop
back. It upsamples linearly and adds what its convolutions find, trained with mean squared error;
the first ``--num_train`` subjects train, the rest validate. An existing ``--model_path`` is resumed;
``--restart`` starts over. At the end the model is exported: ``<model_path>/model.keras`` and a
SavedModel in ``<model_path>/export/<n>/`` whose ``serving_default`` takes a low-resolution ``image``
(float32 (z, y, x), any size) and its ``spacing`` and returns the finer ``image`` and ``spacing``.
Defaults are for the real data on a GPU; on a CPU use
``--flagfile applications/IXI_HH_superresolution/cpu_preset.flags``.

Example:
    python applications/IXI_HH_superresolution/train.py -p models/ixi_sr --data_csv data/IXI_HH/demographic_HH.csv
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv; its T1s at --spacing_mm are the truth.")
flags.DEFINE_alias("train_csv", "data_csv")
flags.DEFINE_float("spacing_mm", 2.0, "Which <s>mm T1 folders to read.")
flags.DEFINE_list("factors", ["4", "4", "4"], "Upsampling factor per axis z,y,x (4,4,4: x4; 4,1,1: thick slices).")
flags.DEFINE_integer("num_train", 150, "The first num_train subjects train, the rest validate.")
flags.DEFINE_list("example_size", ["32", "32", "32"], "High-resolution crop z,y,x, whole multiples of --factors.")
flags.DEFINE_integer("n_examples", 8, "Crops per subject read.")
flags.DEFINE_list("filters", ["32", "32", "32"], "Width of each convolution block.")
flags.DEFINE_integer("num_convolutions", 1, "Convolutions per block.")
flags.DEFINE_integer("batch_size", 8, "Crops per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
flags.DEFINE_float("l2", 0.0, "L2 weight decay of the kernels.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning-rate schedule over max_steps.")
flags.DEFINE_integer("max_steps", 20000, "Total optimizer steps.")
flags.DEFINE_integer("steps_per_epoch", 500, "Steps between checkpoints and validation.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_csv"])


def main(argv):
    del argv
    from dltk2.apps import super_resolution

    integers = {name: [int(v) for v in FLAGS[name].value] for name in ("factors", "example_size", "filters")}
    config = from_flags(super_resolution.TrainingConfig, **integers)
    super_resolution.check_settings(config)  # one line for bad settings, before TensorFlow loads
    super_resolution.run_training(run_settings(), config)


if __name__ == "__main__":
    run(main)
