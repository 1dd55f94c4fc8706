"""Process-wide settings that must be made before TensorFlow is imported."""

from __future__ import annotations

import logging
import os
import sys

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

logger = logging.getLogger(__name__)


def configure_onednn(enable: bool = True) -> bool:
    """Turns on oneDNN CPU kernels unless the user set ``TF_ENABLE_ONEDNN_OPTS`` already.

    TensorFlow reads the variable once, at its first import; setting it afterwards has no effect, in
    which case a warning says so.

    Args:
        enable: The value to use when the user has not chosen one.

    Returns:
        True if oneDNN will be on in this process (as far as the variable decides).
    """
    if ONEDNN_VARIABLE in os.environ:
        return os.environ[ONEDNN_VARIABLE].strip().lower() in ("1", "true", "yes", "on")
    if "tensorflow" in sys.modules:
        logger.warning(
            "TensorFlow was imported before dltk2, so %s could not be set; import dltk2 first "
            "for oneDNN CPU kernels (about 3x faster 3D training on CPUs without AVX-512).",
            ONEDNN_VARIABLE,
        )
        return False
    os.environ[ONEDNN_VARIABLE] = "1" if enable else "0"
    return enable
