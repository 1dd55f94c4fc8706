"""Trains DLTK's 3D residual network to regress age from T1-weighted brain MRI (IXI_HH).

Defaults are DLTK's, meant for the real data on a GPU: 2 mm T1, whitening, random flips, 2 random
64x96x96 crops per volume, filters 16-256, strides 1,2,2,2,2, 2 residual units, mean squared error,
L2 1e-4, Adam lr 1e-3 (epsilon 1e-5), batch 8, the first 150 subjects train and the rest validate. The
output's bias starts at the training subjects' mean age. For a CPU, use
``--flagfile applications/IXI_HH_age/cpu_preset.flags``.

An existing ``--model_path`` is resumed, never deleted; ``--restart`` starts over. At the end the model
is exported: ``<model_path>/model.keras`` and a SavedModel for TF Serving in ``<model_path>/export/<n>/``.

Example:
    python applications/IXI_HH_age/train.py --model_path models/ixi_age \\
        --data_csv data/IXI_HH/demographic_HH.csv
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from dltk2.apps import ixi_hh_cli
from dltk2.cli import run, run_settings

TARGET = "age"
ixi_hh_cli.define_training_flags(l2=1e-4)


def start_at_mean_age(model, train_subjects):
    """The output's bias starts at the training subjects' mean age, so early steps are not spent there."""
    model.get_layer("prediction").bias.assign([train_subjects["label"].astype(float).mean()])


def main(argv):
    del argv
    import keras

    from dltk2.apps import ixi_hh

    # One output in years, mean squared error, as DLTK.
    head = ixi_hh.Head(task="regression", num_classes=1, loss=keras.losses.MeanSquaredError(),
                       metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    ixi_hh.run_training(run_settings(), ixi_hh_cli.training_config(), TARGET, head, name="ixi_age_resnet_3d",
                        initialise=start_at_mean_age)


if __name__ == "__main__":
    run(main)
