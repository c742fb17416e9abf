# The two commands: `make plan STACK=dev` (the offline plan) and `make test`. Each creates ./venv
# from requirements.txt on first use; the Pulumi CLI uses the same venv (Pulumi.yaml).
STACK ?= dev
PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python

.PHONY: plan test bench loadtest clean

$(VENV)/.installed: requirements.txt
	@echo "First use: installing the pinned SDKs from requirements.txt into ./$(VENV) (about a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -r requirements.txt | grep --line-buffered -E '^(Collecting|Installing|Successfully)' || true
	$(PY) -m pip check --disable-pip-version-check > /dev/null && $(PY) -c "import pulumi, pulumi_aws, pulumi_awsx, pulumi_docker, pulumi_policy, pydantic, pytest, xdist, yaml"
	touch $@

plan: $(VENV)/.installed
	$(PY) -m offline.plan --stack $(STACK) $(ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -n auto

bench: $(VENV)/.installed
	$(PY) -m offline.bench $(ARGS)

# The sample service under concurrent clients on loopback (a benchmark, bounded in requests and time).
loadtest: $(VENV)/.installed
	$(PY) app/loadtest.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
