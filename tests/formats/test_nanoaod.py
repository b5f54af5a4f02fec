"""Run-3 NanoAOD (L1Mu + Muon): the 12-bit floats, exact hardware recovery, the writer, the reader and its errors."""

import awkward as ak
import numpy as np
import pytest
import uproot

from l1refit.config.loading import defaults
from l1refit.errors import FormatError
from l1refit.formats import l1ntuple, nanoaod
from l1refit.formats.nanoaod.layout import L1_FLOATS, hardware_guess, l1_float
from l1refit.formats.nanoaod.reader import recover_hardware
from l1refit.formats.registry import detect_format
from l1refit.simulate.events import generate_file

HW_RANGES = {"pt": np.arange(1, 512), "eta": np.arange(-256, 256), "phi": np.arange(576),
             "ptUnconstrained": np.arange(2, 256)}  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The same 5000 synthetic ZeroBias events in the L1Ntuple and in the central NanoAOD layout."""
    out = tmp_path_factory.mktemp("nano")
    gen = defaults("generator")
    paths = {layout: out / f"{layout}.root" for layout in ("l1ntuple", "nanoaod")}
    for layout, path in paths.items():
        generate_file(path, "zerobias", 5000, seed=3, part=0, gen=gen, layout=layout)
    return paths


def test_round_mantissa_is_cmssws_rounding():
    x = np.float32(1 + 2**-13 + 2**-20)  # above half an LSB of 12 bits: up
    assert nanoaod.round_mantissa([x], 12)[0] == np.float32(1 + 2**-12)
    assert nanoaod.round_mantissa([np.float32(1 + 2**-14)], 12)[0] == 1.0  # below half: down
    assert nanoaod.round_mantissa([np.float32(-2.7)], 12)[0] == np.float32(-2.7001953125)  # magnitude, sign kept
    top = np.float32(2 - 2**-12 + 2**-13)  # mantissa at its largest-but-one value + half: CMSSW does not carry
    assert nanoaod.round_mantissa([top], 12)[0] < 2.0


@pytest.mark.parametrize("kind", HW_RANGES)
def test_every_hardware_value_survives_the_12_bit_float(kind):
    hw = HW_RANGES[kind]
    stored = l1_float(hw, kind)
    rounded = np.any(stored != l1_float(hw, kind, None))
    assert stored.dtype == np.float32 and rounded == (kind in ("eta", "phi"))  # pT values need only 9 bits
    assert np.array_equal(hardware_guess(stored, kind), hw)
    assert np.array_equal(recover_hardware("f.root", "L1Mu_x", stored, kind), hw)


def test_a_float_off_the_grid_is_an_error_naming_file_branch_and_value():
    values = l1_float(np.array([10, 20, 30]), "eta")
    values[1] += np.float32(0.004)  # a third of an LSB: a real float, not a uGMT one
    with pytest.raises(FormatError) as err:
        recover_hardware("data.root", "L1Mu_eta", values, "eta")
    assert str(err.value).startswith("data.root (branch 'L1Mu_eta'): value 0.22149")
    assert "not on the uGMT hardware grid" in str(err.value) and "1 such value" in str(err.value)


def test_central_nanoaod_reads_back_the_l1ntuple_muons(pair):
    assert detect_format(pair["nanoaod"]) == "nanoaod"
    info = nanoaod.describe(pair["nanoaod"])
    assert (info.flavour, info.has_tf_index, info.barrel_rule) == ("central", False, "eta")
    with uproot.open(pair["nanoaod"]) as file:
        names = set(file["Events"].keys())
    assert "L1Mu_hwPt" not in names and "L1Mu_tfMuonIndex" not in names and "Muon_etaSt2" not in names
    nano = ak.concatenate(list(nanoaod.iterate(pair["nanoaod"], step_size=1500)))
    ref = l1ntuple.read(pair["l1ntuple"])
    cut = (ref.L1Mu.pt >= 3) & (ref.L1Mu.hwQual >= 8) & (abs(ref.L1Mu.bx) <= 2)
    assert ak.sum(~cut) > 0 or ak.sum(cut) == ak.sum(ak.num(ref.L1Mu))  # the table cut applied where it bites
    kept = ref.L1Mu[cut]
    assert ak.all(ak.num(nano.L1Mu) == ak.num(kept))
    for field in ("hwPt", "hwEta", "hwPhi", "hwEtaAtVtx", "hwPhiAtVtx", "charge", "hwQual", "bx",
                  "pt", "eta", "phi", "etaSt2", "phiSt2"):  # fmt: skip
        assert ak.all(nano.L1Mu[field] == kept[field]), field
    assert "tfMuonIndex" not in nano.L1Mu.fields
    assert ak.all(nano.Muon.pt == ref.Muon.pt)
    assert 0 < ak.max(abs(nano.Muon.eta - ref.Muon.eta)) < 2e-5  # 16 mantissa bits
    assert ak.all(nano.Muon.isTightMuon == ref.Muon.isTightMuon)
    assert "etaSt2" not in nano.Muon.fields and 0.01 < ak.std(ak.flatten(nano.Muon.z0)) < 0.06  # z0 in m


def test_hwcharge_is_the_sign_bit(pair):
    with uproot.open(pair["nanoaod"]) as file:
        raw = file["Events"]["L1Mu_hwCharge"].array(library="np")
    flat = np.concatenate(raw)
    rows = np.concatenate([r["charge"] for r in nanoaod.l1_rows(pair["nanoaod"], 2000)])
    assert set(np.unique(flat)) == {0, 1}
    assert np.array_equal(rows, np.where(flat == 0, 1, -1))


def test_full_flavour_reads_the_integers_and_tf_index(tmp_path, pair):
    path = tmp_path / "full.root"
    events = l1ntuple.read(pair["l1ntuple"])
    with nanoaod.Writer(path, flavour="full") as writer:
        writer.extend(events)
    info = nanoaod.describe(path)
    assert (info.flavour, info.barrel_rule) == ("full", "tf_muon_index")
    nano = next(nanoaod.iterate(path))
    assert ak.all(nano.L1Mu.tfMuonIndex == events.L1Mu.tfMuonIndex)
    assert ak.all(nano.L1Mu.hwPt == events.L1Mu.hwPt)  # no table cut in the full flavour


def test_l1_rows_count_every_entry(pair):
    rows = list(nanoaod.l1_rows(pair["nanoaod"], 1200))
    n_per_entry = np.concatenate([r["n_per_entry"] for r in rows])
    with uproot.open(pair["nanoaod"]) as file:
        assert np.array_equal(n_per_entry, file["Events"]["nL1Mu"].array(library="np"))
    entry = np.concatenate([r["entry"] for r in rows])
    assert np.array_equal(np.bincount(entry.astype(np.int64), minlength=n_per_entry.size), n_per_entry)


def _rewrite(src, dst, drop=(), change=None):
    """A copy of a NanoAOD without some branches, or with one branch's values changed."""
    with uproot.open(src) as file:
        arrays = file["Events"].arrays(library="ak")
    fields = {f: arrays[f] for f in arrays.fields if f not in drop and not f.startswith("n")}
    if change:
        fields |= change(fields)
    out = {f: ak.to_numpy(v) for f, v in fields.items() if "_" not in f or f == "PV_z"}
    for prefix in ("L1Mu", "Muon"):
        members = {f.split("_", 1)[1]: v for f, v in fields.items() if f.startswith(prefix + "_")}
        if members:
            out[prefix] = ak.zip(members)
    types = {name: value.type if isinstance(value, ak.Array) else value.dtype for name, value in out.items()}
    with uproot.recreate(dst) as file:
        tree = file.mktree("Events", types, counter_name=lambda name: f"n{name}", field_name="{}_{}".format)
        tree.extend(out)
    return dst


@pytest.mark.parametrize(
    ("drop", "change", "needs_muon", "message"),
    [
        (
            (
                "L1Mu_pt",
                "L1Mu_eta",
                "L1Mu_phi",
                "L1Mu_etaAtVtx",
                "L1Mu_phiAtVtx",
                "L1Mu_ptUnconstrained",
                "L1Mu_hwCharge",
                "L1Mu_hwQual",
                "L1Mu_hwDXY",
                "L1Mu_bx",
            ),
            None,
            False,
            "(branch 'nL1Mu'): no L1Mu collection",
        ),
        (
            (
                "Muon_pt",
                "Muon_eta",
                "Muon_phi",
                "Muon_charge",
                "Muon_looseId",
                "Muon_mediumId",
                "Muon_tightId",
                "Muon_dz",
                "Muon_pfRelIso04_all",
            ),
            None,
            True,
            "no offline muons (Muon) in tree Events",
        ),
        ((), lambda f: {"L1Mu_phi": f["L1Mu_phi"] + np.float32(0.003)}, False, "(branch 'L1Mu_phi'): value"),
        ((), lambda f: {"L1Mu_hwCharge": f["L1Mu_hwCharge"] * 0 + 2}, False, "hwCharge 2 is not a sign bit"),
    ],
    ids=["no-L1Mu", "no-Muon", "off-grid", "bad-charge"],
)
def test_bad_nanoaod_is_one_clear_error(pair, tmp_path, drop, change, needs_muon, message):
    path = _rewrite(pair["nanoaod"], tmp_path / "bad.root", drop, change)
    with pytest.raises(FormatError) as err:
        list(nanoaod.iterate(path, require_offline=needs_muon))
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_floats_listed_match_the_scales():
    assert set(L1_FLOATS) == {"pt", "eta", "phi", "etaAtVtx", "phiAtVtx", "ptUnconstrained"}
