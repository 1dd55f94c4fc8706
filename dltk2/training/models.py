"""Trained models in and out of a run: load a checkpoint, compute in float32, resize, freeze, schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import keras

from dltk2.checkpoints import load_checkpoint
from dltk2.model_folder import ModelFolder


def load_trained_model(model_path: str | Path, which: str = "best") -> keras.Model:
    """Loads ``checkpoints/best.keras`` (falling back to ``last.keras``) or ``last.keras``.

    A damaged checkpoint (not a complete archive) is passed over for the next, with a warning.

    Raises:
        FileNotFoundError: No checkpoint: nothing was trained in ``model_path``.
        DataError: Every checkpoint there is damaged.
    """
    folder = ModelFolder(model_path)
    if which == "best":
        return load_checkpoint(folder.best_checkpoint, [folder.last_checkpoint])
    return load_checkpoint(folder.last_checkpoint)



def _float32_config(config):
    """A copy of a Keras config in which every mixed-precision dtype policy is float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name", "")).startswith("mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config



def as_float32(model: keras.Model) -> keras.Model:
    """The same model and weights computing in float32, for export and CPU inference.

    A model trained under ``mixed_float16`` keeps float16 layer policies when saved; served on a CPU it
    would fail (no float16 kernel for 3D pooling) or lose precision. Float32 models are returned as is.
    """
    config = model.get_config()
    converted = _float32_config(config)
    if converted == config:
        return model
    clone = model.__class__.from_config(converted)
    clone.set_weights(model.get_weights())
    return clone



def learning_rate_schedule(learning_rate: float, schedule: str = "constant", max_steps: int = 1):
    """A constant learning rate (DLTK), or cosine decay to zero over ``max_steps``.

    Cosine decay lets the weights settle at the end, so batch-norm moving statistics catch up with
    them; short CPU runs need that for a calibrated model at inference.
    """
    if schedule == "constant":
        return learning_rate
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, max_steps))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose 'constant' or 'cosine'")



def resize_input(model: keras.Model, input_shape: Sequence[int | None]) -> keras.Model:
    """The same functional model and weights, rebuilt for another input shape (progressive resizing).

    Convolutional trunks with global pooling have weights that do not depend on the input size, so
    a model trained on small inputs continues on larger ones with every weight kept. The model's
    layers are rebuilt from its config with the new shape (no batch axis) and the weights copied.

    Raises:
        ValueError: A model that is not functional with one input, or weights whose shapes depend on
            the input size (a dense layer on flattened features).
    """
    config = model.get_config()
    inputs = [layer for layer in config.get("layers", []) if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ValueError(f"{model.name}: resize_input needs a functional model with one input")
    input_config = inputs[0]["config"]
    key = "batch_shape" if "batch_shape" in input_config else "batch_input_shape"
    if tuple(input_config[key][1:]) == tuple(input_shape):
        return model
    input_config[key] = [input_config[key][0], *input_shape]
    try:
        resized = model.__class__.from_config(config)
    except ValueError as error:  # a layer built for the old size (a dense layer on flattened features)
        raise ValueError(f"{model.name}: weights depend on the input size; cannot rebuild for {tuple(input_shape)}: "
                         f"{str(error).splitlines()[0]}") from None
    old, new = model.get_weights(), resized.get_weights()
    mismatched = [(a.shape, b.shape) for a, b in zip(old, new) if a.shape != b.shape]
    if mismatched:
        raise ValueError(f"{model.name}: weights depend on the input size ({mismatched[0][0]} -> {mismatched[0][1]})")
    resized.set_weights(old)
    return resized



def freeze_all_but(model: keras.Model, trainable_layers: Sequence[str]) -> None:
    """Makes only the named layers trainable (batch norm elsewhere then runs in inference mode)."""
    names = {layer.name for layer in model.layers}
    missing = [name for name in trainable_layers if name not in names]
    if missing:
        raise ValueError(f"{model.name} has no layer(s) {missing}")
    for layer in model.layers:
        layer.trainable = layer.name in trainable_layers

