"""dltk2's Keras objects (layers, losses, metrics) registered as soon as Keras is imported.

A ``.keras`` file of a dltk2 network names its layers (``dltk2>ResidualUnit3D``,
``dltk2>GreyToBackboneInput``); Keras finds them only once the modules that define them have run.
Importing those modules with ``import dltk2`` would load TensorFlow with it (about 3 s), which the
command line's ``--help`` must not wait for. So ``import dltk2`` installs an import hook instead: the
moment both Keras and TensorFlow have finished importing, in whatever order a program imports them,
the modules are imported and every dltk2 object is registered; ``keras.models.load_model`` then reads
any dltk2 model file. Where Keras is imported already, they are imported at once.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import sys

logger = logging.getLogger(__name__)

MODULES = ("dltk2.networks.layers", "dltk2.networks.transfer", "dltk2.networks.gan", "dltk2.losses", "dltk2.metrics")
"""The modules that register Keras objects (``keras.saving.register_keras_serializable``)."""

_WATCHED = ("keras", "tensorflow")
_registered = False


def register_keras_objects() -> None:
    """Imports every module of :data:`MODULES` (Keras and TensorFlow are imported with them)."""
    global _registered
    if _registered:
        return
    _registered = True
    _remove_hook()
    for name in MODULES:
        importlib.import_module(name)


def _loaded(name: str) -> bool:
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


def _after_import(name: str) -> None:
    """Called when ``name`` (Keras or TensorFlow) has run: registers once both have."""
    if _registered or not all(_loaded(other) for other in _WATCHED if other != name):
        return
    try:
        register_keras_objects()
    except Exception as error:  # a broken dltk2 must not break ``import keras`` for the program
        logger.warning("dltk2's Keras objects could not be registered: %s", error)


class _AfterImportHook(importlib.abc.MetaPathFinder):
    """Finds Keras and TensorFlow as the path finder does, and calls back when either has run."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _WATCHED or _registered:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        execute = spec.loader.exec_module  # this module's own loader object: wrapped for it alone

        def exec_module(module):
            execute(module)
            _after_import(fullname)

        spec.loader.exec_module = exec_module
        return spec


def _remove_hook() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _AfterImportHook)]


def register_on_import() -> None:
    """Registers dltk2's Keras objects now if Keras is loaded, else as soon as it and TensorFlow are."""
    if _loaded("keras") and _loaded("tensorflow"):
        register_keras_objects()
    elif not any(isinstance(finder, _AfterImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportHook())
