"""Test configuration: one TensorFlow import for the whole suite, two logical CPUs for MirroredStrategy."""

import dltk2  # noqa: F401  (first, as in the applications: oneDNN on)

import os
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "data_scripts"))
sys.path.insert(0, str(REPO / "tests"))  # for helpers.py

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(params=["sqlite", "mysql"])
def database_url(request, tmp_path):
    """An empty database: SQLite in ``tmp_path``, and a fresh MariaDB database where DLTK2_TEST_MYSQL_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server_url = os.environ.get("DLTK2_TEST_MYSQL_URL")
    if not server_url:
        pytest.skip("DLTK2_TEST_MYSQL_URL not set: no MariaDB/MySQL server to test against (.ci/run starts one)")
    import sqlalchemy as sa

    name = f"dltk2_test_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(server_url)
    with server.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE {name}"))
    yield f"{server_url.rstrip('/')}/{name}"
    with server.begin() as connection:
        connection.execute(sa.text(f"DROP DATABASE {name}"))
    server.dispose()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def oblique_image(rng):
    """A small anisotropic float image with a non-identity direction and non-zero origin."""
    array = rng.normal(100.0, 20.0, size=(7, 11, 13)).astype(np.float32)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 3.0))
    image.SetOrigin((-12.5, 40.25, 7.0))
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    image.SetDirection(rotation.flatten().tolist())
    return image


@pytest.fixture(scope="session")
def tiny_ixi(tmp_path_factory):
    """Twelve synthetic IXI subjects at 8 mm (about 24x29x25 voxels)."""
    import make_synthetic_ixi

    output = tmp_path_factory.mktemp("ixi")
    csv_path = make_synthetic_ixi.make_dataset(output, num_subjects=12, seed=3, spacings=[8.0], workers=1)
    return csv_path


def pytest_collection_modifyitems(config, items):
    """Every end-to-end application test is slow: ``pytest -m "not slow"`` is the quick loop."""
    applications = REPO / "tests" / "applications"
    for item in items:
        if applications in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
