#!/usr/bin/env bash
# Benchmark bot-bottle-egress against direct, tinyproxy, nginx and mitmdump on
# loopback. Installs what it needs (tinyproxy, nginx from apt; mitmproxy from
# pip; oha via cargo install; wrk must be present), builds the proxy in
# release mode, then runs bench.py, which prints a table.
#
#   bench/egress/run.sh                      # defaults: 10 s per run, 64 conns, 3 runs
#   DURATION=5 RUNS=3 CONNS=64 bench/egress/run.sh
#   EGRESS_BIN=path/to/bot-bottle-egress bench/egress/run.sh   # skip the build
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

need_apt=()
command -v tinyproxy >/dev/null || need_apt+=(tinyproxy)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi
# Debian starts the packaged daemons on install; the benchmark runs its own.
systemctl stop tinyproxy nginx >/dev/null 2>&1 || service tinyproxy stop >/dev/null 2>&1 || true
service nginx stop >/dev/null 2>&1 || true
if ! command -v mitmdump >/dev/null; then
  pip install -q mitmproxy 2>/dev/null || pip install -q --break-system-packages mitmproxy
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v oha >/dev/null || cargo install oha --locked

# EGRESS_BIN: use an already built binary (e.g. the static one) instead of building.
if [ -z "${EGRESS_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
  (cd "$root" && cargo build --release -p bot-bottle-egress)
  EGRESS_BIN="$CARGO_TARGET_DIR/release/bot-bottle-egress"
fi
# bench.py works in a scratch directory: a relative path must not break it.
EGRESS_BIN=$(realpath "$EGRESS_BIN")
ulimit -n 8192 2>/dev/null || true
exec python3 "$here/bench.py" --egress "$EGRESS_BIN" "$@"
