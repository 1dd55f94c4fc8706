"""Fetches the images of one body part from the database as lossless PNGs with their class text.

Writes ``OUT/images/<name>.png`` (8- or 16-bit, after the modality and VOI LUTs, MONOCHROME1
inverted, the middle frame of a multi-frame image), ``OUT/labels/<name>.txt`` (the class text) and
``OUT/index.csv`` (``name,body_part,patient``: the patient pseudonym, for splitting by patient).
``<name>`` is a pseudonym of the SOPInstanceUID, so no identifier leaves the database. With
``--metadata``, the de-identified header goes to ``OUT/metadata/<name>.json`` (PS3.15's Basic
Profile: as stored in a de-identified database; applied now, with the database's date mode, to one
that keeps original bytes, which needs its key file, ``--salt_file``). ``--query all`` fetches every
body part. A stored file whose pixels no longer decode is skipped with its reason.

Example:
    python applications/dicom_bodypart/fetch_image.py --query CHEST --output_dir data/fetched \\
        --db_url sqlite:///data/dicom_synthetic/dicom.db

The original's flag names (``--directory``) are still accepted.
"""

import dltk2.cli  # noqa: F401  (first: quiets TensorFlow's C++ log, turns oneDNN on, before TensorFlow loads)

from absl import flags

from dltk2.cli import run

FLAGS = flags.FLAGS
flags.DEFINE_string("query", None, "Body-part class to fetch (case-insensitive), or 'all'.")
flags.DEFINE_string("output_dir", None, "Output folder.")
flags.DEFINE_alias("directory", "output_dir")
flags.DEFINE_boolean("metadata", False, "Also write the de-identified header as JSON.")
flags.DEFINE_integer("limit", None, "At most this many images.")
flags.DEFINE_string("db_url", None, "SQLAlchemy URL; default SQLite <output_dir>/dicom.db.")
flags.DEFINE_string("salt_file", None, "Key file of the database's pseudonym salt (for a database of original "
                    "bytes); default <database>.salt (SQLite) or ~/.config/dltk2/salts/.")
flags.DEFINE_enum("bits", "8", ["8", "16"], "PNG bit depth.")
flags.mark_flags_as_required(["query", "output_dir"])


def main(argv):
    del argv
    from dltk2.datasets import bodypart, dicom_database
    from dltk2.io.deidentification import deidentify, pseudonym
    from dltk2.io.dicom import DicomError
    from dltk2.io.locks import locked_folder

    database = dicom_database.open_database(FLAGS.db_url, FLAGS.output_dir, salt_file=FLAGS.salt_file,
                                            create_salt=False)
    original = database.storage == "original"
    salt = database.salt if original else ""  # de-identified rows need no secret: their UIDs are pseudonyms
    rows = database.query_body_part(FLAGS.query, FLAGS.limit)
    written, failed = [], []
    with locked_folder(FLAGS.output_dir, "fetch folder"):
        for row in rows:
            name = pseudonym(row["sop_instance_uid"], salt)
            try:
                dataset = dicom_database.dataset_from_row(row)
                header = None
                if FLAGS.metadata:
                    header = deidentify(dataset, salt, database.dates) if original else dataset
                written.append(bodypart.export_image(dataset, name, row["body_part"], row["patient_pseudonym"],
                                                     FLAGS.output_dir, bits=int(FLAGS.bits), metadata=header))
            except DicomError as error:
                failed.append(str(error))
        if written:
            bodypart.write_index(written, FLAGS.output_dir)
    print(f"fetched {len(written)} of {len(rows)} images for query {FLAGS.query!r} into {FLAGS.output_dir}")
    for message in failed:
        print(f"  skipped {message}")


if __name__ == "__main__":
    run(main)
