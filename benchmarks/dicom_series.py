"""Case: reading a CT series of 200 slices (512 x 512) from a folder into a float32 volume with its geometry.

    python benchmarks/dicom_series.py --framework dltk2 --data_dir DIR          (dltk2's venv; writes the series once)
    python benchmarks/dicom_series.py --framework simpleitk --data_dir DIR
    benchmarks/.venv-monai/bin/python benchmarks/dicom_series.py --framework monai --data_dir DIR

The series is a synthetic Synapse phantom (``data_scripts/make_synthetic_synapse.py``) resampled to
200 slices of 1.2 mm and written by ``data_scripts/make_dicom_series.py`` (uncompressed CT Image
Storage, files named at random), under ``DIR/dicom_ct_200``. Each row reads the folder as a user
would, to HU in float32 (what a model takes) with spacing, origin and direction:

* ``dltk2``: ``dltk2.io.dicom_series.read_series`` (headers, rules, sort along the normal, checks,
  per-slice rescale).
* ``simpleitk``: ``ImageSeriesReader`` (GDCM's series file names, then ``Execute``), cast to float32.
* ``monai``: ``monai.transforms.LoadImage(reader="PydicomReader")`` on the folder.

Prints one JSON line: ``value`` (series per second, from the median of 5 reads after one warm-up,
files in the page cache), ``peak_memory_mb`` above the process' memory after imports.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SLICES = 200


def make_series(folder: Path) -> None:
    """The phantom as a 200-slice CT series (dltk2's environment only: it uses the data scripts)."""
    import numpy as np
    import SimpleITK as sitk

    sys.path.insert(0, str(REPO / "data_scripts"))
    import make_dicom_series
    import make_synthetic_synapse

    raw = folder.parent / "dicom_ct_source"
    make_synthetic_synapse.make_dataset(raw, num_cases=1, seed=0, in_plane_size=512, workers=1)
    image = sitk.ReadImage(str(raw / "img" / "img0001.nii.gz"), sitk.sitkFloat32)
    extent = image.GetSpacing()[2] * (image.GetSize()[2] - 1)
    spacing = (image.GetSpacing()[0], image.GetSpacing()[1], extent / (SLICES - 1))
    grid = sitk.Image([image.GetSize()[0], image.GetSize()[1], SLICES], sitk.sitkFloat32)
    grid.SetSpacing(spacing)
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    resampled = sitk.Resample(image, grid, sitk.Transform(), sitk.sitkLinear, -1000.0)
    make_dicom_series.write_series(resampled, folder, seed=0)
    print(f"wrote {folder}: {SLICES} slices, {np.prod(resampled.GetSize()) * 2 / 1e6:.0f} MB of pixels",
          file=sys.stderr)


def reader(framework: str):
    if framework == "dltk2":
        from dltk2.io.dicom_series import read_series

        def read(folder):
            volume = read_series(folder)  # the float32 array a model takes, and its grid
            return volume.geometry.size, volume.geometry.spacing
        return read
    if framework == "simpleitk":
        import SimpleITK as sitk

        def read(folder):
            series = sitk.ImageSeriesReader()
            series.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
            image = sitk.Cast(series.Execute(), sitk.sitkFloat32)
            return image.GetSize(), image.GetSpacing()
        return read
    from monai.transforms import LoadImage

    load = LoadImage(reader="PydicomReader", image_only=True, dtype="float32")

    def read(folder):
        image = load(str(folder))
        return tuple(image.shape), tuple(float(v) for v in image.pixdim)
    return read


def resident_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=["dltk2", "simpleitk", "monai"], required=True)
    parser.add_argument("--data_dir", type=Path, required=True)
    parser.add_argument("--reads", type=int, default=5)
    args = parser.parse_args()
    folder = args.data_dir / "dicom_ct_200"
    if not folder.is_dir():
        if args.framework == "monai":
            sys.exit(f"{folder}: no series; the dltk2 row writes it first")
        make_series(folder)
    read = reader(args.framework)
    baseline = resident_mb()
    shape = read(folder)  # warm-up: page cache, lazy imports
    seconds = []
    for _ in range(args.reads):
        start = time.perf_counter()
        read(folder)
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    print(json.dumps({"value": 1 / median, "median_seconds": median, "seconds": [round(s, 4) for s in seconds],
                      "peak_memory_mb": resident_mb() - baseline, "shape": list(shape[0]),
                      "spacing": [round(float(v), 4) for v in shape[1]]}))


if __name__ == "__main__":
    main()
