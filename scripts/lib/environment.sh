# Sourced by the scripts: makes sure the project's virtual environment exists and
# matches uv.lock, installing uv itself (from PyPI, into .tools/) on first run.
# Python 3.11+ must be on PATH; nothing else needs to be installed beforehand.

STOCKD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
UV_VERSION=0.13.8
export UV_PYTHON_DOWNLOADS=never   # use the machine's Python; never fetch interpreters
export UV_PROJECT_ENVIRONMENT="$STOCKD_ROOT/.venv"

find_python() {
  local candidate
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "stockd needs Python 3.11 or newer on PATH" >&2
  return 1
}

ensure_uv() {
  local uv="$STOCKD_ROOT/.tools/bin/uv"
  if [ ! -x "$uv" ] || [ "$("$uv" --version 2>/dev/null | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    echo "stockd: installing uv $UV_VERSION into .tools/ (first run only)" >&2
    local python
    python=$(find_python)
    "$python" -m venv "$STOCKD_ROOT/.tools"
    "$STOCKD_ROOT/.tools/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  UV="$uv"
}

# ensure_environment [uv sync options...]: install exactly what uv.lock pins.
ensure_environment() {
  ensure_uv
  "$UV" sync --quiet --frozen --project "$STOCKD_ROOT" --python "$(find_python)" "$@"
}
