#!/usr/bin/env bash
# The unit tests on every Python >= 3.10 that pyenv provides (the whole suite runs on the default one,
# through scripts/test.sh). One venv per version: .venv-py3.X. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pyenv >/dev/null; then
  echo "test-pythons: no pyenv on this machine; only the default python3 was tested" >&2
  exit 0
fi
root="$(pyenv root)"
# the default Python ran the whole suite in .venv (scripts/test.sh): its minor version is covered
default="$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
found=0
for dir in "$root"/versions/3.*; do
  ver="$(basename "$dir")"                 # e.g. 3.10.13
  minor="${ver%.*}"                        # 3.10
  [[ "$ver" =~ ^3\.([0-9]+)\.[0-9]+$ ]] && ((BASH_REMATCH[1] >= 10)) || continue
  py="$dir/bin/python$minor"
  if [ "$minor" = "$default" ]; then found=$((found + 1)); echo "test-pythons: $ver: covered by .venv" >&2; continue; fi
  [ -x "$py" ] || continue
  found=$((found + 1))
  venv=".venv-py$minor"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
  echo "test-pythons: Python $ver" >&2
  "$venv/bin/python" -m pytest tests/unit -q -p no:cacheprovider "$@"
done
echo "test-pythons: unit tests passed on $found pyenv Python version(s)" >&2
