"""One received series through one model folder's predictor: a DICOM SEG or SR beside the spool.

The predictor is the exported serving function itself (:func:`dltk2.inference.load_predictor`), so the
node computes what TensorFlow Serving would: it is given every input it may take (the series'
voxels, spacing in mm and direction; a 2D classifier the single image) and ignores none it needs.
What comes back is written as the application would write it:

- segmentation (``labels``): a DICOM SEG on the series' slices, one segment per class of the run
  configuration (:func:`dltk2.io.dicom_objects.write_segmentation`);
- classification (``class_id``, ``probabilities``) and regression (``prediction``): a Comprehensive
  SR with the finding coded as the application codes it (sex, body part, nodule, MRNet's tears; a
  class of another model as a code of dltk2's private scheme 99DLTK2), its probability, and the
  series' images as evidence (:func:`dltk2.io.dicom_objects.write_finding_report`).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pydicom

from dltk2.errors import DataError
from dltk2.io.dicom_objects import ModelIdentity, source_datasets, write_finding_report, write_segmentation
from dltk2.io.dicom_series import SeriesVolume
from dltk2.model_folder import ModelFolder
from dltk2.run_config import RunConfig


@dataclasses.dataclass
class LoadedModel:
    """A model folder ready to serve: its predictor, run configuration and identity."""

    path: Path
    predictor: object
    config: RunConfig
    identity: ModelIdentity


class ModelCache:
    """Each rule's model loaded once, on first use (TensorFlow is imported then, not before)."""

    def __init__(self) -> None:
        self._models: dict[Path, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, path: Path) -> LoadedModel:
        with self._lock:
            if path not in self._models:
                from dltk2.inference import load_predictor

                folder = ModelFolder(path)
                self._models[path] = LoadedModel(path, load_predictor(folder), folder.read_config(),
                                                 ModelIdentity.of_model_folder(path))
            return self._models[path]


def predictor_inputs(predictor, volume: SeriesVolume) -> dict[str, np.ndarray]:
    """Every input a predictor may take, from one series (a 2D image for a rank-2 input)."""
    spec = {spec.name: spec for spec in predictor.serving_functions()["serving_default"].input_signature}
    array = volume.array
    for name in ("image", "series"):
        if name in spec and spec[name].shape.rank == 2:
            if array.shape[0] != 1:
                raise DataError(f"series {volume.frames[0].path.parent.name}: a 2D classifier reads one image, "
                                f"this series has {array.shape[0]}")
            array = array[0]
    image = volume.image
    return {"image": array, "series": array, "spacing": np.asarray(image.GetSpacing()),
            "direction": np.asarray(image.GetDirection()), "seed": np.int32(0)}


def finding_of(config: RunConfig, outputs: dict[str, np.ndarray]):
    """The coded finding of a classifier's or regressor's outputs (see the module docstring)."""
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    from dltk2.io.dicom_objects import (AGE, BODY_PART_CODES, CHEST_FINDING_CODES, FEMALE, LOCAL_SCHEME, MALE,
                                        MRNET_CONCEPTS, SEX, Finding)

    if config.task == "regression":
        unit = codes.UCUM.Year if config.target == "age" else codes.UCUM.NoUnits
        concept = AGE if config.target == "age" else Code(config.target or "VALUE", LOCAL_SCHEME,
                                                          (config.target or "value").replace("_", " "))
        return Finding(concept, measurement=(float(np.ravel(outputs["prediction"])[0]), unit))
    class_id = int(np.ravel(outputs["class_id"])[0])
    probability = float(np.ravel(outputs["probabilities"])[class_id])
    name = config.class_names[class_id] if class_id < len(config.class_names) else str(class_id)
    if config.target == "sex":
        return Finding(SEX, FEMALE if name == "female" else MALE, probability)
    if name in BODY_PART_CODES and config.application.startswith("dicom_bodypart"):
        return Finding(site=BODY_PART_CODES[name], probability=probability)
    if name in CHEST_FINDING_CODES:
        return Finding(value=CHEST_FINDING_CODES[name], probability=probability)
    if config.target in MRNET_CONCEPTS:
        concept, values = MRNET_CONCEPTS[config.target]
        return Finding(concept, values[name], probability)
    return Finding(Code(config.application.upper()[:16], LOCAL_SCHEME, config.application),
                   Code(name.upper()[:16], LOCAL_SCHEME, name), probability)


def write_results(model: LoadedModel, volume: SeriesVolume, folder: Path) -> list[tuple[str, Path]]:
    """Runs one model on one series and writes its DICOM object; returns ``[(SOPInstanceUID, path)]``."""
    outputs = model.predictor.run("serving_default", **predictor_inputs(model.predictor, volume))
    application = model.config.application
    if model.config.task == "segmentation":
        names = {number: name for number, name in enumerate(model.config.class_names[1:], start=1)}
        if not names:
            raise DataError(f"{model.path}: a segmentation model folder's run configuration names no classes")
        path = write_segmentation(np.asarray(outputs["labels"]), volume, names, folder / f"{application}_seg.dcm",
                                  model.identity)
    else:
        path = write_finding_report(source_datasets(volume), [finding_of(model.config, outputs)],
                                    folder / f"{application}_sr.dcm", model.identity)
    return [(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID), path)]
