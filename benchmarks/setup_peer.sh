#!/usr/bin/env bash
# The peer for the benchmarks in its own environment: MONAI with the CPU build of PyTorch. Nothing of it
# becomes a dependency of dltk2. torch==2.13.0 is pinned: an unpinned torch pulls a CUDA build of several GB.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv-monai
.venv-monai/bin/pip install -q torch==2.13.0 monai nibabel pydicom SimpleITK
.venv-monai/bin/python -c "import monai, torch; print('MONAI', monai.__version__, 'torch', torch.__version__)"
