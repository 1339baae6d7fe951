# Lineproof: `make run` opens the app on the sample project; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAMPLE := sample-projects/weld-seam-inspection
STAMP := $(VENV)/.installed
QT_LIBS := libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3 libxkbcommon0 fonts-dejavu-core fonts-droid-fallback
XCB_LIBS := libxkbcommon-x11-0 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libxcb-sync1 libxcb-shm0 libxcb-glx0
TEST_TOOLS := xvfb poppler-utils libnss3-tools openjdk-17-jre-headless
SPARK_STAMP := $(VENV)/.spark

.PHONY: run test test-slow bench mutation sample system-libs venv lint clean installer wheelhouse cbpe-reference

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Qt's system libraries: installed with apt-get when root and missing, otherwise the command is printed.
system-libs:
	@missing=$$(for p in $(QT_LIBS) $(XCB_LIBS) $(TEST_TOOLS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -z "$$missing" ]; then echo "system libraries: present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing: $$missing"; \
		apt-get install -y -q $$missing >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null; }; \
	else echo "Missing system libraries. Run:  sudo apt-get install -y $$missing"; fi

$(SAMPLE)/lineproof.toml: | $(STAMP)
	rm -rf $(SAMPLE)
	$(VENV)/bin/lineproof sample $(SAMPLE)

sample: $(SAMPLE)/lineproof.toml

run: system-libs $(STAMP) sample
	$(VENV)/bin/lineproof gui $(SAMPLE)

# The Spark, lake and variants extras (pyspark, sqlglot, deltalake, NNCF) for their tests; `make run` never needs them.
$(SPARK_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test,spark,lake,variants]'
	touch $(SPARK_STAMP)

test: system-libs $(STAMP) $(SPARK_STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow"
	$(VENV)/bin/lint-imports
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m slow

test-slow: system-libs $(STAMP) $(SPARK_STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m slow

mutation: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) tests/mutation/run.py

lint: $(STAMP)
	$(VENV)/bin/ruff check app tests
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[test,bench]'
	$(PY) tests/bench/bench_foundation.py
	$(PY) tests/bench/bench_slices.py
	$(PY) tests/bench/bench_harness.py
	$(PY) tests/bench/bench_validation.py
	$(PY) tests/bench/bench_packet.py
	$(PY) tests/bench/bench_ingest_csv.py
	$(PY) tests/bench/bench_estimate.py
	$(PY) -m pip install -q -e ".[test,bench,spark,variants]"
	$(PY) tests/bench/bench_lake.py
	$(PY) tests/bench/bench_variants.py
	@# Evidently lives in its own venv: it is a comparison, never a dependency of Lineproof.
	test -x .bench-evidently/bin/python || ($(PYTHON) -m venv .bench-evidently && \
		.bench-evidently/bin/pip install -q evidently "pandas<3" duckdb pyarrow) || true
	$(PY) tests/bench/bench_drift.py $$(test -x .bench-evidently/bin/python && echo .bench-evidently/bin/python)

# NannyML's CBPE numbers on the seeded case that tests/test_estimate.py compares with (NannyML in its own venv:
# a comparison, never a dependency; 0.13.1 imports statsmodels without declaring it).
cbpe-reference:
	test -x .bench-nannyml/bin/python || ($(PYTHON) -m venv .bench-nannyml && \
		.bench-nannyml/bin/pip install -q nannyml==0.13.1 statsmodels "pandas<3")
	.bench-nannyml/bin/python tests/fixtures/cbpe/nannyml_reference.py tests/fixtures/cbpe/nannyml-0.13.1.json

# One-folder bundle in dist/lineproof (PyInstaller), then the offline smoke test on it.
installer: system-libs $(STAMP)
	$(PY) -m pip install -q -e '.[test,installer]'
	rm -rf build/sample && mkdir -p build/sample
	$(PY) -m app sample build/sample/weld-seam-inspection -q
	$(PY) -m app export-project build/sample/weld-seam-inspection --out build/sample/sample-project.lpz -q
	$(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
		installer/lineproof.spec
	cp installer/lineproof.desktop resources/icons/lineproof.svg dist/lineproof/
	du -sh dist/lineproof
	QT_QPA_PLATFORM=offscreen $(PY) installer/smoke.py dist/lineproof/lineproof

# Every wheel Lineproof needs, for sites that install into a venv with pip --no-index.
wheelhouse: $(STAMP)
	rm -rf wheelhouse
	$(PY) -m pip wheel -q -w wheelhouse .
	cp installer/install-from-wheelhouse.sh wheelhouse/
	du -sh wheelhouse

clean:
	rm -rf $(VENV) $(SAMPLE) .pytest_cache build dist wheelhouse
