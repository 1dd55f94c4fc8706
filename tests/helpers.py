"""Helpers shared by the end-to-end tests."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs one of the repository's scripts in a fresh Python, as a user would; fails with its output."""
    environment = dict(os.environ, **(env or {}))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = subprocess.run(
        [sys.executable, str(REPO / script), *args], capture_output=True, text=True, timeout=timeout,
        env=environment, cwd=str(REPO),
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{script} {' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout[-4000:]}\n"
            f"stderr:\n{result.stderr[-4000:]}"
        )
    return result


def batch_norm_momenta(model) -> set[float]:
    """The momenta of every batch norm in a Keras model, nested layers included."""
    import keras

    return {layer.momentum for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)}
