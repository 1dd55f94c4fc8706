"""IXI super-resolution (DLTK's ``IXI_HH_superresolution``): train the network, and score it against interpolation.

``applications/IXI_HH_superresolution/train.py`` calls :func:`run_training` and ``deploy.py``
:func:`deploy`. Training pairs are made by the reader (:mod:`dltk2.datasets.super_resolution`): a
T1 crop and its block-averaged twin. Deploy takes each held-out subject's T1, averages it down by
the same factors, gives that to the exported graph (:class:`dltk2.inference.super_resolution.SuperResolver`)
and compares its output, and linear and cubic upsampling of the same low-resolution volume, with the
original: PSNR (dB) and SSIM (scikit-image's) over the whole volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dltk2.training.run import RunSettings

METHODS = ("network", "linear", "cubic")


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own.

    Attributes:
        data_csv: ``demographic_HH.csv``; its T1s at ``spacing_mm`` are the high-resolution truth.
        spacing_mm: Which ``<s>mm`` T1 folders to read.
        factors: Upsampling per axis (z, y, x): 4,4,4 for x4; 4,1,1 for slices four times as thick.
        num_train: The first ``num_train`` subjects train, the rest validate (and deploy's held-out).
        example_size: High-resolution crop (z, y, x), whole multiples of ``factors``.
        n_examples: Crops per subject read.
        filters, num_convolutions: The network's (:func:`dltk2.networks.super_resolution.simple_super_resolution_3d`).
        batch_size, learning_rate, l2, lr_schedule, max_steps, steps_per_epoch: Training.
    """

    data_csv: str
    spacing_mm: float = 2.0
    factors: list[int] = field(default_factory=lambda: [4, 4, 4])
    num_train: int = 150
    example_size: list[int] = field(default_factory=lambda: [32, 32, 32])
    n_examples: int = 8
    filters: list[int] = field(default_factory=lambda: [32, 32, 32])
    num_convolutions: int = 1
    batch_size: int = 8
    learning_rate: float = 1e-3
    l2: float = 0.0
    lr_schedule: str = "constant"
    max_steps: int = 20000
    steps_per_epoch: int = 500


def check_settings(config: TrainingConfig) -> None:
    """Settings that cannot work, in one line before anything loads.

    Raises:
        DataError: A crop that the factors do not divide, or a factor under 1.
    """
    from dltk2.errors import DataError

    if len(config.factors) != 3 or min(config.factors) < 1:
        raise DataError(f"factors must be three whole numbers of at least 1 (z, y, x), got {list(config.factors)}")
    if len(config.example_size) != 3 or any(s % f for s, f in zip(config.example_size, config.factors)):
        raise DataError(f"example_size {list(config.example_size)} must be whole multiples of the factors "
                        f"{list(config.factors)}")


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Trains (resuming) on (low, high) crop pairs with mean squared error, validates, exports. Returns the folder."""
    from dltk2.datasets.ixi import load_split

    check_settings(config)
    training, validation = load_split(config.data_csv, config.spacing_mm, config.num_train)

    import keras

    from dltk2.datasets.super_resolution import build_reader
    from dltk2.inference.super_resolution import SuperResolver
    from dltk2.io.image import read_image_information
    from dltk2.io.orientation import axis_codes
    from dltk2.io.reader import Mode
    from dltk2.networks.super_resolution import simple_super_resolution_3d
    from dltk2.run_config import RunConfig, training_settings
    from dltk2.training import TrainingRun, learning_rate_schedule

    reader = build_reader(config.example_size, config.factors)
    run = TrainingRun(settings)
    params = {"example_size": list(config.example_size), "n_examples": config.n_examples,
              "factors": list(config.factors)}
    dataset = reader.dataset(training, Mode.TRAIN, params, batch_size=config.batch_size,
                             shuffle_buffer_size=4 * config.n_examples)
    validation_dataset = reader.dataset(validation, Mode.EVAL, params, batch_size=config.batch_size)
    with run.strategy.scope():
        model = simple_super_resolution_3d(factors=config.factors, filters=config.filters,
                                           num_convolutions=config.num_convolutions, l2_regularisation=config.l2,
                                           name="ixi_super_resolution")
        rate = learning_rate_schedule(config.learning_rate, config.lr_schedule, config.max_steps)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    geometry = read_image_information(training["image"].iloc[0]).geometry
    run.write_config(RunConfig(
        application="IXI_HH_superresolution", task="super_resolution", example_size=list(config.example_size),
        spacing_mm=list(geometry.spacing), orientation=axis_codes(geometry.direction),
        intensity={"method": "whitening"},
        data={"data_csv": str(Path(config.data_csv).resolve()), "num_train": config.num_train,
              "spacing_mm": config.spacing_mm},
        training=training_settings(config, leave_out=("spacing_mm", "num_train", "example_size"))))
    run.announce(f"model: {model.count_params():,} parameters; x{'x'.join(map(str, config.factors))} (z, y, x); "
                 f"{len(training)} training subjects")
    run.train(model, dataset, config.max_steps, config.steps_per_epoch, validation_dataset=validation_dataset)
    if settings.export:
        run.export(SuperResolver(run.trained_model(), config.factors))
    return run.path


def interpolated(low: np.ndarray, factors: Sequence[int], order: int) -> np.ndarray:
    """``low`` upsampled by ``factors`` with scipy's spline of ``order`` (0 nearest, 1 linear, 3 cubic) on
    the same half-voxel grid as the network's (``grid_mode=True``), edges continued."""
    from scipy import ndimage

    return ndimage.zoom(np.asarray(low, np.float32), factors, order=order, grid_mode=True,
                        mode="nearest").astype(np.float32)


def image_quality(reference: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``image`` against ``reference``, the reference's range as the data range."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    reference, image = np.asarray(reference, np.float64), np.asarray(image, np.float64)
    data_range = float(reference.max() - reference.min()) or 1.0
    return {"psnr_db": float(peak_signal_noise_ratio(reference, image, data_range=data_range)),
            "ssim": float(structural_similarity(reference, image, data_range=data_range))}


def compare_upsampling(high: np.ndarray, low: np.ndarray, network: np.ndarray, factors: Sequence[int]
                       ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Each method's PSNR and SSIM against ``high``: ``({"psnr_db/network": ..., "ssim/cubic": ...}, volumes)``."""
    volumes = {"network": network, "linear": interpolated(low, factors, 1), "cubic": interpolated(low, factors, 3)}
    scores = {}
    for method, volume in volumes.items():
        for name, value in image_quality(high, volume).items():
            scores[f"{name}/{method}"] = value
    return scores, volumes


def deploy(model_path: str | Path, data_csv: str | Path, output_dir: str | Path, subjects: str = "held_out") -> Path:
    """Upsamples each subject's averaged-down T1 with the exported graph; PSNR and SSIM against interpolation.

    Writes ``<output_dir>/<id>_sr.nii.gz`` (on the original grid), ``metrics.csv``, a picture per
    subject (``panels/<id>.png``: the low-resolution input, linear, cubic, the network, the original)
    and ``report.html``; prints a line per subject and the mean of each method.

    Args:
        subjects: ``held_out`` (those the run did not train on) or ``all`` of the CSV.

    Returns:
        The report's path.
    """
    import time

    import SimpleITK as sitk

    from dltk2.cli import print_table
    from dltk2.datasets.super_resolution import downsample, whole_blocks
    from dltk2.inference import load_predictor
    from dltk2.io.atomic import write_csv_atomically
    from dltk2.io.image import read_image, write_image
    from dltk2.model_folder import ModelFolder
    from dltk2.plots import plot_volume_panels
    from dltk2.report import HtmlReport, add_run_configuration

    from dltk2.datasets.ixi import load_split

    run = ModelFolder(model_path).read_config()
    factors = [int(f) for f in run.training["factors"]]
    training, held_out = load_split(data_csv, float(run.data["spacing_mm"]), int(run.data["num_train"]))
    cases = held_out if subjects == "held_out" else pd.concat([training, held_out], ignore_index=True)
    resolver = load_predictor(model_path)
    output_dir = Path(output_dir)
    rows = []
    for case in cases.itertuples():
        image = read_image(case.image)
        high = whole_blocks(sitk.GetArrayFromImage(image).astype(np.float32), factors)
        low = downsample(high, factors)
        start = time.perf_counter()
        network = resolver.upsample(low, np.asarray(image.GetSpacing()) * factors[::-1])
        seconds = time.perf_counter() - start
        scores, volumes = compare_upsampling(high, low, network, factors)
        written = sitk.GetImageFromArray(network)
        written.SetSpacing(image.GetSpacing())
        written.SetDirection(image.GetDirection())
        written.SetOrigin(image.GetOrigin())
        output_path = output_dir / f"{case.id}_sr.nii.gz"
        write_image(written, output_path)
        plot_volume_panels({"input": interpolated(low, factors, 0), **{m: volumes[m] for m in ("linear", "cubic")},
                            "network": network, "original": high}, output_dir / "panels" / f"{case.id}.png",
                           image.GetSpacing(), title=f"{case.id}: x{'x'.join(map(str, factors))}")
        rows.append({"id": case.id, **scores, "seconds": seconds, "output_path": str(output_path)})
        print(f"Id={case.id}; PSNR={scores['psnr_db/network']:.2f} dB (linear {scores['psnr_db/linear']:.2f}, cubic "
              f"{scores['psnr_db/cubic']:.2f}); SSIM={scores['ssim/network']:.4f} (linear {scores['ssim/linear']:.4f}, "
              f"cubic {scores['ssim/cubic']:.4f}); time={seconds:.2f} secs; output_path={output_path};", flush=True)
    results = pd.DataFrame(rows)
    write_csv_atomically(results, output_dir / "metrics.csv")
    summary = pd.DataFrame([{"method": method, "psnr_db": results[f"psnr_db/{method}"].mean(),
                             "ssim": results[f"ssim/{method}"].mean(),
                             "better_than_cubic": int((results[f"psnr_db/{method}"] > results["psnr_db/cubic"]).sum())}
                            for method in METHODS])
    print_table(summary)
    report = HtmlReport("IXI super-resolution: deploy", f"model {model_path}")
    report.add_table(summary, f"Mean over {len(results)} subjects (PSNR in dB)")
    report.add_table(results, "Every subject")
    for case_id in results["id"]:
        report.add_image(output_dir / "panels" / f"{case_id}.png", str(case_id))
    add_run_configuration(report, model_path)
    path = report.write(output_dir / "report.html")
    print(f"{len(results)} subjects in {results['seconds'].sum():.1f} s; wrote {output_dir / 'metrics.csv'} and {path}")
    return path
