#!/usr/bin/env bash
# Measures what happens to connections queued on a worker that stops listening at its fd cap,
# with net.ipv4.tcp_migrate_req 0 (the default here) and 1. Runs in a fresh network namespace
# (`unshare -n`), so the sysctl it writes disappears with it: the host is left unchanged.
# Each worker is capped at 1200 fds (prlimit), 2 workers hold ~2 x 1000; the client opens
# 2400 connections with 512 handshakes in flight, so each worker reaches its cap while many
# connections are queued on it. The client tells apart `refused` (SYN refused: no listener had
# room, expected past ~2000) and `lost_after_accept` (TCP established, then reset before the
# websocket handshake: a connection lost from a closed queue, which must be 0).
# Usage: bench/server-fdcap/run.sh [ROUNDS]   (needs release builds of tune and the client)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-3}"
exec unshare -n bash -s "$ROUNDS" <<'INNER'
set -euo pipefail
ip link set lo up
for migrate in 0 1; do
  sysctl -qw net.ipv4.tcp_migrate_req=$migrate
  for r in $(seq 1 "$1"); do
    out=$(mktemp)
    prlimit --nofile=1200:1200 target/release/tune serve --listen 127.0.0.1:0 --workers 2 --backlog 128 >"$out" 2>/dev/null &
    srv=$!
    for _ in $(seq 100); do grep -q '^listening on' "$out" && break; sleep 0.05; done
    addr=$(sed -n 's/^listening on //p' "$out")
    res=$(timeout 60 bench/server-client/target/release/server-client "$addr" 2400 --concurrency 512)
    m=$(exec 3<>/dev/tcp/${addr%:*}/${addr#*:}; printf 'GET /metrics HTTP/1.1\r\n\r\n' >&3; cat <&3 || true)
    pauses=$(echo "$m" | grep -c '^tune_worker_listener_pauses_total{worker="[01]"} 1' || true)
    echo "tcp_migrate_req=$migrate round=$r $res workers_paused=$pauses"
    kill -TERM $srv; wait $srv || true
    rm -f "$out"
  done
done
INNER
