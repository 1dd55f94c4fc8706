"""Tests of dltk2.inference.generator: given noise and seeded samples, served alike."""

import numpy as np

from dltk2.export import call_signature, export_predictor
from dltk2.inference import GeneratorPredictor, load_predictor
from dltk2.networks.gan import dcgan_generator_3d


def test_noise_and_seeded_samples_are_the_generators_and_repeat(rng, tmp_path):
    generator = dcgan_generator_3d(5, (8, 8, 8, 1), (8,))
    predictor = GeneratorPredictor(generator)
    noise = rng.normal(size=(3, 5)).astype(np.float32)
    images = predictor.predict(noise=noise)["images"]
    np.testing.assert_allclose(images, generator(noise)[..., 0], atol=1e-6)
    first = predictor.run("sample", count=4, seed=np.array([3, 7]))
    again = predictor.run("sample", count=4, seed=np.array([3, 7]))
    assert first["images"].shape == (4, 8, 8, 8)
    np.testing.assert_array_equal(first["images"], again["images"])
    np.testing.assert_allclose(predictor.predict(noise=first["noise"])["images"], first["images"], atol=1e-6)
    _, saved_model = export_predictor(tmp_path / "model", predictor)
    served = call_signature(saved_model, {"count": np.int32(4), "seed": np.array([3, 7], np.int64)}, "sample")
    np.testing.assert_allclose(served["images"], first["images"], atol=1e-6)
    assert isinstance(load_predictor(tmp_path / "model"), GeneratorPredictor)
