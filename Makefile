# Easy Deploy: the commands a newcomer needs. Only Python 3.11, git and the package registries are assumed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo serve doctor test bench infra-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the service with its test tools

demo: setup  ## deploy a sample app end to end on the embedded sandbox
	$(BIN)/easydeploy demo

serve: setup  ## run the service (sandbox unless configured otherwise)
	$(BIN)/easydeploy serve

doctor: setup  ## print the configuration and check GitHub, Slack and AWS
	$(BIN)/easydeploy doctor

test: setup  ## the whole suite, infrastructure checks included (the README's test command)
	$(BIN)/python -m pytest -q

infra-check: setup  ## terraform fmt, HCL parse, checkov, hadolint
	bash scripts/infra-checks.sh

bench: setup  ## benchmarks, printed as ratios against a baseline run alongside
	$(BIN)/python bench/ingress.py
	$(BIN)/python bench/aws_calls.py

clean:
	rm -rf $(VENV) .venv-checkov .easydeploy
