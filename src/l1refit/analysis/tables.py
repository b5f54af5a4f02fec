"""Tables 1 and 2 of the paper: the model definitions, and the out-of-fold metrics summarised over folds.

Every Table-2 row (GMT, each network, each baseline) is the mean and sample standard deviation over folds of metrics
computed on the held-out events only; both tables are written as CSV (the contract), Markdown and LaTeX.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from l1refit.analysis.metrics import LOWER_IS_BETTER, METRIC_COLUMNS, split_column
from l1refit.formats.output import atomic_path, write_csv

STD_COLUMNS = tuple(f"{c}_std" for c in METRIC_COLUMNS)
TABLE2_COLUMNS = ("model", *METRIC_COLUMNS, *STD_COLUMNS)
TABLE1_COLUMNS = ("model", "loss", "optimizer", "regularization", "hidden_activation", "output_activation")
DECIMALS = {"rms": 3, "core": 2, "tail": 2}  # as the paper prints Table 2
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


def _rounded_means(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Means at printed precision, per column: the values ties and the bold 'best' are judged on, as in the paper."""
    return {c: table[c].to_numpy(np.float64).round(DECIMALS[split_column(c)[1]]) for c in METRIC_COLUMNS}


def _best(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per column, which rows hold the best printed mean (lowest RMS and tail, highest core); ties all count."""
    out = {}
    for col, vals in _rounded_means(table).items():
        target = np.min(vals) if LOWER_IS_BETTER[split_column(col)[1]] else np.max(vals)
        out[col] = vals == target
    return out


def _cell_texts(table: pd.DataFrame, pm: str, bold) -> list[list[str]]:
    """Per row, the nine 'mean ± std' strings at paper precision; the best mean wrapped by ``bold``."""
    best = _best(table)
    rows = []
    for i in range(len(table)):
        cells = []
        for col in METRIC_COLUMNS:
            decimals = DECIMALS[split_column(col)[1]]
            mean, std = table[col].iloc[i], table[f"{col}_std"].iloc[i]
            text = bold(f"{mean:.{decimals}f}") if best[col][i] else f"{mean:.{decimals}f}"
            cells.append(text if np.isnan(std) else f"{text}{pm}{std:.{decimals}f}")
        rows.append(cells)
    return rows


def table2_markdown(table: pd.DataFrame) -> str:
    """Table 2 as a Markdown table like the paper's: RMS to 3 decimals, core/tail in percent to 2, best in bold."""
    header = ["Id", *(f"{VARIABLE_MD[var]} {METRIC_MD[metric]}" for var, metric in map(split_column, METRIC_COLUMNS))]
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
    variables = " & ".join(VARIABLE_TEX[var] for var, _ in map(split_column, METRIC_COLUMNS))
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


def write_table1(models: dict[str, dict], csv_path: str | os.PathLike, md_path: str | os.PathLike) -> None:
    """Table 1 as CSV and as Markdown, each atomically."""
    table = table1(models)
    write_csv(table, csv_path)
    lines = ["| " + " | ".join(TABLE1_COLUMNS) + " |", "|" + "---|" * len(TABLE1_COLUMNS)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    _write_text(md_path, "\n".join(lines) + "\n")


def search_table(table: pd.DataFrame, settings: dict[str, dict[str, str]], rank_by: str) -> pd.DataFrame:
    """The search's summary (``search.csv``): per point its handle values, the Table-2 means and stds over folds
    (``table``: :func:`table2` of the points), the rank per metric (1 = best; lowest RMS and tail, highest core;
    ties share the best rank) and ``best``: the metrics whose best printed mean it holds, as the paper sets them in
    bold. Rows sorted by ``rank_by``'s rank, then by name."""
    if rank_by not in METRIC_COLUMNS:
        raise ValueError(f"rank_by: unknown metric {rank_by!r}; allowed: {', '.join(METRIC_COLUMNS)}")
    missing = [name for name in table["model"] if name not in settings]
    if missing:
        raise ValueError(f"no search settings for {', '.join(missing)}")
    out = table.copy()
    handles = list(next(iter(settings.values())))
    for handle in handles:
        out.insert(1 + handles.index(handle), handle, [settings[name][handle] for name in out["model"]])
    for column in METRIC_COLUMNS:
        ascending = LOWER_IS_BETTER[split_column(column)[1]]
        out[f"{column}_rank"] = out[column].rank(method="min", ascending=ascending).astype(int)
    best = _best(table)
    out["best"] = [";".join(c for c in METRIC_COLUMNS if best[c][i]) for i in range(len(table))]
    return out.sort_values([f"{rank_by}_rank", "model"], kind="stable").reset_index(drop=True)
