"""Trains DLTK's 3D residual network to classify sex from T1-weighted brain MRI (IXI_HH).

Defaults are DLTK's, meant for the real data on a GPU: 2 mm T1, whitening, random flips, 2 random
64x96x96 crops per volume, filters 16-256, strides 1,2,2,2,2, 2 residual units, L2 1e-3, Adam lr 1e-3
(epsilon 1e-5), batch 8, the first 150 subjects train and the rest validate. For a CPU, use
``--flagfile applications/IXI_HH_sex/cpu_preset.flags`` (see README.md).

An existing ``--model_path`` is resumed, never deleted; ``--restart`` starts over. At the end the model
is exported: ``<model_path>/model.keras`` and a SavedModel for TF Serving in ``<model_path>/export/<n>/``.

Example:
    python applications/IXI_HH_sex/train.py --model_path models/ixi_sex \\
        --data_csv data/IXI_HH/demographic_HH.csv
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from dltk2.apps import ixi_hh_cli
from dltk2.cli import run, run_settings

TARGET = "sex"
ixi_hh_cli.define_training_flags(l2=1e-3)


def main(argv):
    del argv
    import keras

    from dltk2.apps import ixi_hh

    # Two logits (0 male, 1 female), softmax cross-entropy, as DLTK.
    head = ixi_hh.Head(task="classification", num_classes=2,
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                       metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    ixi_hh.run_training(run_settings(), ixi_hh_cli.training_config(), TARGET, head, name="ixi_sex_resnet_3d")


if __name__ == "__main__":
    run(main)
