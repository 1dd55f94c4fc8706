"""Case: several DCMTK storescu processes at once into dltk2's node, beside the same into Orthanc.

    .venv/bin/python benchmarks/node_ingest.py [--senders 4] [--series 8] [--slices 40] [--size 512] [--rounds 3]

Needs Orthanc (with its DICOMweb plugin) and DCMTK's storescu (``apt install orthanc orthanc-dicomweb
dcmtk``). The series are ``--series`` CT series of ``--slices`` slices of ``--size``^2 (uncompressed,
``data_scripts/make_dicom_series.py``), split among ``--senders`` storescu processes started at
once on loopback. Each round, alternating:

* ``orthanc``: a fresh Orthanc 1.10 (SQLite index, files in a temporary folder) receives them;
* ``dltk2``: a fresh ``dltk2 node serve`` (its own process) receives them, each instance fsync'd
  before its Success, and runs a one-convolution segmentation model on each series (a 2 mm sliding
  window), sending every SEG by C-STORE to a second Orthanc. The node is warmed first with one
  series (TensorFlow's import and the model's loading are not timed).

Prints per round and as medians: instances per second received (all instances / the wall time of
the senders, first start to last exit), and for the node, results per minute (series / the time
from the first sender's start to the last SEG in the destination). Both peers are checked to hold
every instance exactly once.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dltk2  # noqa: F401  (before TensorFlow: oneDNN on)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "data_scripts"))


def make_series(folder: Path, count: int, slices: int, size: int) -> list[Path]:
    import numpy as np
    import SimpleITK as sitk

    import make_dicom_series

    folders = []
    for number in range(count):
        target = folder / f"series{number:02d}"
        if not target.exists():
            rng = np.random.default_rng(number)
            array = rng.normal(0, 30, (slices, size, size)).astype(np.float32) - 1000.0
            array[:, size // 4:-size // 4, size // 4:-size // 4] += 1000.0
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((0.8, 0.8, 2.0))
            make_dicom_series.write_series(image, target, seed=number)
        folders.append(target)
    return folders


def make_model(folder: Path) -> Path:
    if (folder / "predictor.json").exists():
        return folder
    import keras
    import numpy as np

    from dltk2.export import export_predictor
    from dltk2.inference import SlidingWindowSegmenter
    from dltk2.model_folder import ModelFolder
    from dltk2.run_config import RunConfig

    inputs = keras.Input((None, None, None, 1))
    convolution = keras.layers.Conv3D(2, 1)
    model = keras.Model(inputs, convolution(inputs))
    convolution.set_weights([np.array([0.0, 10.0], np.float32).reshape(1, 1, 1, 1, 2), np.array([0.0, 5.0], np.float32)])
    export_predictor(folder, SlidingWindowSegmenter(model, [32, 32, 32], [2.0, 2.0, 2.0], num_classes=2))
    ModelFolder(folder).write_config(RunConfig(application="benchmark_seg", task="segmentation",
                                               example_size=[32, 32, 32], spacing_mm=[2.0, 2.0, 2.0],
                                               class_names=["background", "body"]))
    return folder


def send_all(port: int, called: str, groups: list[list[Path]]) -> float:
    """Starts one storescu per group at once; returns the wall time until the last exits (s)."""
    start = time.perf_counter()
    senders = [subprocess.Popen(["storescu", "-aet", "CT01", "-aec", called, "+sd", "127.0.0.1", str(port),
                                 *map(str, group)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for group in groups]
    for sender in senders:
        if sender.wait() != 0:
            sys.exit(f"storescu failed: {sender.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - start


def orthanc_round(work: Path, groups: list[list[Path]], instances: int) -> dict:
    from pacs import Orthanc

    with tempfile.TemporaryDirectory(dir=work) as folder:
        orthanc = Orthanc(Path(folder))
        try:
            seconds = send_all(orthanc.port, "ORTHANC", groups)
            stored = orthanc.get("/statistics")["CountInstances"]
        finally:
            orthanc.stop()
    if stored != instances:
        sys.exit(f"Orthanc holds {stored} instances, not {instances}")
    return {"instances_per_s": instances / seconds, "seconds": seconds}


def node_round(work: Path, model: Path, groups: list[list[Path]], warmup: Path, instances: int) -> dict:
    from pacs import Orthanc, write_node_config

    from dltk2.node.state import NodeState

    with tempfile.TemporaryDirectory(dir=work) as folder:
        folder = Path(folder)
        destination = Orthanc(folder / "destination")
        config = write_node_config(folder, model, f'host = "127.0.0.1"\nport = {destination.port}\n'
                                   'ae_title = "ORTHANC"', quiet_period_s=10)
        port = int(next(line for line in config.read_text().splitlines() if line.startswith("port")).split("=")[1])
        log = folder / "node.log"
        node = subprocess.Popen([sys.executable, "-m", "dltk2.node", "serve", "--config", str(config), "--log_file",
                                 str(log)], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while not (log.exists() and "listening on" in log.read_text()):
                time.sleep(0.1)
            send_all(port, "DLTK2", [[warmup]])
            while not destination.series_of_modality("SEG"):
                time.sleep(0.1)
            start = time.perf_counter()
            seconds = send_all(port, "DLTK2", groups)
            series = sum(len(group) for group in groups)
            while sum(len(s["Instances"]) for s in destination.series_of_modality("SEG")) < series + 1:
                time.sleep(0.1)
            results_seconds = time.perf_counter() - start
            stored = NodeState(f"sqlite:///{folder / 'spool' / 'state.db'}").instance_count()
        finally:
            node.terminate()
            node.wait()
            destination.stop()
    warmup_count = len(list(warmup.iterdir()))
    if stored != instances + warmup_count:
        sys.exit(f"the node holds {stored} instances, not {instances + warmup_count}")
    return {"instances_per_s": instances / seconds, "seconds": seconds,
            "results_per_minute": 60.0 * series / results_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--slices", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work_dir", type=Path, default=REPO / "runs" / "node_ingest")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    folders = make_series(args.work_dir / "series", args.series + 1, args.slices, args.size)
    warmup, folders = folders[0], folders[1:]
    model = make_model(args.work_dir / "model")
    groups = [folders[i::args.senders] for i in range(args.senders)]
    instances = sum(len(list(folder.iterdir())) for folder in folders)
    rows: dict[str, list[dict]] = {"orthanc": [], "dltk2": []}
    for round_number in range(args.rounds):
        rows["orthanc"].append(orthanc_round(args.work_dir, groups, instances))
        rows["dltk2"].append(node_round(args.work_dir, model, groups, warmup, instances))
        print(f"round {round_number + 1}: Orthanc {rows['orthanc'][-1]['instances_per_s']:.0f} instances/s; "
              f"dltk2 node {rows['dltk2'][-1]['instances_per_s']:.0f} instances/s, "
              f"{rows['dltk2'][-1]['results_per_minute']:.1f} results/min", flush=True)
    summary = {key: {name: statistics.median(row[name] for row in runs) for name in runs[0]}
               for key, runs in rows.items()}
    summary["ratio dltk2/orthanc instances_per_s"] = (summary["dltk2"]["instances_per_s"]
                                                      / summary["orthanc"]["instances_per_s"])
    print(json.dumps({"case": "node_ingest", "senders": args.senders, "series": args.series, "slices": args.slices,
                      "size": args.size, "instances": instances, "rounds": args.rounds, "cpus": os.cpu_count(),
                      **summary}))


if __name__ == "__main__":
    main()
