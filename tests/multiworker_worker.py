"""One worker of the two-process MultiWorkerMirroredStrategy test (run by tests/test_training.py).

Usage: multiworker_worker.py MODEL_PATH MAX_STEPS, with TF_CONFIG set. Trains a tiny DLTK ResNet on a
Reader dataset through dltk2.training.train and prints the replica count, the final step and a
checksum of the weights (equal on both workers if they stayed in sync).
"""

import dltk2  # noqa: F401

import json
import sys

import numpy as np
import tensorflow as tf
import keras

from dltk2.io.reader import Mode, Reader
from dltk2.networks.resnet import resnet_3d
from dltk2.training import prepare_model_dir, select_strategy, train


def read_fn(file_reference, mode, params):
    index = int(file_reference[0])
    rng = np.random.default_rng(index)
    for _ in range(2):
        label = np.int32(index % 2)
        yield {"features": {"x": rng.normal(label, 1.0, size=(8, 8, 8, 1)).astype(np.float32)},
               "labels": {"y": label}}


def main() -> None:
    strategy = select_strategy()
    reader = Reader(read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.int32}},
                    {"features": {"x": [8, 8, 8, 1]}, "labels": {"y": []}})
    dataset = reader.dataset([[str(i)] for i in range(8)], Mode.TRAIN, {}, batch_size=4, seed=0)
    with strategy.scope():
        model = resnet_3d((8, 8, 8, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = train(model, dataset, prepare_model_dir(sys.argv[1]), max_steps=int(sys.argv[2]), steps_per_epoch=3)
    checksum = float(sum(np.abs(w.numpy()).sum() for w in model.trainable_variables))
    print(json.dumps({"multi_worker": isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy), "replicas": strategy.num_replicas_in_sync,
                      "steps": int(model.optimizer.iterations.numpy()), "checksum": checksum,
                      "loss": history["loss"]}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
