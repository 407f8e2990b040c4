# Sourced by scripts/dev and scripts/test: make sure a virtualenv with emailsync exists.
VENV="${EMAILSYNC_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
stamp="$VENV/.emailsync-installed"
if [ ! -x "$VENV/bin/python" ] || [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing emailsync and its dependencies into $VENV ..." >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet -e '.[test]'
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
