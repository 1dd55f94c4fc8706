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
