"""Case 4 of the MONAI comparison: deploy latency per subject, averaging 4 random crops.

    python benchmarks/deploy_latency.py --framework dltk2_deploy --data_dir DIR       (dltk2's venv)
    python benchmarks/deploy_latency.py --framework dltk2_savedmodel --data_dir DIR
    benchmarks/.venv-monai/bin/python benchmarks/deploy_latency.py --framework monai --data_dir DIR
    python benchmarks/deploy_latency.py --framework dltk2_explain --data_dir DIR

The IXI sex network in DLTK's configuration (``training_step.py``'s ``resnet``), 4 crops of 64x96x96
per 2 mm T1 volume, softmax averaged; the time of one subject from its volume in memory to its
averaged probabilities (reading the file is left out, as ``deploy.py``'s ``run time`` leaves it out):

* ``dltk2_deploy``: ``applications/IXI_HH_sex/deploy.py --subjects all`` on a model trained for 2
  steps (made here once, under ``runs/benchmark_ixi_model``); its printed ``run time`` per subject.
* ``dltk2_savedmodel``: the same model's exported SavedModel, ``serving_default(image)`` called from
  Python after ``tf.saved_model.load`` (whitening and crops are inside the graph).
* ``dltk2_explain``: the same model exported again (so that it has the ``explain`` signature), its
  ``explain(image)`` (Grad-CAM of every crop, averaged onto the volume's grid, with the served
  answer) and ``serving_default(image)`` called in turn on every subject; ``value`` is explain's
  median seconds over serving_default's (the issue's bound: 3x).
* ``monai``: the PyTorch twin (``torch_twins.ResNet3D``) under ``torch.inference_mode``, with MONAI's
  NormalizeIntensity and RandSpatialCropSamples(4) on the loaded volume.

Prints one JSON line: ``value`` (subjects per second, from the median latency, the first subject
(tracing, warm-up) left out), ``median_seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
from training_step import NETWORKS  # noqa: E402

CROPS = 4
CROP_ZYX = (64, 96, 96)


def trained_model(data_dir: Path) -> Path:
    """A 2-step IXI sex model in DLTK's configuration (its latency does not depend on training)."""
    model_dir = REPO / "runs" / "benchmark_ixi_model"
    if not (model_dir / "export").is_dir():
        subprocess.run([sys.executable, str(REPO / "applications" / "IXI_HH_sex" / "train.py"), "--model_path",
                        str(model_dir), "--data_csv", str(data_dir / "demographic_HH.csv"), "--num_train", "12",
                        "--max_steps", "2", "--steps_per_epoch", "2", "--batch_size", "2", "--run_validation=false",
                        "--restart"], check=True, capture_output=True)
    return model_dir


def summarise(latencies: list[float]) -> dict:
    timed = latencies[1:]
    median = statistics.median(timed)
    return {"value": 1 / median, "median_seconds": median, "subjects": len(timed),
            "latencies": [round(v, 4) for v in latencies]}


def run_dltk2_deploy(data_dir: Path) -> dict:
    model_dir = trained_model(data_dir)
    result = subprocess.run([sys.executable, "-u", str(REPO / "applications" / "IXI_HH_sex" / "deploy.py"),
                             "--model_path", str(model_dir), "--subjects", "all", "--num_crops", str(CROPS),
                             "--explain", "0"],
                            capture_output=True, text=True, check=True)
    latencies = [float(v) for v in re.findall(r"run time=([0-9.]+) s;", result.stdout)]
    return summarise(latencies)


def request(path: Path) -> dict:
    """A subject's serving inputs: its voxels with their spacing and direction (the graph reorients and
    resamples them to the training grid)."""
    import numpy as np
    import tensorflow as tf

    from dltk2.io.image import read_image_information, read_voxels

    geometry = read_image_information(path).geometry
    return {"image": tf.constant(read_voxels(path)), "spacing": tf.constant(np.asarray(geometry.spacing)),
            "direction": tf.constant(np.asarray(geometry.direction))}


def run_dltk2_savedmodel(data_dir: Path) -> dict:
    sys.path.insert(0, str(REPO))
    import dltk2  # noqa: F401
    import tensorflow as tf

    model_dir = trained_model(data_dir)
    export = sorted((model_dir / "export").iterdir(), key=lambda path: int(path.name))[-1]
    serving = tf.saved_model.load(str(export)).signatures["serving_default"]
    latencies = []
    for path in sorted(data_dir.glob("2mm/*/T1_2mm.nii.gz")):
        inputs = request(path)
        started = time.perf_counter()
        outputs = serving(**inputs)
        outputs["probabilities"].numpy()
        latencies.append(time.perf_counter() - started)
    return summarise(latencies)


def run_dltk2_explain(data_dir: Path) -> dict:
    import tempfile

    sys.path.insert(0, str(REPO))
    import dltk2  # noqa: F401
    import tensorflow as tf

    from dltk2.export import export_predictor
    from dltk2.inference import load_predictor
    model_dir = trained_model(data_dir)
    with tempfile.TemporaryDirectory() as folder:
        _, export = export_predictor(folder, load_predictor(model_dir, num_crops=CROPS))
        loaded = tf.saved_model.load(str(export))
    serving, explain = loaded.signatures["serving_default"], loaded.signatures["explain"]
    times = {"serving_default": [], "explain": []}
    for path in sorted(data_dir.glob("2mm/*/T1_2mm.nii.gz")):
        inputs = request(path)
        for name, signature in (("serving_default", serving), ("explain", explain)):
            started = time.perf_counter()
            outputs = signature(**inputs)
            {key: value.numpy() for key, value in outputs.items()}
            times[name].append(time.perf_counter() - started)
    served, explained = summarise(times["serving_default"]), summarise(times["explain"])
    return {"value": explained["median_seconds"] / served["median_seconds"],
            "serving_default_seconds": served["median_seconds"], "explain_seconds": explained["median_seconds"],
            "subjects": served["subjects"], "latencies": times}


def run_monai(data_dir: Path) -> dict:
    import torch
    from monai.transforms import LoadImage, NormalizeIntensity, RandSpatialCropSamples
    from torch_twins import ResNet3D

    torch.set_num_threads(os.cpu_count())
    spec = NETWORKS["resnet"]
    model = ResNet3D(spec["filters"], spec["strides"], spec["units"], spec["classes"]).eval()
    load, normalise = LoadImage(image_only=True, ensure_channel_first=True), NormalizeIntensity()
    crop = RandSpatialCropSamples(tuple(reversed(CROP_ZYX)), num_samples=CROPS, random_size=False)
    latencies = []
    for path in sorted(data_dir.glob("2mm/*/T1_2mm.nii.gz")):
        volume = load(str(path))
        started = time.perf_counter()
        with torch.inference_mode():
            crops = torch.stack([torch.as_tensor(c) for c in crop(normalise(volume))])
            probabilities = torch.softmax(model(crops), dim=1).mean(dim=0)
        probabilities.numpy()
        latencies.append(time.perf_counter() - started)
    return summarise(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True, choices=["dltk2_deploy", "dltk2_savedmodel", "dltk2_explain",
                                                                     "monai"])
    parser.add_argument("--data_dir", type=Path, default=REPO / "runs" / "benchmark_ixi")
    args = parser.parse_args()
    run = {"dltk2_deploy": run_dltk2_deploy, "dltk2_savedmodel": run_dltk2_savedmodel,
           "dltk2_explain": run_dltk2_explain, "monai": run_monai}
    result = run[args.framework](args.data_dir)
    print(json.dumps({"framework": args.framework, **result}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
