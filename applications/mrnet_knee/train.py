"""Trains a 3D ResNet-18 (``r3d_18``) to classify knee MRI exams (MRNet), with progressive resizing.

1. The exams of MRNet's ``train`` split are divided by exam into training and validation
   (``--validation_fraction``, stratified, seeded); only then are the minority class's exams of the
   training part repeated until both classes are equal (``oversample_minority``). ``splits.csv`` lists
   every row used. MRNet's own ``valid`` split stays untouched for ``deploy.py``.
2. Stage by stage (``--stage_sizes``, e.g. 112,224 at ``--depth`` 20 slices) the same weights train
   at a growing input size (``dltk2.training.train_progressively``); each stage may first train the
   head alone for ``--freeze_epochs`` (fastai's ``fine_tune``). Batches are augmented (slice-order
   flip, in-plane rotation, contrast, brightness). The best checkpoint by validation AUC, over all
   stages, is the result.
3. Export: ``<model_path>/model.keras`` and the SavedModel ``<model_path>/export/<n>/``, whose
   ``serving_default`` takes one raw series (``series``, float32 (slices, h, w)) and returns
   ``probabilities``, ``class_id`` and ``class_name``.

Mixed precision on GPU (``--precision auto``), ``MirroredStrategy`` across the visible GPUs
(``--batch_size`` is the global batch), TensorBoard under ``<model_path>/**/logs``. Resumable: run the
same command again after a kill.

Example:
    python applications/mrnet_knee/train.py --data_dir data/MRNet-v1.0 --model_path models/mrnet \\
        --stage_sizes 112,224 --depth 20
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from pathlib import Path

from absl import flags

from dltk2.cli import define_run_flags, run, run_settings

TASKS = ("abnormal", "acl", "meniscus")  # dltk2.datasets.mrnet's, without importing it (and TensorFlow) for --help
PLANES = ("sagittal", "coronal", "axial")

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "MRNet folder (train/<plane>/NNNN.npy, train-<task>.csv).")
flags.DEFINE_string("exam_list", None, "Instead of --data_dir: a CSV with path,label (and optional id) columns.")
flags.DEFINE_string("model_path", None, "Model folder: stages, checkpoints, logs, splits.csv, exports.")
flags.DEFINE_enum("task", "abnormal", list(TASKS), "Which MRNet label.")
flags.DEFINE_enum("plane", "sagittal", list(PLANES), "Which series of each exam.")
flags.DEFINE_list("stage_sizes", ["112", "224"], "In-plane input size of each progressive-resizing stage.")
flags.DEFINE_list("stage_epochs", ["10", "5"], "Epochs of each stage (one entry, or one per stage).")
flags.DEFINE_integer("depth", 20, "Slices of the network input (series are resampled to it).")
flags.DEFINE_integer("freeze_epochs", 0, "Epochs per stage that train only the head first (with --weights).")
flags.DEFINE_integer("steps_per_epoch", 100, "Steps between checkpoints and validation.")
flags.DEFINE_integer("batch_size", 8, "Global batch size.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's peak rate (cosine decay over each part of a stage).")
flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
flags.DEFINE_float("dropout", 0.0, "Dropout before the head.")
flags.DEFINE_float("validation_fraction", 0.15, "Share of the training exams held out for model selection.")
flags.DEFINE_string("weights", None, "A Keras weights file of an r3d_18 with one input channel (its head may differ).")
flags.DEFINE_boolean("augment", True, "Augment training batches.")
flags.DEFINE_boolean("cache", False, "Keep resampled series in memory (depth x size^2 x 4 bytes each, per stage).")
flags.DEFINE_integer("seed", 0, "Split, oversampling, shuffle and augmentation seed.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path"])


def compile_model(model, learning_rate: float, steps: int) -> None:
    import keras

    from dltk2.metrics import PositiveClassAUC

    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, steps))
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=FLAGS.weight_decay),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"), PositiveClassAUC()])


def main(argv):
    del argv
    import reader
    from dltk2.datasets import mrnet
    from dltk2.inference import SeriesClassifier
    from dltk2.io.atomic import write_csv_atomically
    from dltk2.networks.resnet import r3d_18
    from dltk2.run_config import RunConfig
    from dltk2.training import TrainingRun, best_checkpoint, train_progressively

    sizes = [int(size) for size in FLAGS.stage_sizes]
    epochs = [int(e) for e in FLAGS.stage_epochs]
    if len(epochs) == 1:
        epochs *= len(sizes)
    if len(epochs) != len(sizes):
        raise ValueError(f"--stage_epochs has {len(epochs)} entries for {len(sizes)} --stage_sizes")
    exams = reader.load_exams(FLAGS.data_dir, FLAGS.exam_list, "train", FLAGS.task, FLAGS.plane)
    train_exams, validation_exams = mrnet.split_exams(exams, FLAGS.validation_fraction, FLAGS.seed)
    oversampled = mrnet.oversample_minority(train_exams, FLAGS.seed)
    run = TrainingRun(run_settings())
    write_csv_atomically(mrnet.splits_table([("train", oversampled), ("validation", validation_exams)]),
                         run.folder.splits)
    counts = train_exams["label"].value_counts().sort_index().to_dict()
    print(f"{len(train_exams)} training exams {counts}, oversampled to {len(oversampled)}; "
          f"{len(validation_exams)} validation exams; precision {run.policy}; {run.replicas} replica(s)")
    config = run.write_config(RunConfig(
        application="mrnet_knee", task="classification", target=FLAGS.task,
        example_size=[FLAGS.depth, sizes[-1], sizes[-1]], intensity={"method": "whitening"},
        class_names=list(mrnet.CLASSES),
        data={"data": str(Path(FLAGS.exam_list or FLAGS.data_dir).resolve()), "plane": FLAGS.plane},
        training={"stage_sizes": sizes, "stage_epochs": epochs, "seed": FLAGS.seed}))

    def datasets(input_shape):
        depth, size = input_shape[0], input_shape[1]
        return (reader.training_dataset(oversampled, depth, size, FLAGS.batch_size, FLAGS.seed, FLAGS.augment,
                                        FLAGS.cache),
                reader.evaluation_dataset(validation_exams, depth, size, FLAGS.batch_size, cache=FLAGS.cache))

    with run.strategy.scope():
        model = r3d_18((FLAGS.depth, sizes[0], sizes[0], 1), len(mrnet.CLASSES), dropout=FLAGS.dropout)
        if FLAGS.weights:
            model.load_weights(FLAGS.weights, skip_mismatch=True)
            print(f"weights from {FLAGS.weights} (layers of another shape, such as another head, skipped)")
        stages = [{"input_shape": (FLAGS.depth, size, size, 1), "epochs": stage_epochs,
                   "freeze_epochs": FLAGS.freeze_epochs, "learning_rate": FLAGS.learning_rate}
                  for size, stage_epochs in zip(sizes, epochs)]
        _, best = train_progressively(model, stages, compile_model, datasets, run.path, FLAGS.steps_per_epoch,
                                      head_layers=("fc",), monitor="val_auc", mode="max",
                                      verbose=run.keras_verbosity)
    final = best_checkpoint(run.path)
    print(f"best validation AUC {best:.4f}: {final}")
    model = run.trained_model(path=final)
    depth, size = model.input_shape[1], model.input_shape[2]
    run.folder.write_config(config.updated(example_size=[depth, size, size], training={
        "best_checkpoint": str(final.relative_to(run.path)), "best_validation_auc": best}))
    run.export(SeriesClassifier(model, depth, size, mrnet.CLASSES), note=f" (input {depth}x{size}x{size})")


if __name__ == "__main__":
    run(main)
