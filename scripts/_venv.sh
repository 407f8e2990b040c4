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

# The graphql-http server audit the tests run with Node (tests/audit): installed from its lock file.
audit=tests/audit
if [ -f "$audit/package-lock.json" ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d "$audit/node_modules" ] || [ "$audit/package-lock.json" -nt "$audit/node_modules" ]; then
    echo "Installing the graphql-http audit into $audit/node_modules ..." >&2
    (cd "$audit" && npm ci --silent --no-audit --no-fund) && touch "$audit/node_modules"
  fi
fi
