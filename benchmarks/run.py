"""Runs the MONAI comparison side by side: each case for each framework, alternating, repeated.

    bash benchmarks/setup_peer.sh            # once: MONAI + CPU PyTorch in benchmarks/.venv-monai
    .venv/bin/python benchmarks/run.py [--repetitions 5] [--output benchmarks/results/input_pipeline.json]

Makes 16 IXI-like subjects with ``data_scripts/make_synthetic_ixi.py`` (2 mm) unless ``--data_dir``
holds them, then runs every case for dltk2, MONAI and the bound in turn, ``--repetitions`` rounds, and
prints median / min / max examples per second and the ratio of medians (dltk2 / MONAI), also written
as JSON. Only case 1 (the input pipeline without caching) is written so far; see README.md.
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


def measure(python: str, framework: str, data_dir: Path, batches: int) -> float:
    result = subprocess.run([python, str(HERE / "input_pipeline.py"), "--framework", framework, "--data_dir",
                             str(data_dir), "--batches", str(batches)], capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        sys.exit(f"{framework} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["examples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", type=Path, default=REPO / "runs" / "benchmark_ixi")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--peer_python", default=str(HERE / ".venv-monai" / "bin" / "python"))
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "benchmarks" / "input_pipeline.json")
    args = parser.parse_args()
    if not Path(args.peer_python).exists():
        sys.exit(f"{args.peer_python}: no MONAI environment; run bash benchmarks/setup_peer.sh first")
    if not list(args.data_dir.glob("2mm/*/T1_2mm.nii.gz")):
        subprocess.run([sys.executable, str(REPO / "data_scripts" / "make_synthetic_ixi.py"), "--output_dir",
                        str(args.data_dir), "--num_subjects", "16", "--spacings", "2"], check=True)
    runs: dict[str, list[float]] = {"dltk2": [], "monai": [], "gunzip": []}
    for repetition in range(args.repetitions):
        for framework in runs:
            python = sys.executable if framework == "dltk2" else args.peer_python
            runs[framework].append(measure(python, framework, args.data_dir, args.batches))
        print(f"round {repetition + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()), flush=True)
    summary = {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v} for name, v in runs.items()}
    summary["ratio_dltk2_over_monai"] = summary["dltk2"]["median"] / summary["monai"]["median"]
    summary["dltk2_share_of_gunzip_bound"] = summary["dltk2"]["median"] / summary["gunzip"]["median"]
    print(f"\ninput pipeline, examples per second ({os.cpu_count()} CPUs, {args.repetitions} rounds, "
          f"{args.batches} batches of 8):")
    print(f"{'':<28}{'median':>9}{'min':>9}{'max':>9}")
    for name, label in (("dltk2", "dltk2 Reader (py_function)"), ("monai", "MONAI DataLoader(2)"),
                        ("gunzip", "gunzip bound (2 threads)")):
        row = summary[name]
        print(f"{label:<28}{row['median']:>9.1f}{row['min']:>9.1f}{row['max']:>9.1f}")
    print(f"dltk2 / MONAI = {summary['ratio_dltk2_over_monai']:.2f}x; "
          f"dltk2 / gunzip bound = {summary['dltk2_share_of_gunzip_bound']:.0%}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
