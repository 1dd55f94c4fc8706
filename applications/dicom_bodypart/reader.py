"""Reading the body-part TFRecords for training: decode, min-max scale, resize with padding, class weights.

The reading itself is :func:`dltk2.datasets.bodypart.classification_dataset`; the serving function
applies the same scaling (:func:`dltk2.inference.grey_image_input`) to a raw image.
"""

from dltk2.datasets.bodypart import CLASSES, classification_dataset

__all__ = ["CLASSES", "classification_dataset"]
