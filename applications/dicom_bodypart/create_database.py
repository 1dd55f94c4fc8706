"""Stores a folder of DICOM files in a database: UIDs, modality, body part, patient pseudonym, file bytes.

Walks ``--data_dir`` recursively. Every file whose pixels decode is stored once (running again adds
only new files; the same instance in another transfer syntax is recognised); files that are not
DICOM, truncated, without pixel data, with a codec that is not installed or with pixel
transformations that cannot be applied are skipped and listed at the end with the reason, and an
instance whose SOPInstanceUID is stored with other pixels is listed as a conflict.

A new database stores de-identified files (``--storage deidentified``: PS3.15's Basic Profile, dates
shifted per patient unless ``--dates keep`` or ``remove``); ``--storage original`` keeps the files'
own bytes. The pseudonym salt is kept apart from the data, in ``--salt_file`` (default beside an
SQLite database: ``dicom.db.salt``). The default database is ``<DIR>/dicom.db`` (SQLite); MySQL or
MariaDB with ``--db_url mysql+pymysql://user@host/db`` and the password in ``DLTK2_DB_PASSWORD`` (or
the URL, an ``@`` in it written ``%40``). Two ingests into one database at once are safe.

Example:
    python applications/dicom_bodypart/create_database.py --data_dir data/dicom_synthetic

The original's flag names (``--directory``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run
from dltk2.datasets import dicom_database, dicom_ingest
from dltk2.io.deidentification import DATE_MODES

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "Folder of DICOM files (searched recursively).")
flags.DEFINE_alias("directory", "data_dir")
flags.DEFINE_string("db_url", None, "SQLAlchemy URL; default SQLite <data_dir>/dicom.db.")
flags.DEFINE_enum("storage", "deidentified", list(dicom_database.STORAGES),
                  "What a new database stores: de-identified files, or the original bytes.")
flags.DEFINE_enum("dates", "shift", list(DATE_MODES), "Dates in de-identified files: shifted per patient, kept "
                  "(PS3.15's full dates option) or removed.")
flags.DEFINE_string("salt_file", None, "Key file of the pseudonym salt; default <database>.salt (SQLite) or "
                    "~/.config/dltk2/salts/.")
flags.DEFINE_boolean("progress", True, "Show a progress bar.")
flags.mark_flag_as_required("data_dir")


def main(argv):
    del argv
    database = dicom_database.open_database(FLAGS.db_url, FLAGS.data_dir, storage=FLAGS.storage, dates=FLAGS.dates,
                                            salt_file=FLAGS.salt_file)
    if database.storage != FLAGS.storage and FLAGS["storage"].present:
        print(f"note: {dicom_database.describe(database.url)} stores {database.storage} files (chosen when it was "
              "created); --storage applies to new databases")
    report = dicom_ingest.ingest_directory(database, FLAGS.data_dir, progress=FLAGS.progress)
    print(f"added {report.added} files; {report.already_present} already in the database; "
          f"{len(report.conflicts)} conflicting; {len(report.failed)} unusable")
    for path, reason in report.conflicts:
        print(f"  conflict {path}: {reason}")
    for path, reason in report.failed:
        print(f"  skipped {path}: {reason}")
    counts = database.count_by_body_part()
    print(f"database {dicom_database.describe(database.url)} ({database.storage} files): "
          + ", ".join(f"{part}={count}" for part, count in sorted(counts.items())))


if __name__ == "__main__":
    run(main)
