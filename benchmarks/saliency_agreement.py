"""One-off check: dltk2's Grad-CAM against MONAI's ``GradCAM`` on the same small 3D network, weights copied.

    .venv/bin/python benchmarks/saliency_agreement.py            (runs MONAI's side in benchmarks/.venv-monai)

The network: Conv3D(4) ReLU, Conv3D(8, stride 1 or 2) ReLU, global average pooling, Dense(2), on four
(8, 12, 12) random inputs; Grad-CAM of class 1 at the second convolution's (ReLU'd) output, which
for stride 2 is upsampled from (4, 6, 6) to the input. The Keras weights go into a PyTorch twin
(kernels transposed; Keras' "same" at stride 2 pads only at the end, so the twin pads so too).
MONAI's default normaliser maps each map's maximum to 0 and minimum to 1 (``ScaleIntensity(minv=1,
maxv=0)``), and dltk2 divides by the maximum: both are brought to min-max [0, 1], high = salient.

2026-12-03 (MONAI 1.6.1, PyTorch 2.13.0): stride 1, max |difference| 1.8e-6, Pearson r 1.000000;
stride 2, 2.7e-7 and 1.000000.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def dltk2_side(stride: int, path: Path) -> None:
    import dltk2  # noqa: F401  (before TensorFlow: oneDNN on)
    import keras

    from dltk2.inference.saliency import grad_cam

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 12, 12, 1))
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv3D(8, 3, strides=stride, padding="same", activation="relu", name="conv2")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(keras.layers.GlobalAveragePooling3D()(x)))
    batch = np.random.default_rng(1).normal(size=(4, 8, 12, 12, 1)).astype(np.float32)
    weights = {f"{name}_{index}": value for name in ("conv1", "conv2", "fc")
               for index, value in enumerate(model.get_layer(name).get_weights())}
    np.savez(path, batch=batch, maps=grad_cam(model, batch, class_index=1).numpy(), **weights)


def monai_side(stride: int, path: Path) -> None:
    import torch
    import torch.nn.functional as F
    from monai.visualize import GradCAM

    saved = np.load(path)

    class Tap(torch.nn.Module):  # the ReLU'd feature map, as a module GradCAM can hook
        def forward(self, x):
            return x

    class Twin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1, self.conv2 = torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Conv3d(4, 8, 3, stride=stride)
            self.fc, self.features = torch.nn.Linear(8, 2), Tap()

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.pad(x, (0, 1) * 3) if stride == 2 else F.pad(x, (1, 1) * 3)
            return self.fc(self.features(F.relu(self.conv2(x))).mean(dim=(2, 3, 4)))

    twin = Twin().eval()
    with torch.no_grad():
        for name in ("conv1", "conv2"):
            getattr(twin, name).weight.copy_(torch.tensor(saved[f"{name}_0"]).permute(4, 3, 0, 1, 2))
            getattr(twin, name).bias.copy_(torch.tensor(saved[f"{name}_1"]))
        twin.fc.weight.copy_(torch.tensor(saved["fc_0"]).T)
        twin.fc.bias.copy_(torch.tensor(saved["fc_1"]))
    batch = torch.tensor(saved["batch"]).permute(0, 4, 1, 2, 3)
    theirs = 1.0 - GradCAM(nn_module=twin, target_layers="features")(batch, class_idx=1)[:, 0].detach().numpy()
    ours = np.stack([(m - m.min()) / (m.max() - m.min()) for m in saved["maps"]])
    difference = np.abs(theirs - ours)
    correlation = [np.corrcoef(a.ravel(), b.ravel())[0, 1] for a, b in zip(theirs, ours)]
    print(f"stride {stride}: max |MONAI - dltk2| {difference.max():.1e}, mean {difference.mean():.1e}, "
          f"Pearson r {min(correlation):.6f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=("both", "dltk2", "monai"), default="both")
    parser.add_argument("--stride", type=int, default=0, help="1 or 2; 0: both")
    parser.add_argument("--file", type=Path, default=None)
    parser.add_argument("--peer_python", default=str(HERE / ".venv-monai" / "bin" / "python"))
    args = parser.parse_args()
    if args.side == "dltk2":
        return dltk2_side(args.stride, args.file)
    if args.side == "monai":
        return monai_side(args.stride, args.file)
    if not Path(args.peer_python).exists():
        sys.exit(f"{args.peer_python}: no MONAI environment; run bash benchmarks/setup_peer.sh first")
    with tempfile.TemporaryDirectory() as folder:
        for stride in ([args.stride] if args.stride else [1, 2]):
            path = Path(folder) / f"stride{stride}.npz"
            for python, side in ((sys.executable, "dltk2"), (args.peer_python, "monai")):
                subprocess.run([python, __file__, "--side", side, "--stride", str(stride), "--file", str(path)],
                               check=True, stderr=subprocess.DEVNULL if side == "dltk2" else None)


if __name__ == "__main__":
    main()
