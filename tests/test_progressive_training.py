"""Progressive resizing, fastai-style fine-tuning, and the best checkpoint across resumed runs."""

import io
import json
import zipfile

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from dltk2.metrics import PositiveClassAUC
from dltk2.networks.resnet import r3d_18, resnet_3d
from dltk2.training import (best_checkpoint, best_logged, fine_tune, prepare_model_dir, resize_input, steps_done,
                            train, train_progressively)


def toy_dataset(size, batch_size=4, seed=0, repeat=True):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=16).astype(np.int32)
    images = rng.normal(labels[:, None, None, None, None], 1.0, size=(16, size, size, size, 1)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    return (dataset.repeat() if repeat else dataset).batch(batch_size)


def compile_model(model, learning_rate, steps):
    model.compile(keras.optimizers.Adam(learning_rate), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[PositiveClassAUC()])


def tiny_model(size=8):
    return resnet_3d((size, size, size, 1), num_classes=2, filters=(4, 8), strides=(1, 2))


def test_resize_input_keeps_every_weight_and_the_function():
    model = tiny_model(8)
    model.layers[-1].set_weights([w + 0.5 for w in model.layers[-1].get_weights()])
    larger = resize_input(model, (12, 12, 12, 1))
    assert larger.input_shape == (None, 12, 12, 12, 1) and larger is not model
    for old, new in zip(model.get_weights(), larger.get_weights()):
        np.testing.assert_array_equal(old, new)
    x = np.random.default_rng(0).normal(size=(2, 12, 12, 12, 1)).astype(np.float32)
    assert larger(x, training=False).shape == (2, 2)
    fully_convolutional = resnet_3d((None, None, None, 1), num_classes=2, filters=(4, 8), strides=(1, 2))
    resized = resize_input(fully_convolutional, (12, 12, 12, 1))
    np.testing.assert_allclose(resized(x, training=False), fully_convolutional(x, training=False), atol=1e-5)
    assert resize_input(larger, (12, 12, 12, 1)) is larger
    r3d = resize_input(r3d_18((4, 16, 16, 1), 2), (6, 24, 24, 1))
    assert r3d.output_shape == (None, 2) and r3d.count_params() == r3d_18((4, 16, 16, 1), 2).count_params()


def test_resize_input_refuses_weights_that_depend_on_the_size():
    inputs = keras.Input((4, 4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(inputs)))
    with pytest.raises(ValueError, match="weights depend on the input size"):
        resize_input(model, (8, 8, 8, 1))


def test_fine_tune_trains_the_head_alone_first_then_everything(tmp_path):
    model = tiny_model()
    trunk_before = [w.numpy().copy() for w in model.get_layer("stem_conv").weights]
    head_before = [w.numpy().copy() for w in model.get_layer("logits").weights]
    fine_tune(model, compile_model, toy_dataset(8), tmp_path, epochs=0, freeze_epochs=1, steps_per_epoch=2,
              head_layers=("logits",), learning_rate=0.01)
    for before, after in zip(trunk_before, model.get_layer("stem_conv").weights):
        np.testing.assert_array_equal(before, after.numpy())  # frozen
    assert not np.allclose(head_before[0], model.get_layer("logits").weights[0].numpy())
    assert all(layer.trainable for layer in model.layers)  # unfrozen again afterwards
    fine_tune(model, compile_model, toy_dataset(8), tmp_path, epochs=1, freeze_epochs=1, steps_per_epoch=2,
              head_layers=("logits",), learning_rate=0.01)
    assert steps_done(tmp_path / "frozen") == 2 and steps_done(tmp_path / "unfrozen") == 2
    assert not np.allclose(trunk_before[0], model.get_layer("stem_conv").weights[0].numpy())
    assert model.optimizer.learning_rate.numpy() == pytest.approx(0.005)  # half the rate once unfrozen


def test_progressive_resizing_carries_the_weights_from_stage_to_stage(tmp_path, capsys):
    seen = []

    def datasets(shape):
        seen.append(shape)
        return toy_dataset(shape[0]), toy_dataset(shape[0], seed=1, repeat=False)

    stages = [{"input_shape": (8, 8, 8, 1), "epochs": 1}, {"input_shape": (12, 12, 12, 1), "epochs": 1}]
    model, best = train_progressively(tiny_model(), stages, compile_model, datasets, tmp_path, steps_per_epoch=2,
                                      head_layers=("logits",), monitor="val_auc", mode="max", verbose=0)
    assert seen == [(8, 8, 8, 1), (12, 12, 12, 1)] and model.input_shape == (None, 12, 12, 12, 1)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("stage ")]
    assert said == [f"stage 1/2: input 8x8x8, 0 epoch(s) head only then 1 whole, 2 steps each, in "
                    f"{tmp_path / 'stage1_8x8x8'}", f"stage 2/2: input 12x12x12, 0 epoch(s) head only then 1 "
                    f"whole, 2 steps each, in {tmp_path / 'stage2_12x12x12'}"]
    first = keras.models.load_model(tmp_path / "stage1_8x8x8" / "unfrozen" / "checkpoints" / "last.keras")
    second_start = keras.models.load_model(tmp_path / "stage2_12x12x12" / "unfrozen" / "checkpoints" / "last.keras")
    assert second_start.input_shape == (None, 12, 12, 12, 1)
    # Stage 2 continued from stage 1's weights: they moved by two small Adam steps, not a fresh start.
    change = np.abs(first.get_layer("stem_conv").weights[0].numpy() - second_start.get_layer("stem_conv").weights[0].numpy())
    assert 0 < change.max() < 0.05
    # Disk: a finished earlier stage keeps its checkpoints but not its resume backups; the last stage
    # keeps both, so a longer run can resume it; no .keras file carries the optimizer's moments.
    assert list((tmp_path / "stage1_8x8x8" / "unfrozen" / "backup").iterdir()) == []
    assert list((tmp_path / "stage2_12x12x12" / "unfrozen" / "backup").iterdir()) != []
    assert list(tmp_path.glob("**/best.keras")) == [best_checkpoint(tmp_path)]  # beaten bests are gone
    for checkpoint in tmp_path.glob("**/*.keras"):
        with zipfile.ZipFile(checkpoint) as archive, archive.open("model.weights.h5") as weights:
            with h5py.File(io.BytesIO(weights.read())) as stored:
                assert "optimizer" not in stored, checkpoint
    logged = [best_logged(tmp_path / f"{stage}" / "unfrozen", "val_auc", "max") for stage in ("stage1_8x8x8", "stage2_12x12x12")]
    assert best == pytest.approx(max(logged))
    assert best_checkpoint(tmp_path).parent.parent.parent.name == ("stage2_12x12x12" if logged[1] > logged[0] else "stage1_8x8x8")

    # Run again (a resumed job): nothing trains, the same final weights come back.
    again, _ = train_progressively(tiny_model(), stages, compile_model, datasets, tmp_path, steps_per_epoch=2,
                                   head_layers=("logits",), monitor="val_auc", mode="max", verbose=0)
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert steps_done(tmp_path / "stage2_12x12x12" / "unfrozen") == 2


def test_a_resumed_run_keeps_the_best_checkpoint_of_before(tmp_path):
    model_path = prepare_model_dir(tmp_path / "model")
    model = tiny_model()
    compile_model(model, 0.01, 4)
    validation = toy_dataset(8, seed=1, repeat=False)
    train(model, toy_dataset(8), model_path, 2, 1, validation_dataset=validation, verbose=0)
    best = model_path / "checkpoints" / "best.keras"
    written = best.stat().st_mtime_ns
    state_path = model_path / "training_state.json"
    state = json.loads(state_path.read_text())
    assert state["best"]["monitor"] == "val_loss" and state["best"]["epoch"] in (0, 1)
    state["best"]["value"] = -1.0  # an earlier epoch no later one can beat
    state_path.write_text(json.dumps(state))
    resumed = tiny_model()
    compile_model(resumed, 0.01, 4)
    train(resumed, toy_dataset(8), model_path, 4, 1, validation_dataset=validation, verbose=0)
    assert steps_done(model_path) == 4 and best.stat().st_mtime_ns == written
    assert json.loads((model_path / "training_state.json").read_text())["steps_done"] == 4
