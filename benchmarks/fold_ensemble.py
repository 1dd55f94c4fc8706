"""Issue case: a 5-fold ensemble with 8 mirrorings, sliding-window inference over one CT-sized volume.

    python benchmarks/fold_ensemble.py --framework dltk2_ensemble                 (dltk2's venv)
    benchmarks/.venv-monai/bin/python benchmarks/fold_ensemble.py --framework monai_ensemble

The volume, windows and blending of ``sliding_window.py`` (150x200x200 (z, y, x), 64^3 windows,
overlap 0.5, Gaussian, 4 windows per batch, 14 classes), through Synapse's CPU-preset U-Net
(``applications/synapse_ct_seg/config_cpu.json``: filters 8-64, one residual unit; the benchmark's
larger U-Net costs 43 s per pass here, so 40 passes of each framework would take over an hour).

* ``dltk2_single`` / ``monai_single``: one model, one pass: the unit of cost.
* ``dltk2_ensemble``: what the exported ensemble runs: :func:`dltk2.inference.ensemble.fold_ensemble`
  of 5 models (different random weights), its folds run one after another under
  :class:`dltk2.inference.test_time.MirroredProbabilities` (axes z, y, x: 8 mirrorings of each
  window batch, one at a time), inside one :func:`dltk2.inference.sliding_window_inference` in a
  ``tf.function``, as ``SlidingWindowSegmenter`` serves it.
* ``monai_ensemble``: the same procedure as a MONAI user writes it at its best: one
  ``monai.inferers.sliding_window_inference`` whose predictor runs nnU-Net's mirroring loop (each
  flip of the window batch, softmax, flipped back, summed) for every fold's twin and averages, so
  MONAI too cuts and blends the windows once, not 40 times; under ``torch.inference_mode``.

Prints one JSON line: ``value`` (volumes per second; with ``--warmup 1`` the first call, tracing, is
not timed; ``--warmup 0`` times it, tracing included, which counts against dltk2 only: a MONAI ensemble
pass takes half an hour here, so the ensemble rows are measured that way),
``seconds``, ``first_call_seconds`` (with a warm-up), ``peak_memory_mb`` (peak resident memory above
the post-import baseline). The tracing does not depend on the volume's size: ``--volume 64,64,64
--warmup 1`` (one window) gives it as ``first_call_seconds - seconds``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sliding_window import CLASSES, VOLUME_ZYX, WINDOW  # noqa: E402  (the same volume and windows)
from training_step import rss_mb, timed_calls  # noqa: E402

FOLDS = 5
MIRROR_AXES = (0, 1, 2)
NETWORK = {"filters": (8, 16, 32, 64), "strides": (1, 2, 2, 2), "units": 1}  # config_cpu.json


def run_dltk2(ensemble: bool, repeats: int, warmup: int, folds: int, axes: tuple, shape: tuple) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dltk2  # noqa: F401
    import keras
    import numpy as np
    import tensorflow as tf

    from dltk2.inference import sliding_window_inference
    from dltk2.inference.ensemble import fold_ensemble, fold_models
    from dltk2.inference.test_time import MirroredProbabilities
    from dltk2.networks.unet import asymmetric_residual_unet_3d

    volume = tf.constant(np.random.default_rng(0).normal(size=(*shape, 1)).astype(np.float32))
    baseline = rss_mb()

    def network(seed: int):
        keras.utils.set_random_seed(seed)
        return asymmetric_residual_unet_3d(num_classes=CLASSES, num_res_units=NETWORK["units"],
                                           filters=NETWORK["filters"], strides=NETWORK["strides"])

    if ensemble:
        # As SlidingWindowSegmenter runs an exported ensemble: fold by fold, mirroring by mirroring.
        ensemble = fold_ensemble([network(k) for k in range(folds)], "segmentation")
        model = MirroredProbabilities(fold_models(ensemble), axes, logits=True)
    else:
        model = network(0)
    infer = tf.function(lambda image: sliding_window_inference(
        model, image, WINDOW, overlap=0.5, batch_size=4, blend="gaussian", num_classes=CLASSES,
        apply_softmax=not ensemble))
    probabilities, result = timed_calls(lambda: np.asarray(infer(volume)), repeats, warmup, baseline)
    assert probabilities.shape == (*shape, CLASSES)
    return result


def run_monai(ensemble: bool, repeats: int, warmup: int, folds: int, axes: tuple, shape: tuple) -> dict:
    import torch
    from monai.inferers import sliding_window_inference
    from torch_twins import AsymmetricResidualUNet3D

    torch.set_num_threads(os.cpu_count())
    volume = torch.randn((1, 1, *shape), generator=torch.Generator().manual_seed(0))
    baseline = rss_mb()

    def network(seed: int):
        torch.manual_seed(seed)
        return AsymmetricResidualUNet3D(NETWORK["filters"], NETWORK["strides"], NETWORK["units"], CLASSES).eval()

    models = [network(k) for k in range(folds if ensemble else 1)]
    flips = [[a + 2 for a in combo] for size in range(len(axes) + 1)
             for combo in itertools.combinations(axes, size)] if ensemble else [[]]

    def predictor(windows: torch.Tensor) -> torch.Tensor:  # nnU-Net's mirroring loop, over the folds too
        total = None
        for model in models:
            for dims in flips:
                probabilities = torch.softmax(model(torch.flip(windows, dims) if dims else windows), dim=1)
                probabilities = torch.flip(probabilities, dims) if dims else probabilities
                total = probabilities if total is None else total + probabilities
        return total / (len(models) * len(flips))

    def infer():
        with torch.inference_mode():
            return sliding_window_inference(volume, WINDOW, 4, predictor, overlap=0.5, mode="gaussian")

    probabilities, result = timed_calls(lambda: infer().numpy(), repeats, warmup, baseline)
    assert probabilities.shape == (1, CLASSES, *shape)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True,
                        choices=["dltk2_single", "monai_single", "dltk2_ensemble", "monai_ensemble"])
    parser.add_argument("--data_dir", help="unused (the volume is random); accepted for run.py")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (0: the first call is timed)")
    parser.add_argument("--folds", type=int, default=FOLDS, help="models in the ensemble")
    parser.add_argument("--mirror_axes", default=",".join(map(str, MIRROR_AXES)), help="e.g. 0,1,2; '' for none")
    parser.add_argument("--volume", default=",".join(map(str, VOLUME_ZYX)),
                        help="z,y,x of the random volume; 64,64,64 (one window) times the tracing alone")
    args = parser.parse_args()
    framework, kind = args.framework.split("_")
    result = (run_dltk2 if framework == "dltk2" else run_monai)(
        kind == "ensemble", args.repeats, args.warmup, args.folds, tuple(int(a) for a in args.mirror_axes.split(",") if a),
        tuple(int(n) for n in args.volume.split(",")))
    print(json.dumps({"framework": args.framework, **result}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
