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
from array import array

import numpy as np

# Purposes of a customer's draws; each gets its own block of uniforms.
ARR, TENURE, ONBOARDING, GROWTH, AT_RISK, RECOVERY, CHURN, CHAMPION, RENEWAL, EXPANSION, REACH, HOURS, PHASE, HANDOFF, WINBACK, POISSON = range(16)
N_PURPOSES = 16
_BLOCK = 8
_REFILL = 4 * _BLOCK

# Kinds of non-customer streams.
KIND_CUSTOMER, KIND_ARRIVALS, KIND_POD = 0, 1, 2
# A replication's draw of curve parameters (estimation uncertainty), keyed (rep, KIND_PARAMS, segment, transition):
# apart from every process-noise stream, so switching uncertainty on or off leaves those untouched.
KIND_PARAMS = 3


def name_key(name: str) -> int:
    """A stable integer for a segment or pod name (adding a segment leaves others' streams alone)."""
    return zlib.crc32(name.encode("utf-8"))


def _canonical_generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _words(n: int) -> list[int]:
    """``n`` as little-endian 32-bit words, the way ``SeedSequence`` reads an integer."""
    if 0 <= n < 0x1_0000_0000:
        return [n]
    if n < 0:
        raise ValueError(f"random stream keys must be non-negative, got {n}")
    out = []
    while n:
        out.append(n & 0xFFFF_FFFF)
        n >>= 32
    return out


_PREFIX: dict[int, list[int]] = {}


def _assembled_generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """Same stream as ``SeedSequence(seed, spawn_key=key)``, built from its assembled entropy.

    SeedSequence pads the seed's words to its pool size and appends the spawn
    key's words before mixing; handing it that array directly skips its slow
    per-integer conversion (a customer needs one generator, so this matters).
    """
    words = _PREFIX.get(seed)
    if words is None:
        words = _words(seed)
        words = _PREFIX.setdefault(seed, words + [0] * (4 - len(words)))
    words = words.copy()
    for k in key:
        words.extend(_words(k))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(np.array(words, dtype=np.uint32))))


def _assembly_matches() -> bool:
    for seed, key in ((0, (0,)), (20270101, (3, 0, 2913861928, 45, 1)), (2**70 + 5, (2**40, 0, 7))):
        if not np.array_equal(_canonical_generator(seed, key).random(4), _assembled_generator(seed, key).random(4)):
            return False
    return True


def generator(seed: int, key: tuple[int, ...]) -> np.random.Generator:
    """An independent generator for ``key`` under the scenario ``seed``: ``SeedSequence(seed, spawn_key=key)``."""
    return _FAST_GENERATOR(seed, key)


# Use the fast construction only where it provably gives the canonical streams.
_FAST_GENERATOR = _assembled_generator if _assembly_matches() else _canonical_generator


class CustomerDraws:
    """Uniforms for one customer episode, kept apart by purpose.

    ``u(p)`` returns the next uniform in [0, 1) of purpose ``p``; the ``i``-th
    draw of a purpose is the same whatever else the customer drew. The first
    ``_BLOCK`` draws of every purpose come from one generator call and are kept
    as packed doubles (a large book holds tens of thousands of these); later
    draws come in refill blocks of ``4 * _BLOCK`` from streams keyed by
    ``(*key, purpose, refill)``.
    """

    __slots__ = ("seed", "key", "first", "pos", "extra")

    def __init__(self, seed: int, key: tuple[int, ...]):
        self.seed = seed
        self.key = key
        self.first = array("d", generator(seed, key).random(N_PURPOSES * _BLOCK).tobytes())
        self.pos = [0] * N_PURPOSES
        self.extra = None  # purpose -> current refill block

    def u(self, p: int) -> float:
        i = self.pos[p]
        self.pos[p] = i + 1
        if i < _BLOCK:
            return self.first[p * _BLOCK + i]
        j = (i - _BLOCK) % _REFILL
        if j == 0:
            refill = (i - _BLOCK) // _REFILL + 1
            block = array("d", generator(self.seed, (*self.key, p, refill)).random(_REFILL).tobytes())
            if self.extra is None:
                self.extra = {}
            self.extra[p] = block
        return self.extra[p][j]

    def exp(self, p: int) -> float:
        """A unit-exponential draw (a hazard budget)."""
        return -math.log1p(-self.u(p))
