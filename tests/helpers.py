"""Helpers shared by the end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(script: str, *args: str, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs one of the repository's scripts in a fresh Python, as a user would; fails with its output.

    ``TF_CPP_MIN_LOG_LEVEL`` is 2 unless ``env`` says otherwise (``None`` unsets a variable).
    """
    environment = dict(os.environ)
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for name, value in (env or {}).items():  # None: unset, as on a user's machine
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
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


# What read_pixels / read_dataset say of each of odd_dicom_files' files.
ODD_FILE_REASONS = {
    "window_width_0": "Window Width 0.0",
    "unknown_voi_function": "VOI LUT Function 'CUBIC' is not LINEAR",
    "palette_without_lut": "PALETTE COLOR pixel transformations",
    "text_rescale_slope": "RescaleSlope is not a number",
    "text_window_centre": "WindowCenter is not a number",
    "modality_lut_without_descriptor": "Modality LUT Sequence without its LUT Descriptor",
    "nan_rescale_slope": "RescaleSlope is nan",
    "truncated": "truncated",
    "no_pixels": "has no pixel data",
    "not_dicom_1mb": "not a DICOM file",
}


def odd_dicom_files(folder) -> dict:
    """DICOM files that each once aborted a whole ingest, made from pydicom's CT_small.dcm.

    Returns:
        name -> path, for: a window width of 0, an unknown VOI LUT function, palette colour without
        its lookup table, non-numeric rescale slope and window centre, a modality LUT sequence
        without its descriptor, a NaN rescale slope, a truncated file, one without pixels, and a
        non-DICOM file of 1 MB.
    """
    import copy
    import zlib

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))

    def write(name, change, patch=None):
        dataset = copy.deepcopy(base)
        dataset.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{zlib.crc32(name.encode())}"
        change(dataset)
        path = folder / f"{name}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        if patch:  # values pydicom will not write: placed over a placeholder of the same length
            data = path.read_bytes()
            for old, new in patch.items():
                assert old in data and len(old) == len(new)
                data = data.replace(old, new)
            path.write_bytes(data)
        return path

    def window(centre, width, function=None):
        def change(dataset):
            dataset.WindowCenter, dataset.WindowWidth = centre, width
            if function:
                dataset.VOILUTFunction = function
        return change

    def lut_without_descriptor(dataset):
        del dataset.RescaleSlope, dataset.RescaleIntercept
        item = Dataset()
        item.add(DataElement(0x00283006, "US", [0, 1, 2, 3]))
        dataset.ModalityLUTSequence = Sequence([item])

    files = {
        "window_width_0": write("window_width_0", window(40, 0)),
        "unknown_voi_function": write("unknown_voi_function", window(40, 400, "CUBIC")),
        "palette_without_lut": write("palette_without_lut",
                                     lambda d: setattr(d, "PhotometricInterpretation", "PALETTE COLOR")),
        "text_rescale_slope": write("text_rescale_slope", lambda d: setattr(d, "RescaleSlope", "9.25"),
                                    {b"9.25": b"abc "}),
        "text_window_centre": write("text_window_centre", window("7.125", 400), {b"7.125 ": b"centre"}),
        "modality_lut_without_descriptor": write("modality_lut_without_descriptor", lut_without_descriptor),
        "nan_rescale_slope": write("nan_rescale_slope", lambda d: setattr(d, "RescaleSlope", "7.5"),
                                   {b"7.5 ": b"nan "}),
    }
    truncated = folder / "truncated.dcm"
    truncated.write_bytes(files["window_width_0"].read_bytes()[:3000])
    files["truncated"] = truncated
    files["no_pixels"] = write("no_pixels", lambda d: delattr(d, "PixelData"))
    not_dicom = folder / "notes.bin"
    not_dicom.write_bytes(bytes(range(256)) * 4096)
    files["not_dicom_1mb"] = not_dicom
    return files


def promise_huge_series(path) -> None:
    """Rewrites an ``.npy`` series' header to promise 10^11 slices (its data stays as it was)."""
    import io

    import numpy as np

    series = np.load(path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": series.dtype.str, "fortran_order": False,
                                                  "shape": (10 ** 11, *series.shape[1:])})
    Path(path).write_bytes(header.getvalue() + series.tobytes())


def with_label_value(value):
    """A change of a SimpleITK label map: three voxels of its first row set to ``value``."""
    import SimpleITK as sitk

    def change(label, image=None):
        array = sitk.GetArrayFromImage(label)
        array[0, 0, :3] = value
        changed = sitk.GetImageFromArray(array)
        changed.CopyInformation(label)
        return changed
    return change


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_CHROMIUM = "Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it where it is root)"


def screenshot(page: Path, picture: Path, width: int = 1200, height: int = 1600) -> np.ndarray:
    """Opens an HTML file in headless Chromium and returns its screenshot (height, width, 3) BGR."""
    import cv2

    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={picture}", f"--window-size={width},{height}", Path(page).resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return cv2.imread(str(picture))


DCIODVFY = shutil.which("dciodvfy")


def assert_valid_dicom(path, inherited: tuple[str, ...] = (), local_schemes: tuple[str, ...] = ()):
    """dicom3tools' validator finds no error and no warning in ``path``.

    Warnings that an attribute "would be needed to build DICOMDIR" (media directories) are not about
    the object: a de-identified object has an empty Study ID, as PS3.15 asks.

    Args:
        inherited: Warnings (substrings) about values the object copies unchanged from its source,
            whose own validation shows them; a report's patient and study must equal its source's.
        local_schemes: Local coding schemes (PS3.16 8.2: designators starting "99", declared in the
            object's Coding Scheme Identification Sequence) the validator cannot know, and warns of.
    """
    if DCIODVFY is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; .ci/run installs it where it is root")
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.startswith(("Error", "Warning")) and "needed to build DICOMDIR" not in line
                and not any(text in line for text in inherited)
                and not any(f"Unrecognized defined term <{scheme}>" in line for scheme in local_schemes)]
    assert result.returncode == 0 and not problems, problems
