"""2D classifiers on ``keras.applications`` backbones: headless backbone, grey-level input, a new head.

A backbone is chosen by name (:data:`BACKBONES`), built without its top, with ``weights`` =
``"imagenet"`` (downloaded by Keras where the machine can reach the internet), the path of a local
weights file, or None (random). Grey-level images (1 channel) are repeated to the 3 channels the
backbones expect, after the backbone's own input scaling (so images go in as intensities in [0, 1]).
"""

from __future__ import annotations

from typing import Sequence

import keras

# name -> (constructor, the backbone's own input preprocessing for [0, 255] RGB inputs)
BACKBONES = {
    "InceptionV3": (keras.applications.InceptionV3, keras.applications.inception_v3.preprocess_input),
    "ResNet50V2": (keras.applications.ResNet50V2, keras.applications.resnet_v2.preprocess_input),
    "DenseNet121": (keras.applications.DenseNet121, keras.applications.densenet.preprocess_input),
    "EfficientNetV2B0": (keras.applications.EfficientNetV2B0, keras.applications.efficientnet_v2.preprocess_input),
    "EfficientNetV2B1": (keras.applications.EfficientNetV2B1, keras.applications.efficientnet_v2.preprocess_input),
    "EfficientNetV2B2": (keras.applications.EfficientNetV2B2, keras.applications.efficientnet_v2.preprocess_input),
    "EfficientNetV2B3": (keras.applications.EfficientNetV2B3, keras.applications.efficientnet_v2.preprocess_input),
    "EfficientNetV2S": (keras.applications.EfficientNetV2S, keras.applications.efficientnet_v2.preprocess_input),
}


@keras.saving.register_keras_serializable(package="dltk2")
class GreyToBackboneInput(keras.layers.Layer):
    """[0, 1] intensities (batch, h, w, 1 or 3) -> the backbone's expected input (batch, h, w, 3).

    Scales to [0, 255], repeats a single channel three times, then applies the backbone's own
    preprocessing (by backbone name, so the layer serialises).
    """

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(BACKBONES)}")
        self.backbone = backbone

    def call(self, inputs):
        scaled = keras.ops.cast(inputs, "float32") * 255.0
        if scaled.shape[-1] == 1:
            scaled = keras.ops.repeat(scaled, 3, axis=-1)
        return BACKBONES[self.backbone][1](scaled)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (3,)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


def headless_backbone(name: str, input_shape: Sequence[int], weights: str | None = None) -> keras.Model:
    """The backbone without its top, global-average pooled: (batch, h, w, 3) -> (batch, features)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    constructor = BACKBONES[name][0]
    return constructor(include_top=False, weights=weights, input_shape=tuple(input_shape[:2]) + (3,),
                       pooling="avg")


def dense_head(features: int, num_classes: int, widths: Sequence[int] = (512, 256, 128), dropout: float = 0.5,
               name: str = "head") -> keras.Model:
    """Dense layers of ``widths`` (ReLU, dropout before each) and a ``num_classes`` logit layer."""
    inputs = keras.Input((features,), name="features")
    x = inputs
    for index, width in enumerate(widths):
        x = keras.layers.Dropout(dropout, name=f"dropout_{index}")(x) if dropout else x
        x = keras.layers.Dense(width, activation="relu", name=f"dense_{index}")(x)
    x = keras.layers.Dropout(dropout, name="dropout_out")(x) if dropout else x
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def transfer_classifier(
    backbone: str,
    input_shape: Sequence[int],
    num_classes: int,
    weights: str | None = None,
    head_widths: Sequence[int] = (512, 256, 128),
    dropout: float = 0.5,
) -> keras.Model:
    """Image in [0, 1] (batch, h, w, channels) -> class logits (batch, num_classes).

    Layers ``backbone`` (a nested model) and ``head`` (a nested model) can be frozen or swapped
    separately (see :func:`set_trainable_layers`).
    """
    inputs = keras.Input(tuple(input_shape), name="image")
    x = GreyToBackboneInput(backbone, name="to_backbone_input")(inputs)
    base = headless_backbone(backbone, input_shape, weights)
    base.name = "backbone"
    features = base(x)
    head = dense_head(features.shape[-1], num_classes, head_widths, dropout)
    return keras.Model(inputs, head(features), name=f"{backbone.lower()}_classifier")


def set_trainable_layers(backbone: keras.Model, num_trainable: int | None) -> None:
    """Freezes a backbone but for its last ``num_trainable`` layers (None: all trainable, 0: frozen).

    Batch-normalisation layers stay frozen (inference mode) whenever any layer is frozen, as fine-tuning
    practice recommends: their statistics come from a different data set.
    """
    layers = backbone.layers
    if num_trainable is None:
        backbone.trainable = True
        for layer in layers:
            layer.trainable = True
        return
    backbone.trainable = num_trainable > 0
    cut = len(layers) - num_trainable
    for index, layer in enumerate(layers):
        layer.trainable = index >= cut and not isinstance(layer, keras.layers.BatchNormalization)
