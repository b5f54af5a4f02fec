"""Out-of-fold evaluation: Table-2 metrics, the two non-NN baselines, and the Table 1 / Table 2 writers.

Every row of Table 2 — GMT, each NN model, and the baselines — is computed the same way: per fold on the held-out
events only, then summarised over folds as mean and sample standard deviation. The baselines answer the question a
trigger physicist asks first: does a network beat what a look-up table (an FPGA could hold it) or an off-the-shelf
boosted-tree regressor does with the same hardware inputs and the same targets?

Target convention (shared with the NN): offsets L1 − offline, Δφ wrapped into (−π, π], Δη, and ΔpT in absolute
GeV; the corrected value is L1 − predicted offset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from .baselines import CellTable
from .io import atomic_path, write_csv
from .metrics import METRIC_COLUMNS, VARIABLES, Windows, metrics, residuals
from .scales import wrap_phi

GBDT_INPUTS = ("hwPhiAtVtx", "hwEtaAtVtx", "hwPt", "charge")  # the paper's NN inputs, in its order
GBDT_DEFAULTS = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31, "early_stopping": False}
# CellTable pooling per target: pool sparse cells along the input the offset hardly depends on (baselines.py).
LUT_POOL_ALONG = {"phi": "eta", "eta": "pt", "pt": "eta"}
STD_COLUMNS = tuple(f"{c}_std" for c in METRIC_COLUMNS)
TABLE2_COLUMNS = ("model", *METRIC_COLUMNS, *STD_COLUMNS)
TABLE1_COLUMNS = ("model", "loss", "optimizer", "regularization", "hidden_activation", "output_activation")
DECIMALS = {"rms": 3, "core": 2, "tail": 2}  # as the paper prints Table 2
LOWER_IS_BETTER = {"rms": True, "core": False, "tail": True}
VARIABLE_MD = {"phi": "Δφ", "eta": "Δη", "pt": "ΔpT/pT"}
METRIC_MD = {"rms": "RMS", "core": "core [%]", "tail": "tail [%]"}
VARIABLE_TEX = {"phi": r"$\Delta\phi$", "eta": r"$\Delta\eta$", "pt": r"$\Delta p_T/p_{T\mathrm{r}}$"}
METRIC_TEX = {"rms": "RMS", "core": r"Data in the core [\%]", "tail": r"Data in the tail [\%]"}
LATEX_SPECIAL = {
    **{c: "\\" + c for c in "&%$#_{}"},
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


# ---------------------------------------------------------------------------------------------------------------
# metrics of a prediction table


def prediction_metrics(df: pd.DataFrame, windows: Windows | None = None) -> dict[str, float]:
    """The nine Table-2 numbers of the corrected values ``pred_phi, pred_eta, pred_pt`` against offline."""
    return _metrics_of(df, "pred_", windows)


def gmt_metrics(df: pd.DataFrame, windows: Windows | None = None) -> dict[str, float]:
    """The nine Table-2 numbers of the uncorrected GMT values ``l1_phi, l1_eta, l1_pt``: the reference row."""
    return _metrics_of(df, "l1_", windows)


def _metrics_of(df: pd.DataFrame, prefix: str, windows: Windows | None) -> dict[str, float]:
    est = [df[f"{prefix}{v}"].to_numpy() for v in VARIABLES]
    reco = [df[f"reco_{v}"].to_numpy() for v in VARIABLES]
    return metrics(residuals(*est, *reco), windows)


# ---------------------------------------------------------------------------------------------------------------
# baselines


def _offsets(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Training targets, as the NN's: L1 − offline for φ (wrapped), η, and pT (absolute GeV)."""
    l1 = {v: df[f"l1_{v}"].to_numpy(np.float64) for v in VARIABLES}
    reco = {v: df[f"reco_{v}"].to_numpy(np.float64) for v in VARIABLES}
    return {"phi": wrap_phi(l1["phi"] - reco["phi"]), "eta": l1["eta"] - reco["eta"], "pt": l1["pt"] - reco["pt"]}


def _corrected(test_df: pd.DataFrame, offsets: dict[str, np.ndarray]) -> pd.DataFrame:
    """``test_df`` (its index kept) plus ``pred_phi, pred_eta, pred_pt`` = L1 − predicted offset, φ in (−π, π]."""
    l1 = {v: test_df[f"l1_{v}"].to_numpy(np.float64) for v in VARIABLES}
    return test_df.assign(
        pred_phi=wrap_phi(l1["phi"] - offsets["phi"]),
        pred_eta=l1["eta"] - offsets["eta"],
        pred_pt=l1["pt"] - offsets["pt"],
    )


def _cells(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The LUT address: the hardware inputs the offsets depend on (φ left out by rotational invariance)."""
    return df["hwPt"].to_numpy(), df["hwEtaAtVtx"].to_numpy(), df["charge"].to_numpy()


def lut_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame) -> pd.DataFrame:
    """Per-cell mean offsets over (hwPt, hwEtaAtVtx, charge), fitted on ``train_df``, applied to ``test_df``.

    The table is what an FPGA could hold, and it is the limit a squared-error NN on the same targets and the same
    cell-valued inputs converges to; hwPhiAtVtx is left out because the offsets are rotation invariant. For pT the
    table holds the mean ΔpT (GeV) like the NN target; inside a cell of fixed hwPt, L1 pT is constant, so this is
    exactly the conditional mean of the offline pT. Sparse cells fall back to pooled neighbours (CellTable).
    """
    target = _offsets(train_df)
    x_train, x_test = _cells(train_df), _cells(test_df)
    pred = {
        v: CellTable("mean", pool_along=LUT_POOL_ALONG[v]).fit(*x_train, target[v]).predict(*x_test) for v in VARIABLES
    }
    return _corrected(test_df, pred)


def gbdt_baseline(train_df: pd.DataFrame, test_df: pd.DataFrame, seed: int = 0, **hyper) -> pd.DataFrame:
    """One HistGradientBoostingRegressor per offset on the paper's four inputs, fitted on ``train_df``.

    Defaults (``GBDT_DEFAULTS``, overridable through ``hyper``) switch early stopping off so no random validation
    split is drawn; with ``random_state=seed`` (which also seeds the bin-edge subsample above 200k rows) the fit is
    deterministic, bit for bit.
    """
    params = GBDT_DEFAULTS | hyper | {"random_state": seed}
    target = _offsets(train_df)
    x_train = train_df[list(GBDT_INPUTS)].to_numpy(np.float64)
    x_test = test_df[list(GBDT_INPUTS)].to_numpy(np.float64)
    pred = {v: HistGradientBoostingRegressor(**params).fit(x_train, target[v]).predict(x_test) for v in VARIABLES}
    return _corrected(test_df, pred)


# ---------------------------------------------------------------------------------------------------------------
# Table 2


def table2(rows: dict[str, list[dict[str, float]]]) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1) over folds of each row's per-fold metrics, rows in given order.

    ddof=1 because the folds are a sample of possible splits and the spread is quoted as an estimate of the
    fold-to-fold scatter; with a single fold there is no such estimate and the ``*_std`` columns are NaN.
    """
    records = []
    for name, folds in rows.items():
        if not folds:
            raise ValueError(f"row {name!r} has no folds")
        missing = [c for fold in folds for c in METRIC_COLUMNS if c not in fold]
        if missing:
            raise ValueError(f"row {name!r}: per-fold metrics lack {sorted(set(missing))}")
        values = np.array([[fold[c] for c in METRIC_COLUMNS] for fold in folds], dtype=np.float64)
        std = values.std(axis=0, ddof=1) if len(folds) > 1 else np.full(len(METRIC_COLUMNS), np.nan)
        records.append([name, *values.mean(axis=0), *std])
    return pd.DataFrame(records, columns=list(TABLE2_COLUMNS))


def _split(column: str) -> tuple[str, str]:
    """Column name to (variable, metric): ``phi_rms`` -> ``("phi", "rms")``."""
    var, metric = column.split("_")
    return var, metric


def _rounded_means(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Means at printed precision, per column: the values ties and the bold 'best' are judged on, as in the paper."""
    return {c: table[c].to_numpy(np.float64).round(DECIMALS[_split(c)[1]]) for c in METRIC_COLUMNS}


def _best(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per column, which rows hold the best printed mean (lowest RMS and tail, highest core); ties all count."""
    out = {}
    for col, vals in _rounded_means(table).items():
        target = np.min(vals) if LOWER_IS_BETTER[_split(col)[1]] else np.max(vals)
        out[col] = vals == target
    return out


def _cell_texts(table: pd.DataFrame, pm: str, bold) -> list[list[str]]:
    """Per row, the nine 'mean ± std' strings at paper precision; the best mean wrapped by ``bold``."""
    best = _best(table)
    rows = []
    for i in range(len(table)):
        cells = []
        for col in METRIC_COLUMNS:
            decimals = DECIMALS[_split(col)[1]]
            mean, std = table[col].iloc[i], table[f"{col}_std"].iloc[i]
            text = bold(f"{mean:.{decimals}f}") if best[col][i] else f"{mean:.{decimals}f}"
            cells.append(text if np.isnan(std) else f"{text}{pm}{std:.{decimals}f}")
        rows.append(cells)
    return rows


def table2_markdown(table: pd.DataFrame) -> str:
    """Table 2 as a Markdown table like the paper's: RMS to 3 decimals, core/tail in percent to 2, best in bold."""
    header = ["Id", *(f"{VARIABLE_MD[var]} {METRIC_MD[metric]}" for var, metric in map(_split, METRIC_COLUMNS))]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * len(METRIC_COLUMNS)]
    for name, cells in zip(table["model"], _cell_texts(table, " ± ", lambda s: f"**{s}**"), strict=True):
        lines.append("| " + " | ".join([str(name), *cells]) + " |")
    return "\n".join(lines) + "\n"


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX table cell (model names such as ``B_wide`` or ``50%``)."""
    return "".join(LATEX_SPECIAL.get(c, c) for c in text)


def table2_latex(table: pd.DataFrame) -> str:
    """Table 2 as a booktabs ``tabular`` with the paper's grouped header (needs ``\\usepackage{booktabs}``)."""
    n = len(METRIC_COLUMNS)
    groups = " & ".join(rf"\multicolumn{{3}}{{c}}{{{title}}}" for title in METRIC_TEX.values())
    variables = " & ".join(VARIABLE_TEX[var] for var, _ in map(_split, METRIC_COLUMNS))
    lines = [
        rf"\begin{{tabular}}{{l{'c' * n}}}",
        r"\toprule",
        rf"Id & {groups} \\",
        r"\cmidrule(lr){2-4} \cmidrule(lr){5-7} \cmidrule(lr){8-10}",
        rf" & {variables} \\",
        r"\midrule",
    ]
    cells = _cell_texts(table, r" $\pm$ ", lambda s: rf"\textbf{{{s}}}")
    for name, row in zip(table["model"], cells, strict=True):
        lines.append(" & ".join([latex_escape(str(name)), *row]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="\n")


def write_table2(table: pd.DataFrame, csv_path, md_path, tex_path) -> None:
    """Table 2 as CSV (the contract: every column, ``%.6g``), Markdown and LaTeX (mean ± std), each atomically."""
    write_csv(table[list(TABLE2_COLUMNS)], csv_path)
    _write_text(md_path, table2_markdown(table))
    _write_text(tex_path, table2_latex(table))


# ---------------------------------------------------------------------------------------------------------------
# Table 1


def regularization_text(reg: dict[str, float] | None) -> str:
    """Config ``regularization`` as the paper writes it: ``none`` or e.g. ``L2 λ=1e-07`` (several joined by ', ')."""
    if not reg:
        return "none"
    return ", ".join(f"{kind.upper()} λ={float(value):g}" for kind, value in sorted(reg.items()))


def table1(models: dict[str, dict]) -> pd.DataFrame:
    """The model definitions of the config (paper Table 1), one row per model in config order."""
    records = []
    for name, spec in models.items():
        missing = [k for k in TABLE1_COLUMNS[1:] if k not in spec]
        if missing:
            raise ValueError(f"model {name!r} lacks {missing} needed for Table 1")
        records.append({"model": name, **spec, "regularization": regularization_text(spec["regularization"])})
    return pd.DataFrame(records, columns=list(TABLE1_COLUMNS))


def write_table1(models: dict[str, dict], path: str | os.PathLike) -> None:
    """Table 1 as CSV at ``path`` and as Markdown beside it (same name, ``.md``), each atomically."""
    table = table1(models)
    write_csv(table, path)
    lines = ["| " + " | ".join(TABLE1_COLUMNS) + " |", "|" + "---|" * len(TABLE1_COLUMNS)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    _write_text(Path(path).with_suffix(".md"), "\n".join(lines) + "\n")
