"""How a rule calls its stage function: named inputs, outputs and params become keyword arguments.

Every ``workflow/scripts`` adapter is one call, ``run(stage_function, snakemake)``. The runner sends stdout,
stderr and timestamped log lines to the rule's log, checks that the rule and the function agree on every name (a
declared output that no code writes is an error, not a silent gap), and ends the log with the job's wall time,
CPU time and peak memory — the resource record of every rule, cached ones included (Snakemake cannot benchmark
a cached rule).
"""

from __future__ import annotations

import inspect
import logging
import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from l1refit import logs

log = logging.getLogger(__name__)
# Arguments the runner supplies besides the rule's named items.
JOB_ARGUMENTS = ("threads",)


def _named(items: Any) -> dict[str, Any]:
    """The named entries of a Snakemake Namedlist (a plain mapping is taken as it is)."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    return dict(items.items())


def _plain(value: Any) -> Any:
    """Snakemake's file lists and path strings as plain Python lists and strings."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def job_arguments(stage: Callable, job: Any) -> dict[str, Any]:
    """The keyword arguments of ``stage`` from ``job``'s named input, output and params (and its threads).

    A name declared twice, a declared item the function does not take, or a function argument without a
    default that the rule does not declare is an error naming both sides.
    """
    name = getattr(stage, "__name__", repr(stage))
    sources = {"input": _named(job.input), "output": _named(job.output), "params": _named(job.params)}
    supplied: dict[str, Any] = {}
    for kind, items in sources.items():
        for key, value in items.items():
            if key in supplied:
                raise TypeError(f"stage {name}: {key!r} is declared twice (in {kind} and before)")
            supplied[key] = _plain(value)
    if "threads" in inspect.signature(stage).parameters:
        supplied["threads"] = int(job.threads)
    parameters = inspect.signature(stage).parameters
    unused = [key for key in supplied if key not in parameters and key not in JOB_ARGUMENTS]
    if unused:
        raise TypeError(f"stage {name} takes no argument {', '.join(map(repr, unused))} declared by its rule")
    missing = [p.name for p in parameters.values() if p.default is inspect.Parameter.empty and p.name not in supplied]
    if missing:
        raise TypeError(f"stage {name} needs {', '.join(map(repr, missing))}, which its rule does not declare")
    return {key: value for key, value in supplied.items() if key in parameters}


def _usage(start_wall: float) -> str:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    peak_mib = max(own.ru_maxrss, children.ru_maxrss) / 1024.0  # ru_maxrss is in KiB on Linux
    return f"wall {time.monotonic() - start_wall:.2f} s, cpu {cpu:.2f} s, peak rss {peak_mib:.0f} MiB"


def run(stage: Callable, job: Any) -> Any:
    """Run ``stage`` for the Snakemake ``job`` with its output going to ``job.log[0]``."""
    kwargs = job_arguments(stage, job)
    stream = open(job.log[0], "w", buffering=1)  # noqa: SIM115 - kept open until the process ends
    sys.stdout = sys.stderr = stream  # third-party prints and an uncaught traceback land in the log too
    logs.configure(stream)
    wildcards = ", ".join(f"{k}={v}" for k, v in _named(getattr(job, "wildcards", None)).items())
    log.info("rule %s%s: %s", getattr(job, "rule", "?"), f" ({wildcards})" if wildcards else "", stage.__name__)
    start = time.monotonic()
    try:
        result = stage(**kwargs)
    except BaseException:
        log.error("failed after %s", _usage(start))
        raise
    log.info("resources: %s", _usage(start))
    return result
