#!/usr/bin/env bash
# Load-test two `adainrt serve` versions back to back on this machine, alternating (A B A B), so the
# README's comparison is one run on one machine. Each side: a server with the bundled decoder on
# 127.0.0.1, `adainrt bench-serve` (this checkout's client) at concurrency 1, 4 and 16, then SIGTERM.
#
#   scripts/bench_serve_ab.sh OLD_PYTHONPATH [ROUNDS] [REQUESTS] > ab.jsonl
#
# OLD_PYTHONPATH: a folder holding the other version's `adainrt` package (its export/, runtime/,
# train/ and benchmarks/ linked in as the package-dir of its pyproject.toml maps them), run with
# this checkout's Python environment; each side keeps its own cache folder. One JSON line per
# side and round on stdout; the servers' logs under $TMPDIR.
set -euo pipefail
old_path=${1:?usage: $0 OLD_PYTHONPATH [ROUNDS] [REQUESTS]}
rounds=${2:-2}
requests=${3:-60}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
work=$(mktemp -d)
port=8765

serve_and_bench() {  # side pythonpath
  local side=$1 path=$2
  env PYTHONPATH="$path" ADAINRT_CACHE="$work/cache-$side" ADAINRT_STYLES="$work/bank-$side" \
    "$python" -m adainrt.cli serve --port $port >"$work/serve-$side.log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$work/serve-$side.log" >&2; exit 1; }
    sleep 1
  done
  local health
  health=$(curl -s "http://127.0.0.1:$port/healthz")
  "$python" -m adainrt.cli bench-serve "http://127.0.0.1:$port" --concurrency 1 --concurrency 4 \
    --concurrency 16 --requests "$requests" --size 256 --json |
    "$python" -c "import json,sys; print(json.dumps({'side': '$side', 'health': json.loads(sys.argv[1]), 'load': json.load(sys.stdin)}))" "$health"
  kill -TERM $pid
  wait $pid || true
}

for round in $(seq "$rounds"); do
  serve_and_bench old "$old_path"
  serve_and_bench new ""
done
