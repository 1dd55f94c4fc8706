"""Tests of dltk2.datasets.dicom_database and dicom_ingest on SQLite and, where DLTK2_TEST_MYSQL_URL is set, MariaDB."""

import hashlib
import multiprocessing
import os
import shutil
import stat

import numpy as np
import pydicom
import pytest
import sqlalchemy as sa
from pydicom.data import get_testdata_file
from pydicom.uid import UID

from dltk2.datasets import dicom_database as db
from dltk2.datasets import dicom_ingest
from dltk2.datasets.dicom_ingest import ingest_directory
from dltk2.errors import DataError, ResourceError
from dltk2.io.deidentification import pseudonym, pseudonymous_uid
from helpers import odd_dicom_files

REAL_FILES = {  # pydicom's own test files: what the header says
    "RG1_UNCR.dcm": "Chest", "RG1_J2KR.dcm": "Chest", "RG3_UNCR.dcm": "Musculoskeletal",
    "MR2_UNCR.dcm": "Musculoskeletal", "MR2_J2KR.dcm": "Musculoskeletal", "emri_small.dcm": "Skull",
    "CT_small.dcm": "none", "693_J2KR.dcm": "none", "RG3_J2KI.dcm": "Musculoskeletal", "MR-SIEMENS-DICOM-WithOverlays.dcm": "Abdomen",
}


@pytest.fixture
def folder(tmp_path):
    """Real DICOM files, and four that must be skipped with a reason."""
    folder = tmp_path / "dicom"
    folder.mkdir()
    for name in REAL_FILES:
        shutil.copy(get_testdata_file(name), folder / name)
    shutil.copy(get_testdata_file("reportsi.dcm"), folder / "report.dcm")  # no pixel data
    shutil.copy(get_testdata_file("emri_small_jpeg_2k_lossless_too_short.dcm"), folder / "short.dcm")
    (folder / "readme.txt").write_text("not DICOM\n")
    mpeg = pydicom.dcmread(get_testdata_file("RG1_J2KR.dcm"))
    mpeg.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # no decoder: a missing codec
    mpeg.SOPInstanceUID = "1.2.3.4.5.6.7.8.9"
    mpeg.save_as(folder / "mpeg.dcm")
    return folder


@pytest.fixture
def url(database_url):
    return database_url


def open_database(url, tmp_path, **kwargs):
    return db.open_database(url, salt_file=tmp_path / "keys" / "test.salt", **kwargs)


def test_ingest_stores_usable_files_once_and_lists_the_rest(folder, url, tmp_path):
    database = open_database(url, tmp_path)
    report = ingest_directory(database, folder, progress=False)
    assert report.added == len(REAL_FILES) and report.already_present == 0 and report.conflicts == []
    reasons = {os.path.basename(path): reason for path, reason in report.failed}
    assert set(reasons) == {"report.dcm", "short.dcm", "readme.txt", "mpeg.dcm"}
    assert "no pixel data" in reasons["report.dcm"] and "truncated" in reasons["short.dcm"]
    assert "not a DICOM file" in reasons["readme.txt"] and "cannot decode MPEG2" in reasons["mpeg.dcm"]
    # The same SOP instance in another transfer syntax is the same instance: not stored twice.
    shutil.copy(get_testdata_file("emri_small_jpeg_ls_lossless.dcm"), folder / "emri_small_ls.dcm")

    again = ingest_directory(database, folder, progress=False)
    assert again.added == 0 and again.already_present == len(REAL_FILES) + 1 and again.conflicts == []
    counts = database.count_by_body_part()
    expected = {}
    for part in REAL_FILES.values():
        expected[part] = expected.get(part, 0) + 1
    assert counts == expected
    database.dispose()


def test_the_same_uid_with_other_pixels_is_a_conflict_by_name(folder, url, tmp_path):
    database = open_database(url, tmp_path)
    ingest_directory(database, folder, progress=False)
    impostor = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    impostor.PixelData = (impostor.pixel_array[::-1] + 1).astype(impostor.pixel_array.dtype).tobytes()
    impostor.save_as(folder / "impostor.dcm")
    report = ingest_directory(database, folder, progress=False)
    assert report.added == 0 and len(report.conflicts) == 1
    path, reason = report.conflicts[0]
    assert path.endswith("impostor.dcm") and f"SOPInstanceUID {impostor.SOPInstanceUID} is already stored" in reason
    database.dispose()


def test_stored_files_are_deidentified_by_default_and_keep_their_pixels(folder, url, tmp_path):
    database = open_database(url, tmp_path)
    assert database.storage == "deidentified" and database.dates == "shift"
    ingest_directory(database, folder, progress=False)
    rows = database.query_body_part("CHEST")
    assert len(rows) == 2 and {row["body_part"] for row in rows} == {"Chest"}
    original = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    for row in rows:
        stored = db.dataset_from_row(row)
        assert stored.SOPInstanceUID == row["sop_instance_uid"] and row["file_size"] == len(row["data"])
        assert stored.SOPInstanceUID.startswith("2.25.") and stored.PatientIdentityRemoved == "YES"
        assert not stored.PatientName and stored.PatientID == row["patient_pseudonym"] != original.PatientID
        assert not [element for element in stored.iterall() if element.tag.is_private]
        np.testing.assert_array_equal(stored.pixel_array, original.pixel_array)
    assert rows[0]["patient_pseudonym"] == rows[1]["patient_pseudonym"]  # same patient, same pseudonym
    uid = pseudonymous_uid(original.SOPInstanceUID, database.salt)
    assert uid in {row["sop_instance_uid"] for row in rows}
    assert len(database.query_body_part("all")) == len(REAL_FILES)
    assert len(database.query_body_part("all", limit=3)) == 3
    database.dispose()


def test_original_storage_keeps_the_bytes_and_the_salt_apart_from_them(folder, tmp_path):
    url = f"sqlite:///{tmp_path / 'original.db'}"
    database = db.open_database(url, storage="original")
    ingest_directory(database, folder, progress=False)
    row = database.query_body_part("CHEST")[0]
    originals = {open(get_testdata_file(name), "rb").read() for name in ("RG1_UNCR.dcm", "RG1_J2KR.dcm")}
    assert row["data"] in originals  # the file's own bytes
    salt_file = tmp_path / "original.db.salt"
    assert database.salt_file == salt_file and salt_file.read_text().strip() == database.salt
    assert stat.S_IMODE(salt_file.stat().st_mode) == 0o600
    raw = (tmp_path / "original.db").read_bytes()
    assert database.salt.encode() not in raw
    assert row["patient_pseudonym"] == pseudonym(pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).PatientID,
                                                 database.salt)
    database.dispose()
    reopened = db.open_database(url, storage="deidentified")  # an existing database keeps its storage
    assert reopened.storage == "original" and reopened.salt == database.salt
    reopened.dispose()


def test_a_wrong_or_missing_key_file_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    db.open_database(url).dispose()
    (tmp_path / "other.salt").write_text("not the salt\n")
    with pytest.raises(ResourceError, match="other.salt: not the key file of sqlite:///.*a.db"):
        db.open_database(url, salt_file=tmp_path / "other.salt")
    reader = db.open_database(url, salt_file=tmp_path / "none.salt", create_salt=False)
    with pytest.raises(ResourceError, match="none.salt: no key file"):
        reader.salt
    reader.dispose()


def test_a_database_of_the_first_schema_is_migrated_and_its_salt_moved_out(folder, tmp_path):
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    old = sa.MetaData()
    files = sa.Table("dicom_files", old, *[sa.Column(c.name, c.type, primary_key=c.primary_key)
                                           for c in db.dicom_files.columns if not c.name.endswith("sha256")])
    sa.Table("settings", old, sa.Column("name", sa.String(64), primary_key=True), sa.Column("value", sa.String(256)))
    old.create_all(engine)
    data = open(get_testdata_file("CT_small.dcm"), "rb").read()
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO settings VALUES ('pseudonym_salt', 'legacy-salt')"))
        connection.execute(files.insert().values(sop_instance_uid="1.2.3", body_part="none", patient_pseudonym="p",
                                                 file_size=len(data), data=data))
    engine.dispose()
    database = db.open_database(f"sqlite:///{path}")
    assert database.storage == "original" and database.salt == "legacy-salt"
    assert (tmp_path / "old.db.salt").read_text().strip() == "legacy-salt" and b"legacy-salt" not in path.read_bytes()
    with database.engine.connect() as connection:
        stored = connection.execute(sa.select(db.dicom_files)).one()._mapping
        names = set(connection.execute(sa.select(db.settings.c.name)).scalars())
    assert stored["source_sha256"] == hashlib.sha256(data).hexdigest() and len(stored["pixel_sha256"]) == 64
    assert "pseudonym_salt" not in names
    database.dispose()


def test_every_odd_file_is_skipped_with_its_reason_and_the_ingest_goes_on(tmp_path):
    folder = tmp_path / "odd"
    odd = odd_dicom_files(folder)
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "good.dcm")
    database = db.open_database(f"sqlite:///{tmp_path / 'odd.db'}")
    report = ingest_directory(database, folder, progress=False)
    assert report.added == 1 and len(report.failed) == len(odd)
    assert all("\n" not in reason and reason for _, reason in report.failed)
    database.dispose()


def _ingest(url, salt_file, folder, queue):
    try:
        report = ingest_directory(db.open_database(url, salt_file=salt_file), folder, progress=False)
        queue.put((report.added, report.already_present, len(report.conflicts), len(report.failed)))
    except BaseException as error:  # reported to the test, which fails with it
        queue.put(repr(error))


def test_two_ingests_into_one_database_at_once_store_each_file_once(folder, url, tmp_path):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    salt_file = tmp_path / "keys" / "shared.salt"
    processes = [context.Process(target=_ingest, args=(url, salt_file, folder, queue)) for _ in range(2)]
    for process in processes:
        process.start()
    results = [queue.get(timeout=300) for _ in processes]
    for process in processes:
        process.join()
    assert all(isinstance(result, tuple) for result in results), results
    assert sum(result[0] for result in results) == len(REAL_FILES)
    assert all(result[0] + result[1] == len(REAL_FILES) and result[2] == 0 for result in results), results
    database = db.open_database(url, salt_file=salt_file)
    assert sum(database.count_by_body_part().values()) == len(REAL_FILES)
    database.dispose()


def test_an_instance_another_ingest_stored_meanwhile_is_present_not_an_error(folder, url, tmp_path, monkeypatch):
    database = open_database(url, tmp_path)
    ingest_directory(database, folder, progress=False)
    monkeypatch.setattr(dicom_ingest, "stored_hashes", lambda database: {})  # as if it looked before the other
    report = ingest_directory(database, folder, progress=False)
    assert report.added == 0 and report.already_present == len(REAL_FILES) and report.conflicts == []
    database.dispose()


@pytest.mark.parametrize("query", ["CHEST' OR '1'='1", "x'; DROP TABLE dicom_files; --", 'Chest"', "%"])
def test_a_query_with_sql_in_it_is_just_a_body_part_that_matches_nothing(folder, url, query, tmp_path):
    database = open_database(url, tmp_path)
    ingest_directory(database, folder, progress=False)
    assert database.query_body_part(query) == []
    assert sum(database.count_by_body_part().values()) == len(REAL_FILES)  # the table is intact
    database.dispose()


def test_salt_is_drawn_once_per_database(tmp_path):
    first = db.open_database(f"sqlite:///{tmp_path / 'a.db'}")
    second = db.open_database(f"sqlite:///{tmp_path / 'b.db'}")
    assert db.open_database(f"sqlite:///{tmp_path / 'a.db'}").salt == first.salt != second.salt


def test_a_directory_with_url_characters_is_a_path(tmp_path):
    directory = tmp_path / "scans?x=1%20&y#2"
    directory.mkdir()
    database = db.open_database(directory=directory)
    assert (directory / "dicom.db").exists() and (directory / "dicom.db.salt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [directory.name]
    database.dispose()


def test_password_from_the_environment_or_the_url_and_never_printed(monkeypatch):
    monkeypatch.setenv("DLTK2_DB_PASSWORD", "s3cret")
    resolved = db.database_url("mysql+pymysql://user@localhost/db")
    assert resolved.password == "s3cret" and "s3cret" not in db.describe(resolved)
    assert db.database_url("mysql+pymysql://user:given@localhost/db").password == "given"
    assert db.database_url("mysql+pymysql://user:p%40ss@localhost/db").password == "p@ss"
    with pytest.raises(DataError) as error:
        db.database_url("mysql+pymysql://user:p@ss@localhost/db")
    assert "%40" in str(error.value) and "ss@localhost" not in str(error.value) and "p@ss" not in str(error.value)


def test_an_unreachable_server_is_one_line_without_the_password():
    with pytest.raises(ResourceError) as error:
        db.open_database("mysql+pymysql://user:hunter2@127.0.0.1:1/db")
    message = str(error.value)
    assert message.startswith("mysql+pymysql://user:***@127.0.0.1:1/db: cannot open the database (")
    assert "hunter2" not in message and "\n" not in message
    with pytest.raises(ResourceError, match="unable to open database file"):
        db.open_database("sqlite:////no/such/folder/x.db")
