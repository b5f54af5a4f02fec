"""Code style and structure gates that CI enforces: ruff, snakefmt, every rule defined once, thin adapters."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*cmd):
    return subprocess.run([sys.executable, "-m", *cmd], cwd=REPO, capture_output=True, text=True)


def test_ruff_clean():
    proc = run("ruff", "check", "src", "tests", "benchmarks", "workflow/scripts")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_snakefmt_clean():
    proc = run("snakefmt", "--check", "Snakefile", "workflow/rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rule_is_defined_once_with_its_own_script():
    rules, scripts = [], []
    for path in sorted((REPO / "workflow/rules").glob("*.smk")) + [REPO / "Snakefile"]:
        text = path.read_text()
        rules += re.findall(r"^\s*rule (\w+):", text, re.M)
        scripts += re.findall(r'^\s+"\.\./scripts/(\w+\.py)"', text, re.M)
    assert len(rules) == len(set(rules)), sorted(r for r in rules if rules.count(r) > 1)
    assert len(scripts) == len(set(scripts)), sorted(s for s in scripts if scripts.count(s) > 1)
    assert sorted(scripts) == sorted(p.name for p in (REPO / "workflow/scripts").glob("*.py"))


def test_adapters_are_one_call_into_the_stages():
    for path in (REPO / "workflow/scripts").glob("*.py"):
        code = [line for line in path.read_text().splitlines() if line and not line.startswith(('"""', "from", "#"))]
        assert len(code) == 1 and re.fullmatch(r"run\(\w+, snakemake\)  # noqa: F821", code[0]), (path.name, code)
