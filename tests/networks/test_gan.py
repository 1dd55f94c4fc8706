"""Tests of dltk2.networks.gan: shapes, one joint step that moves both networks, saving and loading."""

import keras
import numpy as np
import pytest

from dltk2.networks.gan import dcgan_3d, dcgan_generator_3d


def test_shapes_and_the_generators_range(rng):
    model = dcgan_3d(code_size=6, volume_shape=(8, 16, 8, 1), generator_filters=(8, 4), discriminator_filters=(4, 8))
    volumes = model(rng.normal(size=(3, 6)).astype(np.float32))
    assert volumes.shape == (3, 8, 16, 8, 1) and np.abs(volumes).max() <= 1.0
    assert model.discriminator(volumes).shape == (3, 1)
    with pytest.raises(ValueError, match=r"output size \[10, 16, 8\] must be divisible by 2 \*\* 2"):
        dcgan_generator_3d(6, (10, 16, 8, 1), (8, 4))


def test_one_fit_step_updates_both_networks_and_the_model_saves(rng, tmp_path):
    model = dcgan_3d(code_size=4, volume_shape=(8, 8, 8, 1), generator_filters=(8,), discriminator_filters=(4,))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    before = [w.copy() for w in (model.generator.get_weights()[0], model.discriminator.get_weights()[0])]
    real = np.tanh(rng.normal(size=(8, 8, 8, 8, 1))).astype(np.float32)
    history = model.fit(real, batch_size=4, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "d_loss", "g_loss", "d_real"}
    assert history.history["loss"][0] == pytest.approx(history.history["d_loss"][0] + history.history["g_loss"][0],
                                                       rel=1e-5)
    after = (model.generator.get_weights()[0], model.discriminator.get_weights()[0])
    assert all(not np.allclose(b, a) for b, a in zip(before, after))
    assert int(model.optimizer.iterations.numpy()) == 2
    model.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras", compile=False)
    noise = rng.normal(size=(2, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.generator(noise), model.generator(noise), atol=1e-6)
