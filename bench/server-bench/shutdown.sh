#!/usr/bin/env bash
# Graceful shutdown time of `tune serve` holding N idle websockets: SIGTERM, then workers send
# 1001 close frames and close in batches (1000 per 10 ms per worker); the summary line reports
# how long it took. Loopback only, bounded (client holds at most 60 s).
# Usage: bench/server-bench/shutdown.sh [WORKERS] [CONNS_PER_CLIENT] [CLIENTS]
set -euo pipefail
cd "$(dirname "$0")/../.."
W="${1:-2}"; N="${2:-18000}"; C="${3:-2}"
out=$(mktemp)
target/release/tune serve --listen 127.0.0.1:0 --workers "$W" --backlog 512 >"$out" 2>/dev/null &
srv=$!
for _ in $(seq 200); do grep -q '^listening on' "$out" && break; sleep 0.05; done
addr=$(sed -n 's/^listening on //p' "$out")
pids=()
for _ in $(seq "$C"); do
  bench/server-client/target/release/server-client "$addr" "$N" --hold-secs 60 >/dev/null &
  pids+=($!)
done
for _ in $(seq 600); do
  open=$(exec 3<>/dev/tcp/${addr%:*}/${addr#*:}; printf 'GET /metrics HTTP/1.1\r\n\r\n' >&3; cat <&3 | sed -n 's/^tune_websockets_open //p')
  [ "${open:-0}" -ge $((N * C)) ] && break
  sleep 0.1
done
echo "holding $open websockets in $W workers; SIGTERM"
t0=$(date +%s.%N)
kill -TERM $srv; wait $srv || true
t1=$(date +%s.%N)
grep -E '^(summary|shutdown):' "$out"
echo "process exit after SIGTERM: $(echo "$t1 - $t0" | bc) s"
kill "${pids[@]}" 2>/dev/null || true
wait "${pids[@]}" 2>/dev/null || true
rm -f "$out"
