"""Trains a normal-vs-nodule chest X-ray classifier by transfer learning, in the original's two stages.

1. **Head on CNN codes.** The headless backbone (``--backbone``, ``--weights``) runs once over the
   training and validation images; its pooled features are cached in ``<model_path>/features/``
   (reused while backbone, size and data are unchanged). With random weights, ``--adapt_batch_norm``
   first re-estimates the backbone's batch-norm statistics on training images (AdaBN). A dense head (``--head_widths``, default
   512-256-128, dropout) trains on them with SGD (``--head_learning_rate`` 0.01, batch 16), keeping
   the epoch of best validation AUC.
2. **Fine-tuning.** The trained head goes onto the same backbone and the whole net (or its last
   ``--fine_tune_layers`` layers) trains for ``--fine_tune_steps`` at ``--fine_tune_learning_rate``,
   on augmented images (SGD or Adam, gradient norm clipped). A fine-tuned checkpoint is kept only if it beats the stage-1 model's
   validation AUC; otherwise the stage-1 model is the result.

Resumable: a finished stage 1 is not repeated, and fine-tuning continues from its last epoch. At the
end ``<model_path>/model.keras`` and the SavedModel ``<model_path>/export/<n>/`` are written; its
``serving_default`` takes one grey image (``image``, float32 (h, w), any range and size) and returns
``probabilities``, ``class_id`` and ``class_name``.

Example:
    python applications/chest_xray_nodule/train.py --model_path models/chest --data_dir data/chest_tfrecords
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import define_run_flags, from_flags, run, run_settings
from dltk2.networks import BACKBONE_NAMES

FLAGS = flags.FLAGS
flags.DEFINE_string("model_path", None, "Model folder: features, head, checkpoints, logs, exports.")
flags.DEFINE_string("data_dir", None, "Folder with <name>_{train,validation}-*.tfrecord from prepare.py.")
flags.DEFINE_string("data_name", "chest", "Shard name prefix (prepare.py's --output_name).")
flags.DEFINE_enum("backbone", "InceptionV3", sorted(BACKBONE_NAMES), "keras.applications backbone.")
flags.DEFINE_string("weights", None, "Backbone weights: 'imagenet' (downloaded by Keras), a local weights file, "
                    "or none (random).")
flags.DEFINE_integer("image_size", 299, "Input size (pixels, square; aspect kept with padding).")
flags.DEFINE_list("head_widths", ["512", "256", "128"], "Dense head widths.")
flags.DEFINE_float("dropout", 0.5, "Dropout before each dense layer of the head.")
flags.DEFINE_integer("batch_size", 16, "Batch size of both stages.")
flags.DEFINE_float("head_learning_rate", 0.01, "SGD learning rate of stage 1.")
flags.DEFINE_float("momentum", 0.9, "SGD momentum of both stages.")
flags.DEFINE_integer("head_epochs", 30, "Stage-1 epochs over the cached training features.")
flags.DEFINE_integer("fine_tune_steps", 300, "Stage-2 optimizer steps (0: stop after stage 1).")
flags.DEFINE_float("fine_tune_learning_rate", 0.001, "SGD learning rate of stage 2.")
flags.DEFINE_integer("fine_tune_layers", -1, "Stage 2 trains the backbone's last N layers (-1: all; batch "
                     "normalisation stays frozen unless all are trained).")
flags.DEFINE_enum("fine_tune_optimizer", "sgd", ["sgd", "adam"], "Stage-2 optimizer (SGD with --momentum, or Adam).")
flags.DEFINE_float("clipnorm", 1.0, "Stage-2 gradient norm clipping (0: none).")
flags.DEFINE_integer("adapt_batch_norm", 0, "Before stage 1, re-estimate the backbone's batch-norm statistics on up "
                     "to this many training batches (AdaBN; 0: keep the weights' own). Needed with random weights.")
flags.DEFINE_integer("steps_per_epoch", 50, "Stage-2 steps between checkpoints and validation.")
flags.DEFINE_integer("seed", 0, "Shuffle and augmentation seed.")
flags.DEFINE_integer("fold", None, "Cross-validation: train on every fold of the record set but k and validate on "
                     "fold k (prepare.py --num_folds K); one model folder per fold.")
define_run_flags(export=True)
flags.mark_flags_as_required(["model_path", "data_dir"])


def main(argv):
    del argv
    from dltk2.apps import chest_xray

    chest_xray.run_training(run_settings(), from_flags(chest_xray.TrainingConfig))


if __name__ == "__main__":
    run(main)
