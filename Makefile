# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
# Both create .venv when it is missing; torch==2.13.0 is installed first (a CPU wheel is provided locally;
# an unpinned torch would pull several GB of CUDA packages), then the project with a constraint that keeps it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= all
TORCH  := torch==2.13.0
CONSTRAINTS := $(VENV)/constraints.txt

.PHONY: run test venv verilator lint format bench clean

run: $(VENV)/.installed verilator
	$(BIN)/snakemake --cores $(CORES) all

test: $(VENV)/.installed-test verilator
	$(BIN)/python -m pytest

# Optional: Verilator simulates the FPGA design's Verilog (rule fpga_rtl_simulation; skipped, with the reason in
# its result, without it). Installed from Debian's packages when this runs as root with apt-get; else a note.
verilator:
	@command -v verilator >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Verilator (Debian package) for the RTL simulation"; \
	    { apt-get install -y -qq verilator >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq verilator >/dev/null 2>&1; }; } || \
	      echo "note: could not install Verilator; the RTL simulation will be skipped"; \
	  else \
	    echo "note: Verilator not found; the RTL simulation will be skipped (apt-get install verilator)"; \
	  fi; }

venv: $(VENV)/.installed

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	echo "$(TORCH)" > $(CONSTRAINTS)
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[fpga]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,fpga]'
	touch $@

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests benchmarks workflow/scripts
	$(BIN)/snakefmt Snakefile workflow/rules

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_formats.py
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf results logs .snakemake
