"""Trains DLTK's 3D DCGAN on small IXI T1 volumes: a generator of brains from noise and its discriminator.

Each T1 of ``--data_csv``'s first ``--num_train`` subjects is scaled to [-1, 1] and its box of
``--example_size`` at the volume's centre (at 8 mm the whole brain: 16x24x16 voxels; moved by up to
``--max_shift`` voxels and flipped left-right at random) is a real example. Generator and
discriminator are trained together in one ``fit`` (Adam, beta_1 0.5; the generator on the
non-saturating loss). An existing ``--model_path`` is resumed; ``--restart`` starts over. At the end
the generator is exported: ``<model_path>/model.keras`` and a SavedModel whose ``serving_default``
takes ``noise`` (float32 (n, code_size)) and whose ``sample`` takes ``count`` and ``seed``; both
return ``images`` (float32 (n, z, y, x) in [-1, 1]). On a CPU use
``--flagfile applications/IXI_HH_DCGAN/cpu_preset.flags``.

Example:
    python applications/IXI_HH_DCGAN/train.py -p models/ixi_dcgan --data_csv data/IXI_HH/demographic_HH.csv
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("data_csv", None, "demographic_HH.csv; its T1s at --spacing_mm.")
flags.DEFINE_alias("train_csv", "data_csv")
flags.DEFINE_float("spacing_mm", 8.0, "Which <s>mm T1 folders to read.")
flags.DEFINE_integer("num_train", 80, "The first num_train subjects train; the rest are deploy's held-out reals.")
flags.DEFINE_list("example_size", ["16", "24", "16"], "Box z,y,x, divisible by 2 ** (number of generator filters).")
flags.DEFINE_integer("code_size", 64, "Length of the generator's noise code.")
flags.DEFINE_list("generator_filters", ["64", "32", "16"], "Filters of the generator's doublings.")
flags.DEFINE_list("discriminator_filters", ["16", "32", "64"], "Filters of the discriminator's halvings.")
flags.DEFINE_integer("max_shift", 1, "Random shift of the box in training, voxels.")
flags.DEFINE_integer("batch_size", 16, "Real volumes per step (and as many generated).")
flags.DEFINE_float("learning_rate", 2e-4, "Adam's learning rate (both networks).")
flags.DEFINE_integer("max_steps", 5000, "Total optimizer steps.")
flags.DEFINE_integer("steps_per_epoch", 500, "Steps between checkpoints.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_csv"])


def main(argv):
    del argv
    from dltk2.apps import dcgan

    integers = {name: [int(v) for v in FLAGS[name].value]
                for name in ("example_size", "generator_filters", "discriminator_filters")}
    config = from_flags(dcgan.TrainingConfig, **integers)
    dcgan.check_settings(config)  # one line for bad settings, before TensorFlow loads
    dcgan.run_training(run_settings(), config)


if __name__ == "__main__":
    run(main)
