"""Runs the MONAI comparison side by side: each case for each framework, alternating, repeated.

    bash benchmarks/setup_peer.sh            # once: MONAI + CPU PyTorch in benchmarks/.venv-monai
    .venv/bin/python benchmarks/run.py [--cases input_pipeline ...] [--repetitions 5]

Makes 16 IXI-like subjects with ``data_scripts/make_synthetic_ixi.py`` (2 mm) unless ``--data_dir``
holds them. Every measurement is a fresh process (neither framework pays for the other's imports,
threads or allocator state); within a round the rows of a case run one after the other, and rounds
repeat ``--repetitions`` times, so a slow minute of the machine hits both. Prints, per case, median
/ min / max of each row and the ratios of medians, and writes them all as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# case -> script, unit, rows (key, label, which Python), ratios (numerator, denominator) of medians.
CASES = {
    "input_pipeline": {
        "script": "input_pipeline.py", "unit": "examples/s", "args": ["--batches", "60"],
        "rows": [("dltk2", "dltk2 Reader (py_function)", "dltk2"),
                 ("monai", "MONAI Dataset + DataLoader(num_workers=2)", "peer"),
                 ("gunzip", "bound: gunzip with zlib, 2 threads", "dltk2"),
                 ("gunzip_isal", "bound: gunzip with ISA-L, 2 threads", "dltk2")],
        "ratios": [("dltk2", "monai"), ("dltk2", "gunzip"), ("dltk2", "gunzip_isal")],
    },
    "cached_pipeline": {
        "script": "input_pipeline.py", "unit": "examples/s", "args": ["--batches", "150"],
        "rows": [("dltk2_cached", "dltk2 ixi.cached_training_dataset", "dltk2"),
                 ("monai_cached", "MONAI CacheDataset + ThreadDataLoader(num_workers=0)", "peer")],
        "ratios": [("dltk2_cached", "monai_cached")],
    },
    "training_step": {
        "script": "training_step.py", "unit": "examples/s", "args": [],
        "rows": [("dltk2_resnet", "dltk2 resnet_3d (IXI, DLTK config), Keras", "dltk2"),
                 ("torch_resnet", "its PyTorch twin", "peer"),
                 ("dltk2_unet", "dltk2 asymmetric_residual_unet_3d (Synapse), Keras", "dltk2"),
                 ("torch_unet", "its PyTorch twin", "peer")],
        "ratios": [("dltk2_resnet", "torch_resnet"), ("dltk2_unet", "torch_unet")],
    },
    "convolution_bound": {
        "script": "convolution_bound.py", "unit": "examples/s", "args": [],
        "rows": [("dltk2_resnet", "resnet_3d's convolutions alone, TensorFlow", "dltk2"),
                 ("torch_resnet", "its twin's convolutions alone, PyTorch", "peer"),
                 ("dltk2_unet", "asymmetric_residual_unet_3d's convolutions alone, TensorFlow", "dltk2"),
                 ("torch_unet", "its twin's convolutions alone, PyTorch", "peer")],
        "ratios": [("dltk2_resnet", "torch_resnet"), ("dltk2_unet", "torch_unet")],
    },
    "sliding_window": {
        "script": "sliding_window.py", "unit": "volumes/s", "args": [],
        "rows": [("dltk2_unet", "dltk2 sliding_window_inference, U-Net", "dltk2"),
                 ("monai_unet", "MONAI sliding_window_inference, U-Net twin", "peer"),
                 ("dltk2_linear", "dltk2, one 1x1x1 convolution", "dltk2"),
                 ("monai_linear", "MONAI, one 1x1x1 convolution", "peer")],
        "ratios": [("dltk2_unet", "monai_unet"), ("dltk2_linear", "monai_linear")],
    },
    "fold_ensemble": {
        "script": "fold_ensemble.py", "unit": "volumes/s", "args": [],
        # One ensemble pass of MONAI takes about half an hour here: the ensembles' first call is the timed one.
        "row_args": {"dltk2_ensemble": ["--warmup", "0"], "monai_ensemble": ["--warmup", "0"]},
        "rows": [("dltk2_single", "dltk2, one CPU-preset U-Net, one pass", "dltk2"),
                 ("monai_single", "MONAI, its twin, one pass", "peer"),
                 ("dltk2_ensemble", "dltk2, 5 folds x 8 mirrorings (tracing included)", "dltk2"),
                 ("monai_ensemble", "MONAI, 5 twins x 8 mirrorings", "peer")],
        "ratios": [("dltk2_single", "monai_single"), ("dltk2_ensemble", "monai_ensemble"),
                   ("dltk2_ensemble", "dltk2_single")],
    },
    "deploy_latency": {
        "script": "deploy_latency.py", "unit": "subjects/s", "args": [],
        "rows": [("dltk2_deploy", "dltk2 deploy.py (4 crops)", "dltk2"),
                 ("dltk2_savedmodel", "dltk2 SavedModel serving_default (4 crops)", "dltk2"),
                 ("monai", "PyTorch twin + MONAI transforms (4 crops)", "peer")],
        "ratios": [("dltk2_deploy", "monai"), ("dltk2_savedmodel", "monai")],
    },
    "dicom_series": {
        "script": "dicom_series.py", "unit": "series/s", "args": [],
        "rows": [("dltk2", "dltk2 read_series (rules, checks, rescale)", "dltk2"),
                 ("simpleitk", "SimpleITK ImageSeriesReader, cast to float32", "dltk2"),
                 ("monai", "MONAI LoadImage(PydicomReader)", "peer")],
        "ratios": [("dltk2", "simpleitk"), ("dltk2", "monai")],
    },
}


def measure(python: str, script: str, framework: str, data_dir: Path, extra: list[str]) -> dict:
    result = subprocess.run([python, str(HERE / script), "--framework", framework, "--data_dir", str(data_dir),
                             *extra], capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        sys.exit(f"{script} --framework {framework} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--data_dir", type=Path, default=REPO / "runs" / "benchmark_ixi")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--peer_python", default=str(HERE / ".venv-monai" / "bin" / "python"))
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "benchmarks" / "results.json")
    args = parser.parse_args()
    if not Path(args.peer_python).exists():
        sys.exit(f"{args.peer_python}: no MONAI environment; run bash benchmarks/setup_peer.sh first")
    if not list(args.data_dir.glob("2mm/*/T1_2mm.nii.gz")):
        subprocess.run([sys.executable, str(REPO / "data_scripts" / "make_synthetic_ixi.py"), "--output_dir",
                        str(args.data_dir), "--num_subjects", "16", "--spacings", "2"], check=True)
    pythons = {"dltk2": sys.executable, "peer": args.peer_python}
    results = {}
    for case in args.cases:
        spec = CASES[case]
        runs: dict[str, list[dict]] = {key: [] for key, _, _ in spec["rows"]}
        for repetition in range(args.repetitions):
            for key, _, python in spec["rows"]:
                extra = [*spec["args"], *spec.get("row_args", {}).get(key, [])]
                runs[key].append(measure(pythons[python], spec["script"], key, args.data_dir, extra))
            print(f"{case} round {repetition + 1}: "
                  + ", ".join(f"{key} {value[-1]['value']:.3g}" for key, value in runs.items()), flush=True)
        rows = {}
        for key, label, _ in spec["rows"]:
            rows[key] = {"label": label, "value": summarise([run["value"] for run in runs[key]])}
            if "peak_memory_mb" in runs[key][0]:
                rows[key]["peak_memory_mb"] = summarise([run["peak_memory_mb"] for run in runs[key]])
            rows[key]["details"] = {k: v for k, v in runs[key][-1].items() if k not in ("value", "peak_memory_mb")}
        ratios = {f"{a}/{b}": rows[a]["value"]["median"] / rows[b]["value"]["median"] for a, b in spec["ratios"]}
        ratios.update({f"memory {a}/{b}": rows[a]["peak_memory_mb"]["median"] / rows[b]["peak_memory_mb"]["median"]
                       for a, b in spec["ratios"] if "peak_memory_mb" in rows[a] and "peak_memory_mb" in rows[b]})
        results[case] = {"unit": spec["unit"], "rows": rows, "ratios": ratios, "repetitions": args.repetitions,
                         "cpus": os.cpu_count()}
        print(f"\n{case}, {spec['unit']} (higher is better), {os.cpu_count()} CPUs, {args.repetitions} rounds:")
        print(f"{'':<54}{'median':>9}{'min':>9}{'max':>9}{'peak MB':>9}")
        for key, row in rows.items():
            value = row["value"]
            memory = f"{row['peak_memory_mb']['median']:>9.0f}" if "peak_memory_mb" in row else ""
            print(f"{row['label']:<54}{value['median']:>9.3g}{value['min']:>9.3g}{value['max']:>9.3g}{memory}")
        print("; ".join(f"{name} = {ratio:.2f}" for name, ratio in ratios.items()) + "\n", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.output.read_text()) if args.output.exists() else {}
    args.output.write_text(json.dumps({**previous, **results}, indent=1))


if __name__ == "__main__":
    main()
