"""Cross-validation folds from event identity, so a muon's fold is a property of its event, not of the file order.

The paper uses five-fold cross validation (§3.3). Folds drawn from row positions or a shuffled permutation change
when data are appended, reordered or re-skimmed, and can split the muons of one event over train and test. Here
the fold is a fixed integer hash (splitmix64, in wrapping uint64 NumPy arithmetic; not Python's salted ``hash``)
of ``(seed, run, lumi, event)``: the same event lands in the same fold on every machine, in every session, whatever
else is in the sample.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64 increment (2^64 / golden ratio)
MUL1 = np.uint64(0xBF58476D1CE4E5B9)
MUL2 = np.uint64(0x94D049BB133111EB)
MAX_FOLDS = np.iinfo(np.int8).max


def _splitmix64(state: np.ndarray) -> np.ndarray:
    """One splitmix64 step: advance by the golden gamma, then the avalanche finaliser (every input bit mixes)."""
    with np.errstate(over="ignore"):
        z = state + GAMMA
        z = (z ^ (z >> np.uint64(30))) * MUL1
        z = (z ^ (z >> np.uint64(27))) * MUL2
    return z ^ (z >> np.uint64(31))


def _as_uint64(values) -> np.ndarray:
    """Identity numbers as uint64 bit patterns (signed inputs keep their two's-complement bits)."""
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"run/lumi/event must be integers, got dtype {arr.dtype}")
    return arr.astype(np.uint64)


def event_hash(run, lumi, event, seed: int = 0) -> np.ndarray:
    """A 64-bit hash per (run, lumi, event): the seed first, then each identity field chained through splitmix64."""
    r, lu, ev = np.broadcast_arrays(_as_uint64(run), _as_uint64(lumi), _as_uint64(event))
    h = _splitmix64(np.full(r.shape, np.uint64(seed % 2**64)))
    for field in (r, lu, ev):
        h = _splitmix64(h ^ field)
    return h


def assign_folds(run, lumi, event, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (int8, 0..n_folds−1) per row; rows of one event share it, and it depends on nothing else.

    The hash is uniform over 2^64, so ``hash % n_folds`` is balanced to ≈ 1/n_folds (modulo bias ~ n/2^64).
    """
    if not 1 <= n_folds <= MAX_FOLDS:
        raise ValueError(f"n_folds must be in 1..{MAX_FOLDS}, got {n_folds}")
    return (event_hash(run, lumi, event, seed) % np.uint64(n_folds)).astype(np.int8)


def fold_split(df: pd.DataFrame, fold: int, n_folds: int = 5, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): test is the rows whose event hashes to ``fold``, train every other row; row order is kept."""
    if n_folds < 2:
        raise ValueError(f"a train/test split needs n_folds >= 2, got {n_folds}")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    is_test = assign_folds(df["run"].to_numpy(), df["lumi"].to_numpy(), df["event"].to_numpy(), n_folds, seed) == fold
    return df[~is_test], df[is_test]
