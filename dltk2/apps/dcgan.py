"""IXI 3D DCGAN (DLTK's ``IXI_HH_DCGAN``): train a generator of small brain volumes, and check its samples.

``applications/IXI_HH_DCGAN/train.py`` calls :func:`run_training`, ``deploy.py`` :func:`deploy`.
Deploy draws samples from the exported generator and asks two questions of them: are they copies of
training volumes (each sample's distance to its nearest training volume, against the same distance
for held-out real volumes, which the generator never saw), and do their intensities follow the
data's (the Wasserstein distance between the samples' voxel histogram and the training volumes',
against that of the held-out volumes)?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dltk2.training.run import RunSettings


@dataclass
class TrainingConfig:
    """train.py's settings besides the run's own.

    Attributes:
        data_csv: ``demographic_HH.csv``; its T1s at ``spacing_mm``.
        spacing_mm: Which ``<s>mm`` folders to read (8 mm: the whole brain in a 16x24x16 box).
        num_train: The first ``num_train`` subjects train; the rest are deploy's held-out reals.
        example_size: The box (z, y, x), divisible by 2 ** len(generator_filters).
        code_size, generator_filters, discriminator_filters: The networks'.
        max_shift: Random shift of the box in training, voxels.
        batch_size, learning_rate, max_steps, steps_per_epoch: Training (Adam, beta_1 0.5, as DCGAN).
    """

    data_csv: str
    spacing_mm: float = 8.0
    num_train: int = 80
    example_size: list[int] = field(default_factory=lambda: [16, 24, 16])
    code_size: int = 64
    generator_filters: list[int] = field(default_factory=lambda: [64, 32, 16])
    discriminator_filters: list[int] = field(default_factory=lambda: [16, 32, 64])
    max_shift: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-4
    max_steps: int = 5000
    steps_per_epoch: int = 500


def check_settings(config: TrainingConfig) -> None:
    """Settings that cannot work, in one line before anything loads.

    Raises:
        DataError: A box the generator's doublings cannot reach.
    """
    from dltk2.errors import DataError

    factor = 2 ** len(config.generator_filters)
    if len(config.example_size) != 3 or any(size % factor for size in config.example_size):
        raise DataError(f"output size {list(config.example_size)} must be divisible by 2 ** "
                        f"{len(config.generator_filters)} (one doubling per generator filter)")


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Trains (resuming) the generator and discriminator together on the training boxes; exports the generator."""
    from dltk2.datasets.ixi import load_split

    check_settings(config)
    training, _ = load_split(config.data_csv, config.spacing_mm, config.num_train)

    import keras
    import tensorflow as tf

    from dltk2.datasets import generative
    from dltk2.inference.generator import GeneratorPredictor
    from dltk2.io.image import read_image_information
    from dltk2.io.orientation import axis_codes
    from dltk2.io.reader import Mode, Reader
    from dltk2.networks.gan import dcgan_3d
    from dltk2.run_config import RunConfig, training_settings
    from dltk2.training import TrainingRun

    box = list(config.example_size) + [1]
    run = TrainingRun(settings)
    reader = Reader(generative.read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.float32}},
                    {"features": {"x": box}, "labels": {"y": []}})
    dataset = reader.dataset(training, Mode.TRAIN, {"example_size": list(config.example_size),
                                                    "max_shift": config.max_shift},
                             batch_size=config.batch_size, shuffle_buffer_size=len(training))
    with run.strategy.scope():
        model = dcgan_3d(config.code_size, box, config.generator_filters, config.discriminator_filters,
                         name="ixi_dcgan")
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5))
    geometry = read_image_information(training["image"].iloc[0]).geometry
    run.write_config(RunConfig(
        application="IXI_HH_DCGAN", task="generation", example_size=list(config.example_size),
        spacing_mm=list(geometry.spacing), orientation=axis_codes(geometry.direction),
        intensity={"method": "min_max"},
        data={"data_csv": str(Path(config.data_csv).resolve()), "num_train": config.num_train,
              "spacing_mm": config.spacing_mm},
        training=training_settings(config, leave_out=("spacing_mm", "num_train", "example_size"))))
    run.announce(f"model: generator {model.generator.count_params():,}, discriminator "
                 f"{model.discriminator.count_params():,} parameters; {len(training)} training subjects")
    run.train(model, dataset, config.max_steps, config.steps_per_epoch, monitor=None)
    if settings.export:
        run.export(GeneratorPredictor(run.trained_model("last").generator))
    return run.path


def nearest_distances(volumes: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Each volume's root-mean-square voxel difference to its nearest reference volume (intensity units)."""
    flat, reference = volumes.reshape(len(volumes), -1), references.reshape(len(references), -1)
    squared = (flat ** 2).sum(1)[:, None] + (reference ** 2).sum(1)[None, :] - 2 * flat @ reference.T
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0) / flat.shape[1])


def sample_checks(samples: np.ndarray, training: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    """Copies and intensities: the numbers deploy reports (see the module docstring).

    Returns:
        ``sample_nn_median`` and ``held_out_nn_median`` (RMS distance to the nearest training volume),
        ``samples_closer_than_any_held_out`` (count: candidate copies), ``sample_histogram_distance`` and
        ``held_out_histogram_distance`` (Wasserstein distance of the voxel values to the training
        volumes'), ``noise_histogram_distance`` (the same for uniform noise on [-1, 1]: a bad generator).
    """
    from scipy.stats import wasserstein_distance

    sample_nn, held_out_nn = nearest_distances(samples, training), nearest_distances(held_out, training)
    rng = np.random.default_rng(0)

    def voxels(values: np.ndarray) -> np.ndarray:
        flat = values.ravel()
        return rng.choice(flat, min(flat.size, 200_000), replace=False)

    reference = voxels(training)
    return {"sample_nn_median": float(np.median(sample_nn)), "held_out_nn_median": float(np.median(held_out_nn)),
            "samples_closer_than_any_held_out": int((sample_nn < held_out_nn.min()).sum()),
            "sample_histogram_distance": float(wasserstein_distance(voxels(samples), reference)),
            "held_out_histogram_distance": float(wasserstein_distance(voxels(held_out), reference)),
            "noise_histogram_distance": float(wasserstein_distance(rng.uniform(-1, 1, 200_000), reference))}


def deploy(model_path: str | Path, data_csv: str | Path, output_dir: str | Path, num_samples: int = 32,
           seed: int = 0) -> Path:
    """Samples the exported generator; writes grids, the samples as NIfTI and the checks; returns the report.

    ``samples.png`` (the central axial slice of each sample), ``real.png`` (the same of held-out
    volumes, for comparison), ``panels.png`` (three planes of four samples), ``samples/sample_<k>.nii.gz``
    (on the training spacing), ``checks.json`` and ``report.html``.
    """
    import json

    import SimpleITK as sitk

    from dltk2.datasets import generative
    from dltk2.inference import load_predictor
    from dltk2.io.atomic import write_text_atomically
    from dltk2.io.image import write_image
    from dltk2.model_folder import ModelFolder
    from dltk2.plots import plot_slice_grid, plot_volume_panels
    from dltk2.report import HtmlReport, add_run_configuration

    from dltk2.datasets.ixi import load_split

    run = ModelFolder(model_path).read_config()
    training, held_out = load_split(data_csv, float(run.data["spacing_mm"]), int(run.data["num_train"]))
    generator = load_predictor(model_path)
    samples = generator.run("sample", count=num_samples, seed=np.array([seed, 0], np.int64))["images"]
    boxes = {name: np.stack([generative.read_box(path, run.example_size)[..., 0] for path in table["image"]])
             for name, table in (("training", training), ("held_out", held_out))}
    checks = sample_checks(samples, boxes["training"], boxes["held_out"])
    output_dir = Path(output_dir)
    for number, sample in enumerate(samples):
        image = sitk.GetImageFromArray(sample.astype(np.float32))
        image.SetSpacing(run.spacing_mm)
        write_image(image, output_dir / "samples" / f"sample_{number:03d}.nii.gz")
    spacing = run.spacing_mm
    plot_slice_grid(list(samples), output_dir / "samples.png", columns=8, title=f"{num_samples} samples (seed {seed})",
                    aspect=spacing[1] / spacing[0])
    plot_slice_grid(list(boxes["held_out"][:num_samples]), output_dir / "real.png", columns=8,
                    title="held-out real volumes", aspect=spacing[1] / spacing[0])
    plot_volume_panels({f"sample {k}": samples[k] for k in range(min(4, num_samples))}, output_dir / "panels.png",
                       spacing, title="samples, three planes")
    write_text_atomically(output_dir / "checks.json", json.dumps(checks, indent=1))
    print(f"{num_samples} samples: nearest training volume at {checks['sample_nn_median']:.3f} (median RMS; held-out "
          f"real volumes {checks['held_out_nn_median']:.3f}), {checks['samples_closer_than_any_held_out']} closer than "
          f"any held-out volume; intensity histogram distance {checks['sample_histogram_distance']:.4f} (held-out "
          f"{checks['held_out_histogram_distance']:.4f}, uniform noise {checks['noise_histogram_distance']:.4f})")
    report = HtmlReport("IXI 3D DCGAN: deploy", f"model {model_path}")
    report.add_table(pd.DataFrame([checks]), "Copies and intensities")
    for name, caption in (("samples.png", "samples"), ("real.png", "held-out real volumes"), ("panels.png", "planes")):
        report.add_image(output_dir / name, caption)
    add_run_configuration(report, model_path)
    path = report.write(output_dir / "report.html")
    print(f"wrote {output_dir / 'samples.png'}, {num_samples} samples under {output_dir / 'samples'} and {path}")
    return path
