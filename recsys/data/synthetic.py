"""Synthetic Criteo-format click logs drawn from a hidden ground-truth model (vectorised NumPy).

Every row has the Criteo layout of `recsys.data.criteo` (label, I1..I13, C1..C26; empty = missing) and is
drawn, in time order, from the model below. All randomness comes from `seed`: the same arguments give a
byte-identical file, generated in fixed chunks of `CHUNK_ROWS` rows, chunk c from the stream
SeedSequence([seed, 2, c]) (the model's parameters from [seed, 0] and, for the deep ground truth, [seed, 4];
the CTR calibration sample from [seed, 1]).

Time: row i of R has time t_i = days * i / R (in days); its day is floor(t_i).

Categorical features (`CAT_SPECS`): the popularity rank r of a value is drawn from a Zipf–Mandelbrot law
P(r) ∝ (r + q)^(-s) on 1..N (continuous inverse CDF, floored), with (N, s, q) fitted to the bundled 10k-row
Criteo sample (distinct values, top-1 and top-10 share, singleton share at 10k rows): cardinalities from 3 to
10^7. Ranks 1..HEAD_VALUES keep their value every day; for bigger features the tail rotates by a fixed stride
each day, so every day brings values never seen before (as in real logs). The value id (rank after rotation)
becomes its 8-hex-digit string through a keyed bijection of 32-bit integers, so distinct ids never collide.
Missing values come in groups that are missing together (`MISSING_GROUPS`, rates from the sample).

Integer features (`INT_SPECS`): zero-inflated, heavy-tailed counts: 0 with probability p_zero, -1 with
probability p_neg (the sample's I8 has -1s), otherwise round(exp(mu + sigma z)) >= 1 with mu = log(median),
sigma = log(p99 / median) / 2.326, where z = 0.6 u + 0.8 e shares a per-row latent u (activity), so the counts
are correlated as in real logs.

Labels: y ~ Bernoulli(p) with p = sigmoid(b + f(x, t)), where the ground truth f is one of two models
(`GeneratorConfig.ground_truth`); both see the same rows (the features of a seed do not depend on the mode,
only the labels do).

"additive" (the default):

    E_c(v, t) = cos(theta t) A_c(v) + sin(theta t) B_c(v)                  (slow drift: theta rad/day)
    f(x, t)   = sum_c w_c . E_c(v_c, t)                                     (feature effects)
              + sum_(c,d,j,k) g_cd E_c(v_c, t)_j E_d(v_d, t)_k              (pairwise interactions)
              + sum_i [present_i] a_i tanh(log(1 + max(x_i, 0)) - m_i) + [missing_i] h_i

where A_c(v), B_c(v) in R^4 are per-value effect vectors (unit-variance uniforms read from a keyed 64-bit hash of
(feature, value id), so millions of values need no tables; a missing value has its own effect), and w, g, a, h,
the interacting pairs and the hash keys are drawn from the seed.

"deep": a random network over per-value latent vectors of the truth features (`truth_features`, default all 39):

    L_c(v, t) = cos(theta t) P_c(v) + sin(theta t) Q_c(v)                  (P, Q in R^8, keyed hashes as above)
    u_i(x)    = [present_i] tanh(log(1 + max(x_i, 0)) - m_i) + [missing_i] h_i
    z_0       = concat(L_c(v_c, t) for each categorical c, u_i(x) for each integer i)       (D inputs)
    z_l       = tanh(W_l z_(l-1) + c_l),  l = 1, 2;  W_1: 64 x D, W_2: 64 x 64
    f(x, t)   = s . w_3 . z_2

with W_l ~ N(0, DEEP_GAIN^2 / fan_in), c_l ~ N(0, 0.5^2), w_3 ~ N(0, 1 / 64), and s chosen so that f has standard
deviation DEEP_LOGIT_STD over the calibration sample. Every input reaches every hidden unit, so all features
interact (not only 12 pairs). tanh because it is smooth (the truth favours neither ReLU's kinks nor any smooth
activation the study compares: tanh is none of them) and bounded; the gain puts the first layer's
pre-activations at a standard deviation of about DEEP_GAIN, in tanh's curved range, neither in its linear middle
nor saturated. The parameters come from their own stream, SeedSequence([seed, 4]), so the additive model's draws
are untouched.

In both modes the bias b is solved by bisection so that the mean predicted CTR over a calibration sample spread
over all days equals `ctr`, and the tail rotation (above) brings values never seen before every day.

Oracle: `write_clicklogs` records the AUC and the mean log loss of the true probabilities p against the drawn
labels of the valid rows it writes (every row up to ORACLE_MAX_ROWS, a fixed stride of rows beyond that), computed
with `recsys.metrics.accuracy`: the ceiling of any model of this log, up to sampling noise.

Malformed rows: with probability `malformed_fraction` a row is replaced by one of the bad kinds of
`recsys.data.criteo.BAD_REASONS` (blank line, wrong column count, bad label, non-numeric integer, non-hex
categorical); every other row parses with `criteo.parse_line`.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from recsys import console
from recsys.data import criteo

CHUNK_ROWS = 1 << 16
EFFECT_DIM = 4
HEAD_VALUES = 1000
DRIFT_RAD_PER_DAY = 0.05  # effects rotate by 0.05 rad a day: correlation cos(0.05 d) after d days
NUM_INTERACTIONS = 12
CALIBRATION_ROWS = 1 << 16
MAX_INT_VALUE = 10**9 - 1  # at most 9 digits: formatting stays in 32-bit arithmetic
GROUND_TRUTHS = ("additive", "deep")
LATENT_DIM = 8  # per-value latent vectors of the deep ground truth (two 4-value hashes)
DEEP_WIDTH = 64
DEEP_HIDDEN_LAYERS = 2  # tanh layers; with the linear output layer, 3 dense layers
DEEP_GAIN = 1.5  # first-layer pre-activations have a standard deviation of about 1.5: tanh's curved range
DEEP_BIAS_STD = 0.5
DEEP_LOGIT_STD = 2.0
ORACLE_MAX_ROWS = 1 << 21  # the oracle AUC sorts at most this many rows (a fixed stride beyond: ~32 MB)


class CatSpec(NamedTuple):
    cardinality: int
    exponent: float  # s
    offset: float  # q, > -1
    importance: float  # scale of w_c
    missing_group: str | None


class IntSpec(NamedTuple):
    p_zero: float
    p_neg: float
    median: float  # of the positive values
    p99: float  # of the positive values
    missing_group: str | None


# Probability that a group's features are missing together (bundled sample: e.g. C14, C16, C17 and C23 are
# missing in the same 46.7% of rows).
MISSING_GROUPS: dict[str, float] = {
    "I1": 0.239,
    "I2": 0.102,
    "I3_I13": 0.254,
    "I4": 0.493,
    "I5_I11": 0.465,
    "I6_I10": 0.092,
    "I7": 0.031,
    "I12": 0.015,
    "C_a": 0.026,
    "C_b": 0.467,
}

INT_SPECS: dict[str, IntSpec] = {
    "I1": IntSpec(0.0, 0.0, 6, 259, "I1"),
    "I2": IntSpec(0.0, 0.0, 207, 3598, "I2"),
    "I3": IntSpec(0.101, 0.0, 4, 41, "I3_I13"),
    "I4": IntSpec(0.041, 0.0, 39, 1952, "I4"),
    "I5": IntSpec(0.0, 0.0, 5, 301, "I5_I11"),
    "I6": IntSpec(0.812, 0.0, 2, 48, "I6_I10"),
    "I7": IntSpec(0.961, 0.0, 1, 17, "I7"),
    "I8": IntSpec(0.158, 0.060, 16, 2476, None),
    "I9": IntSpec(0.211, 0.0, 8, 47, None),
    "I10": IntSpec(0.827, 0.0, 1, 3, "I6_I10"),
    "I11": IntSpec(0.0, 0.0, 2, 36.5, "I5_I11"),
    "I12": IntSpec(0.009, 0.0, 3786, 364470, "I12"),
    "I13": IntSpec(0.038, 0.0, 5, 71, "I3_I13"),
}

CAT_SPECS: dict[str, CatSpec] = {
    "C1": CatSpec(1_250_000, 1.1, -0.95, 0.4, "C_a"),
    "C2": CatSpec(5_000, 1.2, 1.0, 0.5, None),
    "C3": CatSpec(5_000, 0.9, 1.0, 0.5, None),
    "C4": CatSpec(10_000, 1.5, 0.0, 0.5, None),
    "C5": CatSpec(20_000, 1.3, 0.0, 0.5, None),
    "C6": CatSpec(3, 2.0, -0.8, 0.3, None),
    "C7": CatSpec(5_000, 1.1, 3.0, 0.4, None),
    "C8": CatSpec(630, 1.5, 3.0, 0.4, None),
    "C9": CatSpec(20, 2.0, 0.0, 0.3, None),
    "C10": CatSpec(10_000_000, 1.2, -0.8, 0.4, "C_a"),
    "C11": CatSpec(630_000, 1.3, -0.5, 0.4, "C_a"),
    "C12": CatSpec(20_000, 1.0, -0.95, 0.4, None),
    "C13": CatSpec(9, 0.7, -0.8, 0.3, None),
    "C14": CatSpec(1_260, 1.3, -0.95, 0.4, "C_b"),
    "C15": CatSpec(2_500, 1.4, 3.0, 0.4, None),
    "C16": CatSpec(44, 2.3, -0.5, 0.3, "C_b"),
    "C17": CatSpec(3, 2.4, 0.0, 0.3, "C_b"),
    "C18": CatSpec(630, 2.0, 0.0, 0.4, None),
    "C19": CatSpec(12, 2.0, 0.0, 0.3, None),
    "C20": CatSpec(1_250_000, 1.1, -0.95, 0.4, "C_a"),
    "C21": CatSpec(10_000_000, 1.2, -0.8, 0.4, "C_a"),
    "C22": CatSpec(630_000, 1.1, -0.95, 0.4, "C_a"),
    "C23": CatSpec(10_000_000, 1.2, -0.95, 0.4, "C_b"),
    "C24": CatSpec(5_000, 1.3, 10.0, 0.4, None),
    "C25": CatSpec(44, 2.5, 0.0, 0.3, None),
    "C26": CatSpec(24, 2.1, 1.0, 0.3, None),
}

# Malformed kinds, by the reason criteo.parse_line gives for them.
MALFORMED_KINDS: tuple[str, ...] = criteo.BAD_REASONS

_U64 = np.uint64
_MASK32 = np.uint64(0xFFFFFFFF)
# Byte b -> its two hex digits, so a 32-bit value is formatted by four table look-ups.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % b for b in range(256)), dtype=np.uint16)
_TAB, _NEWLINE, _MINUS, _ZERO = 9, 10, 45, 48


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; validated on construction.

    Args:
      rows: number of lines written (malformed ones included), >= 1.
      seed: >= 0; the same config gives a byte-identical file.
      days: the log spans this many days (drift and tail rotation follow the day), >= 1.
      ctr: target click-through rate, in (0, 1).
      malformed_fraction: share of rows replaced by malformed lines, in [0, 1).
      ground_truth: the label model, one of GROUND_TRUTHS (module docstring): "additive" (per-value effects and 12
        pairwise interactions) or "deep" (a random tanh network over per-value latent vectors). The rows (every
        feature) are the same in both; only the labels differ.
      truth_features: the columns the deep ground truth reads (names from I1..I13, C1..C26; () = all 39), e.g.
        the features a model is given, so that the oracle is that model's ceiling. Only with ground_truth="deep".
    """

    rows: int
    seed: int = 0
    days: int = 1
    ctr: float = 0.03
    malformed_fraction: float = 0.0
    ground_truth: str = "additive"
    truth_features: tuple[str, ...] = ()

    def __post_init__(self):
        _require(_is_int(self.rows) and self.rows >= 1, "rows", self.rows, "an integer >= 1")
        _require(_is_int(self.seed) and 0 <= self.seed < 2**63, "seed", self.seed, "an integer in [0, 2**63)")
        _require(_is_int(self.days) and self.days >= 1, "days", self.days, "an integer >= 1")
        _require(_is_number(self.ctr) and 0.0 < self.ctr < 1.0, "ctr", self.ctr, "a number in (0, 1)")
        _require(
            _is_number(self.malformed_fraction) and 0.0 <= self.malformed_fraction < 1.0,
            "malformed_fraction",
            self.malformed_fraction,
            "a number in [0, 1)",
        )
        _require(self.ground_truth in GROUND_TRUTHS, "ground_truth", self.ground_truth, f"one of {GROUND_TRUTHS}")
        columns = (*criteo.INT_COLUMNS, *criteo.CAT_COLUMNS)
        _require(
            isinstance(self.truth_features, tuple)
            and all(name in columns for name in self.truth_features)
            and len(set(self.truth_features)) == len(self.truth_features),
            "truth_features",
            self.truth_features,
            "a tuple of distinct column names from I1..I13, C1..C26 (() = all)",
        )
        _require(
            not self.truth_features or self.ground_truth == "deep",
            "truth_features",
            self.truth_features,
            'empty unless ground_truth="deep" (the additive model reads every column)',
        )


@dataclasses.dataclass
class Chunk:
    """Rows [start, start + n) of the log as arrays (one row per index).

    `cat_ids` are value ids (1..N, 0 = missing). Ids up to HEAD_VALUES are popularity ranks on every day, and so
    are all ids on day 0 (later days rotate the tail), so `id < K` is close to a frequency vocabulary of the K - 1
    most frequent values.
    `malformed` holds an index into MALFORMED_KINDS, or -1 for a valid row.
    """

    start: int
    seed: int  # the config's seed: malformed lines draw their variant from (seed, start)
    labels: np.ndarray  # int8 [n]
    ints: np.ndarray  # int64 [n, 13]
    int_present: np.ndarray  # bool [n, 13]
    cat_ids: np.ndarray  # int64 [n, 26]
    cat_hex: np.ndarray  # uint32 [n, 26]
    malformed: np.ndarray  # int8 [n]
    probabilities: np.ndarray  # float64 [n]: the true click probability each label was drawn from

    def __len__(self) -> int:
        return len(self.labels)


@dataclasses.dataclass(frozen=True)
class GenerationSummary:
    """What `write_clicklogs` wrote. `oracle_auc` / `oracle_logloss`: AUC and mean log loss of the true
    probabilities against the labels over `oracle_rows` valid rows (module docstring); `oracle_auc` is None when
    those rows hold one class only."""

    rows: int
    valid_rows: int
    clicks: int
    malformed: dict[str, int]
    bias: float
    seconds: float
    ground_truth: str = "additive"
    oracle_auc: float | None = None
    oracle_logloss: float | None = None
    oracle_rows: int = 0

    @property
    def ctr(self) -> float:
        return self.clicks / max(self.valid_rows, 1)

    def to_json(self, config: GeneratorConfig) -> dict:
        """The summary and the config that produced it, as the summary file holds them."""
        return {
            "config": _config_json(config),
            "rows": self.rows,
            "valid_rows": self.valid_rows,
            "clicks": self.clicks,
            "ctr": self.ctr,
            "malformed": self.malformed,
            "bias": self.bias,
            "ground_truth": self.ground_truth,
            "oracle_auc": self.oracle_auc,
            "oracle_logloss": self.oracle_logloss,
            "oracle_rows": self.oracle_rows,
            "seconds": self.seconds,
        }


class ClickLogGenerator:
    """Draws the hidden model from `config.seed` and yields the log chunk by chunk (see module docstring)."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0]))
        num_cat, num_int = len(criteo.CAT_COLUMNS), len(criteo.INT_COLUMNS)
        self._hex_keys = rng.integers(0, 2**32, size=num_cat, dtype=np.uint64)
        self._effect_keys = rng.integers(0, 2**63, size=(num_cat, 2), dtype=np.uint64)
        directions = rng.normal(size=(num_cat, EFFECT_DIM))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        importance = np.array([CAT_SPECS[c].importance for c in criteo.CAT_COLUMNS])
        self._weights = directions * importance[:, None]
        pairs = [rng.choice(num_cat, size=2, replace=False) for _ in range(NUM_INTERACTIONS)]
        self._interactions = [
            (int(c), int(d), int(rng.integers(EFFECT_DIM)), int(rng.integers(EFFECT_DIM)), float(rng.normal(0, 0.35)))
            for c, d in pairs
        ]
        self._int_slopes = rng.normal(0, 0.35, size=num_int)
        self._int_missing_effects = rng.normal(0, 0.3, size=num_int)
        self._int_centres = np.log1p([INT_SPECS[c].median for c in criteo.INT_COLUMNS])
        # Each day the tail moves by ~0.618 of its length (golden ratio), so consecutive days share few tail values.
        self._tail_strides = [
            int((spec.cardinality - HEAD_VALUES) * 0.6180339887) + 1 if spec.cardinality > 2 * HEAD_VALUES else 0
            for spec in (CAT_SPECS[c] for c in criteo.CAT_COLUMNS)
        ]
        self._deep = _DeepTruth(config) if config.ground_truth == "deep" else None
        self.bias = self._calibrate_bias()

    # --- drawing -------------------------------------------------------------------------------

    def chunk(self, index: int) -> Chunk:
        """Chunk `index` (rows [index * CHUNK_ROWS, ...)); independent of any other chunk."""
        config = self.config
        start = index * CHUNK_ROWS
        n = min(CHUNK_ROWS, config.rows - start)
        if n <= 0:
            raise IndexError(f"chunk {index} starts at row {start}, past rows={config.rows}")
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, index]))
        t = (start + np.arange(n)) * (config.days / config.rows)
        ints, int_present, cat_ids, logits = self.draw_features(rng, t)
        probabilities = _sigmoid(logits + self.bias)
        labels = (rng.random(n) < probabilities).astype(np.int8)
        malformed = np.full(n, -1, dtype=np.int8)
        if config.malformed_fraction > 0:
            bad = rng.random(n) < config.malformed_fraction
            malformed[bad] = rng.integers(len(MALFORMED_KINDS), size=int(bad.sum()))
        cat_hex = _permute32(cat_ids, self._hex_keys[None, :]).astype(np.uint32)
        return Chunk(start, config.seed, labels, ints, int_present, cat_ids, cat_hex, malformed, probabilities)

    def chunks(self) -> Iterator[Chunk]:
        for index in range(math.ceil(self.config.rows / CHUNK_ROWS)):
            yield self.chunk(index)

    def draw_features(
        self, rng: np.random.Generator, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Draws rows at times `t` (days): ints [n, 13], int_present, cat_ids [n, 26] and f(x, t) without the bias."""
        n = len(t)
        day = np.floor(t).astype(np.int64)
        groups = {name: rng.random(n) < rate for name, rate in MISSING_GROUPS.items()}

        cat_ids = np.empty((n, len(criteo.CAT_COLUMNS)), dtype=np.int64)
        for j, name in enumerate(criteo.CAT_COLUMNS):
            spec = CAT_SPECS[name]
            ids = _zipf_mandelbrot(rng.random(n), spec.cardinality, spec.exponent, spec.offset)
            if self._tail_strides[j]:
                tail = ids > HEAD_VALUES
                tail_length = spec.cardinality - HEAD_VALUES
                shifted = (ids - HEAD_VALUES - 1 + day * self._tail_strides[j]) % tail_length
                ids = np.where(tail, HEAD_VALUES + 1 + shifted, ids)
            if spec.missing_group is not None:
                ids[groups[spec.missing_group]] = 0
            cat_ids[:, j] = ids

        activity = rng.normal(size=n)
        ints = np.zeros((n, len(criteo.INT_COLUMNS)), dtype=np.int64)
        int_present = np.ones_like(ints, dtype=bool)
        for j, name in enumerate(criteo.INT_COLUMNS):
            spec = INT_SPECS[name]
            sigma = math.log(spec.p99 / spec.median) / 2.326
            z = 0.6 * activity + 0.8 * rng.normal(size=n)
            values = np.maximum(1.0, np.rint(np.exp(math.log(spec.median) + sigma * z)))
            values = np.minimum(values, MAX_INT_VALUE).astype(np.int64)
            kind = rng.random(n)
            values[kind < spec.p_zero + spec.p_neg] = 0
            values[kind < spec.p_neg] = -1
            ints[:, j] = values
            if spec.missing_group is not None:
                int_present[:, j] = ~groups[spec.missing_group]
        return ints, int_present, cat_ids, self.logits(ints, int_present, cat_ids, t)

    def logits(self, ints: np.ndarray, int_present: np.ndarray, cat_ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The ground truth f(x, t) without the bias (module docstring) of rows given as arrays: float64 [n].

        The click probability of a row is sigmoid(self.bias + f); any rows can be scored, e.g. one value changed.
        """
        if self._deep is not None:
            return self._deep.logits(ints, int_present, cat_ids, t)
        cos_t, sin_t = _rotation(t)
        effects = []
        logits = np.zeros(len(t))
        for j in range(len(criteo.CAT_COLUMNS)):
            key_a, key_b = self._effect_keys[j]
            effect = cos_t * _hash_uniforms(cat_ids[:, j], key_a) + sin_t * _hash_uniforms(cat_ids[:, j], key_b)
            effects.append(effect)
            logits += effect @ self._weights[j]
        for c, d, j, k, gain in self._interactions:
            logits += gain * effects[c][:, j] * effects[d][:, k]
        for j in range(len(criteo.INT_COLUMNS)):
            response = np.tanh(np.log1p(np.maximum(ints[:, j], 0)) - self._int_centres[j])
            logits += np.where(int_present[:, j], self._int_slopes[j] * response, self._int_missing_effects[j])
        return logits

    def _calibrate_bias(self) -> float:
        """The b with mean(sigmoid(b + f)) = ctr over a calibration sample spanning all days (bisection)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 1]))
        t = np.linspace(0.0, self.config.days, CALIBRATION_ROWS, endpoint=False)
        logits = self.draw_features(rng, t)[3]
        if self._deep is not None:
            logits = self._deep.set_scale(logits)
        low, high = -40.0, 40.0
        for _ in range(64):
            mid = 0.5 * (low + high)
            if _sigmoid(logits + mid).mean() < self.config.ctr:
                low = mid
            else:
                high = mid
        return 0.5 * (low + high)


class _DeepTruth:
    """The "deep" ground truth (module docstring): a random tanh network over per-value latent vectors."""

    def __init__(self, config: GeneratorConfig):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 4]))
        num_cat, num_int = len(criteo.CAT_COLUMNS), len(criteo.INT_COLUMNS)
        hashes_per_latent = LATENT_DIM // 4
        # [feature, P or Q, hash]: each latent vector is LATENT_DIM // 4 keyed hashes of 4 values each.
        self._latent_keys = rng.integers(0, 2**63, size=(num_cat, 2, hashes_per_latent), dtype=np.uint64)
        self._int_missing = rng.normal(0, 1.0, size=num_int)
        self._int_centres = np.log1p([INT_SPECS[c].median for c in criteo.INT_COLUMNS])
        names = config.truth_features or (*criteo.INT_COLUMNS, *criteo.CAT_COLUMNS)
        self.cat_columns = [j for j, c in enumerate(criteo.CAT_COLUMNS) if c in names]
        self.int_columns = [j for j, c in enumerate(criteo.INT_COLUMNS) if c in names]
        fan_in = LATENT_DIM * len(self.cat_columns) + len(self.int_columns)
        self.layers = []
        for _ in range(DEEP_HIDDEN_LAYERS):
            weights = rng.normal(0, DEEP_GAIN / math.sqrt(fan_in), size=(fan_in, DEEP_WIDTH)).astype(np.float32)
            bias = rng.normal(0, DEEP_BIAS_STD, size=DEEP_WIDTH).astype(np.float32)
            self.layers.append((weights, bias))
            fan_in = DEEP_WIDTH
        self.output = rng.normal(0, 1 / math.sqrt(fan_in), size=fan_in).astype(np.float32)
        self.scale = 1.0

    def set_scale(self, raw_logits: np.ndarray) -> np.ndarray:
        """Sets the output scale so that `raw_logits` (drawn with scale 1) have DEEP_LOGIT_STD; returns them scaled."""
        self.scale = DEEP_LOGIT_STD / float(raw_logits.std())
        return raw_logits * self.scale

    def latents(self, column: int, ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        """L_c(v, t) of categorical column `column` (0..25) for value ids at times t: float32 [n, LATENT_DIM]."""
        return self._latents(column, ids, *_rotation(t))

    def _latents(self, column: int, ids: np.ndarray, cos_t: np.ndarray, sin_t: np.ndarray) -> np.ndarray:
        first, second = (
            np.concatenate([_hash_uniforms(ids, key) for key in keys], axis=1) for keys in self._latent_keys[column]
        )
        return cos_t * first + sin_t * second

    def logits(self, ints: np.ndarray, int_present: np.ndarray, cat_ids: np.ndarray, t: np.ndarray) -> np.ndarray:
        # float32 inputs and layers: the network is most of the mode's cost, and labels need no more precision.
        hidden = np.empty((len(t), self.layers[0][0].shape[0]), dtype=np.float32)
        cos_t, sin_t = _rotation(t)
        for k, j in enumerate(self.cat_columns):
            hidden[:, k * LATENT_DIM : (k + 1) * LATENT_DIM] = self._latents(j, cat_ids[:, j], cos_t, sin_t)
        offset = len(self.cat_columns) * LATENT_DIM
        for k, j in enumerate(self.int_columns):
            response = np.tanh(np.log1p(np.maximum(ints[:, j], 0)) - self._int_centres[j])
            hidden[:, offset + k] = np.where(int_present[:, j], response, self._int_missing[j])
        for weights, bias in self.layers:
            hidden = np.tanh(hidden @ weights + bias)
        return self.scale * (hidden @ self.output).astype(np.float64)


# --- formatting ---------------------------------------------------------------------------------


def format_chunk(chunk: Chunk) -> bytes:
    """The chunk's lines as Criteo TSV bytes (one `\\n`-terminated line per row, malformed rows replaced).

    Lines are laid out in a byte matrix with 0 bytes as padding (missing values, unused digit places), and
    the padding is dropped in one pass, so no Python code runs per valid row.
    """

    label = np.where(chunk.labels == 1, ord("1"), ord("0")).astype(np.uint8)[:, None]
    matrix = np.concatenate([label, _format_ints(chunk.ints, chunk.int_present), _format_hex(chunk)], axis=1)
    text = matrix.tobytes().translate(None, b"\0")  # bytes.translate deletes the padding at C speed
    bad_rows = np.flatnonzero(chunk.malformed >= 0)
    if len(bad_rows) == 0:
        return text
    rng = np.random.default_rng(np.random.SeedSequence([chunk.seed, 3, chunk.start]))
    lines = text.split(b"\n")
    for row in bad_rows:
        lines[row] = _malform(lines[row], MALFORMED_KINDS[chunk.malformed[row]], rng)
    return b"\n".join(lines)


def _format_ints(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Each column as a tab and its right-aligned decimal digits ('-' for negatives), 0-padded: [n, sum(widths)].

    A column is as wide as its widest value in the chunk; missing values are all padding.
    """
    n, columns = values.shape
    magnitude = np.where(present, np.abs(values), 0)
    negative = present & (values < 0)
    num_digits = [max(1, len(str(int(top)))) for top in magnitude.max(axis=0)]
    widths = [d + int(negative[:, j].any()) for j, d in enumerate(num_digits)]
    width, most = max(widths), max(num_digits)
    if most <= 9:  # 32-bit integer division is much cheaper than 64-bit
        magnitude = magnitude.astype(np.int32)
    digits = np.ones(magnitude.shape, dtype=np.int8)
    for k in range(1, most):
        digits += magnitude >= 10**k
    places = np.empty((n, columns, width), dtype=np.uint8)  # places[..., width - 1 - k] = digit k (units: k = 0)
    remaining = magnitude
    for k in range(width):
        quotient = remaining // 10
        places[:, :, width - 1 - k] = remaining - 10 * quotient
        remaining = quotient
    powers = np.arange(width - 1, -1, -1, dtype=np.int8)  # the digit index of each place
    keep = (powers[None, None, :] < digits[:, :, None]) & present[:, :, None]
    block = np.empty((n, columns, width + 1), dtype=np.uint8)
    block[:, :, 0] = _TAB
    block[:, :, 1:] = np.where(keep, places + np.uint8(_ZERO), np.uint8(0))
    if negative.any():
        rows, cols = np.nonzero(negative)
        block[rows, cols, width - digits[rows, cols]] = _MINUS
    return np.concatenate(
        [np.concatenate([block[:, j, :1], block[:, j, width + 1 - w :]], axis=1) for j, w in enumerate(widths)],
        axis=1,
    )


def _format_hex(chunk: Chunk) -> np.ndarray:
    """Each categorical as a tab and 8 lower-case hex digits (missing: padding), then the newline: [n, 26 * 9 + 1]."""
    n, columns = chunk.cat_hex.shape
    big_endian = chunk.cat_hex.astype(">u4").view(np.uint8).reshape(n, columns, 4).astype(np.intp)
    block = np.empty((n, columns, 9), dtype=np.uint8)
    block[:, :, 0] = _TAB
    block[:, :, 1:] = np.take(_HEX_PAIRS, big_endian).view(np.uint8).reshape(n, columns, 8)
    block[chunk.cat_ids == 0, 1:] = 0
    return np.concatenate([block.reshape(n, columns * 9), np.full((n, 1), _NEWLINE, dtype=np.uint8)], axis=1)


def _malform(line: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """A line that criteo.parse_line rejects with reason `kind`, derived from a valid line."""
    fields = line.split(b"\t")
    if kind == criteo.BLANK_LINE:
        return b""
    if kind == criteo.WRONG_COLUMN_COUNT:
        return b"\t".join(fields[:-1] if rng.random() < 0.5 else [*fields, b"0"])
    if kind == criteo.BAD_LABEL:
        fields[0] = [b"2", b"-1", b"yes", b""][rng.integers(4)]
    elif kind == criteo.BAD_INTEGER:
        fields[1 + rng.integers(len(criteo.INT_COLUMNS))] = [b"abc", b"1.5", b"12x", b"NaN"][rng.integers(4)]
    elif kind == criteo.BAD_CATEGORICAL:
        bad_hex = [b"xyz12345", b"0x1f2e3d4c", b"68fd1e6g", b"0123456789abcdef0"]
        fields[1 + len(criteo.INT_COLUMNS) + rng.integers(len(criteo.CAT_COLUMNS))] = bad_hex[rng.integers(4)]
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; known: {MALFORMED_KINDS}")
    return b"\t".join(fields)


# --- writing ------------------------------------------------------------------------------------


def write_clicklogs(
    path: str, config: GeneratorConfig, summary_path: str | None = None, progress: console.Progress | None = None
) -> GenerationSummary:
    """Writes the log to `path` (`.tsv` or `.tsv.gz`) atomically: a temporary file renamed at the end.

    `progress`: a `recsys.console.Progress` counting rows, told of every chunk written (None: no progress lines).

    `.tsv.gz` is written at gzip level 1 with no name or time in the header, so it is byte-identical for the
    same config (on the same platform and NumPy version: the draws use NumPy's floating-point functions).
    The returned summary holds the oracle AUC and log loss (module docstring); with `summary_path` it is also
    written there as JSON (`GenerationSummary.to_json`), atomically, after the log.

    Raises:
      ValueError: `path` does not end in .tsv or .tsv.gz.
      FileNotFoundError: the directory of `path` does not exist.
    """
    if not (path.endswith(".tsv") or path.endswith(".tsv.gz")):
        raise ValueError(f"`output` must end in .tsv or .tsv.gz. Received: output={path!r}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"`output` directory does not exist: {directory} (output={path!r})")
    started = time.perf_counter()
    generator = ClickLogGenerator(config)
    malformed = dict.fromkeys(MALFORMED_KINDS, 0)
    clicks = valid = 0
    oracle_stride = math.ceil(config.rows / ORACLE_MAX_ROWS)
    oracle_labels, oracle_probabilities = [], []
    temporary = f"{path}.tmp-{os.getpid()}"
    gz = path.endswith(".gz")
    try:
        with open(temporary, "wb") as raw:
            # Level 1: ~100 MB/s, so compression does not halve the generator's speed (files ~20% bigger than
            # at level 6). No name and mtime 0 in the header keep the output byte-identical between runs.
            sink = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) if gz else raw
            for chunk in generator.chunks():
                sink.write(format_chunk(chunk))
                good = chunk.malformed < 0
                valid += int(good.sum())
                clicks += int(chunk.labels[good].sum())
                sampled = good & ((chunk.start + np.arange(len(chunk))) % oracle_stride == 0)
                oracle_labels.append(chunk.labels[sampled])
                oracle_probabilities.append(chunk.probabilities[sampled])
                for k, count in zip(*np.unique(chunk.malformed[~good], return_counts=True), strict=True):
                    malformed[MALFORMED_KINDS[k]] += int(count)
                if progress is not None:
                    progress.add(len(chunk))
            if sink is not raw:
                sink.close()
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    labels, probabilities = np.concatenate(oracle_labels), np.concatenate(oracle_probabilities)
    oracle_auc, oracle_logloss, oracle_rows = _oracle(labels, probabilities)
    summary = GenerationSummary(
        config.rows,
        valid,
        clicks,
        malformed,
        generator.bias,
        time.perf_counter() - started,
        ground_truth=config.ground_truth,
        oracle_auc=oracle_auc,
        oracle_logloss=oracle_logloss,
        oracle_rows=oracle_rows,
    )
    if summary_path:
        from recsys import atomic

        atomic.write_json(summary_path, summary.to_json(config))
    return summary


def check_summary(summary_path: str, config: GeneratorConfig) -> None:
    """Raises ValueError if the summary file at `summary_path` (written by `write_clicklogs`) records another
    config than `config`, i.e. its log is not the one `config` asks for. A missing file passes (logs written
    before summaries existed)."""
    if not os.path.exists(summary_path):
        return
    with open(summary_path) as f:
        recorded = json.load(f)["config"]
    wanted = _config_json(config)
    if recorded != wanted:
        differences = {k: (recorded.get(k), v) for k, v in wanted.items() if recorded.get(k) != v}
        raise ValueError(
            f"The log beside {summary_path} was generated with another config: (recorded, asked for) = "
            f"{differences}; delete it to regenerate it, or use another directory."
        )


def _config_json(config: GeneratorConfig) -> dict:
    return {**dataclasses.asdict(config), "truth_features": list(config.truth_features)}


def _oracle(labels: np.ndarray, probabilities: np.ndarray) -> tuple[float | None, float | None, int]:
    """(AUC or None for one class, mean log loss or None for no rows, rows) of the true probabilities.

    The metrics room owns AUC and log loss (one definition for the trainer, the comparator, the study and this);
    its `accuracy` module needs only NumPy, so the generator stays free of TensorFlow.
    """
    from recsys.metrics import accuracy

    if len(labels) == 0:
        return None, None, 0
    both_classes = 0 < int(labels.sum()) < len(labels)
    oracle_auc = accuracy.auc(labels, probabilities) if both_classes else None
    return oracle_auc, accuracy.logloss(labels, probabilities), len(labels)


# --- numerics -----------------------------------------------------------------------------------


def _zipf_mandelbrot(u: np.ndarray, n: int, s: float, q: float) -> np.ndarray:
    """Ranks in 1..n with P(r) ∝ (r + q)^-s, via the inverse CDF of the continuous law on [1, n + 1)."""
    if abs(1.0 - s) < 1e-9:
        x = (1 + q) * ((n + 1 + q) / (1 + q)) ** u - q
    else:
        a, b = (1 + q) ** (1 - s), (n + 1 + q) ** (1 - s)
        x = (a + u * (b - a)) ** (1 / (1 - s)) - q
    return np.clip(np.floor(x), 1, n).astype(np.int64)


def _rotation(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the drift angle at times `t` (days), float32 [n, 1] each."""
    theta = DRIFT_RAD_PER_DAY * t
    return np.cos(theta).astype(np.float32)[:, None], np.sin(theta).astype(np.float32)[:, None]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014): a well-mixed 64-bit hash of uint64 inputs."""
    x = x + _U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _hash_uniforms(ids: np.ndarray, key: np.uint64) -> np.ndarray:
    """EFFECT_DIM unit-variance uniforms per id, from 16-bit slices of a keyed 64-bit hash: [n, EFFECT_DIM]."""
    slices = _splitmix64(ids.astype(np.uint64) ^ key).view(np.uint16).reshape(len(ids), 4)
    return slices.astype(np.float32) * np.float32(math.sqrt(12.0) / 65536.0) + np.float32(
        math.sqrt(3.0) / 32768.0 - math.sqrt(3.0)
    )


def _permute32(ids: np.ndarray, key: np.uint64) -> np.ndarray:
    """A keyed bijection of 32-bit integers (multiply by odd, add, xorshift: each step invertible)."""
    x = (ids.astype(np.uint64) * _U64(0x9E3779B1) + key) & _MASK32
    x ^= x >> _U64(16)
    x = (x * _U64(0x85EBCA6B)) & _MASK32
    x ^= x >> _U64(13)
    x = (x * _U64(0xC2B2AE35)) & _MASK32
    return x ^ (x >> _U64(16))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _is_int(value) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and (math.isfinite(value))
    )


def _require(ok: bool, name: str, value, rule: str) -> None:
    if not ok:
        raise ValueError(f"`{name}` must be {rule}. Received: {name}={value!r}")
