"""Fixed-point types as the HLS ap_types define them, their arithmetic on integer mantissas, and design precisions.

A value of ``ap_fixed<W,I,Q,O>`` is an integer mantissa m (W bits, two's complement) times 2^-(W-I). Everything
here works on mantissas held exactly in float64 (integers below 2^52), so NumPy's vectorised float code computes the
firmware's integer arithmetic bit for bit (docs/deploy.md §6). Only the modes the tests check against hls4ml's C
simulation are accepted: rounding AP_RND (half up, towards +inf) and AP_TRN (floor); overflow AP_SAT and AP_WRAP.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

ROUNDING = ("AP_RND", "AP_TRN")
OVERFLOW = ("AP_SAT", "AP_WRAP")
EXACT = 2.0**52  # mantissas below this stay exact in float64, also after adding one half for rounding
MAX_WEIGHT_WIDTH = 24  # hls4ml reads the weights from a float32 module: 24 significant bits are exact there

_FIXED = re.compile(r"^ap_(u?)fixed<\s*(-?\d+)\s*,\s*(-?\d+)\s*(?:,\s*(\w+)\s*)?(?:,\s*(\w+)\s*)?(?:,\s*0\s*)?>$")
_INT = re.compile(r"^ap_(u?)int<\s*(\d+)\s*>$")


@dataclass(frozen=True)
class FixedType:
    """``ap_[u]fixed<width, integer, rounding, overflow>``; ``ap_[u]int<W>`` is integer = width, AP_TRN/AP_WRAP."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "AP_TRN"
    overflow: str = "AP_WRAP"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"fixed-point type: width must be >= 1, got {self.width}")
        if self.rounding not in ROUNDING:
            raise ValueError(f"fixed-point type: rounding {self.rounding!r} not supported; use one of {ROUNDING}")
        if self.overflow not in OVERFLOW:
            raise ValueError(f"fixed-point type: overflow {self.overflow!r} not supported; use one of {OVERFLOW}")

    @classmethod
    def parse(cls, text: str) -> FixedType:
        text = text.strip()
        if match := _INT.match(text):
            return cls(int(match[2]), int(match[2]), signed=not match[1])
        match = _FIXED.match(text)
        if not match:
            raise ValueError(f"not an ap_fixed/ap_ufixed/ap_int/ap_uint type: {text!r}")
        unsigned, width, integer, rounding, overflow = match.groups()
        return cls(int(width), int(integer), not unsigned, rounding or "AP_TRN", overflow or "AP_WRAP")

    def __str__(self) -> str:
        u = "" if self.signed else "u"
        if self.integer == self.width and self.rounding == "AP_TRN" and self.overflow == "AP_WRAP":
            return f"ap_{u}int<{self.width}>"
        return f"ap_{u}fixed<{self.width},{self.integer},{self.rounding},{self.overflow}>"

    @property
    def frac(self) -> int:
        """Fractional bits F: the value is mantissa · 2^-F."""
        return self.width - self.integer

    @property
    def bounds(self) -> tuple[int, int]:
        """Smallest and largest mantissa."""
        if self.signed:
            return -(2 ** (self.width - 1)), 2 ** (self.width - 1) - 1
        return 0, 2**self.width - 1

    def requantize(self, m: np.ndarray, frac: int, *, inplace: bool = False) -> np.ndarray:
        """Mantissas ``m`` (float64 integers) with ``frac`` fractional bits as this type: rounding, then overflow.

        ``inplace`` overwrites ``m`` (a float64 array) instead of a copy: the emulator's hot path.
        """
        m = m if inplace else np.array(m, dtype=np.float64)
        if self.frac != frac:
            m *= 2.0 ** (self.frac - frac)  # exact: a power-of-two scaling
        if self.frac < frac:
            if self.rounding == "AP_RND":
                m += 0.5
            np.floor(m, out=m)
        return self.apply_overflow(m)

    def apply_overflow(self, m: np.ndarray, *, low: float | None = None) -> np.ndarray:
        """Integer mantissas ``m`` into range, in place: saturation, or two's-complement wrap (modulo 2^W).

        ``low`` raises the floor of a saturating type (0: a ReLU fused into the saturation).
        """
        lowest, high = self.bounds
        if self.overflow == "AP_SAT":
            return np.clip(m, lowest if low is None else max(low, lowest), high, out=m)
        if m.size and (m.min() < lowest or m.max() > high):  # np.mod is ~100× slower than this floor
            m -= 2.0**self.width * np.floor((m - lowest) * 2.0**-self.width)
        return m if low is None else np.maximum(m, low, out=m)

    def quantize(self, values) -> np.ndarray:
        """Real ``values`` as mantissas of this type (rounding, then overflow, as the ap_fixed constructor)."""
        scaled = np.ldexp(np.asarray(values, dtype=np.float64), self.frac)
        return self.requantize(_round(scaled, self.rounding), self.frac, inplace=True)

    def to_float(self, m: np.ndarray) -> np.ndarray:
        return np.ldexp(np.asarray(m, dtype=np.float64), -self.frac)


def _round(scaled: np.ndarray, rounding: str) -> np.ndarray:
    """Integers from exactly scaled values: AP_RND rounds half up (towards +inf), AP_TRN floors."""
    return np.floor(scaled + 0.5) if rounding == "AP_RND" else np.floor(scaled)


def fitted(values: np.ndarray, width: int, rounding: str = "AP_RND", overflow: str = "AP_SAT") -> FixedType:
    """The signed ``width``-bit type with the fewest integer bits that holds ``values`` after rounding.

    Constants get their integer bits from their own range: the first layer's weights act on raw hardware integers
    (weights ≈ 1/575 for φ), and a type shared with the activations would round most of them to zero.
    """
    values = np.asarray(values, dtype=np.float64)
    largest = float(np.max(np.abs(values), initial=0.0))
    integer = 1 if largest == 0 else math.floor(math.log2(largest)) + 2
    while True:  # at most two steps: rounding up can reach 2^(I-1)
        kind = FixedType(width, integer, True, rounding, overflow)
        m = _round(np.ldexp(values, kind.frac), rounding)
        low, high = kind.bounds
        if m.size == 0 or (m.min() >= low and m.max() <= high):
            return kind
        integer += 1


@dataclass(frozen=True)
class Precision:
    """The fixed-point choice of a design: one ``ap_fixed<W,I,Q,O>`` for every layer result, W-bit constants.

    Weights and biases are W-bit with integer bits fitted per layer to their own range (:func:`fitted`).
    ``overrides`` set single types, as ``("<layer>.<result|weight|bias>", "ap_fixed<...>")`` pairs; the string
    form is ``ap_fixed<14,6,AP_RND,AP_SAT>`` followed by ``;dense4.result=ap_fixed<18,8,AP_RND,AP_SAT>`` per override.
    """

    width: int
    integer: int
    rounding: str = "AP_RND"
    overflow: str = "AP_SAT"
    overrides: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        FixedType(self.width, self.integer, True, self.rounding, self.overflow)  # validates
        if self.width > MAX_WEIGHT_WIDTH:
            raise ValueError(f"precision width {self.width} > {MAX_WEIGHT_WIDTH}: weights of that width are not exact "
                             "in the float32 module hls4ml reads")  # fmt: skip
        overrides = tuple((str(key), str(FixedType.parse(value))) for key, value in self.overrides)
        for key, _ in overrides:
            if key.count(".") != 1 or key.split(".")[1] not in ("result", "weight", "bias"):
                raise ValueError(f"precision override {key!r}: expected '<layer>.result|weight|bias'")
        object.__setattr__(self, "overrides", overrides)

    @property
    def result(self) -> FixedType:
        return FixedType(self.width, self.integer, True, self.rounding, self.overflow)

    def override(self, layer: str, kind: str) -> FixedType | None:
        text = dict(self.overrides).get(f"{layer}.{kind}")
        return None if text is None else FixedType.parse(text)

    def result_type(self, layer: str) -> FixedType:
        return self.override(layer, "result") or self.result

    def constant_type(self, layer: str, kind: str, values: np.ndarray) -> FixedType:
        """The type of a layer's weights or biases: the override, else W bits fitted to ``values``."""
        return self.override(layer, kind) or fitted(values, self.width, self.rounding, self.overflow)

    @classmethod
    def from_string(cls, text: str) -> Precision:
        base, *parts = [part.strip() for part in text.split(";") if part.strip()]
        kind = FixedType.parse(base)
        if not kind.signed or base.startswith("ap_int"):
            raise ValueError(f"precision {text!r}: the base type must be a signed ap_fixed<W,I,...>")
        overrides = []
        for part in parts:
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"precision {text!r}: override {part!r} is not '<layer>.<kind>=<type>'")
            overrides.append((key.strip(), value.strip()))
        return cls(kind.width, kind.integer, kind.rounding, kind.overflow, tuple(overrides))

    def __str__(self) -> str:
        return ";".join([str(self.result), *(f"{key}={value}" for key, value in self.overrides)])
