"""A database of DICOM files for body-part classification (SQLite, MySQL or MariaDB via SQLAlchemy).

One row per SOP instance (the SOPInstanceUID is the primary key): study and series UIDs, modality,
BodyPartExamined and the body-part class, a patient pseudonym (never the patient ID) and the original
file bytes. Every statement uses bound parameters. The pseudonym salt is drawn once per database and
kept in its ``settings`` table, so pseudonyms are stable for one database and differ between databases.

Ingesting a folder commits file by file: a run that is killed leaves only complete rows, and running
it again adds only what is missing. Files that cannot be used (not DICOM, truncated, no pixel data, a
codec that is not installed) are counted and listed with the reason, never stored.
"""

from __future__ import annotations

import io
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pydicom
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from dltk2.io.dicom import DicomError, header_summary, pseudonym, read_dataset, read_pixels

metadata = sa.MetaData()
_BLOB = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

dicom_files = sa.Table(
    "dicom_files", metadata,
    sa.Column("sop_instance_uid", sa.String(64), primary_key=True),
    sa.Column("study_instance_uid", sa.String(64), index=True),
    sa.Column("series_instance_uid", sa.String(64), index=True),
    sa.Column("modality", sa.String(16)),
    sa.Column("body_part_examined", sa.String(64)),
    sa.Column("body_part", sa.String(32), index=True, nullable=False),
    sa.Column("patient_pseudonym", sa.String(32), index=True, nullable=False),
    sa.Column("transfer_syntax", sa.String(128)),
    sa.Column("file_size", sa.Integer, nullable=False),
    sa.Column("data", _BLOB, nullable=False),
)
settings = sa.Table(
    "settings", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


def default_url(directory: str | Path) -> str:
    """``sqlite:///<directory>/dicom.db``."""
    return f"sqlite:///{Path(directory).resolve() / 'dicom.db'}"


def resolve_url(url: str) -> sa.URL:
    """The URL, with the password from ``DLTK2_DB_PASSWORD`` where the URL has none (never in source)."""
    parsed = sa.make_url(url)
    if parsed.password is None and os.environ.get("DLTK2_DB_PASSWORD") and not parsed.drivername.startswith("sqlite"):
        parsed = parsed.set(password=os.environ["DLTK2_DB_PASSWORD"])
    return parsed


def open_database(url: str) -> sa.Engine:
    """Connects (see :func:`resolve_url`) and creates the tables if they are missing."""
    engine = sa.create_engine(resolve_url(url), pool_pre_ping=True)
    metadata.create_all(engine)
    return engine


def pseudonym_salt(engine: sa.Engine) -> str:
    """This database's salt, drawn at random on first use and stored."""
    with engine.begin() as connection:
        value = connection.execute(sa.select(settings.c.value).where(settings.c.name == "pseudonym_salt")).scalar()
        if value is None:
            value = secrets.token_hex(16)
            connection.execute(settings.insert().values(name="pseudonym_salt", value=value))
    return value


@dataclass
class IngestReport:
    """What one ingest run did."""

    added: int = 0
    already_present: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def candidate_files(directory: str | Path) -> Iterator[Path]:
    """Every regular file under ``directory`` (sorted), except SQLite database files and hidden files."""
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.suffix not in (".db", ".db-journal"):
            yield path


def ingest_directory(engine: sa.Engine, directory: str | Path, progress: bool = True) -> IngestReport:
    """Stores every usable DICOM file under ``directory`` that the database does not hold yet.

    A file is usable when its pixels decode (so a missing codec is found now, not at training time).
    """
    from tqdm import tqdm

    salt = pseudonym_salt(engine)
    report = IngestReport()
    with engine.connect() as connection:
        present = set(connection.execute(sa.select(dicom_files.c.sop_instance_uid)).scalars())
    files = list(candidate_files(directory))
    for path in tqdm(files, desc="ingesting", unit="file", disable=not progress):
        try:
            dataset = read_dataset(path)
            summary = header_summary(dataset)
            if not summary["sop_instance_uid"]:
                raise DicomError(f"{path}: no SOPInstanceUID")
            if summary["sop_instance_uid"] in present:
                report.already_present += 1
                continue
            read_pixels(dataset, path)
        except DicomError as error:
            report.failed.append((str(path), str(error).removeprefix(f"{path}: ")))
            continue
        data = path.read_bytes()
        row = {key: summary[key] for key in ("sop_instance_uid", "study_instance_uid", "series_instance_uid",
                                             "modality", "body_part_examined", "body_part", "transfer_syntax")}
        row["patient_pseudonym"] = pseudonym(summary["patient_id"] or f"unknown:{summary['study_instance_uid']}", salt)
        with engine.begin() as connection:  # one transaction per file
            connection.execute(dicom_files.insert().values(**row, file_size=len(data), data=data))
        present.add(summary["sop_instance_uid"])
        report.added += 1
    return report


def query_body_part(engine: sa.Engine, body_part: str, limit: int | None = None) -> list[dict]:
    """Rows whose body-part class is ``body_part`` (case-insensitive), ordered by SOPInstanceUID.

    ``body_part`` is a bound parameter: text such as ``CHEST' OR '1'='1`` is a body part that matches
    nothing. ``"all"`` returns every row.
    """
    statement = sa.select(dicom_files).order_by(dicom_files.c.sop_instance_uid)
    if body_part.lower() != "all":
        statement = statement.where(sa.func.lower(dicom_files.c.body_part) == body_part.lower())
    if limit is not None:
        statement = statement.limit(int(limit))
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]


def count_by_body_part(engine: sa.Engine) -> dict[str, int]:
    """Number of stored files per body-part class."""
    statement = sa.select(dicom_files.c.body_part, sa.func.count()).group_by(dicom_files.c.body_part)
    with engine.connect() as connection:
        return {part: int(count) for part, count in connection.execute(statement)}


def dataset_from_row(row: dict) -> pydicom.Dataset:
    """The stored file, read back as a pydicom dataset."""
    return pydicom.dcmread(io.BytesIO(row["data"]))
