"""IXI representation learning (DLTK's ``IXI_HH_representation_learning_cae``): a 3D autoencoder on T1, T2, PD.

``applications/IXI_HH_representation_learning_cae/train.py`` calls :func:`run_training`, ``deploy.py``
:func:`deploy`. The autoencoder learns to rebuild the box around each subject's brain from a code of a
few dozen numbers; deploy reports how well it rebuilds held-out subjects, and whether the codes carry
what the scans carry: a linear probe (scikit-learn, fitted on the training subjects' codes) classifies
sex and regresses age of the held-out subjects, against chance (the majority sex; the training
subjects' mean age).
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
        data_csv: ``demographic_HH.csv`` with T1, T2 and PD beside it.
        spacing_mm: Which ``<s>mm`` folders to read.
        num_train: The first ``num_train`` subjects train, the rest validate (and are deploy's held-out).
        example_size: The box (z, y, x) around the brain, divisible by the strides' product.
        filters, strides, num_hidden_units: The autoencoder's.
        max_shift: Random shift of the box in training, voxels.
        batch_size, learning_rate, lr_schedule, max_steps, steps_per_epoch: Training.
    """

    data_csv: str
    spacing_mm: float = 4.0
    num_train: int = 80
    example_size: list[int] = field(default_factory=lambda: [40, 48, 40])
    filters: list[int] = field(default_factory=lambda: [16, 32, 64])
    strides: list[int] = field(default_factory=lambda: [2, 2, 2])
    num_hidden_units: int = 64
    max_shift: int = 2
    batch_size: int = 8
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    max_steps: int = 10000
    steps_per_epoch: int = 500


def check_settings(config: TrainingConfig) -> None:
    """Settings that cannot work, in one line before anything loads.

    Raises:
        DataError: Filters and strides of different lengths, or a box the strides' product does not divide.
    """
    from dltk2.errors import DataError

    if len(config.filters) != len(config.strides):
        raise DataError(f"one stride per level: {len(config.filters)} filters, {len(config.strides)} strides")
    total = [int(np.prod(config.strides))] * 3
    if len(config.example_size) != 3 or any(size % step for size, step in zip(config.example_size, total)):
        raise DataError(f"input size {list(config.example_size)} must be divisible by the strides' product {total} "
                        "per axis")


def subjects_of(data_csv: str | Path, spacing_mm: float, num_train: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(training, held-out)`` subjects (``id, T1, T2, PD, sex, age``), DLTK's split by order.

    Raises:
        CsvError, DataError, FileNotFoundError: A bad CSV or split, a missing sequence, named.
    """
    from dltk2.datasets import ixi, ixi_sequences

    return ixi.split_subjects(ixi_sequences.load_subjects(data_csv, spacing_mm), num_train)


def run_training(settings: RunSettings, config: TrainingConfig) -> Path:
    """Trains (resuming) the autoencoder with mean squared error, validates on the held-out boxes, exports."""
    check_settings(config)
    training, validation = subjects_of(config.data_csv, config.spacing_mm, config.num_train)

    import keras
    import tensorflow as tf

    from dltk2.datasets import ixi_sequences
    from dltk2.inference.autoencoder import AutoencoderPredictor
    from dltk2.io.image import read_image_information
    from dltk2.io.orientation import axis_codes
    from dltk2.io.reader import Mode, Reader
    from dltk2.networks.autoencoder import convolutional_autoencoder_3d
    from dltk2.run_config import RunConfig, training_settings
    from dltk2.training import TrainingRun, learning_rate_schedule

    channels = len(ixi_sequences.SEQUENCES)
    box = list(config.example_size) + [channels]
    run = TrainingRun(settings)
    reader = Reader(ixi_sequences.read_fn, {"features": {"x": tf.float32}, "labels": {"y": tf.float32}},
                    {"features": {"x": box}, "labels": {"y": box}})
    params = {"example_size": list(config.example_size), "channels": channels, "max_shift": config.max_shift}
    columns = ["id", *ixi_sequences.SEQUENCES]
    dataset = reader.dataset(training[columns], Mode.TRAIN, params, batch_size=config.batch_size,
                             shuffle_buffer_size=32)
    validation_dataset = reader.dataset(validation[columns], Mode.EVAL, params, batch_size=config.batch_size)
    with run.strategy.scope():
        model = convolutional_autoencoder_3d(box, config.filters, config.strides, config.num_hidden_units,
                                             name="ixi_cae")
        rate = learning_rate_schedule(config.learning_rate, config.lr_schedule, config.max_steps)
        model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    geometry = read_image_information(training["T1"].iloc[0]).geometry
    run.write_config(RunConfig(
        application="IXI_HH_representation_learning_cae", task="autoencoding", example_size=list(config.example_size),
        channels=channels, spacing_mm=list(geometry.spacing), orientation=axis_codes(geometry.direction),
        intensity={"method": "whitening"},
        data={"data_csv": str(Path(config.data_csv).resolve()), "num_train": config.num_train,
              "spacing_mm": config.spacing_mm, "sequences": list(ixi_sequences.SEQUENCES)},
        training=training_settings(config, leave_out=("spacing_mm", "num_train", "example_size"))))
    run.announce(f"model: {model.count_params():,} parameters; a code of {config.num_hidden_units}; "
                 f"{len(training)} training subjects")
    run.train(model, dataset, config.max_steps, config.steps_per_epoch, validation_dataset=validation_dataset)
    if settings.export:
        run.export(AutoencoderPredictor(run.trained_model(), config.example_size, channels))
    return run.path


def linear_probe(train_codes: np.ndarray, train: pd.DataFrame, test_codes: np.ndarray, test: pd.DataFrame) -> dict:
    """Sex by logistic regression, age by ridge regression, on standardised codes (scikit-learn).

    Returns:
        ``sex_accuracy`` and ``sex_chance`` (the held-out share of the training majority's sex),
        ``age_mae`` and ``age_chance_mae`` (predicting the training mean), in years.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sex = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    sex.fit(train_codes, train["sex"])
    majority = int(train["sex"].mode()[0])
    known = train["age"].notna()
    age = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 11)))
    age.fit(train_codes[known.to_numpy()], train["age"][known])
    test_known = test["age"].notna().to_numpy()
    ages = test["age"][test_known].to_numpy()
    return {"sex_accuracy": float((sex.predict(test_codes) == test["sex"]).mean()),
            "sex_chance": float((test["sex"] == majority).mean()),
            "age_mae": float(np.abs(age.predict(test_codes[test_known]) - ages).mean()),
            "age_chance_mae": float(np.abs(train["age"][known].mean() - ages).mean())}


def deploy(model_path: str | Path, data_csv: str | Path, output_dir: str | Path) -> Path:
    """Reconstructs the held-out subjects, encodes every subject, probes the codes for sex and age.

    Writes ``metrics.csv`` (each held-out subject's reconstruction error per sequence, in whitened
    units), ``codes.csv`` (every subject's code), ``probe.json``, ``panels/<id>.png`` (each sequence
    and its reconstruction) and ``report.html``.

    Returns:
        The report's path.
    """
    import json
    import time

    from dltk2.cli import print_table
    from dltk2.datasets import ixi_sequences
    from dltk2.inference import load_predictor
    from dltk2.io.atomic import write_csv_atomically, write_text_atomically
    from dltk2.io.image import read_voxels
    from dltk2.model_folder import ModelFolder
    from dltk2.plots import plot_volume_panels
    from dltk2.report import HtmlReport, add_run_configuration

    run = ModelFolder(model_path).read_config()
    training, held_out = subjects_of(data_csv, float(run.data["spacing_mm"]), int(run.data["num_train"]))
    predictor = load_predictor(model_path)
    output_dir = Path(output_dir)
    rows, codes = [], {}
    for group, table in (("train", training), ("held_out", held_out)):
        for subject in table.itertuples():
            volume = np.stack([read_voxels(getattr(subject, s)) for s in ixi_sequences.SEQUENCES], axis=-1)
            if group == "train":
                codes[subject.id] = predictor.run("encode", image=volume)["code"]
                continue
            start = time.perf_counter()
            outputs = predictor.predict(image=volume)
            seconds = time.perf_counter() - start
            codes[subject.id] = outputs["code"]
            box = ixi_sequences.central_box(volume, run.example_size)
            row = {"id": subject.id, "seconds": seconds}
            for number, sequence in enumerate(ixi_sequences.SEQUENCES):
                truth, rebuilt = box[..., number], outputs["reconstruction"][..., number]
                spread = float(volume[..., number].std()) or 1.0  # the whitening's scale
                row[f"mse/{sequence}"] = float(np.mean(((rebuilt - truth) / spread) ** 2))
            rows.append(row)
            plot_volume_panels({**{s: box[..., k] for k, s in enumerate(ixi_sequences.SEQUENCES)},
                                **{f"{s}, rebuilt": outputs["reconstruction"][..., k]
                                   for k, s in enumerate(ixi_sequences.SEQUENCES)}},
                               output_dir / "panels" / f"{subject.id}.png", run.spacing_mm,
                               title=f"{subject.id}: each sequence and its reconstruction")
            errors = ", ".join(f"{s} {row[f'mse/{s}']:.4f}" for s in ixi_sequences.SEQUENCES)
            print(f"Id={subject.id}; MSE={np.mean([row[f'mse/{s}'] for s in ixi_sequences.SEQUENCES]):.4f} "
                  f"({errors}); time={seconds:.2f} secs;", flush=True)
    results = pd.DataFrame(rows)
    write_csv_atomically(results, output_dir / "metrics.csv")
    code_table = pd.DataFrame([{"id": subject, **{f"code_{k}": float(v) for k, v in enumerate(code)}}
                               for subject, code in codes.items()])
    write_csv_atomically(code_table, output_dir / "codes.csv")
    probe = linear_probe(np.stack([codes[s] for s in training["id"]]), training,
                         np.stack([codes[s] for s in held_out["id"]]), held_out)
    write_text_atomically(output_dir / "probe.json", json.dumps(probe, indent=1))
    print(f"linear probe on the codes ({len(training)} training, {len(held_out)} held-out subjects): sex accuracy "
          f"{probe['sex_accuracy']:.3f} (chance {probe['sex_chance']:.3f}); age MAE {probe['age_mae']:.1f} years "
          f"(chance {probe['age_chance_mae']:.1f})")
    summary = pd.DataFrame([{"sequence": s, "mse": results[f"mse/{s}"].mean()} for s in ixi_sequences.SEQUENCES])
    print_table(summary)
    report = HtmlReport("IXI representation learning: deploy", f"model {model_path}")
    report.add_table(summary, f"Reconstruction error over {len(results)} held-out subjects (whitened units)")
    report.add_table(pd.DataFrame([probe]), "Linear probe on the codes")
    report.add_table(results, "Every held-out subject")
    for subject_id in results["id"]:
        report.add_image(output_dir / "panels" / f"{subject_id}.png", str(subject_id))
    add_run_configuration(report, model_path)
    path = report.write(output_dir / "report.html")
    print(f"{len(results)} subjects reconstructed in {results['seconds'].sum():.1f} s; wrote {output_dir / 'codes.csv'} "
          f"and {path}")
    return path
