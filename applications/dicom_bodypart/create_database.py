"""Stores a folder of DICOM files in a database: UIDs, modality, body part, patient pseudonym, file bytes.

Walks ``--directory`` recursively. Every file whose pixels decode is stored once (SOPInstanceUID is the
primary key; running again adds only new files); files that are not DICOM, truncated, without pixel
data or with a codec that is not installed are counted and listed at the end with the reason.
The default database is ``sqlite:///<DIR>/dicom.db``; MySQL or MariaDB with
``--db_url mysql+pymysql://user@host/db`` (the password in the URL or in ``DLTK2_DB_PASSWORD``).

Example:
    python applications/dicom_bodypart/create_database.py --directory data/dicom_synthetic
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run
from dltk2.datasets import dicom_database

FLAGS = flags.FLAGS
flags.DEFINE_string("directory", None, "Folder of DICOM files (searched recursively).")
flags.DEFINE_string("db_url", None, "SQLAlchemy URL; default sqlite:///<directory>/dicom.db.")
flags.DEFINE_boolean("progress", True, "Show a progress bar.")
flags.mark_flag_as_required("directory")


def main(argv):
    del argv
    url = FLAGS.db_url or dicom_database.default_url(FLAGS.directory)
    engine = dicom_database.open_database(url)
    report = dicom_database.ingest_directory(engine, FLAGS.directory, progress=FLAGS.progress)
    print(f"added {report.added} files; {report.already_present} already in the database; "
          f"{len(report.failed)} unusable")
    for path, reason in report.failed:
        print(f"  skipped {path}: {reason}")
    counts = dicom_database.count_by_body_part(engine)
    print("database " + engine.url.render_as_string(hide_password=True) + ": "
          + ", ".join(f"{part}={count}" for part, count in sorted(counts.items())))


if __name__ == "__main__":
    run(main)
