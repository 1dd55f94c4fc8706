"""dltk2's networks: 3D residual networks, U-Nets, FCNs, and transfer learning from keras.applications."""

BACKBONE_NAMES = ("InceptionV3", "ResNet50V2", "DenseNet121", "EfficientNetV2B0", "EfficientNetV2B1",
                  "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S", "MobileNet")
"""The keras.applications backbones of :mod:`dltk2.networks.transfer`, named without importing Keras."""
