"""Inference on whole inputs, written in TensorFlow ops so that it exports into a SavedModel.

- :mod:`~dltk2.inference.predictor`: the contract every predictor keeps (configuration saved in the
  model folder, rebuilt by :func:`load_predictor`, one compiled ``serving_default``);
- :mod:`~dltk2.inference.crop_averaging`: :class:`CropAveragingPredictor`, DLTK's IXI deploy (average
  the predictions of random crops of a whitened volume) as one graph;
- :mod:`~dltk2.inference.sliding_window`: :func:`sliding_window_inference`, a volume of any size in
  overlapping, blended windows;
- :mod:`~dltk2.inference.segmenter`: :class:`SlidingWindowSegmenter`, a raw CT volume and its spacing
  in, resampling, HU window, sliding window and labels back on the input grid;
- :mod:`~dltk2.inference.classifiers`: :class:`ImageClassifier2D` (one grey 2D image of any size) and
  :class:`SeriesClassifier` (one MRI series of any size);
- :mod:`~dltk2.inference.resampling`: :func:`resample_volume` on SimpleITK's grid;
- :mod:`~dltk2.inference.saliency`: :func:`grad_cam` and :func:`occlusion_sensitivity`, where a
  classifier looked (the 2D and series classifiers and :class:`CropAveragingPredictor` export it as
  their ``explain`` signature, a map on the raw input's grid; deploys write it with ``--explain N``);
- :mod:`~dltk2.inference.pointing_game`: :func:`pointing_game`, whether a map's maximum falls on the
  planted finding, against a random map;
- :mod:`~dltk2.inference.super_resolution`: :class:`SuperResolver`, a low-resolution volume of any
  size in, the network's finer volume out, in the input's intensities;
- :mod:`~dltk2.inference.autoencoder`: :class:`AutoencoderPredictor`, a subject's sequences in, their
  reconstruction and code out, and an ``encode`` signature;
- :mod:`~dltk2.inference.generator`: :class:`GeneratorPredictor`, a GAN's generator: noise, or a
  count and a seed, in; volumes out.
"""

from dltk2.inference.autoencoder import AutoencoderPredictor
from dltk2.inference.classifiers import ImageClassifier2D, SeriesClassifier, grey_image_input, series_input
from dltk2.inference.crop_averaging import CropAveragingPredictor, random_crop_corners
from dltk2.inference.generator import GeneratorPredictor
from dltk2.inference.predictor import (Predictor, default_predictor_config, load_model_of, load_predictor,
                                       mirror_override, save_predictor_config)
from dltk2.inference.resampling import resample_volume
from dltk2.inference.saliency import grad_cam, occlusion_sensitivity
from dltk2.inference.segmenter import SlidingWindowSegmenter
from dltk2.inference.super_resolution import SuperResolver
from dltk2.inference.sliding_window import sliding_window_inference, window_starts, window_weights
from dltk2.transforms import tf_whitening
from dltk2.volume_sampling import pad_to_at_least

__all__ = [
    "AutoencoderPredictor", "CropAveragingPredictor", "GeneratorPredictor", "ImageClassifier2D", "Predictor", "SeriesClassifier", "SlidingWindowSegmenter",
    "SuperResolver",
    "default_predictor_config", "grey_image_input", "load_model_of", "load_predictor", "mirror_override",
    "random_crop_corners", "resample_volume", "save_predictor_config", "series_input", "sliding_window_inference",
    "tf_whitening", "window_starts", "window_weights", "pad_to_at_least", "grad_cam", "occlusion_sensitivity",
]
