"""Trains a 3D residual U-Net to segment brain tissue (CSF, grey and white matter) from T1, T1-IR and FLAIR.

DLTK's MRBrainS13 example: the three co-registered sequences of each subject folder are the network's
three input channels, each whitened over its volume; class-balanced patches (each tissue as often as
the background), random left-right flips, intensity offset and noise. After each epoch the whole
validation subjects are segmented by sliding window and Dice per tissue goes to TensorBoard; the best
checkpoint is kept by mean Dice. An existing ``--model_path`` is resumed; ``--restart`` starts over.
When training ends the best model is exported: ``<model_path>/model.keras`` and a SavedModel in
``<model_path>/export/<n>/`` whose ``serving_default`` takes the raw sequences as one ``image``
(float32 (z, y, x, 3): T1, T1_IR, T2_FLAIR), its ``spacing`` ((x, y, z) mm) and ``direction`` and
returns ``labels`` on the input grid. Defaults are for the real data on a GPU; on a CPU use
``--flagfile applications/MRBrainS13_tissue_segmentation/cpu_preset.flags``.

Example:
    python applications/MRBrainS13_tissue_segmentation/train.py -p models/mrbrains \\
        --data_csv data/mrbrains_synthetic/train.csv --validation_csv data/mrbrains_synthetic/val.csv

DLTK's flag names (``--train_csv``, ``--val_csv``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("data_csv", None, "Training subjects: id,subj_folder (DLTK's train.csv).")
flags.DEFINE_alias("train_csv", "data_csv")
flags.DEFINE_string("validation_csv", None, "Validation subjects (val.csv); without it, no validation.")
flags.DEFINE_alias("val_csv", "validation_csv")
flags.DEFINE_list("example_size", ["24", "64", "64"], "Patch size z,y,x (voxels).")
flags.DEFINE_integer("n_examples", 16, "Patches per subject read.")
flags.DEFINE_list("filters", ["16", "32", "64", "128"], "Filters per U-Net level.")
flags.DEFINE_list("strides", ["1", "2", "2", "2"], "Stride into each level.")
flags.DEFINE_integer("num_res_units", 2, "Residual units per encoder level.")
flags.DEFINE_integer("batch_size", 4, "Patches per step.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
flags.DEFINE_float("l2", 1e-4, "L2 weight decay of the kernels.")
flags.DEFINE_enum("loss", "ce", ["ce", "balce", "dice", "dice_ce", "dice_balce"], "Segmentation loss.")
flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"], "Learning-rate schedule over max_steps.")
flags.DEFINE_integer("max_steps", 20000, "Total optimizer steps.")
flags.DEFINE_integer("steps_per_epoch", 1000, "Steps between checkpoints and validation.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_csv"])


def main(argv):
    del argv
    from dltk2.apps import brain_tissue

    integers = {name: [int(v) for v in FLAGS[name].value] for name in ("example_size", "filters", "strides")}
    config = from_flags(brain_tissue.TrainingConfig, **integers)
    brain_tissue.check_subjects(config)  # one line for a bad subject, before the run is set up
    brain_tissue.run_training(run_settings(), config)


if __name__ == "__main__":
    run(main)
