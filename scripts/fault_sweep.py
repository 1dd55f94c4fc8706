"""Attacks every application as a hostile or unlucky user would, and checks each ends in one line with nothing lost.

Each case builds its bad input in a fresh folder (tiny synthetic data from ``data_scripts/``), runs the
application's script as a user runs it (a fresh Python, TensorFlow's log level left to the
launcher), and checks three things:

* **one line**: the run ends with exit status 2 and exactly one ``error: <file or peer>: <problem>``
  line on stderr, no traceback (cases that must go on, such as an ingest with odd files, exit 0 and
  give one ``skipped`` line per bad file instead);
* **named**: that line names the file, folder or peer at fault;
* **nothing lost**: what existed before is still there and readable (a model folder, a database's
  rows, a record set), and nothing half-written appeared.

Faults are injected too: SIGKILL during training, during a TFRecord conversion and during an
ingest, and two processes on one model folder or one database at once.

Usage (about 10 minutes on 2 cores)::

    python scripts/fault_sweep.py [--only mrnet] [--keep /tmp/sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data_scripts"))
sys.path.insert(0, str(REPO / "tests"))
TF_CHATTER = ("I0000", "W0000", "E0000", "WARNING: All log messages", "To enable the following")
IXI_TINY = ["--spacing_mm=8", "--example_size=16,16,16", "--n_examples=2", "--filters=4,8", "--strides=1,2",
            "--num_res_units=1", "--batch_size=4", "--num_train=8", "--steps_per_epoch=2", "--num_crops=3"]


@dataclass
class Case:
    application: str
    name: str
    run: Callable[[Path], tuple[list[str], Callable[[subprocess.CompletedProcess], str | None]]]
    kind: str = "bad input"  # or "fault"


@dataclass
class Result:
    case: Case
    passed: bool
    detail: str
    seconds: float
    lines: list[str] = field(default_factory=list)


def script(path: str, *args: str, timeout: int = 600, env: dict | None = None,
           background: bool = False) -> subprocess.CompletedProcess | subprocess.Popen:
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env or {})
    command = [sys.executable, str(REPO / path), *args]
    if background:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=environment, cwd=str(REPO))
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment, cwd=str(REPO))


def ours(stderr: str) -> list[str]:
    """stderr without TensorFlow's start-up chatter and progress bars (tqdm's ``it/s]`` lines)."""
    return [line for line in stderr.replace("\r", "\n").splitlines()
            if line.strip() and not line.startswith(TF_CHATTER) and not ("%|" in line and "it/s]" in line)]


def one_line(result: subprocess.CompletedProcess, *names: str) -> str | None:
    """None if the run ended in exactly one ``error:`` line naming ``names``; else what went wrong."""
    lines = ours(result.stderr)
    if result.returncode != 2:
        return f"exit status {result.returncode}: {' | '.join(lines[-3:])[:300]}"
    if "Traceback" in result.stderr:
        return "a traceback"
    errors = [line for line in lines if line.startswith("error: ")]
    if len(errors) != 1 or len(lines) != 1:
        return f"{len(lines)} lines on stderr: {' | '.join(lines)[:300]}"
    missing = [name for name in names if name not in errors[0]]
    return f"does not name {missing}: {errors[0]}" if missing else None


# --- data -------------------------------------------------------------------------------------------

def ixi_data(folder: Path) -> Path:
    import make_synthetic_ixi

    return make_synthetic_ixi.make_dataset(folder, num_subjects=12, seed=3, spacings=[8.0], workers=1)


def synapse_data(folder: Path) -> Path:
    import make_synthetic_synapse

    return make_synthetic_synapse.make_dataset(folder, num_cases=2, seed=1, in_plane_size=48)


def mrnet_data(folder: Path) -> Path:
    import make_synthetic_mrnet

    return make_synthetic_mrnet.make_dataset(folder, num_exams=6, num_valid=2, seed=1, min_slices=4, max_slices=5,
                                             size=24)


def chest_data(folder: Path) -> Path:
    import make_synthetic_chest_xray

    return make_synthetic_chest_xray.make_dataset(folder, num_images=24, seed=5, size=48)


def dicom_data(folder: Path) -> Path:
    import make_synthetic_dicom_bodypart

    return make_synthetic_dicom_bodypart.make_dataset(folder, num_images=21, seed=2, size=32)


MRNET_TRAIN = ["--stage_sizes=16", "--stage_epochs=1", "--depth=4", "--steps_per_epoch=1", "--batch_size=4",
               "--validation_fraction=0.5"]


# --- cases ------------------------------------------------------------------------------------------

def ixi_cases() -> list[Case]:
    def csv_case(edit, *names):
        def run(tmp):
            csv = ixi_data(tmp / "ixi")
            edit(csv)
            model = tmp / "model"
            result = script("applications/IXI_HH_sex/train.py", f"--data_csv={csv}", f"--model_path={model}",
                            "--max_steps=2", *IXI_TINY)
            return result, lambda r: one_line(r, *[str(csv) if n == "CSV" else n for n in names]) or (
                "model folder written" if model.exists() and any(model.iterdir()) else None)
        return run

    def volume_case(damage, reason):
        def run(tmp):
            csv = ixi_data(tmp / "ixi")
            volume = sorted(csv.parent.glob("8mm/*/T1_8mm.nii.gz"))[2]
            damage(volume)
            result = script("applications/IXI_HH_sex/train.py", f"--data_csv={csv}", f"--model_path={tmp / 'm'}",
                            "--max_steps=2", *IXI_TINY)
            return result, lambda r: one_line(r, str(volume), reason)
        return run

    def nan_volume(path):
        import SimpleITK as sitk

        image = sitk.ReadImage(str(path), sitk.sitkFloat32)
        array = sitk.GetArrayFromImage(image)
        array[2, 2, 2] = np.nan
        out = sitk.GetImageFromArray(array)
        out.CopyInformation(image)
        sitk.WriteImage(out, str(path))

    def edit_table(csv, change):
        import pandas as pd

        table = pd.read_csv(csv, dtype=str)
        change(table)
        table.to_csv(csv, index=False)

    def drop_column(csv):
        def rename(table):
            table.columns = ["SEX" if name == "SEX_ID (1=m, 2=f)" else name for name in table.columns]
        edit_table(csv, rename)

    def bad_sex(csv):
        edit_table(csv, lambda t: t.__setitem__("SEX_ID (1=m, 2=f)", ["1"] + ["m"] * (len(t) - 1)))

    def escaping_id(csv):
        edit_table(csv, lambda t: t.__setitem__("IXI_ID", ["../../etc"] + list(t["IXI_ID"][1:])))

    def locked(tmp):
        csv = ixi_data(tmp / "ixi")
        model = tmp / "model"
        holder = script("applications/IXI_HH_sex/train.py", f"--data_csv={csv}", f"--model_path={model}",
                        "--max_steps=4000", "--export=false", *IXI_TINY, background=True)
        deadline = time.time() + 240
        while time.time() < deadline and not (model / "training_state.json").exists():
            time.sleep(0.5)
        second = script("applications/IXI_HH_sex/train.py", f"--data_csv={csv}", f"--model_path={model}",
                        "--max_steps=2", "--restart", *IXI_TINY)
        state = json.loads((model / "training_state.json").read_text())
        holder.send_signal(signal.SIGKILL)
        holder.wait()

        def check(r):
            return one_line(r, str(model), "model folder in use by pid") or (
                None if state["steps_done"] >= 2 else "the first run's state was lost")
        return second, check

    def killed_and_resumed(tmp):
        csv = ixi_data(tmp / "ixi")
        model = tmp / "model"
        first = script("applications/IXI_HH_sex/train.py", f"--data_csv={csv}", f"--model_path={model}",
                       "--max_steps=4000", "--export=false", "--steps_per_epoch=1", *IXI_TINY, background=True)
        deadline = time.time() + 240
        while time.time() < deadline:
            state = model / "training_state.json"
            if state.exists() and json.loads(state.read_text())["steps_done"] >= 3:
                break
            time.sleep(0.05)
        time.sleep(np.random.default_rng().uniform(0, 1.5))  # anywhere in an epoch, a commit included
        first.send_signal(signal.SIGKILL)
        first.wait()
        done = json.loads((model / "training_state.json").read_text())["steps_done"]
        again = script("applications/IXI_HH_sex/train.py", f"--data_csv={csv}", f"--model_path={model}",
                       f"--max_steps={done + 2}", "--export=false", *IXI_TINY)

        def check(r):
            if r.returncode != 0:
                return f"resume failed: {' | '.join(ours(r.stderr)[-2:])[:300]}"
            if f"resuming {model} at step {done}" not in r.stdout:
                return "did not resume where it was killed"
            final = json.loads((model / "training_state.json").read_text())
            return None if final["steps_done"] == done + 2 else f"ended at step {final['steps_done']}"
        return again, check

    return [
        Case("IXI sex", "missing CSV", lambda tmp: (
            script("applications/IXI_HH_sex/train.py", f"--data_csv={tmp / 'no.csv'}", f"--model_path={tmp / 'm'}"),
            lambda r: one_line(r, str(tmp / "no.csv"), "no such CSV file"))),
        Case("IXI sex", "CSV without the sex column", csv_case(drop_column, "CSV", "lacks column")),
        Case("IXI sex", "sex 'm' instead of 1/2", csv_case(bad_sex, "CSV", "must hold 1 (male) or 2 (female)")),
        Case("IXI sex", "subject id ../../etc", csv_case(escaping_id, "CSV", "is not a plain name")),
        Case("IXI sex", "truncated volume", volume_case(lambda p: p.write_bytes(p.read_bytes()[:300]), "truncated")),
        Case("IXI sex", "NaN voxel", volume_case(nan_volume, "NaN or infinite")),
        Case("IXI sex", "second train.py on a folder in use (with --restart)", locked, "fault"),
        Case("IXI sex", "SIGKILL mid-training, then resume", killed_and_resumed, "fault"),
        Case("IXI sex", "deploy without a trained model", lambda tmp: (
            script("applications/IXI_HH_sex/deploy.py", f"--model_path={tmp / 'none'}"),
            lambda r: one_line(r, str(tmp / "none")))),
    ]


def synapse_cases() -> list[Case]:
    import SimpleITK as sitk

    from helpers import with_label_value

    def preprocess_case(change, reason, which="label"):
        def run(tmp):
            raw = synapse_data(tmp / "raw")
            path = raw / ("label/label0001.nii.gz" if which == "label" else "img/img0001.nii.gz")
            image = sitk.ReadImage(str(path))
            sitk.WriteImage(change(image), str(path))
            out = tmp / "out"
            result = script("applications/synapse_ct_seg/preprocessing.py", "-d", str(raw), "-p", str(out),
                            "--spacing_mm=8", "--workers=1")
            return result, lambda r: one_line(r, str(path), reason) or (
                "a CSV was written" if list(out.glob("*.csv")) else None)
        return run

    def deploy_case(make, reason):
        def run(tmp):
            raw = synapse_data(tmp / "raw")
            image, label = make(raw, tmp)
            csv = tmp / "cases.csv"
            csv.write_text(f"id,orig_imgs,orig_lbls\nimg0001,{image},{label}\n")
            result = script("applications/synapse_ct_seg/deploy.py", "-p", str(tmp / "no_model"), f"--csv={csv}",
                            "-e", str(tmp / "pred"))
            return result, lambda r: one_line(r, reason)
        return run

    def short_reference(raw, tmp):
        label = sitk.ReadImage(str(raw / "label/label0001.nii.gz"))
        sitk.WriteImage(label[:, :, 1:], str(tmp / "short.nii.gz"))
        return raw / "img/img0001.nii.gz", tmp / "short.nii.gz"

    def flat_ct(raw, tmp):
        image = sitk.ReadImage(str(raw / "img/img0001.nii.gz"))
        sitk.WriteImage(image[:, :, 0], str(tmp / "flat.nii.gz"))
        return tmp / "flat.nii.gz", raw / "label/label0001.nii.gz"

    return [
        Case("Synapse", "label value 14", preprocess_case(with_label_value(14), "outside the label set 0-13")),
        Case("Synapse", "label value 255", preprocess_case(with_label_value(255), "outside the label set 0-13")),
        Case("Synapse", "label map of another size", preprocess_case(lambda label: label[:, :, 1:], "not on the grid")),
        Case("Synapse", "label map shifted 4 mm", preprocess_case(
            lambda label: (lambda c: (c.SetOrigin([o + 4 for o in c.GetOrigin()]), c)[1])(sitk.Image(label)), "not on the grid")),
        Case("Synapse", "2D CT", preprocess_case(lambda i: i[:, :, 0], "a CT must be a 3D volume", which="img")),
        Case("Synapse", "4D CT", preprocess_case(lambda i: sitk.JoinSeries([i, i]), "a CT must be a 3D volume",
                                                 which="img")),
        Case("Synapse", "deploy: reference of another size", deploy_case(short_reference, "not on the grid")),
        Case("Synapse", "deploy: 2D CT", deploy_case(flat_ct, "must be 3D")),
    ]


def mrnet_cases() -> list[Case]:
    from helpers import promise_huge_series

    def damaged(damage, reason):
        def run(tmp):
            data = mrnet_data(tmp / "mrnet")
            path = data / "train" / "sagittal" / "0002.npy"
            damage(path)
            result = script("applications/mrnet_knee/train.py", f"--data_dir={data}", f"--model_path={tmp / 'm'}",
                            *MRNET_TRAIN)
            return result, lambda r: one_line(r, str(path), reason) or (
                "model folder written" if (tmp / "m").exists() else None)
        return run

    def escaping(tmp):
        data = mrnet_data(tmp / "mrnet")
        csv = data / "train-abnormal.csv"
        csv.write_text(csv.read_text() + "../../../outside/9999,1\n")
        result = script("applications/mrnet_knee/train.py", f"--data_dir={data}", f"--model_path={tmp / 'm'}",
                        *MRNET_TRAIN)
        return result, lambda r: one_line(r, str(csv), "not a plain name")

    return [
        Case("MRNet", "header promising 1e11 voxels", damaged(promise_huge_series, "header promises (100000000000")),
        Case("MRNet", "garbled header", damaged(
            lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\x20\x00{'descr': garbled" + b" " * 32), "not a readable .npy")),
        Case("MRNet", "truncated series", damaged(lambda p: p.write_bytes(p.read_bytes()[:200]), "header promises")),
        Case("MRNet", "missing series", damaged(lambda p: p.unlink(), "no such series")),
        Case("MRNet", "exam id ../../../outside/9999", escaping),
    ]


def chest_cases() -> list[Case]:
    def prepare_case(edit, reason):
        def run(tmp):
            data = chest_data(tmp / "chest")
            named = edit(data)
            result = script("applications/chest_xray_nodule/prepare.py", f"--data_dir={data}",
                            f"--output_dir={tmp / 'records'}")
            return result, lambda r: one_line(r, str(named), reason) or (
                "shards written" if list((tmp / "records").glob("*.tfrecord")) else None)
        return run

    def empty_class(data):
        shutil.rmtree(data / "nodule")
        (data / "nodule").mkdir()
        return data / "nodule"

    def in_both(data):
        first = sorted((data / "normal").glob("*.png"))[0]
        shutil.copy(first, data / "nodule" / first.name)
        return data

    def no_manifest(tmp):
        data = chest_data(tmp / "chest")
        records = tmp / "records"
        script("applications/chest_xray_nodule/prepare.py", f"--data_dir={data}", f"--output_dir={records}")
        (records / "chest.manifest.json").unlink()
        result = script("applications/chest_xray_nodule/train.py", f"--data_dir={records}", f"--model_path={tmp / 'm'}",
                        "--image_size=32", "--backbone=MobileNet")
        return result, lambda r: one_line(r, str(records / "chest.manifest.json"), "no such record set manifest")

    return [
        Case("chest", "empty class folder", prepare_case(empty_class, "a classifier needs images of every class")),
        Case("chest", "one image in both class folders", prepare_case(in_both, "more than one class folder")),
        Case("chest", "shards without their manifest", no_manifest),
    ]


def bodypart_cases() -> list[Case]:
    from helpers import odd_dicom_files

    def odd_ingest(tmp):
        folder = dicom_data(tmp / "dicom")
        odd = odd_dicom_files(folder / "odd")
        result = script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--noprogress")

        def check(r):
            if r.returncode != 0 or "Traceback" in r.stderr:
                return f"exit status {r.returncode}: {' | '.join(ours(r.stderr)[-2:])[:300]}"
            skipped = [line for line in r.stdout.splitlines() if line.startswith("  skipped ")]
            unnamed = [name for name, path in odd.items() if not any(f"{path}:" in line for line in skipped)]
            if unnamed or "added 21 files" not in r.stdout:
                return f"not skipped by name: {unnamed}; {r.stdout.splitlines()[:1]}"
            return None
        return result, check

    def killed_ingest(tmp):
        import sqlite3

        import sqlalchemy as sa
        import make_synthetic_dicom_bodypart

        folder = make_synthetic_dicom_bodypart.make_dataset(tmp / "dicom", num_images=80, seed=2, size=64)
        first = script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--noprogress",
                       background=True)
        database = folder / "dicom.db"
        deadline, rows_then = time.time() + 120, 0
        while time.time() < deadline and first.poll() is None:  # kill it with some rows in, not all
            try:
                with sqlite3.connect(database, timeout=1) as connection:
                    rows_then = connection.execute("SELECT COUNT(*) FROM dicom_files").fetchone()[0]
            except sqlite3.Error:
                rows_then = 0
            if rows_then >= 10:
                break
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        again = script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--noprogress")

        def check(r):
            engine = sa.create_engine(f"sqlite:///{database}")
            with engine.connect() as connection:
                rows = connection.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT sop_instance_uid) FROM dicom_files")
                                          ).one()
            engine.dispose()
            if r.returncode != 0:
                return f"rerun failed: {' | '.join(ours(r.stderr)[-2:])[:300]}"
            if not 10 <= rows_then < 80:
                return f"the kill did not land mid-ingest ({rows_then} rows)"
            return None if tuple(rows) == (80, 80) else f"rows after the rerun: {tuple(rows)}"
        return again, check

    def killed_conversion(tmp):
        import make_synthetic_dicom_bodypart

        folder = make_synthetic_dicom_bodypart.make_dataset(tmp / "dicom", num_images=150, seed=2, size=96)
        script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--noprogress")
        fetched = tmp / "fetched"
        script("applications/dicom_bodypart/fetch_image.py", "--query=all", f"--directory={fetched}",
               f"--db_url=sqlite:///{folder / 'dicom.db'}", "--bits=16")
        records = tmp / "records"
        script("applications/dicom_bodypart/tf_convert_data.py", f"--dataset_dir={fetched}", f"--output_dir={records}")
        before = json.loads((records / "bodypart.manifest.json").read_text())["set_id"]
        second = script("applications/dicom_bodypart/tf_convert_data.py", f"--dataset_dir={fetched}",
                        f"--output_dir={records}", "--num_shards=4", "--seed=9", background=True)
        deadline, landed = time.time() + 120, False
        while time.time() < deadline and second.poll() is None:
            if any(p.name.startswith(".bodypart") for p in records.iterdir()):  # a shard half written
                landed = True
                break
            time.sleep(0.002)
        second.send_signal(signal.SIGKILL)
        second.wait()
        sys.path.insert(0, str(REPO))
        from dltk2.io.record_set import read_record_set  # noqa: E402 (TensorFlow, only for this case)

        def check(_):
            if not landed:
                return "the kill did not land mid-conversion"
            record_set = read_record_set(records, "bodypart", checksums=True)
            if record_set.manifest["set_id"] != before:
                return "the old set was replaced by a killed conversion"
            return None if sum(record_set.examples(s) for s in record_set.splits) == 150 else "images lost"
        return subprocess.CompletedProcess([], 0, "", ""), check

    def two_ingests(tmp):
        folder = dicom_data(tmp / "dicom")
        processes = [script("applications/dicom_bodypart/create_database.py", f"--directory={folder}",
                            "--noprogress", background=True) for _ in range(2)]
        outputs = [process.communicate(timeout=300) for process in processes]
        results = [subprocess.CompletedProcess(p.args, p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]

        def check(_):
            bad = [r for r in results if r.returncode != 0 or "Traceback" in r.stderr]
            added = sum(int(r.stdout.split("added ")[1].split(" ")[0]) for r in results if "added " in r.stdout)
            return (f"{len(bad)} failed: {ours(bad[0].stderr)[-1:]}" if bad else
                    None if added == 21 else f"added {added} in all")
        return results[0], check

    def unreachable(tmp):
        result = script("applications/dicom_bodypart/create_database.py", f"--directory={tmp}",
                        "--db_url=mysql+pymysql://user:hunter2@127.0.0.1:1/dicom", "--noprogress")
        return result, lambda r: one_line(r, "mysql+pymysql://user:***@127.0.0.1:1/dicom", "cannot open") or (
            "password printed" if "hunter2" in r.stderr + r.stdout else None)

    def at_in_password(tmp):
        result = script("applications/dicom_bodypart/create_database.py", f"--directory={tmp}",
                        "--db_url=mysql+pymysql://user:p@ss@127.0.0.1/dicom", "--noprogress")
        return result, lambda r: one_line(r, "database URL", "%40") or (
            "password echoed" if "ss@127" in r.stderr + r.stdout else None)

    def odd_directory(tmp):
        folder = dicom_data(tmp / "scans?x=1%20&y")
        result = script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--noprogress")
        return result, lambda r: None if r.returncode == 0 and (folder / "dicom.db").exists() and \
            sorted(p.name for p in tmp.iterdir()) == [folder.name] else f"exit {r.returncode}; {sorted(tmp.iterdir())}"

    def reconverted(tmp):
        folder = dicom_data(tmp / "dicom")
        script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--noprogress")
        fetched = tmp / "fetched"
        script("applications/dicom_bodypart/fetch_image.py", "--query=all", f"--directory={fetched}",
               f"--db_url=sqlite:///{folder / 'dicom.db'}")
        records = tmp / "records"
        for shards, seed in ((3, 0), (1, 5)):
            script("applications/dicom_bodypart/tf_convert_data.py", f"--dataset_dir={fetched}",
                   f"--output_dir={records}", f"--num_shards={shards}", f"--seed={seed}")
        sys.path.insert(0, str(REPO))
        from dltk2.io.record_set import read_record_set  # noqa: E402 (TensorFlow, only for this case)

        record_set = read_record_set(records, "bodypart", checksums=True)
        stray = sorted(set(records.glob("*.tfrecord")) - {p for s in record_set.splits for p in record_set.files(s)})
        shutil.copy(record_set.files("train")[0], records / "bodypart_train-00000-of-00002.tfrecord")
        result = script("applications/dicom_bodypart/classify_image.py", f"--infile={records}/bodypart_train-*.tfrecord",
                        "--tfrecord=true", f"--model_path={tmp / 'm'}")
        total = sum(record_set.examples(s) for s in record_set.splits)
        return result, lambda r: (f"{len(stray)} shards of the first conversion left" if stray else
                                  f"the set holds {total} images, not 21" if total != 21 else
                                  one_line(r, "bodypart_train-00000-of-00002.tfrecord", "does not list"))

    def classify_odd(tmp):
        folder = tmp / "odd"
        odd = odd_dicom_files(folder)
        listed = tmp / "list.txt"
        listed.write_text("".join(f"{odd[name]}\n" for name in ("truncated", "no_pixels", "window_width_0")))
        result = script("applications/dicom_bodypart/classify_image.py", f"--infile={listed}",
                        f"--model_path={tmp / 'no_model'}")
        return result, lambda r: one_line(r, str(tmp / "no_model"))

    def fetch_without_key(tmp):
        folder = dicom_data(tmp / "dicom")
        script("applications/dicom_bodypart/create_database.py", f"--directory={folder}", "--storage=original",
               "--noprogress")
        (folder / "dicom.db.salt").rename(tmp / "elsewhere.salt")
        result = script("applications/dicom_bodypart/fetch_image.py", "--query=all", f"--directory={tmp / 'out'}",
                        f"--db_url=sqlite:///{folder / 'dicom.db'}", "--metadata")
        return result, lambda r: one_line(r, "dicom.db.salt", "no key file")

    return [
        Case("body part", "ingest of 10 odd DICOM files among 21 good ones", odd_ingest),
        Case("body part", "unreachable database server", unreachable),
        Case("body part", "@ in the password of the URL", at_in_password),
        Case("body part", "--directory holding ? and %", odd_directory),
        Case("body part", "fetch of an original-bytes database without its key file", fetch_without_key),
        Case("body part", "converted twice, then a stray shard under a glob", reconverted, "fault"),
        Case("body part", "SIGKILL mid-ingest, then rerun", killed_ingest, "fault"),
        Case("body part", "SIGKILL mid-conversion over an earlier set", killed_conversion, "fault"),
        Case("body part", "two ingests into one database at once", two_ingests, "fault"),
        Case("body part", "classify without a model", classify_odd),
    ]


APPLICATIONS = {"ixi": ixi_cases, "synapse": synapse_cases, "mrnet": mrnet_cases, "chest": chest_cases,
                "bodypart": bodypart_cases}


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # this process' own TensorFlow; the runs get none
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(APPLICATIONS), action="append")
    parser.add_argument("--keep", type=Path, help="Keep each case's folder under this one.")
    options = parser.parse_args()
    cases = [case for name in (options.only or APPLICATIONS) for case in APPLICATIONS[name]()]
    results = []
    root = options.keep or Path(tempfile.mkdtemp(prefix="dltk2-sweep-"))
    for number, case in enumerate(cases):
        folder = root / f"{number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        try:
            result, check = case.run(folder)
            problem = check(result)
            lines = [line for line in ours(result.stderr) if line.startswith("error: ")] or \
                [line for line in result.stdout.splitlines() if "skipped" in line][:1]
        except Exception as error:  # the sweep reports, it does not stop
            problem, lines = f"the case itself failed: {type(error).__name__}: {error}", []
        results.append(Result(case, problem is None, problem or "", time.perf_counter() - started, lines))
        mark = "ok  " if problem is None else "FAIL"
        print(f"{mark} {case.application:10s} {case.name}  ({results[-1].seconds:.0f} s)"
              + (f"\n     {problem}" if problem else f"\n     {lines[0][:160]}" if lines else ""), flush=True)
    if not options.keep:
        shutil.rmtree(root, ignore_errors=True)
    print("\n| application | bad inputs | faults | ended in one line, nothing lost |\n|---|---|---|---|")
    for application in dict.fromkeys(r.case.application for r in results):
        mine = [r for r in results if r.case.application == application]
        inputs = sum(r.case.kind == "bad input" for r in mine)
        print(f"| {application} | {inputs} | {len(mine) - inputs} | {sum(r.passed for r in mine)} of {len(mine)} |")
    print(f"| all | {sum(r.case.kind == 'bad input' for r in results)} | {sum(r.case.kind == 'fault' for r in results)} "
          f"| {sum(r.passed for r in results)} of {len(results)} |")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
