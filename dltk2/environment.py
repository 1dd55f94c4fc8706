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


LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


def quiet_tensorflow_log(level: int = 2) -> bool:
    """Hides TensorFlow's C++ INFO and WARNING lines in a command-line run, unless the user chose a level.

    TensorFlow's kernels log every failed call of a tf.data Python function as a WARNING with the
    Python traceback in it, once per thread that ran it and once more at the iterator: a garbled
    series in an MRNet folder printed 918 lines before the one line that names it. The error itself
    still reaches the script (and :func:`dltk2.cli.run` reports it in one line); only the duplicate
    log goes. ERROR lines stay. Like oneDNN's switch, the level is read once, at TensorFlow's first
    log line, so this must run before TensorFlow is imported; the command-line launcher
    (:mod:`dltk2.cli`) calls it, the library import does not.

    Args:
        level: TensorFlow's ``TF_CPP_MIN_LOG_LEVEL`` (1 hides INFO, 2 also WARNING, 3 also ERROR).

    Returns:
        True if the level was set here.
    """
    if LOG_LEVEL_VARIABLE in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ[LOG_LEVEL_VARIABLE] = str(level)
    return True


MALLOC_TUNING_VARIABLE = "DLTK2_MALLOC_TUNING"
_GLIBC_MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def configure_malloc(mmap_threshold_bytes: int = 32 * 2**20, trim_threshold_bytes: int = 512 * 2**20) -> bool:
    """Keeps freed memory in the process for reuse instead of giving it back to the system at once.

    glibc serves every allocation above its mmap threshold (128 KiB at first, adapting up to 32 MiB)
    with fresh pages from the kernel, and unmaps them when freed; the next volume's arrays then pay
    a page fault and zeroing for every 4 KiB. An input pipeline allocating a few MiB per volume and
    step spends more time there than inflating and whitening: 16 ms per IXI volume against 7 ms
    with the thresholds raised (2 mm T1, read, whitening, 2 crops, stacked). Raising both thresholds
    (as ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` would) keeps up to
    ``trim_threshold_bytes`` of freed memory mapped for the next allocation.

    Nothing changes where the C library is not glibc, where the user set one of glibc's malloc
    variables, or where ``DLTK2_MALLOC_TUNING=0``.

    Args:
        mmap_threshold_bytes: Allocations up to this size come from the heap (glibc caps it at 32 MiB).
        trim_threshold_bytes: Free memory kept at the top of the heap before it is returned.

    Returns:
        True if the thresholds were set.
    """
    if os.environ.get(MALLOC_TUNING_VARIABLE, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if any(name in os.environ for name in _GLIBC_MALLOC_VARIABLES) or not sys.platform.startswith("linux"):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only: musl has mallopt but not these parameters
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                    trim_threshold_bytes))
