"""Case 3 of the MONAI comparison: sliding-window inference over one CT-sized volume.

    python benchmarks/sliding_window.py --framework dltk2_unet             (dltk2's venv)
    benchmarks/.venv-monai/bin/python benchmarks/sliding_window.py --framework monai_unet

A 150x200x200 (z, y, x) volume, 64^3 windows, overlap 0.5, Gaussian blending, 4 windows per network
call, softmax before blending, 14 classes: dltk2's :func:`dltk2.inference.sliding_window_inference`
(in a ``tf.function``, as the exported SavedModel runs it) against ``monai.inferers.
sliding_window_inference`` under ``torch.inference_mode``. Networks: ``unet``, the Synapse
asymmetric residual U-Net and its PyTorch twin (``torch_twins.py``), untrained; ``linear``, one 1x1x1
convolution to 14 classes, which leaves the cost of cutting, blending and accumulating the windows.

Prints one JSON line: ``value`` (volumes per second; the first call, tracing, is not timed),
``seconds``, ``peak_memory_mb`` (peak resident memory above the post-import baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_step import NETWORKS, rss_mb, timed_calls  # noqa: E402

VOLUME_ZYX = (150, 200, 200)
WINDOW = (64, 64, 64)
CLASSES = 14


def run_dltk2(network: str, repeats: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dltk2  # noqa: F401
    import keras
    import numpy as np
    import tensorflow as tf

    from dltk2.inference import sliding_window_inference
    from dltk2.networks.unet import asymmetric_residual_unet_3d

    volume = tf.constant(np.random.default_rng(0).normal(size=(*VOLUME_ZYX, 1)).astype(np.float32))
    baseline = rss_mb()
    if network == "unet":
        spec = NETWORKS["unet"]
        model = asymmetric_residual_unet_3d(num_classes=CLASSES, num_res_units=spec["units"],
                                            filters=spec["filters"], strides=spec["strides"])
    else:
        inputs = keras.Input((None, None, None, 1))
        model = keras.Model(inputs, keras.layers.Conv3D(CLASSES, 1)(inputs))
    infer = tf.function(lambda image: sliding_window_inference(model, image, WINDOW, overlap=0.5, batch_size=4,
                                                               blend="gaussian", num_classes=CLASSES))
    # np.asarray shares the tensor's buffer; EagerTensor.numpy() would copy it (336 MB here), where
    # torch's .numpy() below shares.
    probabilities, result = timed_calls(lambda: np.asarray(infer(volume)), repeats, 1, baseline)
    assert probabilities.shape == (*VOLUME_ZYX, CLASSES)
    return result


def run_monai(network: str, repeats: int) -> dict:
    import torch
    from monai.inferers import sliding_window_inference
    from torch_twins import AsymmetricResidualUNet3D

    torch.set_num_threads(os.cpu_count())
    volume = torch.randn((1, 1, *VOLUME_ZYX), generator=torch.Generator().manual_seed(0))
    baseline = rss_mb()
    if network == "unet":
        spec = NETWORKS["unet"]
        model = AsymmetricResidualUNet3D(spec["filters"], spec["strides"], spec["units"], CLASSES)
    else:
        model = torch.nn.Conv3d(1, CLASSES, 1)
    model.eval()

    def infer():
        with torch.inference_mode():
            return sliding_window_inference(volume, WINDOW, 4, lambda x: torch.softmax(model(x), dim=1),
                                            overlap=0.5, mode="gaussian")

    probabilities, result = timed_calls(lambda: infer().numpy(), repeats, 1, baseline)
    assert probabilities.shape == (1, CLASSES, *VOLUME_ZYX)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True,
                        choices=["dltk2_unet", "monai_unet", "dltk2_linear", "monai_linear"])
    parser.add_argument("--data_dir", help="unused (the volume is random); accepted for run.py")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    framework, network = args.framework.split("_")
    result = (run_dltk2 if framework == "dltk2" else run_monai)(network, args.repeats)
    print(json.dumps({"framework": args.framework, **result}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
