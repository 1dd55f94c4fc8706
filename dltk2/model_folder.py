"""The model folder: one owner for every path a training run, deploy, evaluation and export use.

A model folder holds everything about one trained model::

    <model_path>/
      .lock                 held by the process training in it (a second one is refused)
      run_config.json       the run configuration (:class:`dltk2.run_config.RunConfig`, versioned)
      backup/               weights + optimizer state of the last two committed epochs, for resuming
      checkpoints/          last.keras (every epoch), best.keras (best validation score)
      logs/                 TensorBoard events (train/ and validation/)
      history.csv           one row of logs per committed epoch
      training_state.json   the commit: epoch, steps done, its backup, the best score
      splits.csv            the rows each split used (applications that split themselves)
      <stage>/              a stage of a staged run (frozen/, unfrozen/, stage1_20x112x112/): a model
                            folder of its own layout
      model.keras           the exported float32 model
      predictor.json        the predictor around it (:mod:`dltk2.inference.predictor`)
      export/<version>/     SavedModels in TF Serving's layout
      evaluation/           deploy's and evaluation's outputs by default

Applications add their own files (the chest classifier's ``features/`` and ``head/``) through
:meth:`ModelFolder.file`, so that every name a model folder holds is spelled here or there once.
"""

from __future__ import annotations

import os
from pathlib import Path

from dltk2.io.atomic import write_text_atomically
from dltk2.io.locks import LOCK_NAME
from dltk2.run_config import RunConfig


class ModelFolder:
    """The paths of one model folder (nothing is created until written).

    Args:
        path: The folder (``--model_path``).
    """

    RUN_CONFIG = "run_config.json"
    PREDICTOR = "predictor.json"
    MODEL = "model.keras"
    TRAINING_STATE = "training_state.json"
    BACKUP = "backup"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ModelFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # Training.
    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.keras"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.keras"

    @property
    def backup(self) -> Path:
        return self.path / self.BACKUP

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def training_state(self) -> Path:
        return self.path / self.TRAINING_STATE

    @property
    def splits(self) -> Path:
        return self.path / "splits.csv"

    def stage(self, name: str) -> "ModelFolder":
        """The folder of one stage of a staged run (``frozen``, ``stage1_20x112x112``): same layout."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"a stage name must be one plain folder name, got {name!r}")
        return ModelFolder(self.path / name)

    def file(self, *parts: str) -> Path:
        """A path an application keeps in the folder (``file("head", "best.keras")``)."""
        return self.path.joinpath(*parts)

    # What deploy, evaluation and export use.
    @property
    def run_config_file(self) -> Path:
        return self.path / self.RUN_CONFIG

    @property
    def predictor_file(self) -> Path:
        return self.path / self.PREDICTOR

    @property
    def model_file(self) -> Path:
        return self.path / self.MODEL

    @property
    def export(self) -> Path:
        return self.path / "export"

    @property
    def evaluation(self) -> Path:
        return self.path / "evaluation"

    def output_dir(self, chosen: str | os.PathLike | None = None) -> Path:
        """``chosen`` where the user gave one, else ``evaluation/``."""
        return Path(chosen) if chosen else self.evaluation

    def disk_use(self) -> dict[str, int]:
        """Bytes under each top-level entry (files and folders, links not followed), largest first."""
        sizes = {}
        for entry in self.path.iterdir() if self.path.is_dir() else []:
            files = [entry] if not entry.is_dir() else [p for p in entry.rglob("*") if p.is_file()]
            sizes[entry.name] = sum(p.lstat().st_size for p in files)
        return dict(sorted(sizes.items(), key=lambda item: -item[1]))

    def describe_disk_use(self) -> str:
        """``1.21 GB (stage2_64x64 512 MB, export 131 MB, ...)``: the folder's size and its largest parts."""
        sizes = self.disk_use()
        parts = ", ".join(f"{name} {human_bytes(size)}" for name, size in list(sizes.items())[:4] if size)
        return f"{human_bytes(sum(sizes.values()))}" + (f" ({parts})" if parts else "")

    def read_config(self) -> RunConfig:
        """The run configuration; an older folder's is converted (:meth:`RunConfig.from_dict`).

        Raises:
            FileNotFoundError: No ``run_config.json``: not a model folder written by train.py.
            DataError: A configuration this version cannot read, in one line naming the file.
        """
        return RunConfig.read(self.run_config_file)

    def write_config(self, config: RunConfig) -> Path:
        """Writes ``run_config.json`` atomically, in the current schema."""
        return write_text_atomically(self.run_config_file, config.to_json())


def human_bytes(count: int) -> str:
    """``812 B``, ``4.2 kB``, ``131 MB``, ``1.21 GB`` (powers of 1000, as ``du --si``)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{count} B"


def as_model_folder(path: "str | os.PathLike | ModelFolder") -> ModelFolder:
    """A :class:`ModelFolder` for a path or a folder."""
    return path if isinstance(path, ModelFolder) else ModelFolder(path)
