#!/usr/bin/env bash
# Full bottle lifecycle (networks, egress sidecar, agent that exits at once,
# teardown), side by side:
#   plugin   bot-bottle-docker through the Backend trait (Engine API)
#   compose  docker-compose up --abort-on-container-exit + down, same two services
#   cli      the same steps as a sequence of docker CLI commands
# Usage: bench/docker/run.sh [RUNS]      (default 5; medians are printed)
# Needs: a running Docker engine, cargo, docker-compose (apt-get install docker-compose).
set -euo pipefail
RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
STATIC="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

say() { printf '\n== %s\n' "$*" >&2; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]/1e9}'; }

say "building static binaries and the lifecycle driver"
( cd "$ROOT"
  RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --target x86_64-unknown-linux-gnu -p bot-bottle-egress
  RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --target x86_64-unknown-linux-gnu -p bot-bottle-test-agent
  cargo build -q --release -p bot-bottle-docker --example lifecycle )

say "building images (classic builder, FROM scratch)"
mkdir -p "$WORK/agent" "$WORK/egress"
cp "$STATIC/bot-bottle-test-agent" "$WORK/agent/agent"
printf 'FROM scratch\nCOPY agent /agent\n' > "$WORK/agent/Dockerfile"
cp "$STATIC/bot-bottle-egress" "$WORK/egress/bot-bottle-egress"
printf 'FROM scratch\nCOPY bot-bottle-egress /bot-bottle-egress\nENTRYPOINT ["/bot-bottle-egress"]\n' > "$WORK/egress/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t bot-bottle-bench-agent:latest "$WORK/agent" >/dev/null
DOCKER_BUILDKIT=0 docker build -q -t bot-bottle-bench-egress:latest "$WORK/egress" >/dev/null

say "plugin ($RUNS runs + warm-up)"
PLUGIN_OUT="$("$CARGO_TARGET_DIR/release/examples/lifecycle" "$STATIC/bot-bottle-egress" bot-bottle-bench-agent:latest "$RUNS")"
echo "$PLUGIN_OUT"
PLUGIN="$(echo "$PLUGIN_OUT" | sed -n 's/.*lifecycle \([0-9.]*\)s.*/\1/p')"
FIRST="$(echo "$PLUGIN_OUT" | sed -n 's/.*first output \([0-9.]*\)s.*/\1/p')"

printf '{"version":1,"log":1,"routes":[]}\n' > "$WORK/policy.json"
EGRESS_ARGS='"run","--policy","/state/policy.json","--listen","0.0.0.0:3128","--ca-cert-out","/state/ca.crt","--dns-listen","0.0.0.0:53","--ready-file","/state/ready"'

compose_times=()
if command -v docker-compose >/dev/null; then
  say "docker-compose ($RUNS runs)"
  mkdir -p "$WORK/compose/state"; cp "$WORK/policy.json" "$WORK/compose/state/"
  chown -R 65534:65534 "$WORK/compose/state" 2>/dev/null || true
  cat > "$WORK/compose/docker-compose.yml" <<YAML
version: "2.4"
services:
  egress:
    image: bot-bottle-bench-egress:latest
    command: [$EGRESS_ARGS]
    user: "65534:65534"
    volumes: ["./state:/state"]
    networks: [internal, egress]
    sysctls: {net.ipv4.ip_unprivileged_port_start: "0"}
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    read_only: true
    healthcheck:
      test: ["CMD", "/bot-bottle-egress", "probe", "127.0.0.1:3128"]
      interval: 1s
      timeout: 3s
      retries: 10
  agent:
    image: bot-bottle-bench-agent:latest
    command: ["/agent", "env"]
    user: "1000:1000"
    networks: [internal]
    environment: {HTTPS_PROXY: "http://egress:3128"}
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    depends_on:
      egress: {condition: service_healthy}
networks:
  internal: {internal: true}
  egress: {}
YAML
  for i in $(seq 1 "$RUNS"); do
    rm -f "$WORK/compose/state/ready"
    t0=$(now)
    ( cd "$WORK/compose" && docker-compose -p "bbbench$$" up --abort-on-container-exit >/dev/null 2>&1 || true
      docker-compose -p "bbbench$$" down >/dev/null 2>&1 )
    compose_times+=($(( $(now) - t0 )))
  done
  COMPOSE="$(printf '%s\n' "${compose_times[@]}" | median)"
else
  say "docker-compose not installed: skipping (apt-get install docker-compose)"
  COMPOSE="n/a"
fi

say "docker CLI steps ($RUNS runs)"
cli_times=()
for i in $(seq 1 "$RUNS"); do
  S="$WORK/cli-$i"; mkdir -p "$S"; cp "$WORK/policy.json" "$S/"; chown 65534:65534 "$S" 2>/dev/null || true
  n="bbcli$$-$i"
  t0=$(now)
  docker network create --internal "$n-int" >/dev/null
  docker network create "$n-egr" >/dev/null
  docker create --name "$n-egress" --network "$n-egr" --user 65534:65534 -v "$S:/state" \
    --sysctl net.ipv4.ip_unprivileged_port_start=0 --cap-drop ALL --security-opt no-new-privileges:true \
    --read-only bot-bottle-bench-egress:latest run --policy /state/policy.json --listen 0.0.0.0:3128 \
    --ca-cert-out /state/ca.crt --dns-listen 0.0.0.0:53 --ready-file /state/ready >/dev/null
  docker network connect "$n-int" "$n-egress"
  docker start "$n-egress" >/dev/null
  while [ ! -e "$S/ready" ]; do sleep 0.01; done
  docker run --name "$n-agent" --network "$n-int" --user 1000:1000 --cap-drop ALL \
    --security-opt no-new-privileges:true -e HTTPS_PROXY="http://$n-egress:3128" \
    bot-bottle-bench-agent:latest /agent env >/dev/null
  docker rm -f "$n-agent" "$n-egress" >/dev/null
  docker network rm "$n-int" "$n-egr" >/dev/null
  cli_times+=($(( $(now) - t0 )))
done
CLI="$(printf '%s\n' "${cli_times[@]}" | median)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "n/a" || b == 0) print "n/a"; else printf "%.2f", a / b }'; }
say "results (median of $RUNS, seconds)"
printf '%-34s %s\n' "plugin full lifecycle" "$PLUGIN" \
  "plugin time to first agent output" "$FIRST" \
  "docker-compose up+down" "$COMPOSE" \
  "docker CLI steps" "$CLI" \
  "plugin / compose (target <= 0.25)" "$(ratio "$PLUGIN" "$COMPOSE")" \
  "plugin / CLI (target <= 0.70)" "$(ratio "$PLUGIN" "$CLI")"
