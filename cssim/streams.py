"""Random streams: one per replication, per customer and per purpose.

Common random numbers need more than a shared seed: if a policy change makes
one customer draw once more for renewal, every later draw of *other* purposes
(and other customers) must stay put. So every stream is addressed by a key —
``(replication, kind, segment, customer, episode)`` — and each customer keeps a
separate block of uniforms per purpose. Nothing here touches global random
state; the whole tree grows from the scenario seed via ``SeedSequence``.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

# Purposes of a customer's draws; each gets its own block of uniforms.
ARR, TENURE, ONBOARDING, GROWTH, AT_RISK, RECOVERY, CHURN, CHAMPION, RENEWAL, EXPANSION, REACH, HOURS, PHASE, HANDOFF, WINBACK, POISSON = range(16)
N_PURPOSES = 16
_BLOCK = 8

# Kinds of non-customer streams.
KIND_CUSTOMER, KIND_ARRIVALS, KIND_POD = 0, 1, 2


def name_key(name: str) -> int:
    """A stable integer for a segment or pod name (adding a segment leaves others' streams alone)."""
    return zlib.crc32(name.encode("utf-8"))


def generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """An independent generator for ``key`` under the scenario ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


class CustomerDraws:
    """Uniforms for one customer episode, kept apart by purpose.

    ``u(p)`` returns the next uniform in [0, 1) of purpose ``p``; the ``i``-th
    draw of a purpose is the same whatever else the customer drew.
    """

    __slots__ = ("seed", "key", "blocks", "pos", "refills")

    def __init__(self, seed: int, key: tuple[int, ...]):
        self.seed = seed
        self.key = key
        self.blocks = generator(seed, key).random((N_PURPOSES, _BLOCK)).tolist()
        self.pos = [0] * N_PURPOSES
        self.refills = [0] * N_PURPOSES

    def u(self, p: int) -> float:
        i = self.pos[p]
        block = self.blocks[p]
        if i >= len(block):
            self.refills[p] += 1
            block = generator(self.seed, (*self.key, p, self.refills[p])).random(4 * _BLOCK).tolist()
            self.blocks[p] = block
            i = 0
        self.pos[p] = i + 1
        return block[i]

    def exp(self, p: int) -> float:
        """A unit-exponential draw (a hazard budget)."""
        return -math.log1p(-self.u(p))
