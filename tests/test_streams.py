"""Random streams: the fast generator construction gives exactly the canonical SeedSequence streams."""

from __future__ import annotations

import numpy as np
import pytest

from cssim import streams as S


@pytest.mark.parametrize(
    "seed,key",
    [(0, (0,)), (1, (0, 0, 0, 0, 0)), (20270101, (39, 0, S.name_key("smb"), 1234, 2)), (2**64 + 3, (5, 2**33, 1)),
     (7, (1, S.KIND_POD, S.name_key("enterprise")))],
)
def test_generator_is_seedsequence_with_spawn_key(seed, key):
    canonical = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
    np.testing.assert_array_equal(S.generator(seed, key).random(64), canonical.random(64))
    assert S._FAST_GENERATOR is S._assembled_generator  # the fast path is in use on this numpy


def test_customer_draws_follow_their_streams():
    """Draw i of purpose p: the first block from the customer's stream, then refills keyed (key, p, refill)."""
    seed, key = 11, (0, S.KIND_CUSTOMER, 99, 5, 0)
    draws = S.CustomerDraws(seed, key)
    first = S._canonical_generator(seed, key).random((S.N_PURPOSES, 8))
    refill1 = S._canonical_generator(seed, (*key, S.REACH, 1)).random(32)
    refill2 = S._canonical_generator(seed, (*key, S.REACH, 2)).random(32)
    got = [draws.u(S.REACH) for _ in range(8 + 64)]
    np.testing.assert_array_equal(got, np.concatenate([first[S.REACH], refill1, refill2]))
    # Other purposes are untouched by the many REACH draws.
    assert draws.u(S.HOURS) == first[S.HOURS][0]
    assert draws.exp(S.CHURN) == pytest.approx(-np.log1p(-first[S.CHURN][0]))
