"""An FPGA Table 3: per precision, da4ml's resource and pipeline estimates turned into latency, throughput and
device fractions, beside the paper's MDLA rows. No vendor tool ran: every figure but the paper's is an estimate."""

from __future__ import annotations

import pandas as pd

from l1refit.deploy.table3 import PAPER_TABLE3

DEVICES = {"VU9P (SB-852)": 1_182_240, "KU115 (KCU1500)": 663_360}  # LUTs of the paper's and the scouting board
ESTIMATE = "estimate (da4ml, no synthesis)"


def table3_fpga(scan: pd.DataFrame, clock_period_ns: float) -> pd.DataFrame:
    """Rows of the scan with resources, then the paper's MDLA rows; II = 1 (fully pipelined, reuse factor 1)."""
    rows = []
    for _, row in scan[scan["precision"] != "float"].iterrows():
        if "luts_estimate" not in row or pd.isna(row["luts_estimate"]):
            continue
        out = {
            "design": row["precision"], "training": row.get("training", "post-training"),
            "chosen": bool(row["chosen"]), "luts_estimate": row["luts_estimate"],
            "ffs_estimate": row["ffs_estimate"], "stages_estimate": int(row["stages"]),
            "clock_ns": clock_period_ns, "latency_ns_estimate": int(row["stages"]) * clock_period_ns,
            "initiation_interval": 1, "inferences_per_s_estimate": 1e9 / clock_period_ns,
        }  # fmt: skip
        for device, luts in DEVICES.items():
            out[f"lut_fraction_{device.split()[0]}_estimate"] = row["luts_estimate"] / luts
        out["source"] = ESTIMATE
        rows.append(out)
    for paper in PAPER_TABLE3:
        rows.append({"design": f"Micron MDLA, {paper['device']}", "chosen": False,
                     "latency_ns_estimate": float(paper["latency_ns"]),
                     "inferences_per_s_estimate": float(paper["throughput_per_s"]),
                     "source": "paper (published; measured, not an estimate)"})  # fmt: skip
    return pd.DataFrame(rows)
