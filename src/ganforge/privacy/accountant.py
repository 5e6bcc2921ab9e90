"""Privacy accounting for DP-SGD through Opacus' accountants.

DP-SGD with Poisson sampling at rate ``q``, noise multiplier ``sigma`` and ``steps``
discriminator steps is one subsampled Gaussian mechanism composed ``steps`` times; an
accountant turns that into the (epsilon, delta) a run has spent. ``rdp`` (Rényi DP, Mironov
2017; Balle et al.'s 2020 conversion) is fast and what the DP-GAN papers report; ``prv``
(privacy random variables, Gopi et al. 2021) is tighter and slower (about 20 s to find sigma).
"""

from __future__ import annotations

import warnings

from ganforge.errors import GanforgeError

ACCOUNTANTS = ("rdp", "prv")
# Orders for the RDP accountant: Opacus' defaults stop at 63, where the best order of a
# large epsilon at small noise lies beyond (it warns); more orders only tighten the bound.
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [80, 128, 256, 512]


def check_delta(delta: float, dataset_size: int) -> None:
    """0 < delta < 1/n: a delta of 1/n or more allows publishing a record outright. (The
    config checks epsilon; this needs the data's size.)"""
    if not 0 < delta < 1 / dataset_size:
        raise GanforgeError(
            f"--delta must be in (0, 1/n) = (0, {1 / dataset_size:.3g}) for {dataset_size:,} "
            f"training records, got {delta:g}"
        )


def _accountant(name: str, sigma: float, sample_rate: float, steps: int):
    from opacus.accountants import PRVAccountant, RDPAccountant

    if name not in ACCOUNTANTS:
        raise GanforgeError(f"unknown accountant {name!r}; choose one of: {', '.join(ACCOUNTANTS)}")
    acc = RDPAccountant() if name == "rdp" else PRVAccountant()
    acc.history = [(sigma, sample_rate, steps)]
    return acc


def epsilon_spent(
    sigma: float, sample_rate: float, steps: int, delta: float, accountant: str = "rdp"
) -> float:
    """The epsilon of ``steps`` DP-SGD steps at noise ``sigma`` and sampling rate
    ``sample_rate``, for ``delta``; 0 before the first step."""
    if steps <= 0:
        return 0.0
    acc = _accountant(accountant, sigma, sample_rate, steps)
    kwargs = {"alphas": RDP_ORDERS} if accountant == "rdp" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "optimal order is the largest alpha": still a bound
        return float(acc.get_epsilon(delta=delta, **kwargs))


def noise_multiplier(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str = "rdp",
    tolerance: float = 1e-3,
) -> float:
    """The smallest sigma (within ``tolerance`` relative to epsilon) whose ``steps`` steps
    spend at most ``epsilon``: a bisection on :func:`epsilon_spent`, the same accountant run
    forward, so the two agree by construction."""
    if steps < 1:
        raise GanforgeError(f"a private run needs at least one discriminator step, got {steps}")
    if not 0 < sample_rate <= 1:
        raise GanforgeError(f"the sampling rate must be in (0, 1], got {sample_rate:g}")
    low, high = 0.0, 1.0
    spent = epsilon_spent(high, sample_rate, steps, delta, accountant)
    while spent > epsilon:
        low, high = high, 2 * high
        if high > 1e5:
            raise GanforgeError(
                f"epsilon {epsilon:g} cannot be met with {steps:,} steps at sampling rate "
                f"{sample_rate:.3g}; train fewer steps or allow a larger epsilon"
            )
        spent = epsilon_spent(high, sample_rate, steps, delta, accountant)
    # Bisect until the spent epsilon is within tolerance below the target.
    while epsilon - spent > tolerance * epsilon and high - low > 1e-6:
        mid = (low + high) / 2
        at_mid = epsilon_spent(mid, sample_rate, steps, delta, accountant)
        if at_mid > epsilon:
            low = mid
        else:
            high, spent = mid, at_mid
    return high
