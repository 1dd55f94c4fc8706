"""Downloads the IXI data set's Hammersmith (HH) subjects and prepares them for the IXI applications.

Steps, each safe to re-run:

1. Download ``IXI-T1.tar``, ``IXI-T2.tar``, ``IXI-PD.tar``, ``IXI-MRA.tar`` and ``IXI.xls`` from
   ``--base_url``. A broken download resumes where it stopped (HTTP Range on ``<name>.part``); a
   finished file is checked against the server's size and renamed into place.
2. Keep the Hammersmith subjects that have all four modalities and a row in IXI.xls.
3. Write ``demographic_HH.csv`` with IXI's columns (IXI_ID as ``IXI012``).
4. Resample each T1 to isotropic ``--spacings`` (B-spline, fill 0) into
   ``<s>mm/<ID>/T1_<s>mm.nii.gz`` (geometry kept: origin and direction of the original).
5. Delete the archives and extracted files unless ``--keep_downloads``.

Example:
    python data_scripts/download_IXI_HH.py --output_dir data/IXI_HH
"""

from __future__ import annotations

import re
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
from absl import app, flags
from tqdm import tqdm

from dltk2.io.atomic import atomic_destination, write_csv_atomically
from dltk2.io.image import read_image, write_image
from dltk2.preprocessing import resample_to_spacing

FLAGS = flags.FLAGS

DEFAULT_BASE_URL = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI/"
MODALITIES = ("T1", "T2", "PD", "MRA")
DEMOGRAPHICS = "IXI.xls"
MEMBER = re.compile(r"(?:.*/)?IXI(\d{3})-(\w+)-(\d+)-(T1|T2|PD|MRA)\.nii\.gz$")
CSV_COLUMNS = ["IXI_ID", "SEX_ID (1=m, 2=f)", "HEIGHT", "WEIGHT", "ETHNIC_ID", "MARITAL_ID", "OCCUPATION_ID",
               "QUALIFICATION_ID", "DOB", "DATE_AVAILABLE", "STUDY_DATE", "AGE"]


class DownloadError(RuntimeError):
    """A download failed or arrived incomplete."""


def download(url: str, destination: Path, chunk_bytes: int = 1 << 20, timeout: float = 60.0) -> Path:
    """Downloads ``url`` to ``destination``, resuming a previous partial download.

    Bytes go to ``<destination>.part``; a second call continues it with an HTTP Range request (or
    starts over if the server ignores ranges). The file is renamed into place only when its size
    matches what the server announced.

    Raises:
        DownloadError: HTTP errors, or fewer bytes than announced.
    """
    if destination.exists():
        return destination
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to fetch: the partial file is complete
            partial.rename(destination)
            return destination
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise DownloadError(f"{url}: {error.reason}") from error
    with response:
        if have and response.status != 206:
            have = 0  # the server sent the whole file
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(partial, "ab" if have else "wb") as handle, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=destination.name
        ) as progress:
            while chunk := response.read(chunk_bytes):
                handle.write(chunk)
                progress.update(len(chunk))
    size = partial.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: got {size} of {total} bytes; run again to resume")
    partial.rename(destination)
    return destination


def hh_members(archive: Path) -> dict[str, tarfile.TarInfo]:
    """``{"IXI012": member}`` for the Hammersmith images in one modality's tar."""
    found = {}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            match = MEMBER.match(member.name)
            if match and match.group(2) == "HH" and member.isfile():
                found[f"IXI{match.group(1)}"] = member
    return found


def read_demographics(path: Path) -> pd.DataFrame:
    """IXI.xls as a table indexed by ``IXI012``-style IDs (first row of duplicated IDs)."""
    table = pd.read_excel(path, engine="xlrd")
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {', '.join(repr(m) for m in missing)}")
    table = table.dropna(subset=["IXI_ID"])
    table["IXI_ID"] = [f"IXI{int(v):03d}" for v in table["IXI_ID"]]
    return table.drop_duplicates("IXI_ID").set_index("IXI_ID", drop=False)


def prepare(output_dir: Path, base_url: str, spacings: list[float], keep_downloads: bool = False) -> Path:
    """Runs the whole pipeline; returns the path of demographic_HH.csv."""
    output_dir.mkdir(parents=True, exist_ok=True)
    downloads = output_dir / "downloads"
    downloads.mkdir(exist_ok=True)
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    archives = {m: download(base_url + f"IXI-{m}.tar", downloads / f"IXI-{m}.tar") for m in MODALITIES}
    demographics = read_demographics(download(base_url + DEMOGRAPHICS, downloads / DEMOGRAPHICS))

    members = {modality: hh_members(archive) for modality, archive in archives.items()}
    complete = set.intersection(*(set(found) for found in members.values()))
    subjects = sorted(s for s in complete if s in demographics.index)
    print(f"{len(subjects)} Hammersmith subjects with T1, T2, PD, MRA and demographics "
          f"({len(members['T1'])} HH T1 images)")

    extracted = downloads / "T1"
    with tarfile.open(archives["T1"]) as tar:
        for subject in tqdm(subjects, desc="resampling T1"):
            member = members["T1"][subject]
            target = extracted / Path(member.name).name
            if not target.exists():
                extracted.mkdir(exist_ok=True)
                source = tar.extractfile(member)
                with atomic_destination(target, suffix=".nii.gz") as temporary, open(temporary, "wb") as handle:
                    shutil.copyfileobj(source, handle)
            image = read_image(target)
            for spacing in spacings:
                label = f"{spacing:g}mm"
                path = output_dir / label / subject / f"T1_{label}.nii.gz"
                if not path.exists():
                    write_image(resample_to_spacing(image, [spacing] * 3, interpolator="bspline"), path)

    csv_path = output_dir / "demographic_HH.csv"
    write_csv_atomically(demographics.loc[subjects, CSV_COLUMNS], csv_path)
    if not keep_downloads:
        shutil.rmtree(downloads)
    print(f"wrote {csv_path}")
    return csv_path


def define_flags() -> None:
    """Command-line flags (defined only when run as a script, so tests can import the module)."""
    flags.DEFINE_string("output_dir", None, "Folder for the prepared data set.")
    flags.DEFINE_string("base_url", DEFAULT_BASE_URL, "Where IXI-T1.tar, ..., IXI.xls are served.")
    flags.DEFINE_list("spacings", ["1", "2"], "Isotropic voxel sizes (mm) to resample T1 to.")
    flags.DEFINE_boolean("keep_downloads", False, "Keep the tar archives and extracted originals.")


def main(argv: list[str]) -> None:
    del argv
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required")
    prepare(Path(FLAGS.output_dir), FLAGS.base_url, [float(s) for s in FLAGS.spacings], FLAGS.keep_downloads)


if __name__ == "__main__":
    define_flags()
    app.run(main)
