"""A database of DICOM files for body-part classification (SQLite, MySQL or MariaDB via SQLAlchemy).

One row per SOP instance: its (pseudonymous) SOPInstanceUID as primary key, study and series UIDs,
modality, BodyPartExamined and the body-part class, a patient pseudonym (never the patient ID),
SHA-256 of the original file and of its decoded pixels, and the stored bytes. Every statement uses
bound parameters. :mod:`dltk2.datasets.dicom_ingest` fills it.

Storage (chosen when the database is created, kept in its ``settings`` table):

* ``deidentified`` (the default): the file as :func:`dltk2.io.deidentification.deidentify` leaves
  it (PS3.15's Basic Profile, dates shifted per patient unless ``dates`` says otherwise), UIDs
  pseudonymous. The database holds no identifier.
* ``original``: the file's own bytes, every identifier in them; fetching de-identifies.

The pseudonym salt (which makes pseudonyms, pseudonymous UIDs and date shifts unguessable) is kept
apart from the data, in a key file (:func:`default_salt_file`: ``<database>.salt`` beside an SQLite
file, under ``~/.config/dltk2/salts/`` for a server), created 0600 on first use; the database keeps
only a check value, so a wrong key file is refused instead of splitting patients across pseudonyms.
A database of an earlier version (original bytes, salt in ``settings``) is migrated when opened:
its salt moves to the key file and the new columns are computed from the stored bytes.

URLs are built from parts (:func:`database_url`): ``--directory`` may hold ``?`` or ``%``; a
password comes from the URL or ``DLTK2_DB_PASSWORD`` and is never printed; a server that does not
answer is one line (:class:`dltk2.errors.ResourceError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import secrets
import time
from pathlib import Path

import pydicom
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from dltk2.errors import DataError, ResourceError, first_line

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
STORAGES = ("deidentified", "original")
PASSWORD_VARIABLE = "DLTK2_DB_PASSWORD"

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
    sa.Column("source_sha256", sa.String(64)),
    sa.Column("pixel_sha256", sa.String(64)),
    sa.Column("data", _BLOB, nullable=False),
)
settings = sa.Table(
    "settings", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)


def database_url(url: str | sa.URL | None = None, directory: str | Path | None = None) -> sa.URL:
    """The database's URL, built from parts.

    Args:
        url: An SQLAlchemy URL (``mysql+pymysql://user@host/db``); the password may be in it or in
            ``DLTK2_DB_PASSWORD``. None: SQLite in ``directory``.
        directory: Folder of ``dicom.db`` when ``url`` is None; any characters (``?``, ``%``) are part
            of the path, not of a URL.

    Raises:
        DataError: A URL SQLAlchemy cannot parse, or whose host holds ``@`` (an ``@`` in a password
            must be written ``%40``; the message does not repeat the URL, which holds the password).
    """
    if url is None:
        if directory is None:
            raise ValueError("give a database URL or the directory of an SQLite database")
        return sa.URL.create("sqlite", database=str(Path(directory).resolve() / "dicom.db"))
    try:
        parsed = sa.make_url(url) if isinstance(url, str) else url
    except (sa.exc.ArgumentError, ValueError):
        raise DataError("database URL: not an SQLAlchemy URL (dialect+driver://user@host:port/database)") from None
    if parsed.host and "@" in parsed.host:
        raise DataError("database URL: its host part holds '@'; write an '@' in the password as %40, or give the "
                        f"password in {PASSWORD_VARIABLE}")
    if parsed.password is None and os.environ.get(PASSWORD_VARIABLE) and not parsed.drivername.startswith("sqlite"):
        parsed = parsed.set(password=os.environ[PASSWORD_VARIABLE])
    return parsed


def describe(url: sa.URL) -> str:
    """The URL as it may be printed: without its password."""
    return url.render_as_string(hide_password=True)


def _scrub(text: str, url: sa.URL) -> str:
    password = url.password
    return text.replace(str(password), "***") if password else text


def default_salt_file(url: sa.URL) -> Path:
    """Where a database's key file is kept unless one is given: beside an SQLite file, else per server."""
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return Path(url.database + ".salt")
    digest = hashlib.sha256(describe(url.set(password=None)).encode()).hexdigest()[:16]
    return Path.home() / ".config" / "dltk2" / "salts" / f"{url.database or 'database'}-{digest}.salt"


def _salt_check(salt: str) -> str:
    return hashlib.sha256(f"dltk2 salt check\x00{salt}".encode()).hexdigest()[:16]


def _read_or_create_salt(path: Path, salt: str | None = None) -> tuple[str, bool]:
    """The salt in ``path``; if there is none, ``salt`` (or a new one) written there 0600, atomically."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = salt or secrets.token_hex(16)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(value + "\n")
    try:
        os.link(temporary, path)  # fails if another process created it first: then take theirs
        created = True
    except FileExistsError:
        created = False
    finally:
        temporary.unlink()
    return path.read_text().strip(), created


@dataclasses.dataclass
class DicomDatabase:
    """An open database: its engine, its settings, and the salt from its key file."""

    engine: sa.Engine
    url: sa.URL
    storage: str
    dates: str
    salt_file: Path
    _salt: str | None = None

    @property
    def salt(self) -> str:
        """The pseudonym salt (read from the key file; refused if it is not this database's)."""
        if self._salt is None:
            raise ResourceError(f"{self.salt_file}: no key file for {describe(self.url)}; give its --salt_file")
        return self._salt

    def query_body_part(self, body_part: str, limit: int | None = None) -> list[dict]:
        """Rows whose body-part class is ``body_part`` (case-insensitive), ordered by SOPInstanceUID.

        ``body_part`` is a bound parameter: text such as ``CHEST' OR '1'='1`` is a body part that matches
        nothing. ``"all"`` returns every row.
        """
        statement = sa.select(dicom_files).order_by(dicom_files.c.sop_instance_uid)
        if body_part.lower() != "all":
            statement = statement.where(sa.func.lower(dicom_files.c.body_part) == body_part.lower())
        if limit is not None:
            statement = statement.limit(int(limit))
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def count_by_body_part(self) -> dict[str, int]:
        """Number of stored files per body-part class."""
        statement = sa.select(dicom_files.c.body_part, sa.func.count()).group_by(dicom_files.c.body_part)
        with self.engine.connect() as connection:
            return {part: int(count) for part, count in connection.execute(statement)}

    def dispose(self) -> None:
        self.engine.dispose()


def _settings(connection) -> dict[str, str]:
    return {name: value for name, value in connection.execute(sa.select(settings.c.name, settings.c.value))}


def _setting(engine: sa.Engine, name: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(sa.select(settings.c.value).where(settings.c.name == name)).scalar()


def _set_default(engine: sa.Engine, name: str, value: str) -> str:
    """The setting's value; ``value`` inserted first if it has none (a concurrent insert wins)."""
    current = _setting(engine, name)
    if current is not None:
        return current
    try:
        with engine.begin() as connection:
            connection.execute(settings.insert().values(name=name, value=value))
        return value
    except sa.exc.IntegrityError:
        return _setting(engine, name)


def pixel_sha256(dataset: pydicom.Dataset) -> str:
    """SHA-256 of a dataset's decoded pixels with their shape and type: the same for any lossless encoding."""
    pixels = dataset.pixel_array
    digest = hashlib.sha256(f"{pixels.shape}{pixels.dtype.str}".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()


def _migrate(engine: sa.Engine) -> None:
    """Adds the columns of schema 2 to a database of schema 1 and computes them from the stored bytes."""
    columns = {column["name"] for column in sa.inspect(engine).get_columns("dicom_files")}
    with engine.begin() as connection:
        for name in ("source_sha256", "pixel_sha256"):
            if name not in columns:
                connection.execute(sa.text(f"ALTER TABLE dicom_files ADD COLUMN {name} VARCHAR(64)"))
    with engine.connect() as connection:
        missing = list(connection.execute(sa.select(dicom_files.c.sop_instance_uid).where(
            dicom_files.c.pixel_sha256.is_(None))).scalars())
    for uid in missing:
        with engine.begin() as connection:
            data = connection.execute(sa.select(dicom_files.c.data).where(
                dicom_files.c.sop_instance_uid == uid)).scalar()
            try:
                pixels = pixel_sha256(pydicom.dcmread(io.BytesIO(data)))
            except Exception as error:  # stored before pixels were checked: keep the row, mark it
                logger.warning("%s: stored pixels do not decode (%s)", uid, first_line(error))
                pixels = "undecodable"
            connection.execute(dicom_files.update().where(dicom_files.c.sop_instance_uid == uid).values(
                source_sha256=hashlib.sha256(data).hexdigest(), pixel_sha256=pixels))


def _create_tables(engine: sa.Engine) -> None:
    for attempt in range(3):  # two processes creating the tables at once: the second finds them made
        try:
            metadata.create_all(engine)
            return
        except sa.exc.OperationalError as error:
            if "already exists" not in str(error) or attempt == 2:
                raise
            time.sleep(0.2)


def open_database(url: str | sa.URL | None = None, directory: str | Path | None = None,
                  storage: str = "deidentified", dates: str = "shift", salt_file: str | Path | None = None,
                  create_salt: bool = True) -> DicomDatabase:
    """Connects, creates the tables if missing (a new database gets ``storage`` and ``dates``) or migrates.

    Args:
        url, directory: See :func:`database_url`.
        storage: ``deidentified`` or ``original``, for a new database; an existing one keeps its own.
        dates: ``shift``, ``keep`` or ``remove`` (:func:`dltk2.io.deidentification.deidentify`), for a new
            database.
        salt_file: The key file; default :func:`default_salt_file`.
        create_salt: Create the key file (and the salt) if the database has none yet; False for
            readers, which only need it for ``original`` storage.

    Raises:
        ResourceError: The server does not answer, the SQLite file cannot be opened, or the key file
            does not match the database; one line, no password.
        ValueError: An unknown ``storage`` or ``dates``.
    """
    from dltk2.io.deidentification import DATE_MODES

    if storage not in STORAGES or dates not in DATE_MODES:
        raise ValueError(f"storage must be one of {STORAGES} and dates one of {DATE_MODES}")
    url = database_url(url, directory)
    sqlite = url.drivername.startswith("sqlite")
    # SQLite: wait up to a minute for another writer; overwrite deleted content (a migrated salt).
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"timeout": 60} if sqlite else {})
    if sqlite:
        sa.event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA secure_delete = ON"))
    try:
        with engine.connect():
            pass
        new = not sa.inspect(engine).has_table("dicom_files")
        _create_tables(engine)
        legacy_salt = _setting(engine, "pseudonym_salt")
        version = _set_default(engine, "schema_version", str(SCHEMA_VERSION) if new else "1")
        chosen = _set_default(engine, "storage", storage if new else "original")
        date_mode = _set_default(engine, "dates", dates)
        if int(version) < SCHEMA_VERSION or legacy_salt is not None:
            _migrate(engine)
    except sa.exc.DBAPIError as error:
        engine.dispose()
        reason = _scrub(first_line(error.orig if error.orig is not None else error), url)
        raise ResourceError(f"{describe(url)}: cannot open the database ({reason})") from None
    salt_path = Path(salt_file) if salt_file else default_salt_file(url)
    salt = None
    if legacy_salt is not None:  # schema 1 kept its salt beside the data: move it out
        salt, _ = _read_or_create_salt(salt_path, legacy_salt)
        if salt != legacy_salt:
            raise ResourceError(f"{salt_path}: holds another salt than {describe(url)} did; give this database's "
                                "own --salt_file")
    elif salt_path.exists() or create_salt:
        salt, created = _read_or_create_salt(salt_path)
        if created:
            print(f"pseudonym salt of {describe(url)} kept apart from the data in {salt_path} (back it up: "
                  "without it, new files would get other pseudonyms)")
    if salt is not None and _set_default(engine, "salt_check", _salt_check(salt)) != _salt_check(salt):
        engine.dispose()
        raise ResourceError(f"{salt_path}: not the key file of {describe(url)} (its salt does not match); give the "
                            "database's own --salt_file")
    with engine.begin() as connection:  # the salt is in its key file now: out of the data
        connection.execute(settings.delete().where(settings.c.name == "pseudonym_salt"))
        connection.execute(settings.update().where(settings.c.name == "schema_version").values(
            value=str(SCHEMA_VERSION)))
    return DicomDatabase(engine, url, chosen, date_mode, salt_path, salt)


def dataset_from_row(row: dict) -> pydicom.Dataset:
    """The stored file, read back as a pydicom dataset.

    Raises:
        DicomError: Stored bytes that no longer parse (named by the row's SOPInstanceUID).
    """
    from dltk2.io.dicom import DicomError

    try:
        return pydicom.dcmread(io.BytesIO(row["data"]))
    except Exception as error:  # pydicom's many types for malformed data
        raise DicomError(f"row {row.get('sop_instance_uid')}: stored bytes unreadable ({type(error).__name__}: "
                         f"{first_line(error)})") from None
