"""Tests of dltk2.inference.autoencoder: the served box and code are the reader's, un-whitened back."""

import numpy as np

from dltk2.datasets.ixi_sequences import central_box
from dltk2.export import call_signature, export_predictor
from dltk2.inference import AutoencoderPredictor, load_predictor
from dltk2.networks.autoencoder import convolutional_autoencoder_3d
from dltk2.preprocessing import whitening


def test_serving_default_and_encode_agree_with_the_reader_and_the_model(rng, tmp_path):
    model = convolutional_autoencoder_3d((8, 8, 8, 2), filters=(4,), strides=(2,), num_hidden_units=3)
    predictor = AutoencoderPredictor(model, (8, 8, 8), channels=2)
    image = np.stack([rng.normal(100, 20, (7, 10, 9)), rng.normal(-5, 2, (7, 10, 9))], axis=-1).astype(np.float32)
    outputs = predictor.predict(image=image)
    whitened = np.stack([whitening(image[..., k]) for k in range(2)], axis=-1)
    box = central_box(whitened, (8, 8, 8))
    np.testing.assert_array_equal(outputs["corner"], [-1, 1, 0])
    np.testing.assert_allclose(outputs["code"], model.get_layer("encoder")(box[None])[0], atol=1e-5)
    rebuilt = model(box[None])[0].numpy() * image.std(axis=(0, 1, 2)) + image.mean(axis=(0, 1, 2))
    np.testing.assert_allclose(outputs["reconstruction"], rebuilt, rtol=1e-4, atol=1e-3)
    _, saved_model = export_predictor(tmp_path / "model", predictor)
    np.testing.assert_allclose(call_signature(saved_model, {"image": image}, "encode")["code"], outputs["code"],
                               atol=1e-5)
    assert load_predictor(tmp_path / "model").run("encode", image=image)["code"].shape == (3,)
