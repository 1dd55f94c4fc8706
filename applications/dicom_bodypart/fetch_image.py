"""Fetches the images of one body part from the database as lossless PNGs with their class text.

Writes ``OUT/images/<name>.png`` (8- or 16-bit, after the modality and VOI LUTs, MONOCHROME1
inverted, the middle frame of a multi-frame image), ``OUT/labels/<name>.txt`` (the class text) and
``OUT/index.csv`` (``name,body_part,patient``: the patient pseudonym, for splitting by patient).
``<name>`` is a pseudonym of the SOPInstanceUID, so no identifier leaves the database. With
``--metadata``, the de-identified header goes to ``OUT/metadata/<name>.json``. ``--query all``
fetches every body part.

Example:
    python applications/dicom_bodypart/fetch_image.py --query CHEST --directory data/fetched \\
        --db_url sqlite:///data/dicom_synthetic/dicom.db
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run
from dltk2.datasets import bodypart, dicom_database
from dltk2.io.dicom import DicomError, pseudonym

FLAGS = flags.FLAGS
flags.DEFINE_string("query", None, "Body-part class to fetch (case-insensitive), or 'all'.")
flags.DEFINE_string("directory", None, "Output folder.")
flags.DEFINE_boolean("metadata", False, "Also write the de-identified header as JSON.")
flags.DEFINE_integer("limit", None, "At most this many images.")
flags.DEFINE_string("db_url", None, "SQLAlchemy URL; default sqlite:///<directory>/dicom.db.")
flags.DEFINE_enum("bits", "8", ["8", "16"], "PNG bit depth.")
flags.mark_flags_as_required(["query", "directory"])


def main(argv):
    del argv
    engine = dicom_database.open_database(FLAGS.db_url or dicom_database.default_url(FLAGS.directory))
    salt = dicom_database.pseudonym_salt(engine)
    rows = dicom_database.query_body_part(engine, FLAGS.query, FLAGS.limit)
    written, failed = [], []
    for row in rows:
        name = pseudonym(row["sop_instance_uid"], salt)
        try:
            written.append(bodypart.export_image(
                dicom_database.dataset_from_row(row), name, row["body_part"], row["patient_pseudonym"],
                FLAGS.directory, bits=int(FLAGS.bits), metadata_salt=salt if FLAGS.metadata else None))
        except DicomError as error:
            failed.append(str(error))
    if written:
        bodypart.write_index(written, FLAGS.directory)
    print(f"fetched {len(written)} of {len(rows)} images for query {FLAGS.query!r} into {FLAGS.directory}")
    for message in failed:
        print(f"  skipped {message}")


if __name__ == "__main__":
    run(main)
