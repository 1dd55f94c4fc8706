"""Tests of dltk2.datasets.dicom_database on SQLite and, where DLTK2_TEST_MYSQL_URL is set, MariaDB/MySQL."""

import os
import shutil
import uuid

import pydicom
import pytest
import sqlalchemy as sa
from pydicom.data import get_testdata_file
from pydicom.uid import UID

from dltk2.datasets import dicom_database as db

REAL_FILES = {  # pydicom's own test files: what the header says
    "RG1_UNCR.dcm": "Chest", "RG1_J2KR.dcm": "Chest", "RG3_UNCR.dcm": "Musculoskeletal",
    "MR2_UNCR.dcm": "Musculoskeletal", "MR2_J2KR.dcm": "Musculoskeletal", "emri_small.dcm": "Skull",
    "CT_small.dcm": "none", "693_J2KR.dcm": "none", "RG3_J2KI.dcm": "Musculoskeletal", "MR-SIEMENS-DICOM-WithOverlays.dcm": "Abdomen",
}
MYSQL_URL = os.environ.get("DLTK2_TEST_MYSQL_URL")


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


@pytest.fixture(params=["sqlite", "mysql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if not MYSQL_URL:
        pytest.skip("DLTK2_TEST_MYSQL_URL not set: no MariaDB/MySQL server to test against (.ci/run starts one)")
    name = f"dltk2_test_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(MYSQL_URL)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    yield f"{MYSQL_URL.rstrip('/')}/{name}"
    with server.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE {name}"))
    server.dispose()


def test_ingest_stores_usable_files_once_and_lists_the_rest(folder, url):
    engine = db.open_database(url)
    report = db.ingest_directory(engine, folder, progress=False)
    assert report.added == len(REAL_FILES) and report.already_present == 0
    reasons = {os.path.basename(path): reason for path, reason in report.failed}
    assert set(reasons) == {"report.dcm", "short.dcm", "readme.txt", "mpeg.dcm"}
    assert "no pixel data" in reasons["report.dcm"] and "truncated" in reasons["short.dcm"]
    assert "not a DICOM file" in reasons["readme.txt"] and "cannot decode MPEG2" in reasons["mpeg.dcm"]
    # The same SOP instance in another transfer syntax is the same instance: not stored twice.
    shutil.copy(get_testdata_file("emri_small_jpeg_ls_lossless.dcm"), folder / "emri_small_ls.dcm")

    again = db.ingest_directory(engine, folder, progress=False)
    assert again.added == 0 and again.already_present == len(REAL_FILES) + 1
    counts = db.count_by_body_part(engine)
    assert sum(counts.values()) == len(REAL_FILES)
    expected = {}
    for part in REAL_FILES.values():
        expected[part] = expected.get(part, 0) + 1
    assert counts == expected
    engine.dispose()


def test_rows_keep_the_file_bytes_and_no_patient_id(folder, url):
    engine = db.open_database(url)
    db.ingest_directory(engine, folder, progress=False)
    rows = db.query_body_part(engine, "CHEST")
    assert len(rows) == 2 and {row["body_part"] for row in rows} == {"Chest"}
    original = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm"))
    for row in rows:
        dataset = db.dataset_from_row(row)
        assert dataset.SOPInstanceUID == row["sop_instance_uid"] and row["file_size"] == len(row["data"])
        assert row["patient_pseudonym"] != str(original.PatientID) and len(row["patient_pseudonym"]) == 16
    assert rows[0]["patient_pseudonym"] == rows[1]["patient_pseudonym"]  # same patient, same pseudonym
    assert len(db.query_body_part(engine, "all")) == len(REAL_FILES)
    assert len(db.query_body_part(engine, "all", limit=3)) == 3
    engine.dispose()


@pytest.mark.parametrize("query", ["CHEST' OR '1'='1", "x'; DROP TABLE dicom_files; --", 'Chest"', "%"])
def test_a_query_with_sql_in_it_is_just_a_body_part_that_matches_nothing(folder, url, query):
    engine = db.open_database(url)
    db.ingest_directory(engine, folder, progress=False)
    assert db.query_body_part(engine, query) == []
    assert sum(db.count_by_body_part(engine).values()) == len(REAL_FILES)  # the table is intact
    engine.dispose()


def test_salt_is_drawn_once_per_database(tmp_path):
    first = db.open_database(f"sqlite:///{tmp_path / 'a.db'}")
    second = db.open_database(f"sqlite:///{tmp_path / 'b.db'}")
    assert db.pseudonym_salt(first) == db.pseudonym_salt(first) != db.pseudonym_salt(second)


def test_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("DLTK2_DB_PASSWORD", "s3cret")
    resolved = db.resolve_url("mysql+pymysql://user@localhost/db")
    assert resolved.password == "s3cret" and "s3cret" not in resolved.render_as_string(hide_password=True)
    assert db.resolve_url("mysql+pymysql://user:given@localhost/db").password == "given"
