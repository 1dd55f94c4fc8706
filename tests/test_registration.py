"""Tests of dltk2.registration: ``import dltk2`` loads no TensorFlow, yet Keras reads every dltk2 model file."""

import subprocess
import sys

import pytest

from dltk2.networks.resnet import resnet_3d
from dltk2.networks.transfer import transfer_classifier


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    resnet_3d(input_shape=[8, 8, 8, 1], num_classes=2, num_res_units=1, filters=[2, 4], strides=[1, 2]).save(
        folder / "resnet.keras")
    transfer_classifier("MobileNet", (32, 32, 1), 3, weights=None, head_widths=[4]).save(folder / "mobilenet.keras")
    return folder


@pytest.mark.slow  # fresh processes, each importing TensorFlow
@pytest.mark.parametrize("imports", ["import dltk2; import keras", "import dltk2; import tensorflow; import keras",
                                     "import keras; import dltk2"])
def test_keras_loads_dltk2_models_after_import_dltk2_alone(model_files, imports):
    code = (f"{imports}\n"
            f"for name in ('resnet', 'mobilenet'):\n"
            f"    keras.models.load_model(r'{model_files}/' + name + '.keras')\n"
            f"print('loaded')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr[-2000:]


def test_import_dltk2_loads_no_tensorflow():
    code = "import sys, dltk2; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr
