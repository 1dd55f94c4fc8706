"""Ingesting a folder of DICOM files into a :class:`~dltk2.datasets.dicom_database.DicomDatabase`.

Every file is judged alone: one that is not DICOM, truncated, without pixels, with a codec that is
not installed or with pixel transformations that cannot be applied (a window width of 0, a NaN
rescale slope...) is skipped with a one-line reason, and the ingest goes on. A file is stored only
if its pixels decode. Commits are file by file, so a killed ingest leaves only complete rows and a
rerun adds what is missing.

An instance already stored (same SOPInstanceUID) is recognised by its content: the same file bytes,
or the same decoded pixels in another transfer syntax, count as already present; other pixels under
the same UID are a *conflict*, reported by name, and the stored instance is kept. Two ingests into
one database at once are safe: an instance the other process inserted first is one of these cases,
not an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Iterator

import sqlalchemy as sa

from dltk2.datasets.dicom_database import DicomDatabase, dicom_files, pixel_sha256
from dltk2.errors import first_line
from dltk2.io.deidentification import deidentify, pseudonym, pseudonymous_uid
from dltk2.io.dicom import DicomError, header_summary, read_dataset, read_pixels


@dataclasses.dataclass
class IngestReport:
    """What one ingest run did."""

    added: int = 0
    already_present: int = 0
    conflicts: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (file, reason)


def candidate_files(directory: str | Path, exclude: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Every regular file under ``directory`` (sorted), except hidden files, databases and ``exclude``."""
    excluded = {path.resolve() for path in exclude}
    for path in sorted(Path(directory).rglob("*")):
        if (path.is_file() and not path.name.startswith(".") and path.suffix not in (".db", ".db-journal", ".salt")
                and not path.name.endswith((".db-wal", ".db-shm")) and path.resolve() not in excluded):
            yield path


@dataclasses.dataclass
class _Instance:
    key: str  # the stored SOPInstanceUID
    row: dict
    source_sha256: str
    pixel_sha256: str
    data: bytes


def _prepare(database: DicomDatabase, path: Path, present: dict[str, tuple[str, str]]) -> _Instance | str:
    """The row to store for ``path``, or ``"present"`` when the database holds the same content.

    Raises:
        Conflict: The database holds this SOPInstanceUID with other pixels.
        DicomError: The file cannot be used.
    """
    raw = path.read_bytes()
    source = hashlib.sha256(raw).hexdigest()
    dataset = read_dataset(path)
    try:
        summary = header_summary(dataset)
    except Exception as error:  # a malformed header value: this file's fault
        raise DicomError(f"{path}: malformed header ({type(error).__name__}: {first_line(error)})") from None
    if not summary["sop_instance_uid"]:
        raise DicomError(f"{path}: no SOPInstanceUID")
    deidentified = database.storage == "deidentified"
    key = pseudonymous_uid(summary["sop_instance_uid"], database.salt) if deidentified else summary["sop_instance_uid"]
    stored = present.get(key)
    if stored is not None and stored[0] == source:
        return "present"
    read_pixels(dataset, path)  # every check of the pixels and their transformations
    pixels = pixel_sha256(dataset)
    if stored is not None:
        if stored[1] == pixels:
            return "present"  # the same instance in another transfer syntax
        raise Conflict(_conflict_reason(summary["sop_instance_uid"]))
    patient = summary["patient_id"] or f"unknown:{summary['study_instance_uid']}"
    row = {key_: summary[key_] for key_ in ("modality", "body_part_examined", "body_part", "transfer_syntax")}
    row["patient_pseudonym"] = pseudonym(patient, database.salt)
    row["sop_instance_uid"] = key
    if deidentified:
        row["study_instance_uid"] = pseudonymous_uid(summary["study_instance_uid"], database.salt)
        row["series_instance_uid"] = pseudonymous_uid(summary["series_instance_uid"], database.salt)
        try:
            buffer = io.BytesIO()
            deidentify(dataset, database.salt, database.dates).save_as(buffer, enforce_file_format=True)
        except Exception as error:  # a header pydicom cannot write back
            raise DicomError(f"{path}: cannot write its de-identified copy ({type(error).__name__}: "
                             f"{first_line(error)})") from None
        data = buffer.getvalue()
    else:
        row["study_instance_uid"] = summary["study_instance_uid"]
        row["series_instance_uid"] = summary["series_instance_uid"]
        data = raw
    return _Instance(key, row, source, pixels, data)


class Conflict(Exception):
    """An instance whose SOPInstanceUID is stored with other pixels (the message is the reason)."""


def _conflict_reason(uid: str) -> str:
    return f"SOPInstanceUID {uid} is already stored with other pixels; the stored instance is kept"


def stored_hashes(database: DicomDatabase) -> dict[str, tuple[str, str]]:
    """Stored SOPInstanceUID -> (SHA-256 of the source file, of the decoded pixels)."""
    with database.engine.connect() as connection:
        return {uid: (source, pixels) for uid, source, pixels in connection.execute(
            sa.select(dicom_files.c.sop_instance_uid, dicom_files.c.source_sha256, dicom_files.c.pixel_sha256))}


def ingest_directory(database: DicomDatabase, directory: str | Path, progress: bool = True) -> IngestReport:
    """Stores every usable DICOM file under ``directory`` that the database does not hold yet.

    Returns:
        What was added, found present, in conflict (same UID, other pixels) and skipped, with reasons.
    """
    from tqdm import tqdm

    report = IngestReport()
    present = stored_hashes(database)
    database_file = Path(database.url.database) if database.url.drivername.startswith("sqlite") and \
        database.url.database else None
    files = list(candidate_files(directory, exclude=(database_file,) if database_file else ()))
    for path in tqdm(files, desc="ingesting", unit="file", disable=not progress):
        try:
            instance = _prepare(database, path, present)
        except Conflict as conflict:
            report.conflicts.append((str(path), str(conflict)))
            continue
        except DicomError as error:
            report.failed.append((str(path), str(error).removeprefix(f"{path}: ")))
            continue
        except OSError as error:  # unreadable: permissions, a file removed meanwhile
            report.failed.append((str(path), f"unreadable ({first_line(error)})"))
            continue
        except Exception as error:  # pydicom's many types for malformed data: one file never stops the ingest
            report.failed.append((str(path), f"unusable DICOM ({type(error).__name__}: {first_line(error)})"))
            continue
        if instance == "present":
            report.already_present += 1
            continue
        try:
            with database.engine.begin() as connection:  # one transaction per file
                connection.execute(dicom_files.insert().values(
                    **instance.row, file_size=len(instance.data), source_sha256=instance.source_sha256,
                    pixel_sha256=instance.pixel_sha256, data=instance.data))
        except sa.exc.IntegrityError:  # another ingest stored this instance since we looked
            with database.engine.connect() as connection:
                stored = connection.execute(sa.select(dicom_files.c.source_sha256, dicom_files.c.pixel_sha256).where(
                    dicom_files.c.sop_instance_uid == instance.key)).one_or_none()
            if stored is None:
                raise
            present[instance.key] = tuple(stored)
            if instance.pixel_sha256 == stored[1]:
                report.already_present += 1
            else:
                report.conflicts.append((str(path), _conflict_reason(instance.row["sop_instance_uid"])))
            continue
        present[instance.key] = (instance.source_sha256, instance.pixel_sha256)
        report.added += 1
    return report
