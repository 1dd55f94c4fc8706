"""Case 1 of the MONAI comparison: the IXI training input pipeline, examples per second.

One process measures one framework (so neither pays for the other's imports or threads):

    python benchmarks/input_pipeline.py --framework dltk2 --data_dir DIR        (dltk2's venv)
    benchmarks/.venv-monai/bin/python benchmarks/input_pipeline.py --framework monai --data_dir DIR

The work, identical in both: read a 2 mm T1 ``.nii.gz``, whiten it (zero mean, unit standard deviation
over the volume), flip left-right with probability 0.5, zero-pad to at least the crop and cut 2 random
crops of 64x96x96 voxels (z, y, x), batch 8.

* ``dltk2``: ``dltk2.datasets.ixi.build_reader`` (``read_voxels`` and numpy in ``tf.py_function``,
  parallel calls); ``monai``: ``Dataset`` + ``DataLoader(num_workers=2)`` with LoadImaged,
  EnsureChannelFirstd, NormalizeIntensityd, RandFlipd, SpatialPadd and RandSpatialCropSamplesd.
* Cached: ``dltk2_cached``: ``ixi.cached_training_dataset`` (whitened volumes in ``Dataset.cache()``,
  flips and crops as graph ops); ``monai_cached``: the deterministic transforms in ``CacheDataset``,
  the random ones in ``ThreadDataLoader(num_workers=0)``, MONAI's fastest cached setup here
  (DataLoader(num_workers=2) and ThreadDataLoader(num_workers=2) on the same CacheDataset were
  slower: 198 and 130 against 330 examples per second).
* Bounds: ``gunzip`` / ``gunzip_isal``: the same files merely decompressed by 2 threads, with
  Python's zlib and with ISA-L (both release the GIL).

Prints one JSON line: ``framework``, ``value`` (examples per second), ``examples``, ``seconds``. The
first batch (start-up, worker launch) is not timed; for the cached pipelines, not the first pass.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CROP_ZYX = (64, 96, 96)
CROPS_PER_VOLUME = 2
BATCH = 8


def volume_files(data_dir: Path) -> list[Path]:
    files = sorted(data_dir.glob("2mm/*/T1_2mm.nii.gz"))
    if not files:
        sys.exit(f"{data_dir}: no 2mm/*/T1_2mm.nii.gz (make the data with benchmarks/run.py)")
    return files


def run_dltk2(files: list[Path], batches: int) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dltk2  # noqa: F401  (oneDNN on before TensorFlow loads)
    from dltk2.datasets import ixi
    from dltk2.io.reader import Mode

    rows = [[path.parent.name, str(path), "0"] for path in files]
    reader = ixi.build_reader(CROP_ZYX, "sex")
    dataset = reader.dataset(rows, Mode.TRAIN, {"example_size": CROP_ZYX, "n_examples": CROPS_PER_VOLUME,
                                                "target": "sex"}, batch_size=BATCH, shuffle_buffer_size=16)
    return _time_batches(iter(dataset), batches, warm_up=1)


def run_dltk2_cached(files: list[Path], batches: int) -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dltk2  # noqa: F401
    import pandas as pd
    from dltk2.datasets import ixi

    subjects = pd.DataFrame({"id": [path.parent.name for path in files], "image": [str(path) for path in files],
                             "label": "0"})
    dataset = ixi.cached_training_dataset(subjects, CROP_ZYX, CROPS_PER_VOLUME, "sex", BATCH, shuffle_buffer_size=16)
    return _time_batches(iter(dataset), batches, warm_up=len(files))


def _time_batches(iterator, batches: int, warm_up: int) -> float:
    """Seconds for ``batches`` batches after ``warm_up`` untimed ones (enough to fill a cache)."""
    for _ in range(warm_up):
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return time.perf_counter() - started


def run_monai_cached(files: list[Path], batches: int) -> float:
    import torch
    from monai.data import CacheDataset, ThreadDataLoader

    torch.set_num_threads(1)
    deterministic, random = _monai_transforms()
    dataset = CacheDataset([{"image": str(path)} for path in files], deterministic + random,
                           cache_rate=1.0, num_workers=2, progress=False)
    loader = ThreadDataLoader(dataset, batch_size=BATCH // CROPS_PER_VOLUME, shuffle=True, num_workers=0)

    def endless():
        while True:
            yield from loader

    return _time_batches(endless(), batches, warm_up=len(files))


def _monai_transforms():
    """(deterministic, random) MONAI transforms doing what dltk2's IXI read_fn does."""
    from monai.transforms import (EnsureChannelFirstd, LoadImaged, NormalizeIntensityd, RandFlipd,
                                  RandSpatialCropSamplesd, SpatialPadd)

    crop_xyz = tuple(reversed(CROP_ZYX))  # nibabel's arrays are (x, y, z)
    deterministic = [LoadImaged(keys="image", image_only=True), EnsureChannelFirstd(keys="image"),
                     NormalizeIntensityd(keys="image")]
    random = [RandFlipd(keys="image", prob=0.5, spatial_axis=0), SpatialPadd(keys="image", spatial_size=crop_xyz),
              RandSpatialCropSamplesd(keys="image", roi_size=crop_xyz, num_samples=CROPS_PER_VOLUME,
                                      random_size=False)]
    return deterministic, random


def run_monai(files: list[Path], batches: int, workers: int) -> float:
    import torch
    from monai.data import DataLoader, Dataset
    from monai.transforms import Compose

    torch.set_num_threads(1)
    deterministic, random = _monai_transforms()
    transforms = Compose(deterministic + random)
    dataset = Dataset([{"image": str(path)} for path in files] * (1 + (batches + 1) * BATCH // len(files)), transforms)
    loader = DataLoader(dataset, batch_size=BATCH // CROPS_PER_VOLUME, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    assert next(iter(loader))["image"].shape[0] == BATCH
    return _time_batches(iter(loader), batches, warm_up=1)


def run_gunzip(files: list[Path], batches: int, workers: int, decompress=gzip.decompress) -> float:
    volumes = (batches * BATCH) // CROPS_PER_VOLUME
    chosen = [files[i % len(files)] for i in range(volumes)]
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda path: len(decompress(path.read_bytes())), chosen))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True,
                        choices=["dltk2", "monai", "gunzip", "gunzip_isal", "dltk2_cached", "monai_cached"])
    parser.add_argument("--data_dir", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=40, help="timed batches of 8 examples")
    parser.add_argument("--workers", type=int, default=2, help="MONAI DataLoader workers and gunzip threads")
    args = parser.parse_args()
    files = volume_files(args.data_dir)
    if args.framework == "dltk2":
        seconds = run_dltk2(files, args.batches)
    elif args.framework == "monai":
        seconds = run_monai(files, args.batches, args.workers)
    elif args.framework == "dltk2_cached":
        seconds = run_dltk2_cached(files, args.batches)
    elif args.framework == "monai_cached":
        seconds = run_monai_cached(files, args.batches)
    elif args.framework == "gunzip_isal":
        from isal.igzip import decompress

        seconds = run_gunzip(files, args.batches, args.workers, decompress)
    else:
        seconds = run_gunzip(files, args.batches, args.workers)
    examples = args.batches * BATCH
    print(json.dumps({"framework": args.framework, "value": examples / seconds, "examples": examples,
                      "seconds": seconds, "cpus": os.cpu_count()}), flush=True)
    os._exit(0)  # the figure is printed: skip tearing down the endless pipeline and its workers


if __name__ == "__main__":
    main()
