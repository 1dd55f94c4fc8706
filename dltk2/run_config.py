"""The run configuration: what deploy, evaluation and export need to know about a training run.

One schema for every application (``run_config.json`` in the model folder, :data:`SCHEMA` 2)::

    {"schema": 2, "application": "IXI_HH_sex", "task": "classification", "target": "sex",
     "example_size": [40, 48, 40], "channels": 1, "spacing_mm": [4.0, 4.0, 4.0], "orientation": "LPS",
     "intensity": {"method": "whitening"}, "class_names": ["male", "female"],
     "data": {"data_csv": "...", "num_train": 80}, "training": {"precision": "float32", ...},
     "library_version": "0.1.0"}

``example_size`` is the network's input (a crop, a patch, a series' (depth, h, w), an image's (h, w)),
``spacing_mm`` is (x, y, z) as SimpleITK's, ``orientation`` the axis codes of the training images
(:func:`dltk2.io.orientation.axis_codes`; None where the data carry none), ``intensity`` how raw
values become the network's input (``whitening``; ``window`` with ``low``/``high``, e.g. HU;
``min_max``), ``class_names`` the name of each output index (for segmentation, of each label value,
background first), ``data`` what it was trained on, ``training`` the application's own settings.

Folders written before the schema (each application had its own keys) are converted when read, so
an old model folder still deploys; what cannot be read fails in one line naming the file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltk2.errors import DataError

SCHEMA = 2
TASKS = ("classification", "regression", "segmentation", "super_resolution", "autoencoding", "generation")
INTENSITY_METHODS = ("whitening", "window", "min_max")


def training_settings(config: Any, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A training configuration dataclass as the run configuration's ``training`` (its data fields left out).

    Fields named ``data_csv``, ``validation_csv`` and those in ``leave_out`` go elsewhere (``data``);
    the rest are the application's own settings, written as they are.
    """
    skip = {"data_csv", "validation_csv", *leave_out}
    return {name: value for name, value in dataclasses.asdict(config).items() if name not in skip}


def _library_version() -> str:
    from dltk2 import __version__

    return __version__


@dataclass
class RunConfig:
    """A training run's configuration (see the module docstring for the fields)."""

    application: str
    task: str
    example_size: list[int]
    channels: int = 1
    spacing_mm: list[float] | None = None
    orientation: str | None = None
    intensity: dict[str, Any] = field(default_factory=lambda: {"method": "whitening"})
    class_names: list[str] = field(default_factory=list)
    target: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    library_version: str = field(default_factory=_library_version)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        method = self.intensity.get("method")
        if method not in INTENSITY_METHODS:
            raise ValueError(f"intensity method must be one of {INTENSITY_METHODS}, got {method!r}")
        if method == "window" and not ("low" in self.intensity and "high" in self.intensity):
            raise ValueError(f"a window needs low and high, got {self.intensity}")
        self.example_size = [int(size) for size in self.example_size]
        if self.spacing_mm is not None:
            self.spacing_mm = [float(s) for s in self.spacing_mm]
        self.class_names = [str(name) for name in self.class_names]

    @property
    def intensity_window(self) -> tuple[float, float]:
        """(low, high) of a ``window`` intensity preprocessing."""
        if self.intensity.get("method") != "window":
            raise ValueError(f"{self.application}: intensity is {self.intensity['method']}, not a window")
        return float(self.intensity["low"]), float(self.intensity["high"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def updated(self, **changes: Any) -> "RunConfig":
        """A copy with fields replaced; ``data`` and ``training`` are merged, not replaced."""
        for name in ("data", "training"):
            if name in changes:
                changes[name] = {**getattr(self, name), **changes[name]}
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "run_config.json") -> "RunConfig":
        """A configuration of the current schema, or of an older one converted.

        Raises:
            DataError: A newer schema, unknown keys, or an old layout of no known application.
        """
        if not isinstance(values, dict):
            raise DataError(f"{source}: not a JSON object")
        schema = values.get("schema", 1)
        if not isinstance(schema, int) or schema > SCHEMA:
            raise DataError(f"{source}: run configuration schema {schema!r}, written by a newer dltk2 than "
                            f"{_library_version()} (which reads up to {SCHEMA}): upgrade dltk2")
        if schema < SCHEMA:
            return _from_schema_1(values, source)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DataError(f"{source}: unknown run configuration key(s) {', '.join(unknown)}")
        try:
            return cls(**values)
        except (TypeError, ValueError) as error:
            raise DataError(f"{source}: {error}") from None

    @classmethod
    def read(cls, path: str | Path) -> "RunConfig":
        """Reads ``run_config.json``.

        Raises:
            FileNotFoundError: No such file (not a model folder written by train.py).
            DataError: Not JSON, or a configuration that :meth:`from_dict` refuses.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; is {path.parent} a model folder written by train.py?")
        try:
            values = json.loads(path.read_text())
        except ValueError as error:
            raise DataError(f"{path}: not JSON ({error})") from None
        return cls.from_dict(values, str(path))


def _pick(values: dict, *names: str) -> dict:
    return {name: values[name] for name in names if name in values}


def _from_schema_1(values: dict, source: str) -> RunConfig:
    """Converts a folder's configuration from before the schema (one layout per application)."""
    if "target" in values and "example_size" in values:  # IXI_HH sex or age
        target = values["target"]
        spacing = values.get("spacing_mm")
        return RunConfig(
            application=f"IXI_HH_{target}", task=values.get("task", "classification"), target=target,
            example_size=values["example_size"], spacing_mm=None if spacing is None else [spacing] * 3,
            intensity={"method": "whitening"}, class_names=["male", "female"] if target == "sex" else [],
            data=_pick(values, "data_csv", "data_dir", "num_train"),
            training=_pick(values, "precision", "replicas", "n_examples"), library_version="before 0.1 schema 2",
            schema=SCHEMA)
    if "patch_size" in values and "hu_window" in values:  # Synapse
        from dltk2.datasets.synapse import ORGANS

        low, high = values["hu_window"]
        training = {key: value for key, value in values.items()
                    if key not in ("patch_size", "hu_window", "spacing_mm", "train_csv")}
        return RunConfig(
            application="synapse_ct_seg", task="segmentation", example_size=values["patch_size"],
            spacing_mm=values.get("spacing_mm"), intensity={"method": "window", "low": low, "high": high},
            class_names=["background", *ORGANS.values()], data=_pick(values, "train_csv"), training=training,
            library_version="before 0.1 schema 2", schema=SCHEMA)
    if "plane" in values and "depth" in values:  # MRNet
        if "input_shape" in values:
            size = list(values["input_shape"][:3])
        else:
            size = [values["depth"], values["stage_sizes"][-1], values["stage_sizes"][-1]]
        return RunConfig(
            application="mrnet_knee", task="classification", target=values.get("task"), example_size=size,
            intensity={"method": "whitening"}, class_names=values.get("classes", []),
            data={**_pick(values, "data", "plane")},
            training=_pick(values, "stage_sizes", "stage_epochs", "precision", "seed", "best_checkpoint",
                           "best_validation_auc"),
            library_version="before 0.1 schema 2", schema=SCHEMA)
    if "backbone" in values and "image_size" in values:  # chest X-ray or body part
        application = "chest_xray_nodule" if "fine_tune_steps" in values else "dicom_bodypart"
        size = int(values["image_size"])
        return RunConfig(
            application=application, task="classification", example_size=[size, size],
            intensity={"method": "min_max"}, class_names=values.get("classes", []),
            data=_pick(values, "data_dir", "record_set"),
            training=_pick(values, "backbone", "weights", "class_weights", "precision", "head_widths",
                           "fine_tune_steps", "max_steps"),
            library_version="before 0.1 schema 2", schema=SCHEMA)
    raise DataError(f"{source}: neither a run configuration of schema {SCHEMA} nor one of the layouts before it "
                    f"(keys: {', '.join(sorted(values)) or 'none'})")
