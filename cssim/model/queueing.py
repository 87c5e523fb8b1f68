"""Queueing-theory reference figures the simulation is checked against.

A pod whose tasks arrive as a Poisson stream, take exponential hours and are
served first-come first-served by ``c`` CSMs with no deadlines is an M/M/c
queue; its waiting behaviour is known in closed form (Erlang C). The tests and
the validation notebook compare the engine with these figures.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ErlangC", "erlang_b", "erlang_c"]


class ErlangC(NamedTuple):
    """Steady-state waiting figures of an M/M/c queue."""

    p_wait: float
    """Probability that an arriving task waits (all ``c`` servers busy)."""
    mean_wait: float
    """Mean wait in the queue over all tasks, Wq = P(wait) / (c·μ − λ), in the time unit of the rates."""
    utilisation: float
    """Server utilisation ρ = λ / (c·μ)."""


def erlang_b(offered: float, c: int) -> float:
    """Erlang B blocking probability for offered load ``a = λ/μ`` and ``c`` servers.

    Uses the stable recursion B(0) = 1, B(k) = a·B(k−1) / (k + a·B(k−1)).
    """
    if c < 0 or int(c) != c:
        raise ValueError(f"c must be a non-negative integer, got {c!r}")
    if offered < 0:
        raise ValueError(f"offered load must be non-negative, got {offered!r}")
    b = 1.0
    for k in range(1, int(c) + 1):
        b = offered * b / (k + offered * b)
    return b


def erlang_c(arrival_rate: float, service_rate: float, c: int) -> ErlangC:
    """P(wait) and mean wait of an M/M/c queue.

    Parameters
    ----------
    arrival_rate : float
        λ, tasks per unit time (e.g. per day).
    service_rate : float
        μ, tasks one server completes per unit time.
    c : int
        Number of servers (CSMs).

    Returns
    -------
    ErlangC
        ``p_wait`` = C(c, a) = B / (1 − ρ(1 − B)) with a = λ/μ, ρ = a/c and B the
        Erlang B probability; ``mean_wait`` = C / (cμ − λ).

    Raises
    ------
    ValueError
        If the queue is unstable (ρ ≥ 1) or a rate is not positive.
    """
    if arrival_rate <= 0 or service_rate <= 0:
        raise ValueError(f"rates must be positive, got λ={arrival_rate!r}, μ={service_rate!r}")
    if c < 1:
        raise ValueError(f"c must be at least 1, got {c!r}")
    offered = arrival_rate / service_rate
    rho = offered / c
    if rho >= 1.0:
        raise ValueError(f"unstable queue: utilisation λ/(cμ) = {rho:.3f} ≥ 1")
    b = erlang_b(offered, c)
    p_wait = b / (1.0 - rho * (1.0 - b))
    mean_wait = p_wait / (c * service_rate - arrival_rate)
    return ErlangC(p_wait, mean_wait, rho)

