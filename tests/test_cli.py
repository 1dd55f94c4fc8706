"""Tests of dltk2.cli: data errors become one line."""

import tensorflow as tf

from dltk2.cli import data_error_message
from dltk2.io.image import ImageReadError
from dltk2.io.reader import CsvError


def test_data_errors_give_their_first_line():
    assert data_error_message(CsvError("a.csv: lacks column(s) 'AGE'")) == "a.csv: lacks column(s) 'AGE'"
    assert data_error_message(ImageReadError("b.nii.gz: no such file\nmore")) == "b.nii.gz: no such file"


def test_reader_errors_inside_tf_data_are_found_in_the_op_error():
    message = ("ReaderError: reading ['IXI014', '/d/T1.nii.gz', '0']: /d/T1.nii.gz: no such file\n"
               "Traceback (most recent call last): ...")
    error = tf.errors.InvalidArgumentError(None, None, message)
    assert data_error_message(error) == "reading ['IXI014', '/d/T1.nii.gz', '0']: /d/T1.nii.gz: no such file"


def test_other_errors_are_not_data_errors():
    assert data_error_message(ValueError("bug")) is None
    assert data_error_message(tf.errors.InternalError(None, None, "kernel failed")) is None


def test_any_user_error_raised_inside_a_pipeline_is_found_in_the_op_error():
    from dltk2.errors import DataError
    from dltk2.io.pipeline import py_function

    def read(index):
        raise DataError(f"/d/series{int(index)}.npy: header promises more than the file holds")

    dataset = tf.data.Dataset.range(2).map(lambda index: py_function(read, [index], tf.float32))
    try:
        list(dataset)
    except tf.errors.OpError as error:
        assert data_error_message(error) == "/d/series0.npy: header promises more than the file holds"
    else:
        raise AssertionError("the pipeline did not fail")


def test_usage_and_resource_errors_are_one_line_too():
    from absl import app

    from dltk2.errors import ResourceError

    assert data_error_message(app.UsageError("--val_fraction 0.9 and --test_fraction 0.2 must leave a "
                                             "training split")).startswith("--val_fraction")
    assert data_error_message(ResourceError("/m: model folder in use by pid 7")) == "/m: model folder in use by pid 7"
