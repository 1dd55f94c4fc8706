"""The predictor contract: a model and everything around it at inference, saved and rebuilt by name.

A predictor is a ``tf.Module`` holding a Keras model and the preprocessing, sampling and
postprocessing in TensorFlow ops around it. Every predictor

- says what it is (``kind``) and how it was set up (``get_config()``, JSON values only), and is
  rebuilt from a model and that configuration (``from_config(model, config)``);
- gives its serving functions (``serving_functions()``: name -> ``tf.function`` with a named input
  signature; one is ``serving_default``) and one example request (``warmup_inputs()``);
- answers a request in numpy (``predict(**inputs)``) through the same compiled ``serving_default``
  that is exported, so deploy, evaluation and TF Serving give one answer.

Export writes ``model.keras``, ``predictor.json`` (kind and configuration) and the SavedModel
(:func:`dltk2.export.export_predictor`); :func:`load_predictor` rebuilds the predictor from the model
folder alone. Later capabilities (orientation, ensembles, test-time augmentation, saliency) add to
this contract, not beside it.
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Mapping

import keras
import numpy as np
import tensorflow as tf

from dltk2.errors import DataError
from dltk2.io.atomic import write_text_atomically
from dltk2.model_folder import ModelFolder, as_model_folder
from dltk2.run_config import RunConfig

PREDICTOR_SCHEMA = 1


class Predictor(tf.Module):
    """The base of every predictor (see the module docstring)."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type["Predictor"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Predictor.registry[cls.kind] = cls

    model: keras.Model

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments but the model, as JSON values."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, model: keras.Model, config: Mapping[str, Any]) -> "Predictor":
        return cls(model, **config)

    def serving_functions(self) -> dict[str, Any]:
        raise NotImplementedError

    def warmup_inputs(self) -> dict[str, np.ndarray]:
        """The named inputs of one ``serving_default`` request (the SavedModel's warm-up file)."""
        raise NotImplementedError

    def predict(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """``serving_default`` on numpy inputs, numpy outputs (the compiled function that is exported)."""
        return self.run("serving_default", **inputs)

    def input_names(self, function: str = "serving_default") -> list[str]:
        """The named inputs of one serving function, in its signature's order."""
        return [spec.name for spec in self.serving_functions()[function].input_signature]

    def run(self, function: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        """One serving function on numpy inputs, numpy outputs.

        Inputs the function does not take are ignored, so a deploy can give every input it knows
        (``image``, ``spacing``, ``direction``, ``seed``) to predictors of any age.

        Raises:
            ValueError: An input the function takes is missing.
        """
        serving = self.serving_functions()[function]
        specs = serving.input_signature
        missing = [spec.name for spec in specs if spec.name not in inputs]
        if missing:
            raise ValueError(f"{self.kind} {function} takes {', '.join(s.name for s in specs)}; "
                             f"missing {', '.join(missing)}")
        outputs = serving(*[tf.constant(np.asarray(inputs[spec.name], spec.dtype.as_numpy_dtype)) for spec in specs])
        return {name: value.numpy() for name, value in outputs.items()}


def predictor_config(predictor: Predictor) -> dict[str, Any]:
    """What ``predictor.json`` holds: the schema, the kind and the configuration."""
    if not predictor.kind or predictor.kind not in Predictor.registry:
        raise ValueError(f"{type(predictor).__name__} is not a registered predictor kind")
    return {"schema": PREDICTOR_SCHEMA, "kind": predictor.kind, "config": predictor.get_config()}


def save_predictor_config(model_path: str | os.PathLike | ModelFolder, predictor: Predictor) -> Path:
    """Writes ``<model_path>/predictor.json`` atomically."""
    folder = as_model_folder(model_path)
    text = json.dumps(predictor_config(predictor), indent=2, sort_keys=True)
    return write_text_atomically(folder.predictor_file, text)


def default_predictor_config(config: RunConfig) -> tuple[str, dict[str, Any]]:
    """The predictor a run configuration implies: ``(kind, configuration)``.

    Used at export, and for model folders written before ``predictor.json`` existed.

    Raises:
        DataError: A configuration that implies no predictor.
    """
    names = list(config.class_names)
    if config.task == "segmentation":
        return "sliding_window_segmenter", {
            "window": config.example_size, "spacing_mm": config.spacing_mm,
            "intensity_window": list(config.intensity_window), "num_classes": None}  # None: the model's output channels
    if len(config.example_size) == 2:
        return "image_classifier_2d", {"size": config.example_size[0], "class_names": names}
    if config.application == "mrnet_knee":
        return "series_classifier", {"depth": config.example_size[0], "size": config.example_size[1],
                                     "class_names": names}
    if len(config.example_size) == 3:
        return "crop_averaging", {"crop_size": config.example_size, "num_crops": config.training.get("num_crops", 4),
                                  "task": config.task, "whiten": config.intensity.get("method") == "whitening",
                                  "channels": config.channels}
    raise DataError(f"{config.application}: no predictor for a {len(config.example_size)}D input")


def _read_predictor_file(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable predictor configuration ({error})") from None
    if not isinstance(spec, dict) or spec.get("kind") not in Predictor.registry:
        raise DataError(f"{path}: unknown predictor kind {spec.get('kind') if isinstance(spec, dict) else spec!r} "
                        f"(known: {', '.join(sorted(Predictor.registry))})")
    if int(spec.get("schema", 0)) > PREDICTOR_SCHEMA:
        raise DataError(f"{path}: predictor schema {spec['schema']}, written by a newer dltk2: upgrade dltk2")
    return spec["kind"], dict(spec.get("config", {}))


def load_model_of(model_path: str | os.PathLike | ModelFolder) -> keras.Model:
    """The folder's model in float32: the exported ``model.keras``, else its best (then last) checkpoint.

    Raises:
        FileNotFoundError: Nothing trained or exported there.
        DataError: Every candidate damaged.
    """
    from dltk2.checkpoints import load_checkpoint
    from dltk2.training.models import as_float32

    folder = as_model_folder(model_path)
    if folder.model_file.exists():
        return as_float32(load_checkpoint(folder.model_file, [folder.best_checkpoint, folder.last_checkpoint]))
    return as_float32(load_checkpoint(folder.best_checkpoint, [folder.last_checkpoint]))


def mirror_override(axes) -> dict[str, list[int]]:
    """A deploy's ``--mirror_axes`` as a :func:`load_predictor` override; none when empty (the folder's own setting)."""
    return {"mirror_axes": [int(a) for a in axes]} if axes else {}


def load_predictor(model_path: str | os.PathLike | ModelFolder, model: keras.Model | None = None,
                   **overrides: Any) -> Predictor:
    """Rebuilds a model folder's predictor from the folder alone.

    The kind and configuration come from ``predictor.json`` (or, in a folder from before it, from the
    run configuration: :func:`default_predictor_config`); the model from ``model.keras`` (or the best
    checkpoint) in float32, for CPU serving.

    Args:
        model_path: The model folder.
        model: Use this model instead of the folder's (e.g. a checkpoint being evaluated).
        **overrides: Settings a deploy may choose (``num_crops``, ``overlap``, ``batch_size``, ``blend``).

    Raises:
        FileNotFoundError: Not a model folder, or nothing trained in it.
        DataError: A configuration that cannot be read, or an override the predictor does not take.
    """
    folder = as_model_folder(model_path)
    if folder.predictor_file.exists():
        kind, config = _read_predictor_file(folder.predictor_file)
    else:
        kind, config = default_predictor_config(folder.read_config())
    takes = set(inspect.signature(Predictor.registry[kind].__init__).parameters) - {"self", "model"}
    unknown = sorted(set(overrides) - takes)
    if unknown:
        raise DataError(f"{folder.path}: a {kind} predictor takes no {', '.join(unknown)}")
    keras.mixed_precision.set_global_policy("float32")
    return Predictor.registry[kind].from_config(model if model is not None else load_model_of(folder),
                                                {**config, **overrides})
