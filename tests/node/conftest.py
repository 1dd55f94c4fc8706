"""Fixtures of the DICOM node's tests: a tiny segmentation model folder, a CT series, a real Orthanc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pacs import CLASS_NAMES, DICOMWEB_PLUGIN, ORTHANC, Orthanc, ct_image


@pytest.fixture(scope="session")
def segmentation_model(tmp_path_factory) -> Path:
    """A model folder whose segmenter labels air 0, soft tissue (about 0 HU) 1 and bone (700 HU) 2.

    One 1x1x1 convolution on the [-1, 1]-windowed HU x: logits (0, 10x + 5, 30x - 5), so x < -0.5 is
    background, -0.5 < x < 0.5 soft tissue and x > 0.5 bone: known labels, not a random network's.
    """
    import keras

    from dltk2.export import export_predictor
    from dltk2.inference import SlidingWindowSegmenter
    from dltk2.model_folder import ModelFolder
    from dltk2.run_config import RunConfig

    inputs = keras.Input((None, None, None, 1))
    convolution = keras.layers.Conv3D(3, 1)
    model = keras.Model(inputs, convolution(inputs))
    convolution.set_weights([np.array([0.0, 10.0, 30.0], np.float32).reshape(1, 1, 1, 1, 3),
                             np.array([0.0, 5.0, -5.0], np.float32)])
    folder = tmp_path_factory.mktemp("models") / "tissue_seg"
    export_predictor(folder, SlidingWindowSegmenter(model, [8, 8, 8], [2.0, 2.0, 2.0], num_classes=3))
    ModelFolder(folder).write_config(RunConfig(application="tissue_seg", task="segmentation", example_size=[8, 8, 8],
                                               spacing_mm=[2.0, 2.0, 2.0], class_names=CLASS_NAMES))
    return folder


@pytest.fixture
def ct_series(tmp_path) -> Path:
    """A CT series folder (one file per slice) of :func:`ct_image`, patient "Phantom^One" (PHANTOM01)."""
    import make_dicom_series

    folder = tmp_path / "ct"
    make_dicom_series.write_series(ct_image(), folder)
    return folder


@pytest.fixture
def orthanc(tmp_path):
    if ORTHANC is None or not DICOMWEB_PLUGIN.is_file():
        pytest.skip("Orthanc and its DICOMweb plugin (Debian packages orthanc, orthanc-dicomweb) are not installed; "
                    ".ci/run installs them where it is root")
    server = Orthanc(tmp_path / "orthanc")
    yield server
    server.stop()
