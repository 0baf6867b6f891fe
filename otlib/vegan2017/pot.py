"""Penalized optimal transport (POT) and the VAE as :class:`~otlib.core.method.Method` factories.

Bousquet et al. (2017, "VEGAN cookbook", arXiv:1705.07642) relax the encoder form of OT (Tolstikhin et al.
2018, arXiv:1711.01558, Theorem 1) to

    D_POT(P_X, P_G) = inf_Q  E_{P_X} E_{Q(Z|X)} c(X, G(Z)) + lambda D_Z(Q_Z, P_Z)

and minimise it jointly over the encoder Q and the decoder G. The Wasserstein auto-encoder paper
(Tolstikhin et al. 2018) runs it with two latent divergences D_Z:

* :func:`wae_mmd`: D_Z = MMD with the IMQ kernel (WAE Algorithm 2), :mod:`otlib.vegan2017.mmd`;
* :func:`wae_gan`: D_Z = Jensen-Shannon through a latent adversary (WAE Algorithm 1), which makes POT
  the adversarial auto-encoder (AAE) of Makhzani et al. (VEGAN's theorem);

and compares both with :func:`vae`, whose penalty is the per-sample KL(Q(Z|x) || P_Z).

**The cost.** c(x, y) = ||x - y||^2 summed over the pixels of one image (:func:`squared_error`, "SSE").
The released WAE code (``tolstikhin/wae``) scales it by 0.05 (``l2sq``) and the paper's lambda = 10 for MNIST
is relative to that: the training objective here is ``cost_scale * SSE + lambda * D_Z`` with
``cost_scale = 0.05``, i.e. lambda / cost_scale = 200 per unit of raw SSE. Reported reconstruction
errors are raw per-image SSE on [0, 1] pixels.

All three share one :class:`NetConfig` (same networks, batch, Adam) and one evaluation
(:func:`evaluation`), and train with the one driver :func:`otlib.core.train.train`. Each step draws its batch
by index sampling from the training images, held on the device, so nothing crosses from the host.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Protocol

import jax
import jax.numpy as jnp
import optax

from otlib.vegan2017.autoencoders import Autoencoder, make_autoencoder
from otlib.data.digits import ImageData
from otlib.core.method import Method
from otlib.vegan2017.mmd import IMQ_SCALES, mmd_imq
from otlib.nn.nets import MLP

__all__ = ["NetConfig", "POTConfig", "VAEConfig", "SampleMetrics", "wae_mmd", "wae_gan", "vae", "make_method",
           "METHODS", "squared_error", "gaussian_kl", "autoencoder_of", "evaluation", "pretrain_encoder", "EVAL_SIZE",
           "PRETRAIN_BATCH", "PRETRAIN_TOLERANCE"]

EVAL_SIZE = 2000
"""Held-out codes used for MMD(Q_Z, P_Z) in :func:`evaluation` (all of digits' 359; 2000 of MNIST's 10k)."""


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Networks and optimiser shared by every model of a comparison (WAE §4: identical networks)."""

    architecture: str = "mlp"  # digits: MLP 64-256-256-d_z; "conv" is the WAE MNIST pair
    latent_dim: int = 8  # WAE §4: d_z = 8 for MNIST
    hidden: tuple[int, ...] = (256, 256)  # MLP widths (ignored by "conv")
    sigma_z2: float = 1.0  # WAE MNIST: P_Z = N(0, sigma_z^2 I) with sigma_z^2 = 1
    batch_size: int = 100  # WAE §4 and released configs
    lr: float = 1e-3  # WAE MNIST Adam step size (encoder and decoder)
    b1: float = 0.5  # WAE §4: Adam beta_1 = 0.5
    lr_decay_epochs: tuple[tuple[int, float], ...] = ((30, 0.5), (50, 0.2))  # WAE code: /2 at epoch 30, /5 at 50


@dataclasses.dataclass(frozen=True)
class POTConfig:
    """WAE-MMD / WAE-GAN: the POT objective ``cost_scale * SSE + lam * D_Z`` (module docstring)."""

    net: NetConfig = NetConfig()
    lam: float = 10.0  # WAE MNIST: lambda = 10 for both WAE-MMD and WAE-GAN
    cost_scale: float = 0.05  # released WAE code (``l2sq``): c = 0.05 * ||x - y||^2
    mmd_scales: tuple[float, ...] = IMQ_SCALES  # released WAE code's multi-scale IMQ; (1.0,) is the paper's
    gaussian_encoder: bool = False  # WAE §4: deterministic encoders in the reported runs
    adversary_hidden: tuple[int, ...] = (512, 512, 512, 512)  # WAE MNIST adversary: 4 x FC512-ReLU
    adversary_lr: float = 5e-4  # WAE MNIST config: adversary Adam step size
    prior_logit_trick: bool = False  # WAE code's gan_p_trick (AVB): adds log p_Z(z) to the adversary logit
    pretrain_steps: int = 200  # WAE code's e_pretrain: <= 200 Adam steps matching Q_Z's moments to P_Z's


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """The VAE baseline on the same networks: Gaussian encoder, Bernoulli or Gaussian decoder (WAE §4)."""

    net: NetConfig = NetConfig()
    likelihood: str = "bernoulli"  # WAE §4 and the authors' iclr_mnist_vae.py: sigmoid cross-entropy
    decoder_variance: float = 0.1  # our choice, for likelihood="gaussian" only (N(G(z), s^2 I))
    beta: float = 1.0  # weight of the KL term (1 = the VAE; other values trace a frontier)

    @property
    def gaussian_encoder(self) -> bool:
        """Always: the KL term needs the density of Q(Z|x) (a deterministic code has KL = inf)."""
        return True


class SampleMetrics(Protocol):
    """Scores of generated images (e.g. :class:`otlib.vegan2017.scores.SampleScorer`): ``num_samples`` of them are
    drawn at each evaluation and passed as ``(num_samples, D)`` pixels in [0, 1]."""

    num_samples: int

    def __call__(self, images: jax.Array) -> dict[str, jax.Array]: ...


# ----------------------------------------------------------------------------------------------------
# The terms of the objectives.

def squared_error(x: jax.Array, y: jax.Array) -> jax.Array:
    """c(x, y) = ||x - y||^2 summed over the pixels of each image: ``(n, D), (n, D) -> (n,)``."""
    return jnp.sum((x - y) ** 2, axis=-1)


def gaussian_kl(mean: jax.Array, log_var: jax.Array, sigma_z2: float = 1.0) -> jax.Array:
    """KL(N(mean, diag exp(log_var)) || N(0, sigma_z^2 I)) per row, in closed form:

        1/2 sum_i [ (exp(log_var_i) + mean_i^2) / sigma_z^2 - 1 - log_var_i + log sigma_z^2 ].
    """
    return 0.5 * jnp.sum((jnp.exp(log_var) + mean ** 2) / sigma_z2 - 1.0 - log_var + jnp.log(sigma_z2), axis=-1)


def _bernoulli_nll(logits: jax.Array, x: jax.Array, variance: float) -> jax.Array:
    """-log p(x|z) summed over pixels for a Bernoulli decoder (sigmoid cross-entropy with logits)."""
    del variance
    return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, x), axis=-1)


def _gaussian_nll(logits: jax.Array, x: jax.Array, variance: float) -> jax.Array:
    """-log N(x; G(z), s^2 I) = ||x - G(z)||^2 / (2 s^2) + D/2 log(2 pi s^2)."""
    dim = x.shape[-1]
    return squared_error(x, jax.nn.sigmoid(logits)) / (2.0 * variance) + 0.5 * dim * jnp.log(2.0 * jnp.pi * variance)


_LIKELIHOODS: dict[str, Callable[[jax.Array, jax.Array, float], jax.Array]] = {
    "bernoulli": _bernoulli_nll, "gaussian": _gaussian_nll}


# ----------------------------------------------------------------------------------------------------
# Shared pieces: the optimiser, the batch, the evaluation.

def _adam(lr: float, net: NetConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Adam(lr, b1) with the WAE step schedule: lr times each factor from its epoch on."""
    boundaries = {int(epoch * steps_per_epoch): factor for epoch, factor in net.lr_decay_epochs}
    return optax.adam(optax.piecewise_constant_schedule(lr, boundaries), b1=net.b1)


def _batch_sampler(data: ImageData, batch_size: int) -> Callable[[jax.Array], jax.Array]:
    """x_1..n ~ P_X (the empirical training measure), drawn on the device by index sampling."""
    x_train = jnp.asarray(data.x_train)
    if batch_size < 2 or batch_size > x_train.shape[0]:
        raise ValueError(f"batch_size must lie in [2, {x_train.shape[0]}] (the U-statistic needs 2 codes), "
                         f"got {batch_size}")

    def sample(key: jax.Array) -> jax.Array:
        return x_train[jax.random.randint(key, (batch_size,), 0, x_train.shape[0])]

    return sample


def _gradient_step(loss_fn: Callable, tx: optax.GradientTransformation,
                   sample_batch: Callable[[jax.Array], jax.Array]) -> Callable:
    """``step(state, key)``: one ``tx`` update of ``state["params"]`` on ``loss_fn(params, x, key) -> (loss,
    aux)`` for a fresh batch ``x``; the metrics are the loss and ``aux``."""

    def step(state, key):
        k_batch, k_loss = jax.random.split(key)
        x = sample_batch(k_batch)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], x, k_loss)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, {"loss": loss, **aux}

    return step


def autoencoder_of(config: POTConfig | VAEConfig, data: ImageData) -> Autoencoder:
    """The encoder/decoder pair a configuration trains on ``data`` (the VAE's encoder is Gaussian)."""
    net = config.net
    return make_autoencoder(net.architecture, net.latent_dim, data.image_shape, hidden=net.hidden,
                            gaussian=config.gaussian_encoder, sigma_z2=net.sigma_z2)


def evaluation(ae: Autoencoder, data: ImageData, *, sample_metrics: Optional[SampleMetrics] = None,
               eval_size: int = EVAL_SIZE) -> Callable[[dict, jax.Array], dict[str, jax.Array]]:
    """``evaluate(params, key)``: the held-out scores every model is judged on.

    * ``reconstruction``: mean per-image SSE between test images and G(posterior mean);
    * ``mmd``: MMD^2(Q_Z, P_Z) (multi-scale IMQ U-statistic) between one draw z~ ~ Q(Z|x) per test image
      and as many fresh prior draws; ``mmd_floor``: the same estimate between two independent prior
      samples of that size, the null level the first is to be read against;
    * the entries of ``sample_metrics`` on ``sample_metrics.num_samples`` model samples G(Z), Z ~ P_Z.
    """
    x_test = jnp.asarray(data.x_test)
    x_codes = x_test[:eval_size]
    n = x_codes.shape[0]

    def evaluate(params: dict, key: jax.Array) -> dict[str, jax.Array]:
        k_code, k_prior, k_null1, k_null2, k_gen = jax.random.split(key, 5)
        codes = ae.encode(params, x_codes, k_code)
        scores = {
            "reconstruction": jnp.mean(squared_error(x_test, ae.reconstruct(params, x_test))),
            "mmd": mmd_imq(codes, ae.sample_prior(k_prior, n), ae.sigma_z2),
            "mmd_floor": mmd_imq(ae.sample_prior(k_null1, n), ae.sample_prior(k_null2, n), ae.sigma_z2),
        }
        if sample_metrics is not None:
            scores.update(sample_metrics(ae.generate(params, k_gen, sample_metrics.num_samples)))
        return scores

    return evaluate


PRETRAIN_BATCH = 1000
"""Images per encoder pre-training step (the released WAE code's MNIST value)."""
PRETRAIN_TOLERANCE = 0.1
"""Encoder pre-training stops once the moment mismatch is below this (released WAE code)."""


def pretrain_encoder(ae: Autoencoder, params: dict, data: ImageData, key: jax.Array, max_steps: int,
                     lr: float = 1e-3) -> dict:
    """Move the encoder so that Q_Z has P_Z's first two moments before POT training starts.

    The released WAE code (``e_pretrain``) minimises ||mean(z~)||^2 + ||cov(z~) - sigma_z^2 I||_F^2
    on batches of codes with Adam for at most ``max_steps`` steps, stopping once it is below 0.1. Without
    it the latent adversary of WAE-GAN starts against codes bunched near 0 and chases them around as one
    point (the auto-encoder then never recovers). Pure: a ``lax.while_loop``, so it runs inside ``init``.
    """
    if max_steps == 0:
        return params
    x_train = jnp.asarray(data.x_train)
    batch = min(PRETRAIN_BATCH, x_train.shape[0])
    tx = optax.adam(lr, b1=0.5)

    def mismatch(encoder_params, step):
        k_batch, k_code = jax.random.split(jax.random.fold_in(key, step))
        idx = jax.random.randint(k_batch, (batch,), 0, x_train.shape[0])
        codes = ae.encode({"encoder": encoder_params}, x_train[idx], k_code)
        centred = codes - jnp.mean(codes, axis=0)
        cov = centred.T @ centred / (batch - 1)
        return jnp.sum(jnp.mean(codes, axis=0) ** 2) + jnp.sum((cov - ae.sigma_z2 * jnp.eye(ae.latent_dim)) ** 2)

    def cond(carry):
        step, _, _, loss = carry
        return (step < max_steps) & (loss >= PRETRAIN_TOLERANCE)

    def body(carry):
        step, encoder_params, opt, _ = carry
        loss, grads = jax.value_and_grad(mismatch)(encoder_params, step)
        updates, opt = tx.update(grads, opt, encoder_params)
        return step + 1, optax.apply_updates(encoder_params, updates), opt, loss

    start = (jnp.int32(0), params["encoder"], tx.init(params["encoder"]), jnp.float32(jnp.inf))
    _, encoder_params, _, _ = jax.lax.while_loop(cond, body, start)
    return {**params, "encoder": encoder_params}


def _steps_per_epoch(data: ImageData, net: NetConfig) -> int:
    return max(1, data.x_train.shape[0] // net.batch_size)


# ----------------------------------------------------------------------------------------------------
# The three methods.

def wae_mmd(data: ImageData, config: POTConfig = POTConfig(), *,
            sample_metrics: Optional[SampleMetrics] = None) -> Method:
    """POT with D_Z = MMD (WAE-MMD, WAE Algorithm 2), on the images of ``data``.

    Each step: x_1..n ~ P_X, z~_i ~ Q(Z|x_i), z_1..n ~ P_Z; descend
    ``cost_scale * mean_i ||x_i - G(z~_i)||^2 + lam * MMD_U(z~, z)`` in the encoder and decoder.
    State: ``{"params", "opt"}``. Metrics: ``loss`` (that objective), ``cost`` (SSE), ``penalty`` (MMD).
    """
    ae = autoencoder_of(config, data)
    tx = _adam(config.net.lr, config.net, _steps_per_epoch(data, config.net))
    sample_batch = _batch_sampler(data, config.net.batch_size)
    evaluate = evaluation(ae, data, sample_metrics=sample_metrics)

    def objective(params, x, key):
        k_code, k_prior = jax.random.split(key)
        codes = ae.encode(params, x, k_code)
        cost = jnp.mean(squared_error(x, ae.decode(params, codes)))
        penalty = mmd_imq(codes, ae.sample_prior(k_prior, x.shape[0]), ae.sigma_z2, config.mmd_scales)
        return config.cost_scale * cost + config.lam * penalty, {"cost": cost, "penalty": penalty}

    def init(key):
        k_ae, k_pre = jax.random.split(key)
        params = pretrain_encoder(ae, ae.init(k_ae), data, k_pre, config.pretrain_steps)
        return {"params": params, "opt": tx.init(params)}

    step = _gradient_step(objective, tx, sample_batch)
    return Method("WAE-MMD", init, step, lambda state, key: evaluate(state["params"], key), config)


def _log_prior(z: jax.Array, sigma_z2: float) -> jax.Array:
    """log N(z; 0, sigma_z^2 I) per row."""
    d = z.shape[-1]
    return -0.5 * jnp.sum(z ** 2, axis=-1) / sigma_z2 - 0.5 * d * jnp.log(2.0 * jnp.pi * sigma_z2)


def wae_gan(data: ImageData, config: POTConfig = POTConfig(), *,
            sample_metrics: Optional[SampleMetrics] = None) -> Method:
    """POT with D_Z = JS through a latent adversary D (WAE-GAN, WAE Algorithm 1) = the AAE (VEGAN).

    Each step, on one batch x_1..n ~ P_X, z~_i ~ Q(Z|x_i), z_i ~ P_Z, with D(z) = sigmoid(logit(z)):

    * the adversary descends ``-lam/n sum_i [log D(z_i) + log(1 - D(z~_i))]`` (the lambda-scaled loss of
      the released code), and
    * the encoder and decoder descend ``1/n sum_i [cost_scale ||x_i - G(z~_i)||^2 - lam log D(z~_i)]``
      (the non-saturating form of the encoder's loss).

    The two alternate on the same batch, one adversary step per auto-encoder step (WAE Algorithm 1): the
    adversary moves first, against the current codes; the auto-encoder then moves against the updated
    adversary. Over a run this is the released code's order (auto-encoder, then adversary); simultaneous
    updates let the codes collapse to one wandering point at digits scale. The encoder is first moved to
    P_Z's moments (:func:`pretrain_encoder`). State: ``{"params", "opt", "adversary", "adversary_opt"}``.
    Metrics: ``loss`` (the auto-encoder objective), ``cost``, ``penalty`` (-log D(z~), mean) and
    ``adversary_loss``.
    """
    ae = autoencoder_of(config, data)
    adversary = MLP(tuple(config.adversary_hidden) + (1,), act="relu")
    steps_per_epoch = _steps_per_epoch(data, config.net)
    tx = _adam(config.net.lr, config.net, steps_per_epoch)
    tx_adv = _adam(config.adversary_lr, config.net, steps_per_epoch)
    sample_batch = _batch_sampler(data, config.net.batch_size)
    evaluate = evaluation(ae, data, sample_metrics=sample_metrics)

    def logit(adv_params, z):
        out = adversary.apply(adv_params, z)
        return out + _log_prior(z, ae.sigma_z2) if config.prior_logit_trick else out

    def ae_objective(params, adv_params, x, key):
        codes = ae.encode(params, x, key)
        cost = jnp.mean(squared_error(x, ae.decode(params, codes)))
        penalty = jnp.mean(jax.nn.softplus(-logit(adv_params, codes)))  # -log D(z~)
        return config.cost_scale * cost + config.lam * penalty, {"cost": cost, "penalty": penalty}

    def adversary_objective(adv_params, prior_draws, codes):
        # -log D(z) - log(1 - D(z~)) with log D = -softplus(-logit) and log(1 - D) = -softplus(logit).
        return config.lam * jnp.mean(jax.nn.softplus(-logit(adv_params, prior_draws))
                                     + jax.nn.softplus(logit(adv_params, codes)))

    def init(key):
        k_ae, k_adv, k_pre = jax.random.split(key, 3)
        params = pretrain_encoder(ae, ae.init(k_ae), data, k_pre, config.pretrain_steps)
        adv_params = adversary.init(k_adv, jnp.zeros((1, ae.latent_dim)))
        return {"params": params, "opt": tx.init(params), "adversary": adv_params,
                "adversary_opt": tx_adv.init(adv_params)}

    def step(state, key):
        k_batch, k_code, k_prior = jax.random.split(key, 3)
        x = sample_batch(k_batch)
        codes = ae.encode(state["params"], x, k_code)
        adv_loss, adv_grads = jax.value_and_grad(adversary_objective)(
            state["adversary"], ae.sample_prior(k_prior, x.shape[0]), jax.lax.stop_gradient(codes))
        adv_updates, adv_opt = tx_adv.update(adv_grads, state["adversary_opt"], state["adversary"])
        adv_params = optax.apply_updates(state["adversary"], adv_updates)
        (loss, aux), grads = jax.value_and_grad(ae_objective, has_aux=True)(state["params"], adv_params, x, k_code)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        new_state = {"params": optax.apply_updates(state["params"], updates), "opt": opt,
                     "adversary": adv_params, "adversary_opt": adv_opt}
        return new_state, {"loss": loss, "adversary_loss": adv_loss, **aux}

    return Method("WAE-GAN", init, step, lambda state, key: evaluate(state["params"], key), config)


def vae(data: ImageData, config: VAEConfig = VAEConfig(), *,
        sample_metrics: Optional[SampleMetrics] = None) -> Method:
    """The VAE (Kingma & Welling 2014, arXiv:1312.6114) on the shared networks: minimise the negative ELBO

        E_{P_X} [ beta KL(Q(Z|X) || P_Z) - E_{Q(Z|X)} log p_G(X|Z) ],

    with a Gaussian encoder (reparameterised, one draw per image), the closed-form KL
    (:func:`gaussian_kl`) and a Bernoulli (paper) or Gaussian decoder. Metrics: ``loss`` (the negative
    ELBO per image, in nats), ``cost`` (SSE of the decoded means), ``penalty`` (the KL).
    """
    if config.likelihood not in _LIKELIHOODS:
        raise ValueError(f"unknown VAE likelihood {config.likelihood!r}; choose one of {sorted(_LIKELIHOODS)}")
    nll = _LIKELIHOODS[config.likelihood]
    ae = autoencoder_of(config, data)
    tx = _adam(config.net.lr, config.net, _steps_per_epoch(data, config.net))
    sample_batch = _batch_sampler(data, config.net.batch_size)
    evaluate = evaluation(ae, data, sample_metrics=sample_metrics)

    def negative_elbo(params, x, key):
        mean, log_var = ae.posterior(params, x)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
        logits = ae.decode_logits(params, z)
        kl = jnp.mean(gaussian_kl(mean, log_var, ae.sigma_z2))
        loss = jnp.mean(nll(logits, x, config.decoder_variance)) + config.beta * kl
        return loss, {"cost": jnp.mean(squared_error(x, jax.nn.sigmoid(logits))), "penalty": kl}

    def init(key):
        params = ae.init(key)
        return {"params": params, "opt": tx.init(params)}

    step = _gradient_step(negative_elbo, tx, sample_batch)
    return Method("VAE", init, step, lambda state, key: evaluate(state["params"], key), config)


METHODS: dict[str, tuple[Callable[..., Method], type]] = {
    "VAE": (vae, VAEConfig), "WAE-MMD": (wae_mmd, POTConfig), "WAE-GAN": (wae_gan, POTConfig)}
"""The three models of WAE Table 1, by the names the tables use: (factory, configuration type)."""


def make_method(name: str, data: ImageData, net: NetConfig = NetConfig(), *,
                sample_metrics: Optional[SampleMetrics] = None, **overrides) -> Method:
    """One of :data:`METHODS` on ``data`` with the shared ``net`` and per-model ``overrides``.

    ``make_method("WAE-MMD", data, net, lam=10.0)`` builds ``wae_mmd(data, POTConfig(net=net, lam=10.0))``;
    the VAE takes :class:`VAEConfig` fields (``likelihood``, ``beta``, ...).
    """
    if name not in METHODS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(METHODS)}")
    factory, config_type = METHODS[name]
    fields = {f.name for f in dataclasses.fields(config_type)} - {"net"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"{name} has no option(s) {unknown}; its options are {sorted(fields)}")
    return factory(data, config_type(net=net, **overrides), sample_metrics=sample_metrics)
