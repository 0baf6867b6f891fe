"""POT and the VAE: the KL term, the linear-Gaussian bound D_POT <= W_2^2, metrics, and the three methods."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from otlib.core.train import train
from otlib.data.digits import load_digits
from otlib.vegan2017 import pot
from otlib.vegan2017.blur import PrototypeScorer, two_prototypes
from otlib.vegan2017.classifier import classifier_path, load_classifier
from otlib.vegan2017.linear_gaussian import (ot_encoder, pot_terms, random_linear_gaussian, solve_linear_gaussian_pot,
                                             w2_to_model)
from otlib.vegan2017.scores import (SampleScorer, blur_images, frechet_distance, laplacian_sharpness,
                                    midgray_fraction, reference_scores)


# --- the VAE's terms -----------------------------------------------------------------------------------

def general_gaussian_kl(mu0, cov0, mu1, cov1) -> float:
    """KL(N(mu0, cov0) || N(mu1, cov1)) for full covariances (the textbook formula, in numpy)."""
    k = len(mu0)
    inv1 = np.linalg.inv(cov1)
    diff = mu1 - mu0
    return 0.5 * (np.trace(inv1 @ cov0) + diff @ inv1 @ diff - k + np.log(np.linalg.det(cov1) / np.linalg.det(cov0)))


@pytest.mark.parametrize("sigma_z2", [1.0, 2.0])
def test_vae_kl_matches_closed_form_and_monte_carlo(sigma_z2):
    rng = np.random.default_rng(0)
    mean, log_var = rng.normal(size=(3, 4)), rng.normal(scale=0.7, size=(3, 4))
    got = np.asarray(pot.gaussian_kl(jnp.asarray(mean), jnp.asarray(log_var), sigma_z2))
    for i in range(3):
        cov = np.diag(np.exp(log_var[i]))
        want = general_gaussian_kl(mean[i], cov, np.zeros(4), sigma_z2 * np.eye(4))
        assert got[i] == pytest.approx(want, rel=1e-5)
        # Monte Carlo: E_q[log q(z) - log p(z)] over 200k draws, within 4 standard errors.
        z = rng.multivariate_normal(mean[i], cov, size=200_000)
        ratio = (scipy.stats.multivariate_normal(mean[i], cov).logpdf(z)
                 - scipy.stats.multivariate_normal(np.zeros(4), sigma_z2 * np.eye(4)).logpdf(z))
        assert abs(ratio.mean() - got[i]) < 4 * ratio.std() / np.sqrt(len(z))


def test_gaussian_decoder_term_is_scaled_squared_error_plus_constant():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(5, 16)))
    x1, x2 = jnp.asarray(rng.uniform(size=(5, 16))), jnp.asarray(rng.uniform(size=(5, 16)))
    nll = pot._LIKELIHOODS["gaussian"]
    mean = jax.nn.sigmoid(logits)
    diff = nll(logits, x1, 0.3) - nll(logits, x2, 0.3)
    want = (pot.squared_error(x1, mean) - pot.squared_error(x2, mean)) / 0.6
    np.testing.assert_allclose(diff, want, rtol=1e-5)


# --- the linear-Gaussian POT bound ----------------------------------------------------------------------

def test_an_encoder_with_matched_marginal_attains_w2():
    # WAE Theorem 1 in the Gaussian case: a linear encoder with Q_Z = P_Z exactly has cost W_2^2(P_X, P_G).
    problem = random_linear_gaussian(jax.random.key(0), data_dim=4, latent_dim=2)
    cost, kl = pot_terms(problem, ot_encoder(problem))
    assert float(kl) == pytest.approx(0.0, abs=1e-4)
    assert float(cost) == pytest.approx(float(w2_to_model(problem)), rel=1e-4)


def test_pot_value_is_below_w2_nondecreasing_in_lambda_and_approaches_it():
    problem = random_linear_gaussian(jax.random.key(0), data_dim=4, latent_dim=2)
    w2 = float(w2_to_model(problem))
    result = solve_linear_gaussian_pot(problem, jnp.logspace(-2, 3, 6), iterations=50)
    values = np.asarray(result["pot"])
    assert (values <= w2 * (1 + 1e-5)).all()
    assert (np.diff(values) >= -1e-5 * w2).all()
    assert values[0] < 0.8 * w2 and values[-1] > 0.99 * w2
    assert (np.asarray(result["kl"]) >= -1e-6).all() and np.asarray(result["kl"])[-1] < 1e-3


# --- image metrics --------------------------------------------------------------------------------------

def test_sharpness_midgray_and_blur():
    flat = jnp.full((1, 64), 0.5)
    assert float(laplacian_sharpness(flat, (8, 8))[0]) == pytest.approx(0.0, abs=1e-7)
    assert float(midgray_fraction(flat)[0]) == 1.0
    checker = jnp.asarray((np.indices((8, 8)).sum(0) % 2).reshape(1, 64), jnp.float32)
    # every 'valid' response of a 0/1 checkerboard is +-4, so the variance is 16
    assert float(laplacian_sharpness(checker, (8, 8))[0]) == pytest.approx(16.0)
    data = load_digits()
    real = jnp.asarray(data.x_test)
    blurred = blur_images(real, data.image_shape)
    assert blurred.shape == real.shape
    assert float(jnp.mean(laplacian_sharpness(blurred, (8, 8)))) < 0.2 * float(
        jnp.mean(laplacian_sharpness(real, (8, 8))))


def test_frechet_distance_is_zero_for_equal_samples_and_grows_with_shift():
    x = jax.random.normal(jax.random.key(3), (500, 5))
    assert abs(float(frechet_distance(x, x))) < 1e-3
    assert float(frechet_distance(x, x + 2.0)) == pytest.approx(20.0, rel=1e-3)


def test_stored_classifier_and_floors():
    data = load_digits()
    classifier = load_classifier(classifier_path("digits"))
    assert classifier.test_accuracy >= 0.95 and classifier.data_name == "digits"
    assert classifier.features(jnp.asarray(data.x_test)).shape == (359, 32)
    scorer = SampleScorer.for_data(data, classifier)
    floors = reference_scores(data, scorer)
    real, blurred = floors["real (train vs test)"], floors["blurred real"]
    assert real["fcd"] < 0.1 * blurred["fcd"]
    assert real["sharpness_ratio"] == pytest.approx(1.0, abs=0.1) and blurred["sharpness_ratio"] < 0.2


def test_missing_classifier_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m otlib.vegan2017.classifier train-classifier"):
        load_classifier(tmp_path / "none.npz")


def test_two_prototype_scorer():
    data = two_prototypes(num_train=200, num_test=50)
    scorer = PrototypeScorer.from_classes(data)
    p0, p1 = scorer.prototypes
    half = jnp.stack([0.5 * (p0 + p1)] * 4)
    scores = scorer(jnp.concatenate([scorer.prototypes, half]))
    assert float(scores["prototype_distance"]) == pytest.approx(4 * 0.25 / 6)
    assert float(scores["blended"]) == pytest.approx(4 / 6)


# --- the three methods through the one driver -----------------------------------------------------------

TINY = pot.NetConfig(latent_dim=2, hidden=(32,), batch_size=50, lr_decay_epochs=())


@pytest.mark.slow
@pytest.mark.parametrize("name, options", [("WAE-MMD", {"pretrain_steps": 0}),
                                           ("WAE-GAN", {"adversary_hidden": (32, 32), "lam": 1.0, "pretrain_steps": 0}),
                                           ("VAE", {})])
def test_methods_train_and_evaluate(name, options):
    data = load_digits()
    method = pot.make_method(name, data, TINY, **options)
    result = train(method, jax.random.key(0), 200, num_seeds=2, chunk_size=100, progress=False)
    assert not result.diverged.any()
    assert (result.history["cost"][-1] < result.history["cost"][0]).all()  # it learns to reconstruct
    for metric in ("reconstruction", "mmd", "mmd_floor"):
        assert np.isfinite(result.final(metric)).all()
    assert (result.final("reconstruction") < 8.0).all()  # predicting the mean image scores ~ 11


def test_encoder_pretraining_matches_prior_moments():
    data = load_digits()
    ae = pot.autoencoder_of(pot.POTConfig(net=TINY), data)
    params = ae.init(jax.random.key(0))
    codes = lambda p: ae.encode_mean(p, jnp.asarray(data.x_train))
    mismatch = lambda z: float(jnp.sum(jnp.mean(z, 0) ** 2) + jnp.sum((jnp.cov(z.T) - jnp.eye(2)) ** 2))
    pretrained = pot.pretrain_encoder(ae, params, data, jax.random.key(1), 200)
    assert mismatch(codes(pretrained)) < 0.2 < mismatch(codes(params))


def test_configuration_errors():
    data = load_digits()
    with pytest.raises(ValueError, match="no option.*'lamda'"):
        pot.make_method("WAE-MMD", data, lamda=1.0)
    with pytest.raises(ValueError, match="choose one of"):
        pot.make_method("GAN", data)
    with pytest.raises(ValueError, match="likelihood"):
        pot.make_method("VAE", data, likelihood="poisson")
    with pytest.raises(ValueError, match="architecture"):
        pot.make_method("VAE", data, pot.NetConfig(architecture="resnet"))
