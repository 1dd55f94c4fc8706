"""Fold ensembles: the folds' models as one Keras model, and one model folder exported for serving.

nnU-Net averages its five folds' softmax; here the folds become one functional Keras model whose
output is that average (:func:`fold_ensemble`), so every predictor takes it as it takes one model:
the sliding window passes each window batch through every fold before blending (memory: one batch's
activations per fold at a time, and one accumulator), crop averaging each crop. A classifier's or
regressor's ensemble keeps each fold's output instead (``stack=True``: (batch, folds, classes)), so
its predictor reports the spread across folds beside that across crops and mirrorings; a
segmentation's averages in the model (per-voxel stacks would multiply the accumulator's memory by
the folds). :func:`export_ensemble` writes a model folder for the ensemble (``model.keras``,
``predictor.json``, ``run_config.json``, the SavedModel) with the first fold's predictor settings and
``model_outputs`` ``"probabilities"`` (segmentation) or ``"fold_probabilities"``, so the SavedModel
has the single model's signatures and deploy uses it through :func:`load_predictor`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

import keras

from dltk2.errors import DataError


def fold_ensemble(models: Sequence[keras.Model], task: str = "classification", name: str = "fold_ensemble",
                  stack: bool = False) -> keras.Model:
    """One model averaging the folds: softmax probabilities (classification, segmentation) or values (regression).

    Args:
        models: The folds' models, all with one input and one output of the same shapes.
        task: ``"classification"``/``"segmentation"`` (outputs are logits: averaged after softmax) or
            ``"regression"`` (averaged as they are).
        stack: Keep each fold's output, (batch, folds, classes or 1), instead of the mean (for
            predictors that report the spread across folds: ``model_outputs="fold_probabilities"``).

    Returns:
        A functional model with the folds' input; its output is probabilities (or values), not logits.

    Raises:
        DataError: Fewer than two models, or models of different input or output shapes.
    """
    if len(models) < 2:
        raise DataError(f"an ensemble needs two or more models, got {len(models)}")
    shapes = {(tuple(m.input_shape), tuple(m.output_shape)) for m in models}
    if len(shapes) != 1:
        raise DataError(f"the folds' models differ in input or output shape: {sorted(map(str, shapes))}")
    inputs = keras.Input(models[0].input_shape[1:], name="image")
    outputs = []
    for k, model in enumerate(models):
        fold = keras.Model(model.inputs, model.outputs[0], name=f"fold_{k}")  # unique names in the ensemble
        output = fold(inputs)
        outputs.append(output if task == "regression" else keras.layers.Softmax(axis=-1, name=f"softmax_{k}")(output))
    if stack:
        if len(models[0].output_shape) != 2:
            raise DataError(f"only (batch, classes) outputs are stacked by fold, not {models[0].output_shape}")
        width = models[0].output_shape[-1]
        stacked = [keras.layers.Reshape((1, width), name=f"fold_axis_{k}")(o) for k, o in enumerate(outputs)]
        return keras.Model(inputs, keras.layers.Concatenate(axis=1, name="folds")(stacked), name=name)
    return keras.Model(inputs, keras.layers.Average(name="mean_over_folds")(outputs), name=name)


def fold_models(model) -> list | None:
    """The folds' models inside a :func:`fold_ensemble` of segmentation models, in fold order; None otherwise.

    The sliding window runs them one after another (:class:`dltk2.inference.test_time.MirroredProbabilities`)
    rather than as one graph, whose folds TensorFlow may run at once, each with its activations.
    """
    names = {layer.name for layer in getattr(model, "layers", [])}
    if "mean_over_folds" not in names:
        return None
    folds = sorted((name for name in names if name.startswith("fold_") and name[5:].isdigit()), key=lambda n: int(n[5:]))
    return [model.get_layer(name) for name in folds]


def export_ensemble(fold_paths: Sequence[str | Path], output_path: str | Path, **overrides) -> Path:
    """Exports the folds of a cross-validation as one model folder whose SavedModel averages them.

    Args:
        fold_paths: The folds' model folders (each trained with ``--fold k``); their predictors must
            be of one kind and configuration.
        output_path: The ensemble's model folder (created).
        **overrides: Predictor settings to change (e.g. ``mirror_axes``).

    Returns:
        The SavedModel folder written.

    Raises:
        DataError: Folds of different predictor kinds or settings, or a predictor that takes no
            ``model_outputs``.
    """
    from dltk2.export import export_predictor
    from dltk2.inference.predictor import Predictor, _read_predictor_file, default_predictor_config, load_model_of
    from dltk2.model_folder import ModelFolder

    folders = [ModelFolder(path) for path in fold_paths]
    specs = [_read_predictor_file(f.predictor_file) if f.predictor_file.exists()
             else default_predictor_config(f.read_config()) for f in folders]
    if len({(kind, str(sorted(config.items()))) for kind, config in specs}) != 1:
        raise DataError(f"{', '.join(map(str, fold_paths))}: the folds' predictors differ: {specs}")
    kind, config = specs[0]
    if "model_outputs" not in inspect.signature(Predictor.registry[kind].__init__).parameters:
        raise DataError(f"a {kind} predictor cannot serve an ensemble yet (it takes no model_outputs)")
    run_config = folders[0].read_config()
    keras.mixed_precision.set_global_policy("float32")
    stack = run_config.task != "segmentation"
    model = fold_ensemble([load_model_of(f) for f in folders], run_config.task,
                          name=f"{run_config.application}_ensemble_of_{len(folders)}", stack=stack)
    outputs = "fold_probabilities" if stack else "probabilities"
    predictor = Predictor.registry[kind].from_config(model, {**config, **overrides, "model_outputs": outputs})
    output = ModelFolder(output_path)
    output.path.mkdir(parents=True, exist_ok=True)
    output.write_config(run_config.updated(data={"ensemble_of": [str(f.path.resolve()) for f in folders]}))
    _, saved_model = export_predictor(output, predictor)
    return saved_model
