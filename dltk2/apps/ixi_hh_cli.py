"""The IXI_HH applications' command-line flags, and the configurations built from them.

The flags and their help are DLTK's (defaults for the real data on a GPU); :func:`training_config`
and :func:`deploy_config` turn the parsed flags into :mod:`dltk2.apps.ixi_hh`'s configurations.
Imports no TensorFlow, so ``--help`` answers at once.
"""

from __future__ import annotations

from absl import flags

from dltk2 import cli
from dltk2.cli import define_run_flags, from_flags, print_table

FLAGS = flags.FLAGS


def define_training_flags(l2: float) -> None:
    """Defines train.py's flags with DLTK's defaults (GPU, real data); ``l2`` differs per task."""
    flags.DEFINE_string("model_path", None, "Model folder: checkpoints, TensorBoard logs, exports.")
    flags.DEFINE_string("data_csv", None, "demographic_HH.csv of the IXI_HH data set.")
    flags.DEFINE_string("data_dir", None, "Folder holding <s>mm/<ID>/T1_<s>mm.nii.gz; default: the CSV's folder.")
    flags.DEFINE_float("spacing_mm", 2.0, "Isotropic voxel size of the images to train on, mm.")
    flags.DEFINE_integer("num_train", 150, "The first N subjects train, the rest validate.")
    flags.DEFINE_integer("max_steps", 50000, "Total optimizer steps (a resumed run stops at the same total).")
    flags.DEFINE_integer("steps_per_epoch", 100, "Steps between checkpoints, validation and summaries.")
    flags.DEFINE_integer("batch_size", 8, "Global batch size (split across replicas).")
    flags.DEFINE_list("example_size", ["64", "96", "96"], "Crop size (z, y, x), voxels.")
    flags.DEFINE_integer("n_examples", 2, "Random crops per volume and pass.")
    flags.DEFINE_boolean("cache_volumes", False,
                         "Keep the whitened training volumes in memory (4.3 MB each at 2 mm) and cut crops with "
                         "graph ops: each file is read once, about 2.5x the examples per second of reading it "
                         "every pass.")
    flags.DEFINE_list("filters", ["16", "32", "64", "128", "256"], "Channels of the stem and each scale.")
    flags.DEFINE_list("strides", ["1", "2", "2", "2", "2"], "Stride of the stem and each scale.")
    flags.DEFINE_integer("num_res_units", 2, "Residual units per scale.")
    flags.DEFINE_float("l2", l2, "L2 regularisation of the kernels.")
    flags.DEFINE_float("batch_norm_momentum", 0.99, "Momentum of the batch norms' moving statistics "
                       "(DLTK's 0.99; 0.9 for runs of hundreds of steps).")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
    flags.DEFINE_enum("lr_schedule", "constant", ["constant", "cosine"],
                      "constant (DLTK), or cosine decay to 0 over max_steps.")
    flags.DEFINE_float("adam_epsilon", 1e-5, "Adam epsilon.")
    flags.DEFINE_boolean("run_validation", True, "Evaluate on the validation subjects after each epoch.")
    define_run_flags(export=True)
    flags.DEFINE_integer("num_crops", 4, "Crops averaged by the exported serving signature.")
    flags.DEFINE_integer("fold", None, "Cross-validation: train fold k (0..num_folds-1) of a split by subject "
                         "(stratified by sex) instead of --num_train's; one model folder per fold.")
    flags.DEFINE_integer("num_folds", 5, "Folds of --fold's cross-validation.")
    flags.DEFINE_integer("fold_seed", 0, "Seed of --fold's split: every fold of one cross-validation uses the same.")
    flags.mark_flags_as_required(["model_path", "data_csv"])


def training_config():
    """The parsed flags as :class:`dltk2.apps.ixi_hh.TrainingConfig`."""
    from dltk2.apps.ixi_hh import TrainingConfig

    return from_flags(TrainingConfig)


def define_deploy_flags(target: str) -> None:
    """Defines deploy.py's flags."""
    flags.DEFINE_string("model_path", None, "Model folder written by train.py.")
    flags.DEFINE_string("data_csv", None, "demographic_HH.csv; default: the one the model was trained with.")
    flags.DEFINE_string("data_dir", None, "Folder holding the <s>mm folders; default: the CSV's folder.")
    flags.DEFINE_enum("subjects", "validation", ["validation", "all"],
                      "Which subjects: those after the training ones (validation), or every row.")
    flags.DEFINE_integer("num_crops", 4, "Random crops averaged per subject.")
    flags.DEFINE_integer("seed", 0, "Seed of the crop positions (0: as the SavedModel's serving_default).")
    flags.DEFINE_list("mirror_axes", [], "Test-time mirroring: each crop also predicted flipped along these axes "
                      "(0 z, 1 y, 2 x), in the same network call; the spread covers crops and mirrorings.")
    flags.DEFINE_string("output_csv", None, f"Predictions CSV; default: <model_path>/predictions_{target}.csv.")
    flags.DEFINE_string("output_dir", None, "Plots, metrics.json and report.html; default: <model_path>/evaluation.")
    flags.DEFINE_list("images", [], "New scans instead of the CSV's subjects: NIfTI files or DICOM series folders, "
                      "any orientation and spacing; predicted, not scored.")
    flags.DEFINE_string("sr_dir", None, "With --images: a DICOM Structured Report of each DICOM scan's prediction "
                        "goes here.")
    flags.DEFINE_string("deidentify_key", None, "A file holding a secret: the reports are de-identified with it.")
    flags.DEFINE_integer("explain", 4, "The first this many subjects (scans) are explained: a Grad-CAM overlay in "
                         "report.html and the map as NIfTI in <output_dir>/saliency (0: none).")
    flags.mark_flags_as_required(["model_path"])


def deploy_config():
    """The parsed flags as :class:`dltk2.apps.ixi_hh.DeployConfig`."""
    from dltk2.apps.ixi_hh import DeployConfig

    return from_flags(DeployConfig)


def define_cross_validation_flags() -> None:
    """Defines cross_validate.py's flags."""
    cli.define_cross_validation_flags("id, label, score, fold")


def cross_validation_main(target: str) -> None:
    """cross_validate.py's body: the out-of-fold metrics of the folds, printed."""
    from dltk2.apps import ixi_hh

    print_table(ixi_hh.cross_validate(FLAGS.model_paths, target, FLAGS.output_csv))
