"""Property: one corrupted 32-bit word in a valid scouting file is either reported or changes nothing it could check.

For random valid files of both eras (up to 300 BX records) and one corrupted word (anywhere, or a structure word:
a record header, bx, orbit, an FRD event or file header word), the reader either raises FormatError (one line,
naming the file and the byte offset) or returns the encoded content, except where the format has nothing to check
a word against. Those undetectable cases are listed below and each is checked as narrowly as it can be: the
content may differ only in what that one word holds (docs/formats.md §3.5 has the same list).

* A muon word (f, s, Run-3 extra): every bit pattern is a muon. Only that muon changes; in Run-3 it may also
  vanish (hwPt 0, hwQual 0 or the intermediate flag make readers drop it, as CMSSW does).
* A bx word: any value in Run-2 (only the low 16 bits are read, no range is established), any value up to 3564
  in Run-3. Only that record's bx changes.
* An orbit word: any value in Run-2 (files written from L1Ntuples need not be in orbit order); in Run-3 only for
  a record alone in its FRD event (the records of one event must share one orbit). Only that orbit changes.
* A Run-2 header whose mA/mB split changes but not the total: only the slots of that record change. Run-3 takes
  the slot from the extra word, so there nothing changes.
* Words that hold nothing the reader returns: bxmatch/orbitmatch (all but their bit 0 in Run-2), the file
  header's data type, event count, run and lumi, an FRD event's flags, lumi, orbit and crc32c. Nothing changes.
* An FRD event's run: the run of that event's records changes.
* A GMT source id turned into another source's: the reader skips that orbit, with a ScoutingWarning.
* A count change that moves a record's end onto another record boundary ("realigned"): whole records are read as
  muons of the corrupted record, or its muons as records, and every check still passes. Records before the
  corrupted one are unchanged; in Run-3 the damage stays inside its FRD event, in Run-2 the result is exactly
  what a plain walk of the corrupted words gives (a Run-2 stream has no framing to fall back on).

Any other change without an error fails the test. ``derandomize=True``: the same examples on every run (CI).
"""

import warnings

import awkward as ak
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from l1refit.errors import FormatError
from l1refit.formats import gmt
from l1refit.formats import scouting as sc

HW_AND_SLOT = (*sc.HW_FIELDS, "slot")
RUN = 123
ORBIT_MASK = 0x7FFF_FFFF


def _records(rng, n: int, era: str) -> ak.Array:
    """Valid BX records: 0-3 muons per slot (now and then a full slot of 8), several records per orbit."""
    n_a, n_b = rng.integers(0, 4, n), rng.integers(0, 4, n)
    n_a[rng.random(n) < 0.03] = sc.MAX_PER_SLOT
    counts = n_a + n_b
    m = int(counts.sum())
    lo = 1 if era == "run3" else 0  # Run-3 readers drop hwPt == 0 and hwQual == 0
    muons = {
        "hwPt": rng.integers(lo, 512, m), "hwQual": rng.integers(lo, 16, m),
        "hwEta": rng.integers(-256, 256, m), "hwPhi": rng.integers(0, 1024, m),
        "hwEtaAtVtx": rng.integers(-256, 256, m), "hwPhiAtVtx": rng.integers(0, 1024, m),
        "charge": rng.integers(-1, 2, m), "hwIso": rng.integers(0, 4, m), "tfMuonIndex": rng.integers(0, 128, m),
        "hwPtUnconstrained": rng.integers(0, 256, m) if era == "run3" else np.zeros(m, int),
        "hwDXY": rng.integers(0, 4, m) if era == "run3" else np.zeros(m, int),
    }  # fmt: skip
    muons["chargeValid"] = muons["charge"] != 0
    rank = np.arange(m) - np.repeat(np.cumsum(counts) - counts, counts)
    muons["slot"] = np.where(rank < np.repeat(n_a, counts), 1, 2)
    orbit = rng.integers(1, 1 << 30) + np.cumsum(rng.random(n) < 0.3)
    bx = rng.integers(0, 1 << 16, n) if era == "run2" else rng.integers(0, sc.LAST_BX + 1, n)
    return ak.zip(
        {"run": np.full(n, RUN), "orbit": orbit, "bx": bx, "muons": ak.unflatten(ak.zip(muons), counts)},
        depth_limit=1,
    )


def _tuples(records: ak.Array) -> list[tuple]:
    """Records as comparable tuples ``(run, orbit, bx, muons)``, each muon the tuple of its HW fields and slot."""
    counts = ak.to_numpy(ak.num(records.muons)).tolist()
    flat = ak.flatten(records.muons)
    muons = list(zip(*(ak.to_numpy(flat[name]).tolist() for name in HW_AND_SLOT), strict=True))
    columns = (ak.to_numpy(records[name]).tolist() for name in ("run", "orbit", "bx"))
    out, k = [], 0
    for (run, orbit, bx), n in zip(zip(*columns, strict=True), counts, strict=True):
        out.append((run, orbit, bx, tuple(muons[k : k + n])))
        k += n
    return out


def _roles(words: np.ndarray, era: str) -> tuple[list[tuple], list[int]]:
    """The role of every word of a valid file, ``(kind, record, muon or event)``, and each record's FRD event."""
    roles: list[tuple] = []
    event_of: list[int] = []

    def records(pos: int, end: int, stride: int, ev: int) -> None:
        while pos < end:
            r, header = len(event_of), int(words[pos])
            n = (header >> 16 & 0xFF) + (header & 0xFF)
            roles.extend([("header", r, ev), ("bx", r, ev), ("orbit", r, ev)])
            roles.extend(("muon", r, j) for j in range(n) for _ in range(stride))
            event_of.append(ev)
            pos += 3 + stride * n

    if era == "run2":
        records(0, words.size, 2, -1)
        return roles, event_of
    roles.extend(("file header", -1, -1) for _ in range(8))  # RAW_0002, 32 bytes
    pos, ev = 8, 0
    while pos < words.size:
        end = pos + 6 + int(words[pos + 4]) // 4
        kinds = ("frd version", "frd run", "frd lumi", "frd orbit", "frd size", "frd crc", "source id")
        roles.extend((kind, -1, ev) for kind in kinds)
        records(pos + 7, end, 3, ev)
        pos, ev = end, ev + 1
    return roles, event_of


def _walk_run2(words: np.ndarray) -> list[tuple] | None:
    """A plain Python walk of a Run-2 stream with the reader's checks; None where they reject it."""
    out, pos = [], 0
    while pos < words.size:
        if pos + 3 > words.size:
            return None
        header = int(words[pos])
        n_a, n_b = header >> 16 & 0xFF, header & 0xFF
        if n_a > 8 or n_b > 8 or header & 0x0100_0100 != 0x0100_0100:
            return None
        end = pos + 3 + 2 * (n_a + n_b)
        if end > words.size:
            return None
        decoded = gmt.decode(words[pos + 3 : end : 2], words[pos + 4 : end : 2], "run2")
        zeros = np.zeros(n_a + n_b, np.int16)
        columns = [decoded.get(name, zeros).tolist() for name in sc.HW_FIELDS]
        slots = [1] * n_a + [2] * n_b
        muons = tuple(zip(*columns, slots, strict=True))
        out.append((RUN, int(words[pos + 2]), int(words[pos + 1]) & 0xFFFF, muons))
        pos = end
    return out


def _same_except(got: list, clean: list, r: int, field: int, value) -> bool:
    """``got`` is ``clean`` with field ``field`` of record ``r`` set to ``value``."""
    want = list(clean[r])
    want[field] = value
    return got == [*clean[:r], tuple(want), *clean[r + 1 :]]


def _explain(era, role, old, new, got, clean, event_of, bad_words, warned) -> str:
    """The undetectable class that explains ``got`` (a silent change); an AssertionError if none does."""
    kind, r, k = role
    if kind == "muon":
        assert len(got) == len(clean) and got[:r] == clean[:r] and got[r + 1 :] == clean[r + 1 :]
        assert got[r][:3] == clean[r][:3]
        got_mu, clean_mu = got[r][3], clean[r][3]
        if len(got_mu) == len(clean_mu):
            assert got_mu[:k] == clean_mu[:k] and got_mu[k + 1 :] == clean_mu[k + 1 :]
            return "muon payload"
        assert era == "run3" and got_mu == clean_mu[:k] + clean_mu[k + 1 :]
        return "muon payload: muon dropped"
    if kind == "bx":
        assert _same_except(got, clean, r, 2, new & 0xFFFF if era == "run2" else new)
        return "bx value"
    if kind == "orbit":
        assert era == "run2" or event_of.count(k) == 1, "a Run-3 orbit differing from its event's went unnoticed"
        assert _same_except(got, clean, r, 1, new if era == "run2" else new & ORBIT_MASK)
        return "orbit value"
    if kind == "frd run":
        want = [(new, *rec[1:]) if event_of[i] == k else rec for i, rec in enumerate(clean)]
        assert got == want
        return "FRD event run"
    if kind == "source id":
        assert warned and got == [rec for i, rec in enumerate(clean) if event_of[i] != k]
        return "GMT event skipped as another source"
    assert kind == "header", f"a {kind} word changed the content without an error"
    old_total, new_total = (old >> 16 & 0xFF) + (old & 0xFF), (new >> 16 & 0xFF) + (new & 0xFF)
    if new_total == old_total:
        assert era == "run2" and len(got) == len(clean) and got[:r] == clean[:r] and got[r + 1 :] == clean[r + 1 :]
        assert got[r][:3] == clean[r][:3] and [m[:-1] for m in got[r][3]] == [m[:-1] for m in clean[r][3]]
        return "count split"
    assert got[:r] == clean[:r] and got[r][:3] == clean[r][:3]
    if era == "run2":
        assert got == _walk_run2(bad_words)
    else:
        after = sum(1 for ev in event_of if ev > k)  # records of later FRD events
        assert after == 0 or got[-after:] == clean[-after:]  # later events untouched
    return "realigned"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("corrupt")


@settings(
    max_examples=400, deadline=None, derandomize=True, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip
@given(era=st.sampled_from(["run2", "run3"]), seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), data=st.data())
def test_one_corrupt_word_is_reported_or_undetectable_by_the_format(workdir, era, seed, n, data):
    records = _records(np.random.default_rng(seed), n, era)
    clean_path, bad_path = workdir / f"scout_{RUN:06d}_000000.dat", workdir / f"scout_{RUN:06d}_000001.dat"
    if era == "run2":
        sc.write_run2(clean_path, records)
    else:
        sc.write_run3(clean_path, records, run=RUN, lumi=1)
    clean = _tuples(sc.read(clean_path, drop_intermediate=False))
    assert clean == _tuples(records)

    words = np.fromfile(clean_path, "<u4")
    roles, event_of = _roles(words, era)
    assert len(roles) == words.size
    structure = [i for i, role in enumerate(roles) if role[0] != "muon"]
    pick = np.random.default_rng(seed + 1)  # where the corruption goes: uniform, unlike hypothesis's small integers
    on_structure = data.draw(st.booleans(), label="a structure word")
    i = int(structure[pick.integers(len(structure))] if on_structure else pick.integers(words.size))
    old = int(words[i])
    new = data.draw(
        st.one_of(
            st.integers(0, 31).map(lambda bit: old ^ 1 << bit),
            st.sampled_from([0, 0xFFFF_FFFF]),
            st.integers(0, 2**32 - 1),
            st.tuples(st.integers(0, 8), st.integers(0, 8)).map(lambda c: old & 0xFF00_FF00 | c[0] << 16 | c[1]),
            st.integers(-3, 3).map(lambda d: (old + d) % 2**32),
        ),
        label="new value",
    )
    assume(new != old)
    chunk_bytes = data.draw(st.sampled_from([None, 200]), label="chunk_bytes")
    bad = words.copy()
    bad[i] = new
    bad.tofile(bad_path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = _tuples(sc.read(bad_path, chunk_bytes=chunk_bytes, drop_intermediate=False))
        except FormatError as err:
            message = str(err)
            assert message.startswith(f"{bad_path} at byte offset ") and "\n" not in message
            event(f"{era}: detected ({roles[i][0]})")
            return
    if got == clean:
        event(f"{era}: no change ({roles[i][0]})")
        return
    warned = any(issubclass(w.category, sc.ScoutingWarning) for w in caught)
    what = _explain(era, roles[i], old, new, got, clean, event_of, bad, warned)
    event(f"{era}: undetectable: {what}")
