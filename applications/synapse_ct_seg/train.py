"""Trains a 3D segmentation network for the 13 Synapse (BTCV) abdominal organs.

Reads the CSVs that ``preprocessing.py`` writes (2 mm, HU clipped and scaled), draws class-balanced
patches, and trains the network ``--config`` names: ``net`` (``unet``, ``asym_unet``, ``fcn``), ``opt``
(``adam``, ``momentum``, ``rmsprop``), ``loss`` (``ce``, ``balce``, ``dice``, ``dice_ce``), ``filters``,
``strides``, ``num_residual_units``, ``learning_rate``, ``l2``, ``patch_size``, ``examples_per_volume``,
``batch_size``, ``max_steps``, ``steps_per_epoch`` and optionally ``schedule`` (``constant``, DLTK's,
or ``cosine`` decay to zero over ``max_steps``). After each epoch the whole validation volumes are
segmented with a sliding window and Dice per organ goes to TensorBoard (with a slice overlay); the
best checkpoint is kept by mean Dice. An existing model folder is resumed; ``--restart`` starts over.
When training ends, the best model is exported: ``<model_path>/model.keras`` and a SavedModel in
``<model_path>/export/<n>/`` whose ``serving_default`` takes a raw CT volume (``image``, float32 HU,
(z, y, x)) and its ``spacing`` ((x, y, z) mm, float64) and returns ``labels`` on the input grid.

Example:
    python applications/synapse_ct_seg/train.py -p models/synapse --config applications/synapse_ct_seg/config.json \\
        --data_csv data/synapse_2mm/train.csv --validation_csv data/synapse_2mm/val.csv

DLTK's flag names (``--train_csv``, ``--val_csv``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

from absl import flags

from dltk2.cli import define_run_flags, run, run_settings

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.", short_name="p")
flags.DEFINE_string("config", str(Path(__file__).with_name("config.json")), "Training configuration (JSON).")
flags.DEFINE_string("data_csv", None, "train.csv from preprocessing.py.")
flags.DEFINE_alias("train_csv", "data_csv")
flags.DEFINE_string("validation_csv", None, "val.csv from preprocessing.py; without it, no validation.")
flags.DEFINE_alias("val_csv", "validation_csv")
flags.DEFINE_integer("max_steps", None, "Overrides the configuration's max_steps.")
flags.DEFINE_integer("fold", None, "Cross-validation: --data_csv is preprocessing.py's folds.csv; fold k "
                     "validates, the others train (--validation_csv unused).")
flags.DEFINE_list("patch_size", None, "Overrides the configuration's patch_size (z,y,x voxels), e.g. for a smaller GPU.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_csv"])


def main(argv):
    del argv
    from dltk2.apps import synapse

    config = synapse.TrainingConfig(
        data_csv=FLAGS.data_csv, network=synapse.load_network_config(FLAGS.config),
        validation_csv=FLAGS.validation_csv, max_steps=FLAGS.max_steps,
        patch_size=[int(size) for size in FLAGS.patch_size] if FLAGS.patch_size else None, fold=FLAGS.fold)
    synapse.run_training(run_settings(), config)


if __name__ == "__main__":
    run(main)
