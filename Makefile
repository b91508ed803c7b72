# Two set-up-included entry points: `make bench` and `make test`.
# Each creates .venv (once, or again when a pyproject.toml changes) and installs what it needs: the library
# (turboalchemy, with its extras) and the benchmark (bench/, sqlite-bench), both editable, and the dev tools.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(abspath $(VENV))/bin/python

.PHONY: bench test lint docs wheels clean reference-curve reference-runs reference-report reference-page-size

$(VENV)/.installed: pyproject.toml bench/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[postgresql,async,cli,sqlite]' -e './bench[compare]' --group dev
	touch $@

## A short benchmark on the embedded SQLite: the ORM, raw executemany and turboalchemy (turbo), insert and upsert,
## three interleaved runs each (the table shows medians and ranges).
bench: $(VENV)/.installed
	$(PY) -m sqlite_bench.before_after --scales 50K --repeat 3 --mode orm,raw,turbo

## The test suites: the library's (tests/) once per SQLite module (pysqlite3, which the [sqlite] extra brings and
## driver="auto" picks, then the stdlib's sqlite3; the PostgreSQL cases and the power-loss simulation, which use
## neither, run in the first only),
## then the benchmark's (bench/tests/).
test: $(VENV)/.installed
	$(PY) -m pytest -q
	TURBOALCHEMY_SQLITE_DRIVER=stdlib $(PY) -m pytest -q -k "not postgresql and not power_loss"
	cd bench && $(PY) -m pytest -q

## Lint, format and type checks (CI runs them before the tests).
lint: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## The docs site into site/, warnings as errors; the CLI reference checked against the argument parsers.
docs: $(VENV)/.installed
	$(PY) tools/cli_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

## Both wheels, and the library's installed alone into a clean venv that imports it and runs one bulk_insert.
wheels: $(VENV)/.installed
	rm -rf dist
	$(PY) -m build --wheel --outdir dist .
	$(PY) -m build --wheel --outdir dist bench
	rm -rf dist/smoke && $(PYTHON) -m venv dist/smoke
	dist/smoke/bin/python -m pip install --quiet dist/turboalchemy-*.whl
	cd dist && smoke/bin/python ../tools/smoke.py
	dist/smoke/bin/python -m pip install --quiet dist/sqlite_bench-*.whl
	dist/smoke/bin/sqlite-bench before-after --help > /dev/null && echo "smoke: sqlite-bench installs beside it and runs"

## The 10M-row reference curve (about an hour on 2 cores): results and plot in docs/results/curve-10m/.
CURVE := docs/results/curve-10m
reference-curve: $(VENV)/.installed
	for table in study:uuid4 lean:uuid7 ordered:uuid7; do \
	  $(PY) -m sqlite_bench.scale_benchmark --scales 1M,2M,3M,4M,5M,6M,7M,8M,9M,10M --configs baseline \
	    --mode raw,turbo --schema $${table%%:*} --key $${table##*:} --output-dir $(CURVE)/$${table%%:*}-$${table##*:} \
	    || exit 1; \
	done

## The published reference runs and their report (several hours on 2 cores): every folder of docs/results but curve-10m.
REF := docs/results
PG  ?= postgresql+psycopg://postgres@127.0.0.1/postgres
reference-runs: $(VENV)/.installed
	$(PY) -m sqlite_bench.scale_benchmark --scales 200K,400K,600K --configs all --mode orm --repeat 3 --output-dir $(REF)/scale-1m
	$(PY) -m sqlite_bench.before_after --scales 1M,5M --mode all --output-dir $(REF)/before-after
	$(PY) -m sqlite_bench.before_after --scales 200K,400K,600K,800K,1M --mode orm,orm_bulk,core,raw,turbo,engine \
	  --study-chunks --output-dir $(REF)/study-chunks-1m
	$(PY) -m sqlite_bench.concurrency --writers 1,4,16,64 --seconds 5 --repeat 3 --profile production --output-dir $(REF)/concurrency/production
	$(PY) -m sqlite_bench.concurrency --writers 1,4,16,64 --seconds 5 --repeat 3 --profile durable --output-dir $(REF)/concurrency/durable
	$(PY) -m sqlite_bench.scale_benchmark --scales 500K --configs chunks --mode turbo --repeat 3 --output-dir $(REF)/transaction-size/study
	$(PY) -m sqlite_bench.scale_benchmark --scales 500K --configs chunks --mode turbo --schema ordered --key uuid7 --repeat 3 \
	  --output-dir $(REF)/transaction-size/ordered
	for chunk in 5000 50000; do \
	  $(PY) -m sqlite_bench.before_after --scales 200K,400K,600K,800K,1M --phases insert --mode raw,turbo,engine \
	    --schema study,lean,ordered --key uuid4,uuid7 --chunk-size $$chunk --output-dir $(REF)/keys-1m/chunk-$$chunk || exit 1; \
	done
	for config in chunk_5000 chunk_50000; do \
	  $(PY) -m sqlite_bench.before_after --scales 200K,400K,600K,800K,1M --phases insert --mode raw,turbo,engine \
	    --schema study,lean,ordered --key uuid4,uuid7 --config $$config --output-dir $(REF)/keys-1m/cache64m-$$config || exit 1; \
	done
	$(PY) -m sqlite_bench.scale_benchmark --scales 200K,400K,600K,800K,1M --configs chunk_5000,chunk_5000+wal_autocheckpoint=16384 \
	  --mode raw,turbo,engine --schema study,lean,ordered --key uuid4,uuid7 --output-dir $(REF)/checkpoints-1m
	$(PY) -m sqlite_bench.reads --rows 1M --repeat 3 --output-dir $(REF)/reads/sqlite
	$(PY) -m sqlite_bench.reads --rows 1M --repeat 3 --db $(PG) --output-dir $(REF)/reads/postgresql
	$(PY) -m sqlite_bench.orm_compare --db sqlite,postgresql --layers sqlalchemy,tortoise,turboalchemy,sqlalchemy+defaults,tortoise+defaults \
	  --concurrency 50,200 --duration 20s --seed-users 100K --repeat 3 --pg-url $(PG) --output-dir $(REF)/orm-compare
	$(PY) -m sqlite_bench.orm_compare --db postgresql --concurrency 50,200 --duration 20s --seed-users 100K --repeat 3 \
	  --pg-url $(PG) --output-dir $(REF)/orm-compare-postgresql
	$(PY) -m sqlite_bench.orm_compare --preset article --pg-url $(PG) --output-dir $(REF)/orm-compare-article
	$(PY) -m sqlite_bench.before_after --db $(PG) --scales 200K,400K,600K,800K,1M --phases insert \
	  --mode orm,raw,turbo,turbo_async,engine --output-dir $(REF)/postgresql-1m
	$(MAKE) reference-report

## The page-size measurement (about 40 minutes): docs/results/page-size/ and its tables.
PS := $(REF)/page-size
reference-page-size: $(VENV)/.installed
	for run in 1 2 3; do \
	  $(PY) -m sqlite_bench.scale_benchmark --scales 100K,200K --configs chunk_5000,chunk_5000+page_size=8192,chunk_5000+page_size=16384 \
	    --mode raw,turbo --schema study,ordered --key uuid4,uuid7 --phases insert,upsert --output-dir $(PS)/writes-run$$run || exit 1; \
	  for size in 4096 8192 16384; do \
	    $(PY) -m sqlite_bench.reads --rows 200K --modes core,orm_yield,stream --config chunk_5000+page_size=$$size \
	      --output-dir $(PS)/reads-$$size-run$$run || exit 1; \
	  done; \
	  for size in 4096 16384; do \
	    $(PY) -m sqlite_bench.concurrency --writers 1,16 --ops 4000 --profile production+page_size=$$size --output-dir $(PS)/commits-production-$$size-run$$run || exit 1; \
	    $(PY) -m sqlite_bench.concurrency --writers 1,16 --ops 1000 --profile durable+page_size=$$size --output-dir $(PS)/commits-durable-$$size-run$$run || exit 1; \
	  done; \
	done
	$(PY) tools/page_size_table.py $(PS)

## The report over the published runs (seconds): docs/results/report and the 10M curve's plot.
reference-report: $(VENV)/.installed
	rm -rf $(REF)/report
	$(PY) -m sqlite_bench.cli report $(REF)/scale-1m/results.json $(REF)/before-after/results.json \
	  $(REF)/concurrency/production/results.json $(REF)/concurrency/durable/results.json \
	  $(REF)/keys-1m/chunk-5000/results.json $(REF)/keys-1m/chunk-50000/results.json \
	  $(REF)/keys-1m/cache64m-chunk_5000/results.json $(REF)/keys-1m/cache64m-chunk_50000/results.json \
	  $(REF)/checkpoints-1m/results.json \
	  $(REF)/reads/sqlite/results.json $(REF)/reads/postgresql/results.json $(REF)/postgresql-1m/results.json \
	  $(REF)/orm-compare/results.json $(REF)/orm-compare-postgresql/results.json $(REF)/orm-compare-article/results.json --out $(REF)/report
	$(PY) -m sqlite_bench.cli plot-curve $(CURVE)/*/results.json --out $(CURVE)/curve.png
	$(PY) tools/link_run_reports.py $(REF)

clean:
	rm -rf $(VENV) dist build results .pytest_cache .hypothesis .mypy_cache .ruff_cache bench/.pytest_cache bench/.hypothesis
