"""Case 2, taken apart: the training step's 3D convolutions alone, each kernel timed by itself.

    python benchmarks/convolution_bound.py --framework dltk2_resnet          (dltk2's venv)
    benchmarks/.venv-monai/bin/python benchmarks/convolution_bound.py --framework torch_resnet

Lists the convolutions that one training step of ``training_step.py``'s network runs, from each
framework's own model (Keras: the ``Conv3D`` ops of the traced forward pass; PyTorch: the inputs seen
by the ``nn.Conv3d`` modules), and times, for each, the three kernels a step calls: the forward
convolution, the gradient with respect to its input (not for the network's first convolution, whose
input needs none) and the gradient with respect to its kernel (TensorFlow's ``Conv3D``,
``Conv3DBackpropInputV2``, ``Conv3DBackpropFilterV2``, oneDNN's under dltk2's settings; PyTorch's
``convolution`` and ``convolution_backward``, oneDNN's too). Each kernel runs alone on all cores,
median of ``--repeats`` calls after two warm-up calls. Their sum is what one step spends in
convolutions when they run one after another, so ``value`` (batch / that sum) is about the most
examples per second that ``training_step.py`` can reach with these kernels: everything else in a
step adds to it, and only running two kernels at once (TensorFlow's inter-op threads) wins a little
back. Prints one JSON line with the sums per kind, the arithmetic rate (GFLOP/s: 2 floating-point
operations per multiply-add) and the five slowest convolutions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_step import NETWORKS, build_keras, build_torch  # noqa: E402

KINDS = ("forward", "backward_input", "backward_filter")


def median_ms(call: Callable[[], object], repeats: int) -> float:
    call()
    call()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return 1000 * statistics.median(seconds)


def keras_convolutions(network: str, batch: int) -> list[dict]:
    """The Conv3D ops of the Keras model's training-mode forward pass, with their static shapes."""
    import tensorflow as tf

    model = build_keras(network)
    spec = NETWORKS[network]
    graph = tf.function(lambda x: model(x, training=True)).get_concrete_function(
        tf.TensorSpec((batch, *spec["input"], 1), tf.float32)).graph
    convolutions = []
    for op in graph.get_operations():
        if op.type != "Conv3D":
            continue
        source = op.inputs[0].op
        while source.type in ("Identity", "Cast"):
            source = source.inputs[0].op
        convolutions.append({"name": op.name, "input": op.inputs[0].shape.as_list(),
                             "kernel": op.inputs[1].shape.as_list(), "output": op.outputs[0].shape.as_list(),
                             "strides": list(op.get_attr("strides")), "padding": op.get_attr("padding").decode(),
                             "needs_input_gradient": source.type != "Placeholder"})
    return convolutions


def time_keras(convolutions: list[dict], repeats: int) -> None:
    import numpy as np
    import tensorflow as tf

    rng = tf.random.Generator.from_seed(0)
    for conv in convolutions:
        x = rng.normal(conv["input"])
        kernel = rng.normal(conv["kernel"]) * 0.05
        gradient = rng.normal(conv["output"])
        strides, padding = conv["strides"], conv["padding"]
        forward = tf.function(lambda x=x, k=kernel: tf.nn.conv3d(x, k, strides, padding))
        backward_input = tf.function(lambda k=kernel, g=gradient, shape=conv["input"]: tf.raw_ops.Conv3DBackpropInputV2(
            input_sizes=tf.constant(shape), filter=k, out_backprop=g, strides=strides, padding=padding))
        backward_filter = tf.function(lambda x=x, g=gradient, shape=conv["kernel"]: tf.raw_ops.Conv3DBackpropFilterV2(
            input=x, filter_sizes=tf.constant(shape), out_backprop=g, strides=strides, padding=padding))
        calls = {"forward": forward, "backward_input": backward_input, "backward_filter": backward_filter}
        for kind in KINDS:
            if kind == "backward_input" and not conv["needs_input_gradient"]:
                conv[kind] = 0.0
                continue
            # np.asarray shares the result's buffer (torch's kernels return theirs too); .numpy() would copy it.
            conv[kind] = median_ms(lambda call=calls[kind]: np.asarray(call()), repeats)


def torch_convolutions(network: str, batch: int) -> list[dict]:
    """What every nn.Conv3d of the PyTorch twin receives in one forward pass."""
    import torch

    model = build_torch(network)
    spec = NETWORKS[network]
    x = torch.randn((batch, 1, *spec["input"]))
    convolutions = []

    def record(module, inputs, output):
        convolutions.append({"name": names[module], "input": list(inputs[0].shape), "kernel": list(module.weight.shape),
                             "output": list(output.shape), "strides": list(module.stride),
                             "padding": list(module.padding), "needs_input_gradient": inputs[0] is not x})

    names = {module: name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv3d)}
    hooks = [module.register_forward_hook(record) for module in names]
    with torch.no_grad():
        model.train()(x)
    for hook in hooks:
        hook.remove()
    return convolutions


def time_torch(convolutions: list[dict], repeats: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    for conv in convolutions:
        x = torch.randn(conv["input"], generator=generator)
        kernel = torch.randn(conv["kernel"], generator=generator) * 0.05
        gradient = torch.randn(conv["output"], generator=generator)
        strides, padding = conv["strides"], conv["padding"]

        def forward(x=x, kernel=kernel):
            return torch.nn.functional.conv3d(x, kernel, stride=strides, padding=padding)

        def backward(mask, x=x, kernel=kernel, gradient=gradient):
            return torch.ops.aten.convolution_backward(gradient, x, kernel, None, strides, padding, [1, 1, 1], False,
                                                       [0, 0, 0], 1, mask)

        calls = {"forward": forward, "backward_input": lambda: backward([True, False, False]),
                 "backward_filter": lambda: backward([False, True, False])}
        with torch.no_grad():
            for kind in KINDS:
                if kind == "backward_input" and not conv["needs_input_gradient"]:
                    conv[kind] = 0.0
                    continue
                conv[kind] = median_ms(calls[kind], repeats)


def multiply_adds(conv: dict, channels_last: bool) -> int:
    """Multiply-adds of one of the convolution's three kernels (each does the same number)."""
    output = list(conv["output"])
    del output[-1 if channels_last else 1]  # the output channels are counted in the kernel
    return math.prod(output) * math.prod(conv["kernel"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", required=True,
                        choices=["dltk2_resnet", "torch_resnet", "dltk2_unet", "torch_unet"])
    parser.add_argument("--data_dir", help="unused (the tensors are random); accepted for run.py")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    framework, network = args.framework.split("_")
    if framework == "dltk2":
        convolutions = keras_convolutions(network, args.batch)
        time_keras(convolutions, args.repeats)
    else:
        import torch

        torch.set_num_threads(os.cpu_count())
        convolutions = torch_convolutions(network, args.batch)
        time_torch(convolutions, args.repeats)
    totals = {kind: sum(conv[kind] for conv in convolutions) for kind in KINDS}
    total_ms = sum(totals.values())
    flop = {kind: 2 * sum(multiply_adds(conv, framework == "dltk2") for conv in convolutions
                          if kind != "backward_input" or conv["needs_input_gradient"]) for kind in KINDS}
    slowest = sorted(convolutions, key=lambda conv: -sum(conv[kind] for kind in KINDS))[:5]
    print(json.dumps({
        "framework": args.framework, "batch": args.batch, "value": args.batch / (total_ms / 1000),
        "convolution_ms": total_ms, "convolutions": len(convolutions), "threads": os.cpu_count(),
        **{f"{kind}_ms": round(totals[kind], 1) for kind in KINDS},
        **{f"{kind}_gflop_per_s": round(flop[kind] / totals[kind] / 1e6, 1) for kind in KINDS},
        "slowest": [{"name": conv["name"], "input": conv["input"], "kernel": conv["kernel"],
                     "strides": conv["strides"], **{kind: round(conv[kind], 1) for kind in KINDS}}
                    for conv in slowest]}), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
