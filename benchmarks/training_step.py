"""Case 2 of the MONAI comparison: one training step of the same network in Keras and in PyTorch.

    python benchmarks/training_step.py --framework dltk2_resnet           (dltk2's venv)
    benchmarks/.venv-monai/bin/python benchmarks/training_step.py --framework torch_resnet

Networks, built identically in both (same filters, strides, kernels, padding, normalisation, and the
parameter count printed by each):

* ``resnet``: DLTK's IXI network (:func:`dltk2.networks.resnet.resnet_3d`, the IXI_HH_sex
  application's defaults: filters 16, 32, 64, 128, 256, strides 1, 2, 2, 2, 2, two residual units per
  scale, L2 1e-3) on 64x96x96 crops, 2 classes, softmax cross-entropy.
* ``unet``: the Synapse application's asymmetric residual U-Net
  (:func:`dltk2.networks.unet.asymmetric_residual_unet_3d`, config.json: filters 16, 32, 64, 128,
  strides 1, 2, 2, 2, three encoder units, L2 1e-4) on 64^3 patches, 14 classes, voxel-wise
  softmax cross-entropy.

Both train with Adam and the same L2 term on every convolution and dense kernel (Keras' kernel
regularisers; added to the loss in PyTorch), in float32 (``--policy mixed_bfloat16``: Keras'
policy against PyTorch's bfloat16 autocast), on one fixed batch held in memory: the step alone,
without data loading (as nnU-Net's benchmark trainers separate them). The thread count is the same
(all CPUs). Prints one JSON line: ``value`` (examples per second: the batch over the median of the
timed steps, each timed alone after warm-up steps; in about half the runs Keras' ``fit`` returned some
9 s after its last step, tearing down its dataset iterator, which a per-step time leaves out),
``peak_memory_mb`` (the process' peak resident memory above what it held once the framework was
imported and the batch made), ``parameters``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

NETWORKS = {
    "resnet": {"input": (64, 96, 96), "filters": (16, 32, 64, 128, 256), "strides": (1, 2, 2, 2, 2), "units": 2,
               "classes": 2, "l2": 1e-3},
    "unet": {"input": (64, 64, 64), "filters": (16, 32, 64, 128), "strides": (1, 2, 2, 2), "units": 3,
             "classes": 14, "l2": 1e-4},
}


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def timed_calls(call, repeats: int, warmup: int, baseline_mb: float):
    """Times ``call()`` ``repeats`` times after ``warmup`` untimed calls.

    Returns:
        The last call's result, and the JSON fields of a whole-volume case: ``value`` (calls per
        second), ``seconds`` (per call), ``first_call_seconds`` (the first warm-up call's, where there
        is one: it traces a ``tf.function``), ``peak_memory_mb`` (peak resident memory above
        ``baseline_mb``, warm-up included), ``baseline_mb``.
    """
    fields = {}
    for index in range(warmup):
        started = time.perf_counter()
        call()
        if index == 0:
            fields["first_call_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(repeats):
        result = call()
    seconds = (time.perf_counter() - started) / repeats
    return result, {"value": 1 / seconds, "seconds": seconds, **fields, "peak_memory_mb": peak_rss_mb() - baseline_mb,
                    "baseline_mb": baseline_mb}


def build_keras(network: str):
    """The Keras model of ``NETWORKS[network]``, built by dltk2."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dltk2  # noqa: F401  (oneDNN on, malloc tuned, before TensorFlow)
    from dltk2.networks.resnet import resnet_3d
    from dltk2.networks.unet import asymmetric_residual_unet_3d

    spec = NETWORKS[network]
    if network == "resnet":
        return resnet_3d(input_shape=(*spec["input"], 1), num_classes=spec["classes"], num_res_units=spec["units"],
                         filters=spec["filters"], strides=spec["strides"], l2_regularisation=spec["l2"])
    return asymmetric_residual_unet_3d(input_shape=(*spec["input"], 1), num_classes=spec["classes"],
                                       num_res_units=spec["units"], filters=spec["filters"],
                                       strides=spec["strides"], l2_regularisation=spec["l2"])


def build_torch(network: str):
    """The PyTorch twin of ``NETWORKS[network]``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from torch_twins import AsymmetricResidualUNet3D, ResNet3D

    spec = NETWORKS[network]
    if network == "resnet":
        return ResNet3D(spec["filters"], spec["strides"], spec["units"], spec["classes"])
    return AsymmetricResidualUNet3D(spec["filters"], spec["strides"], spec["units"], spec["classes"])


def run_keras(network: str, batch: int, warm_up: int, steps: int, policy: str = "float32") -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import dltk2  # noqa: F401  (oneDNN on, malloc tuned, before TensorFlow)
    import keras
    import numpy as np
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(policy)
    spec = NETWORKS[network]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, *spec["input"], 1)).astype(np.float32)
    if network == "resnet":
        y = rng.integers(0, spec["classes"], size=(batch,)).astype(np.int32)
    else:
        y = rng.integers(0, spec["classes"], size=(batch, *spec["input"])).astype(np.int32)
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat()
    baseline = rss_mb()
    model = build_keras(network)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(dataset, steps_per_epoch=warm_up, epochs=1, verbose=0)
    step_seconds: list[float] = []

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            step_seconds.append(time.perf_counter() - self.started)

    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[StepTimer()])
    return _result(batch, step_seconds, peak_rss_mb() - baseline,
                   int(sum(np.prod(w.shape) for w in model.trainable_weights)), baseline)


def _result(batch: int, step_seconds: list[float], peak_memory_mb: float, parameters: int, baseline: float) -> dict:
    median = statistics.median(step_seconds)
    return {"value": batch / median, "peak_memory_mb": peak_memory_mb, "parameters": parameters,
            "seconds_per_step": median, "step_seconds": [round(v, 3) for v in step_seconds],
            "threads": os.cpu_count(), "baseline_mb": baseline}


def run_torch(network: str, batch: int, warm_up: int, steps: int, policy: str = "float32") -> dict:
    import torch

    torch.set_num_threads(os.cpu_count())
    spec = NETWORKS[network]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch, 1, *spec["input"]), generator=generator)
    if network == "resnet":
        y = torch.randint(0, spec["classes"], (batch,), generator=generator)
    else:
        y = torch.randint(0, spec["classes"], (batch, *spec["input"]), generator=generator)
    baseline = rss_mb()
    model = build_torch(network)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-5, weight_decay=0.0)
    # Keras regularises every convolution and dense kernel, not batch norm or biases.
    decayed = [module.weight for module in model.modules() if isinstance(module, (torch.nn.Conv3d, torch.nn.Linear))]
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step():
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=policy == "mixed_bfloat16"):
            logits = model(x)
        loss = loss_fn(logits.float(), y) + spec["l2"] * sum((p * p).sum() for p in decayed)
        loss.backward()
        optimiser.step()

    for _ in range(warm_up):
        step()
    step_seconds = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        step_seconds.append(time.perf_counter() - started)
    return _result(batch, step_seconds, peak_rss_mb() - baseline, int(sum(p.numel() for p in model.parameters())),
                   baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True,
                        choices=["dltk2_resnet", "torch_resnet", "dltk2_unet", "torch_unet"])
    parser.add_argument("--data_dir", help="unused (the batch is random); accepted for run.py")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warm_up", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--policy", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"],
                        help="Keras precision policy; PyTorch: autocast to bfloat16 for mixed_bfloat16 "
                        "(mixed_float16 needs a GPU for Keras' 3D pooling)")
    args = parser.parse_args()
    framework, network = args.framework.split("_")
    if framework == "dltk2":
        result = run_keras(network, args.batch, args.warm_up, args.steps, args.policy)
    else:
        result = run_torch(network, args.batch, args.warm_up, args.steps, args.policy)
    print(json.dumps({"framework": args.framework, "policy": args.policy, "batch": args.batch, "steps": args.steps, **result}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
