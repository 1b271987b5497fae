# Developer entry points.  See scripts/*.sh for the details and knobs.
#   make test                      everything CI runs (venvs, PostgreSQL, chromium, lint, pytest)
#   make test TEST_ENVS=py311-dj52 PYTEST_ARGS="-x -k worker"
#   make lint                      ruff, ruff format --check, mypy, django check, migrations
#   make venvs                     create/refresh .venvs/{py311-dj52,py311-dj42,py312-dj60,py313-dj61}
#   make pg-start / pg-stop        private PostgreSQL on 127.0.0.1:54329
#   make demo / make bench
#   make screenshots               browser tests, saving the README's docs/screenshots/*.png
#   make format                    ruff format + ruff check --fix (py311-dj52 venv)
#   make clean                     remove venvs, caches, build artefacts, PostgreSQL data

SHELL := /bin/bash
VENVS := py311-dj52 py311-dj42 py312-dj60 py313-dj61
export TEST_ENVS PYTEST_ARGS

.PHONY: test lint venvs demo bench screenshots format pg-start pg-stop clean

test:
	scripts/test.sh

lint:
	scripts/test.sh lint

venvs:
	@for v in $(VENVS); do scripts/venv.sh $$v >/dev/null || exit 1; done

demo:
	scripts/demo.sh

bench:
	scripts/bench.sh

screenshots:
	DJANGO_TASKS_SCREENSHOTS=1 TEST_ENVS=py311-dj52 SKIP_LINT=1 PYTEST_ARGS="-m browser" scripts/test.sh

format:
	scripts/venv.sh py311-dj52 >/dev/null
	.venvs/py311-dj52/bin/ruff format .
	.venvs/py311-dj52/bin/ruff check --fix .

pg-start:
	scripts/pg.sh start

pg-stop:
	scripts/pg.sh stop

clean:
	-scripts/pg.sh destroy
	rm -rf .venvs .mypy_cache .ruff_cache .pytest_cache build dist *.egg-info screenshots .tmp
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -name '*.sqlite3' -not -path './.git/*' -delete
