#!/usr/bin/env bash
# Set up everything ConVis needs on a fresh machine: system packages (where apt and root are
# available), a virtual environment in .venv and the Python packages. Idempotent.
#   scripts/setup.sh          runtime (app, CLI)
#   scripts/setup.sh --dev    runtime + test tools + Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0; [ "${1:-}" = "--dev" ] && DEV=1
PY=${PYTHON:-python3}
# torch first, pinned to a pair that co-installs with torchvision; override with TORCH_SPEC="torch==... torchvision==...".
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

apt_packages="wordnet-base wordnet-sense-index"
[ "$DEV" = 1 ] && apt_packages="$apt_packages chromium"
if command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
      echo "setup: apt-get install $missing"
      $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
    else
      echo "setup: cannot install $missing (no root); WordNet will be downloaded by nltk instead" >&2
    fi
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.convis-installed-$DEV
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q $TORCH_SPEC
  .venv/bin/python -m pip install -q -r requirements.txt
  [ "$DEV" = 1 ] && .venv/bin/python -m pip install -q -r requirements-dev.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
