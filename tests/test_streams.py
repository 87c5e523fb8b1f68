"""Random streams: the fast generator construction gives exactly the canonical SeedSequence streams."""

from __future__ import annotations

import numpy as np
import pytest

from cssim.core import streams as S


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
    """Customer k's first draws are row k of its segment's block stream; later ones come from its counter stream."""
    seed, key = 11, (0, S.KIND_CUSTOMER, 99)
    rows = S._canonical_generator(seed, key).random((S._CHUNK + 10, S.ROW))
    segment = S.SegmentDraws(seed, key)
    draws = {k: segment.draws(k) for k in (0, 3, S._CHUNK + 7)}  # in order of k, across a block boundary
    for k, d in draws.items():
        row = rows[k]
        got = [d.u(S.EXPANSION) for _ in range(S.SIZES[S.EXPANSION] + 5)]
        start = S.OFFSETS[S.EXPANSION]
        np.testing.assert_array_equal(got[: S.SIZES[S.EXPANSION]], row[start : start + S.SIZES[S.EXPANSION]])
        ckey = S.stream_key(seed, (*key, k, 0))
        purpose = S._mix((ckey + (S.EXPANSION + 1) * 0xD1B5_4A32_D192_ED03) & S._M64)
        assert got[-1] == S.counter_uniform(purpose, S.SIZES[S.EXPANSION] + 4)
        # Other purposes are untouched by the many EXPANSION draws.
        assert d.u(S.HOURS) == row[S.OFFSETS[S.HOURS]]
        assert d.exp(S.CHURN) == pytest.approx(-np.log1p(-row[S.OFFSETS[S.CHURN]]))


def test_customer_draws_do_not_depend_on_other_customers():
    """A customer's draws are the same whether or not the customers before it were asked for theirs."""
    seed, key = 5, (2, S.KIND_CUSTOMER, 7)
    alone = S.SegmentDraws(seed, key).draws(600)
    crowd = S.SegmentDraws(seed, key)
    for k in range(0, 601, 50):
        crowd.draws(k)
    together = crowd.draws(600)
    assert [alone.u(p) for p in range(len(S.SIZES))] == [together.u(p) for p in range(len(S.SIZES))]
    # A later episode (win-back) has a stream of its own, unlike episode 0's.
    assert S.SegmentDraws(seed, key).draws(600, episode=1).u(S.ARR) != S.SegmentDraws(seed, key).draws(600).u(S.ARR)


def test_counter_uniform_is_uniform():
    """The counter-based stream behind long-lived customers' draws: mean, variance and lag-1 correlation."""
    x = np.array([S.counter_uniform(S.stream_key(3, (1, 2)), i) for i in range(40_000)])
    assert abs(x.mean() - 0.5) < 0.01 and abs(x.var() * 12 - 1) < 0.03
    assert abs(np.corrcoef(x[:-1], x[1:])[0, 1]) < 0.02
    assert 0.0 <= x.min() and x.max() < 1.0
