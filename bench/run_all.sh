#!/usr/bin/env bash
# Every benchmark in one run, then the results page.
#   bash bench/run_all.sh            full suite (~20-25 min): docs/benchmarks.md, docs/benchmarks-quiet-pass.png
#   bash bench/run_all.sh --quick    smoke mode (~2 min, CI): results under bench/work/quick/, docs/ untouched
# Other arguments (--reps N, --shared-registry, --no-ouroboros, --keep) go to every scenario.
# Exits non-zero only when a scenario breaks (cr-agent fails, or the environment cannot be brought up);
# a peer that cannot be installed or crashes is recorded, not fatal.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=()
args=()
for a in "$@"; do
  case "$a" in
    --quick) quick=(--quick) ;;
    *) args+=("$a") ;;
  esac
done

py=.venv/bin/python
if [ ! -x "$py" ]; then
  python3 -m venv .venv || exit 1
fi
"$py" -c "import agent, docker" 2>/dev/null || "$py" -m pip install -q --disable-pip-version-check -e . || exit 1
if ! "$py" -c "import matplotlib" 2>/dev/null; then
  "$py" -m pip install -q --disable-pip-version-check -e '.[bench]' || echo "bench: matplotlib unavailable: no plot" >&2
fi

start=$SECONDS
failed=()
for scenario in quiet_pass latency footprint import_floor burst; do
  echo "bench: == $scenario ==" >&2
  "$py" -m "bench.$scenario" "${quick[@]}" "${args[@]}" || failed+=("$scenario")
done
if [ -d bench/downtime ]; then  # scenario 3 (another engineer's): same conventions
  echo "bench: == downtime ==" >&2
  "$py" -m bench.downtime "${quick[@]}" || failed+=(downtime)
fi
if [ -f bench/webhook_load.py ]; then  # issue 4's load run: writes docs/benchmarks-webhook.md (bench/work/ with --quick)
  echo "bench: == webhook_load ==" >&2
  "$py" -m bench.webhook_load "${quick[@]}" || failed+=(webhook_load)
fi
"$py" -m bench.report "${quick[@]}" --seconds $((SECONDS - start)) || failed+=(report)
echo "bench: done in $((SECONDS - start)) s" >&2
if ((${#failed[@]})); then
  echo "bench: FAILED: ${failed[*]}" >&2
  exit 1
fi
