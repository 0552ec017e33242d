"""Transferability scores: how well a frozen backbone's features suit a classifier, before any training.

- `logme`: LogME (You, Liu, Wang, Long, "LogME: Practical Assessment of Pre-trained Models for
  Transfer Learning", ICML 2021). For each class (one-vs-rest target `y`), a Bayesian linear model
  `y ~ N(F w, 1/beta)`, `w ~ N(0, 1/alpha)` on the features `F`; alpha and beta maximize the
  marginal evidence `log p(y | F)` by the paper's fixed-point iteration, and LogME is that evidence
  per example, averaged over classes. Higher is better; the value is invariant to scaling the
  features. Here all classes are solved at once from one eigendecomposition of `F`'s Gram matrix.
- `linear_probe`: leave-one-out accuracy of a ridge-regression linear classifier on the
  standardized features (exact, in closed form from the same decomposition): a more familiar
  second opinion.

Both need `F = U diag(sigma) V^T`'s `U` and `sigma`. They come from `eigh` of the smaller Gram
matrix (`F^T F` when N > D, as the authors' code does, else `F F^T`): a third of an SVD's work,
and an SVD run right after a TensorFlow forward pass was measured at 12 s for 2,231 x 1,280
features on 2 cores, its threads competing with TensorFlow's still-spinning pool.

Pure numpy: no Keras, no TensorFlow.
"""

import numpy as np

from keras_tl.core.contract.errors import ConfigError

# The paper's Algorithm 1 iterates "until alpha, beta converge"; here until alpha/beta changes by
# under 1e-6 (relative). The reference code (github.com/thuml/LogME, `LogME.each_evidence`) stops
# after at most 11 updates or under 1% change: `logme(..., tolerance=0.01, max_iterations=11)`
# reproduces its numbers.
MAX_ITERATIONS = 1000
TOLERANCE = 1e-6
RIDGES = tuple(10.0**k for k in range(-3, 4))


def _targets(labels):
    """Int labels `(N,)` -> one-vs-rest targets `(N, K)`; a multi-hot `(N, K)` array is used as is."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float64)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ConfigError(
            f"`labels` must be non-negative int class indices (N,) or multi-hot rows (N, K). "
            f"Received: dtype={labels.dtype}, shape={labels.shape}"
        )
    return (labels[:, None] == np.arange(labels.max() + 1)[None, :]).astype(np.float64)


def principal(features):
    """`(u, sigma)` of `features = u diag(sigma) v^T` over the directions of non-zero variance.

    From `eigh` of the smaller Gram matrix; eigenvalues below `max * max(N, D) * eps` (numerically
    zero: dead or collinear features) are dropped, as an SVD's zero singular values contribute
    nothing to either score.
    """
    f = np.asarray(features, np.float64)
    n, d = f.shape
    if n > d:
        s, v = np.linalg.eigh(f.T @ f)
    else:
        s, u = np.linalg.eigh(f @ f.T)
    keep = s > (s.max() if len(s) else 0.0) * max(n, d) * np.finfo(np.float64).eps
    if not keep.any():
        return np.zeros((n, 0)), np.zeros(0)
    sigma = np.sqrt(s[keep])
    u = (f @ v[:, keep]) / sigma if n > d else u[:, keep]
    return u, sigma


def logme(features, labels, *, tolerance=TOLERANCE, max_iterations=MAX_ITERATIONS):
    """LogME of `features` for a classification classifier (You et al., ICML 2021).

    Args:
        features: float array `(N, D)`. One row per example (e.g. a frozen backbone's pooled output).
        labels: int array `(N,)` of class indices, or multi-hot `(N, K)` (multi-label: each label
            column is one target).
        tolerance: float. Stop once alpha/beta changes by less than this (relative). Defaults to 1e-6.
        max_iterations: int. At most this many fixed-point updates. Defaults to 1000.

    Returns:
        float. The mean over classes of the maximized log evidence per example (`-inf` for
        features that are all zero).

    Example:
    >>> keras_tl.core.evaluation.transferability.logme(features, labels)
    """
    f = np.asarray(features, dtype=np.float64)
    y = _targets(labels)
    y = y[:, y.any(axis=0)]  # A class with no example here has no evidence to compute.
    if f.ndim != 2 or len(f) != len(y):
        raise ConfigError(
            f"`features` must be (N, D) with one row per label. Received: features {f.shape}, labels {np.shape(labels)}"
        )
    if not np.all(np.isfinite(f)):
        raise ConfigError(
            f"`features` contain {int(np.sum(~np.isfinite(f)))} NaN/inf values: the backbone's "
            "output is not usable (random weights or an input far outside its range?)"
        )
    n, d = f.shape
    u, sigma = principal(f)  # f = u diag(sigma) v^T; f^T f has eigenvalues sigma^2.
    s = sigma**2
    r = len(s)
    if not r:
        return float("-inf")  # Constant-zero features: nothing to assess (a dead network); ranks last.
    uy = u.T @ y  # (r, K): the targets in the features' principal directions.
    # ||y||^2 that no w reaches, computed from the residual itself: ||y||^2 - ||uy||^2 cancels to a
    # tiny negative number when the features span all N examples (N <= D), which would make beta < 0.
    outside = np.sum((y - u @ uy) ** 2, axis=0)
    k = y.shape[1]
    alpha, beta = np.ones(k), np.ones(k)
    lam = alpha / beta
    active = np.ones(k, dtype=bool)
    alpha_de, beta_de = np.zeros(k), np.zeros(k)
    for _ in range(max_iterations):
        a, b = alpha[active], beta[active]
        gamma = np.sum(s[:, None] / (s[:, None] + (a / b)[None, :]), axis=0)
        denominator = a[None, :] + b[None, :] * s[:, None]  # (r, K)
        # Posterior mean m = V (b sigma uy / (a + b s)): ||m||^2 and ||y - F m||^2 in closed form.
        new_alpha_de = np.sum((b[None, :] * sigma[:, None] * uy[:, active] / denominator) ** 2, axis=0)
        new_beta_de = outside[active] + np.sum((a[None, :] * uy[:, active] / denominator) ** 2, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            new_alpha, new_beta = gamma / new_alpha_de, (n - gamma) / new_beta_de
        # Features that fit a class exactly (N <= D) drive beta towards infinity: keep the last finite
        # state of such a class instead of stepping into inf/NaN.
        valid = np.isfinite(new_alpha) & np.isfinite(new_beta) & (new_alpha > 0) & (new_beta > 0)
        index = np.flatnonzero(active)
        update = index[valid]
        alpha_de[update], beta_de[update] = new_alpha_de[valid], new_beta_de[valid]
        alpha[update], beta[update] = new_alpha[valid], new_beta[valid]
        new_lam = alpha / beta
        converged = np.abs(new_lam - lam) / lam < tolerance
        lam = np.where(active, new_lam, lam)
        active[index[~valid]] = False
        active &= ~converged
        if not active.any():
            break
    # log|alpha I + beta F^T F| over all D eigenvalues (D - r of them are 0).
    log_det = np.sum(np.log(alpha[None, :] + beta[None, :] * s[:, None]), axis=0) + (d - r) * np.log(alpha)
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * log_det
        - beta / 2 * beta_de
        - alpha / 2 * alpha_de
        - n / 2 * np.log(2 * np.pi)
    )
    return float(np.mean(evidence / n))


def linear_probe(features, labels, *, ridges=RIDGES):
    """Leave-one-out accuracy of a ridge-regression linear probe on standardized features.

    One-vs-rest ridge regression onto the one-hot labels (with an intercept), the class of the
    largest output predicted: the linear classifier of scikit-learn's `RidgeClassifierCV`. Every
    example is predicted by the probe fitted to the other N-1, exactly and in closed form from one
    eigendecomposition (`yhat_loo = (yhat - h y) / (1 - h)`, `h` the diagonal of the hat matrix), for each ridge
    strength in `ridges` (relative to the mean squared singular value); the best is reported.

    Args:
        features: float array `(N, D)`.
        labels: int array `(N,)`.
        ridges: sequence of float. Ridge strengths to try, relative to the features' mean
            eigenvalue. Defaults to 1e-3 ... 1e3.

    Returns:
        `(accuracy, standard_error)`: the best leave-one-out accuracy and its binomial standard
        error `sqrt(p (1 - p) / N)`.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"The linear probe needs single-label int labels (N,). Received: labels {labels.shape}")
    counts = np.bincount(labels)
    if len(labels) < 3 or counts[counts > 0].min() < 2:
        raise ConfigError(
            f"The linear probe needs at least 2 examples of every class. Received: class counts {counts.tolist()}"
        )
    x = np.asarray(features, np.float64)
    x = x - x.mean(axis=0)
    scale = x.std(axis=0)
    x = x / np.where(scale > 0, scale, 1.0)
    y = _targets(labels)
    n = len(x)
    u, sigma = principal(x)
    s = sigma**2
    uy = u.T @ (y - y.mean(axis=0))  # Centred features and targets: the intercept is the target mean.
    mean = s.sum() / min(x.shape)  # The mean eigenvalue, the numerically zero ones included.
    best = 0.0
    for ridge in ridges:
        shrink = s / (s + ridge * mean)
        fitted = y.mean(axis=0) + u @ (shrink[:, None] * uy)
        leverage = 1.0 / n + np.einsum("ij,j,ij->i", u, shrink, u)
        held_out = (fitted - leverage[:, None] * y) / (1.0 - leverage[:, None])
        best = max(best, float(np.mean(held_out.argmax(axis=1) == labels)))
    return best, float(np.sqrt(best * (1 - best) / n))


def kendall_tau(a, b):
    """Kendall's tau-a between two score lists (ties count as neither concordant nor discordant).

    Returns:
        `(tau, concordant, discordant, pairs)`.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    i, j = np.triu_indices(len(a), k=1)
    sign = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
    concordant, discordant = int(np.sum(sign > 0)), int(np.sum(sign < 0))
    pairs = len(i)
    return ((concordant - discordant) / pairs if pairs else float("nan")), concordant, discordant, pairs
