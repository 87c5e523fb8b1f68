"""Random streams: one per replication, per customer and per purpose.

Common random numbers need more than a shared seed: if a policy change makes
one customer draw once more for renewal, every later draw of *other* purposes
(and other customers) must stay put. So every stream is addressed by a key —
``(replication, kind, segment, customer, episode)`` — and each customer keeps a
separate block of uniforms per purpose. Building a generator per customer is
slow, so a segment's customers read their blocks from rows of one stream, in
order of customer index, and draws past a block come from a counter-based
stream (random access by key and index). Nothing here touches global random
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


# Draws per customer and purpose: the first ``SIZES[p]`` come from the customer's row of its segment's
# block stream (see ``SegmentDraws``), later ones from ``counter_uniform``. The sizes are fixed constants,
# not scenario-dependent, so a customer's i-th draw of a purpose is the same in every scenario (common
# random numbers across policies, touch models and horizons). PROGRAM feeds tech-touch program reach.
PROGRAM = N_PURPOSES
SIZES = (1, 1, 2, 2, 6, 6, 2, 4, 6, 16, 6, 12, 6, 4, 2, 12, 48)
OFFSETS = tuple(sum(SIZES[:p]) for p in range(len(SIZES)))
ROW = sum(SIZES)
_CHUNK = 256  # customers per block drawn from a segment's stream

_M64 = 0xFFFF_FFFF_FFFF_FFFF
_GOLDEN = 0x9E37_79B9_7F4A_7C15
_TO_UNIT = 2.0**-53


def _mix(z: int) -> int:
    """SplitMix64's finaliser: a bijective 64-bit mix with full avalanche."""
    z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & _M64
    return z ^ (z >> 31)


def stream_key(seed: int, key: tuple[int, ...]) -> int:
    """A 64-bit key for ``counter_uniform``, mixed from every word of the seed and of ``key``."""
    z = _GOLDEN
    for w in (*_words(seed), len(key), *key):
        z = _mix((z + _GOLDEN + (w & _M64)) & _M64)
    return z


def counter_uniform(key: int, i: int) -> float:
    """Draw ``i`` of the counter-based stream ``key`` (SplitMix64 over the counter): random access, no state."""
    return (_mix((key + (i + 1) * _GOLDEN) & _M64) >> 11) * _TO_UNIT


class Draws:
    """Uniforms for one customer episode, kept apart by purpose.

    ``u(p)`` returns the next uniform in [0, 1) of purpose ``p``; the ``i``-th
    draw of a purpose is the same whatever else the customer drew. Draws come
    from ``row`` (a slice of a block drawn for many customers at once) until
    the purpose's block is used up, then from a counter-based stream keyed by
    the customer and purpose, so no generator is built per customer.
    """

    __slots__ = ("row", "base", "pos", "seed", "key", "hkey")

    def __init__(self, row, base: int, seed: int, key: tuple[int, ...]):
        self.row = row
        self.base = base
        self.pos = [0] * len(SIZES)
        self.seed = seed
        self.key = key
        self.hkey = None

    def u(self, p: int) -> float:
        i = self.pos[p]
        self.pos[p] = i + 1
        if i < SIZES[p]:
            return self.row[self.base + OFFSETS[p] + i]
        if self.hkey is None:
            self.hkey = stream_key(self.seed, self.key)
        return counter_uniform(_mix((self.hkey + (p + 1) * 0xD1B5_4A32_D192_ED03) & _M64), i)

    def exp(self, p: int) -> float:
        """A unit-exponential draw (a hazard budget)."""
        return -math.log1p(-self.u(p))


class SegmentDraws:
    """Hands out customers' rows of one segment's block stream, in order of customer index.

    Customer ``k`` of episode 0 owns positions ``[k * ROW, (k + 1) * ROW)`` of the
    stream ``(seed, (*key))``; blocks of ``_CHUNK`` rows are drawn as customers
    arrive (always in order of ``k``), so a customer's draws do not depend on how
    many others there are. Later episodes (win-backs) and any out-of-order
    request get a stream of their own keyed by ``(*key, k, episode)``.
    """

    def __init__(self, seed: int, key: tuple[int, ...]):
        self.seed = seed
        self.key = key
        self.rng = generator(seed, key)
        self.next_k = 0
        self.block = None
        self.block_k0 = 0

    def draws(self, k: int, episode: int = 0) -> Draws:
        ckey = (*self.key, k, episode)
        if episode == 0 and k >= self.next_k:
            while k >= self.next_k:  # rows skipped (never requested) still consume the stream: positions stay fixed
                self.block = array("d", self.rng.random(_CHUNK * ROW).tobytes())
                self.block_k0 = self.next_k
                self.next_k += _CHUNK
            return Draws(self.block, (k - self.block_k0) * ROW, self.seed, ckey)
        if episode == 0 and k >= self.block_k0:
            return Draws(self.block, (k - self.block_k0) * ROW, self.seed, ckey)
        return Draws(array("d", generator(self.seed, ckey).random(ROW).tobytes()), 0, self.seed, ckey)
