"""MRBrainS13-style brain tissue segmentation: a 3D U-Net on T1, T1-IR and FLAIR, served by sliding window.

``applications/MRBrainS13_tissue_segmentation/train.py`` turns its flags into a :class:`TrainingConfig`
and calls :func:`run_training`; ``deploy.py`` calls :func:`deploy`. The network sees the three
sequences as channels (each whitened over its volume, :mod:`dltk2.datasets.mrbrains`), learns the
four classes (background, CSF, grey and white matter) from class-balanced patches, and is exported as
a :class:`dltk2.inference.SlidingWindowSegmenter` whose ``serving_default`` takes the raw
(z, y, x, 3) volume with its spacing and direction and returns labels on the input grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # not at run time: it loads Keras, and the subjects are checked before that
    from dltk2.training.run import RunSettings


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own. Defaults are DLTK's MRBrainS13 example's scale.

    Attributes:
        data_csv: DLTK's train.csv (``id,subj_folder``).
        validation_csv: val.csv; validation Dice per tissue after each epoch and the best checkpoint by it.
        example_size: Patch (z, y, x) voxels.
        n_examples: Patches per subject read.
        filters, strides, num_res_units: The residual U-Net's (DLTK's ``residual_unet_3d``).
        batch_size, learning_rate, l2, loss, lr_schedule: Training (``loss`` as
            :class:`dltk2.losses.SegmentationLoss`: ``ce``, ``balce``, ``dice``, ``dice_ce``).
        max_steps, steps_per_epoch: Length of the run and of an epoch.
    """

    data_csv: str
    validation_csv: str | None = None
    example_size: list[int] = field(default_factory=lambda: [24, 64, 64])
    n_examples: int = 16
    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2])
    num_res_units: int = 2
    batch_size: int = 4
    learning_rate: float = 1e-3
    l2: float = 1e-4
    loss: str = "ce"
    lr_schedule: str = "constant"
    max_steps: int = 20000
    steps_per_epoch: int = 1000


def check_subjects(config: TrainingConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training and validation subjects, every file's header read: a missing folder or file, or a
    sequence off its subject's grid, is one line (DataError) before anything is built."""
    from dltk2.apps.segmentation import check_cases
    from dltk2.datasets import mrbrains

    train_cases = mrbrains.read_cases(config.data_csv)
    val_cases = mrbrains.read_cases(config.validation_csv) if config.validation_csv else []
    check_cases(train_cases + val_cases)
    return train_cases, val_cases


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Trains (resuming) on class-balanced patches, validates by sliding window, exports. Returns the folder."""
    train_cases, val_cases = check_subjects(config)

    import keras
    import tensorflow as tf

    from dltk2.callbacks import SegmentationValidation
    from dltk2.datasets import mrbrains
    from dltk2.inference import SlidingWindowSegmenter
    from dltk2.io.image import read_image_information
    from dltk2.io.orientation import axis_codes
    from dltk2.io.reader import Mode, Reader, read_csv_columns
    from dltk2.losses import SegmentationLoss
    from dltk2.networks.unet import residual_unet_3d
    from dltk2.run_config import RunConfig, training_settings
    from dltk2.training import TrainingRun, learning_rate_schedule

    patch = [int(size) for size in config.example_size]
    channels = len(mrbrains.CHANNELS)
    run = TrainingRun(settings)
    reader = Reader(mrbrains.read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                    {"features": {"x": patch + [channels]}, "labels": {"y": patch}})
    rows = read_csv_columns(config.data_csv, ["id", "subj_folder"], path_columns=["subj_folder"])
    dataset = reader.dataset(rows, Mode.TRAIN, {"example_size": patch, "n_examples": config.n_examples},
                             batch_size=config.batch_size, shuffle_buffer_size=4 * config.n_examples)
    class_names = {0: "background", **mrbrains.TISSUES}
    callbacks = []
    if val_cases:
        callbacks.append(SegmentationValidation([(case["image"], case["label"]) for case in val_cases], patch,
                                                class_names, run.folder.logs, batch_size=config.batch_size,
                                                read_case=mrbrains.read_subject))
    with run.strategy.scope():
        model = residual_unet_3d(input_shape=(None, None, None, channels), num_classes=mrbrains.NUM_CLASSES,
                                 num_res_units=config.num_res_units, filters=config.filters, strides=config.strides,
                                 l2_regularisation=config.l2, name="mrbrains_unet")
        rate = learning_rate_schedule(config.learning_rate, config.lr_schedule, config.max_steps)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss=SegmentationLoss(config.loss))
    geometry = read_image_information(train_cases[0]["image"][0]).geometry
    run.write_config(RunConfig(
        application="MRBrainS13_tissue_segmentation", task="segmentation", example_size=patch, channels=channels,
        spacing_mm=list(geometry.spacing), orientation=axis_codes(geometry.direction),
        intensity={"method": "whitening"}, class_names=list(class_names.values()),
        data={"train_csv": str(Path(config.data_csv).resolve()), "channels": list(mrbrains.CHANNELS)},
        training=training_settings(config, leave_out=("example_size",))))
    run.announce(f"model: {model.count_params():,} parameters; {len(train_cases)} training subjects")
    run.train(model, dataset, config.max_steps, config.steps_per_epoch,
              monitor="val_mean_dice" if val_cases else "loss", mode="max" if val_cases else "min",
              extra_callbacks=callbacks)
    if settings.export:
        run.export(SlidingWindowSegmenter(run.trained_model(), patch, list(geometry.spacing),
                                          num_classes=mrbrains.NUM_CLASSES, orientation=axis_codes(geometry.direction),
                                          channels=channels, normalisation="whiten"))
    return run.path


def deploy(model_path: str | Path, data_csv: str | Path, output_dir: str | Path, predict_only: bool = False,
           **segmenter_options) -> Path:
    """Segments every subject of ``data_csv`` with the exported graph; Dice and HD95 per tissue; the report.

    ``<output_dir>/<id>_seg.nii.gz`` on each subject's own grid, ``metrics.csv``, overlays (T1 with
    the reference above, the prediction below), the Dice box plot and ``report.html``.

    Args:
        segmenter_options: ``overlap``, ``batch_size``, ``blend``, ``mirror_axes``, ``uncertainty``.

    Returns:
        The report's path.
    """
    from dltk2.apps.segmentation import check_cases, report_segmentation, segment_cases, summary_table
    from dltk2.cli import print_table
    from dltk2.datasets import mrbrains
    from dltk2.inference import load_predictor
    from dltk2.io.atomic import write_csv_atomically

    cases = mrbrains.read_cases(data_csv, with_labels=not predict_only)
    check_cases(cases, predict_only)  # every subject's headers, before the model is loaded
    segmenter = load_predictor(model_path, **segmenter_options)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = segment_cases(segmenter, cases, output_dir, mrbrains.TISSUES, predict_only)
    write_csv_atomically(results, output_dir / "metrics.csv")
    if not predict_only:
        print_table(summary_table(results, mrbrains.TISSUES))
    report = report_segmentation(results, mrbrains.TISSUES, output_dir, model_path,
                                 "MRBrainS13 brain tissue segmentation: deploy")
    print(f"{len(results)} subjects in {results['seconds'].sum():.1f} s; wrote {output_dir / 'metrics.csv'} and {report}")
    return report
