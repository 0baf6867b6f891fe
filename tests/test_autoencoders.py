"""The encoder/decoder pairs: shapes, posteriors, and the layout of the WAE paper's convolutional MNIST pair."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from otlib.vegan2017.autoencoders import LOG_VAR_CLIP, make_autoencoder
from otlib.data.digits import load_digits
from otlib.vegan2017 import pot
from otlib.core.train import train


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.parametrize("gaussian", [False, True])
def test_pairs_map_images_to_codes_and_back(architecture, gaussian):
    ae = make_autoencoder(architecture, latent_dim=8, image_shape=(28, 28), hidden=(32,), gaussian=gaussian)
    params = ae.init(jax.random.key(0))
    x = jax.random.uniform(jax.random.key(1), (3, 28 * 28))
    mean, log_var = ae.posterior(params, x)
    assert mean.shape == (3, 8)
    if gaussian:
        assert log_var.shape == (3, 8) and float(jnp.abs(log_var).max()) <= LOG_VAR_CLIP
        assert not np.allclose(ae.encode(params, x, jax.random.key(2)), mean)  # a draw, not the mean
    else:
        assert log_var is None
        np.testing.assert_array_equal(ae.encode(params, x, jax.random.key(2)), mean)
    images = ae.reconstruct(params, x)
    assert images.shape == (3, 28 * 28) and float(images.min()) >= 0.0 and float(images.max()) <= 1.0
    assert ae.generate(params, jax.random.key(3), 5).shape == (5, 28 * 28)


def test_conv_pair_is_the_wae_papers_mnist_pair():
    # WAE §4 (MNIST): four stride-2 4x4 convolutions 128-256-512-1024 (28 -> 14 -> 7 -> 4 -> 2), FC to d_z;
    # FC to 7x7x1024, stride-2 up-convolutions 512 and 256 (7 -> 14 -> 28), a stride-1 one to one channel.
    ae = make_autoencoder("conv", latent_dim=8, image_shape=(28, 28))
    params = jax.eval_shape(ae.init, jax.random.key(0))
    encoder, decoder = params["encoder"]["params"], params["decoder"]["params"]
    assert [encoder[f"Conv_{i}"]["kernel"].shape for i in range(4)] == [
        (4, 4, 1, 128), (4, 4, 128, 256), (4, 4, 256, 512), (4, 4, 512, 1024)]
    assert encoder["Dense_0"]["kernel"].shape == (2 * 2 * 1024, 8)
    assert decoder["Dense_0"]["kernel"].shape == (8, 7 * 7 * 1024)
    assert [decoder[f"ConvTranspose_{i}"]["kernel"].shape for i in range(3)] == [
        (4, 4, 1024, 512), (4, 4, 512, 256), (4, 4, 256, 1)]


def test_conv_decoder_needs_sides_divisible_by_four():
    ae = make_autoencoder("conv", latent_dim=2, image_shape=(10, 10))
    with pytest.raises(ValueError, match="multiples of 4"):
        ae.init(jax.random.key(0))


@pytest.mark.slow
def test_conv_pair_trains_through_the_driver():
    # The full profile's architecture (with MNIST there) on the 8x8 digits: a few WAE-MMD steps run through the
    # driver, stay finite and lower the reconstruction cost.
    net = pot.NetConfig(architecture="conv", latent_dim=2, batch_size=16, lr_decay_epochs=())
    method = pot.make_method("WAE-MMD", load_digits(), net, pretrain_steps=0)
    result = train(method, jax.random.key(0), 6, chunk_size=3, progress=False)
    assert not result.diverged.any()
    assert np.isfinite(result.history["loss"]).all()
    assert result.history["cost"][-1, 0] < result.history["cost"][0, 0]
