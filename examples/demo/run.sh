#!/usr/bin/env bash
# The README's main-job command: one built-in demo bottle, end to end, on a
# machine with Docker and nothing else (no credentials, registry or internet).
#
#   examples/demo/run.sh
#
# 1. builds bot-bottle, the Docker plugin, and the static egress proxy, demo
#    agent and demo upstream (cargo; static ones with +crt-static);
# 2. starts a demo upstream container posing as `api.demo.test` on a demo
#    network (the sidecar's egress side joins it through
#    BOT_BOTTLE_DOCKER_EGRESS_NETWORK; the agent never does);
# 3. writes a demo HOME with a bottle and an agent manifest, and a demo token
#    in a host variable (DEMO_API_TOKEN) that only the egress proxy receives;
# 4. runs `bot-bottle start demo --headless --prompt demo --yes`: the agent
#    calls the allowed route holding only a placeholder (the upstream reports
#    that the real credential arrived), then a host with no route (refused
#    with the proxy's reason);
# 5. prints what happened and where the egress log is, and cleans up.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
STATIC="$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release"
TAG="$$"
NET="bot-bottle-demo-$TAG"
UPSTREAM="bot-bottle-demo-upstream-$TAG"
DEMO_HOME="$(mktemp -d -t bot-bottle-demo.XXXXXX)"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

cleanup() {
  docker rm -f "$UPSTREAM" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$ROOT/scripts/ensure-docker.sh"

step "Building bot-bottle and the Docker plugin"
( cd "$ROOT" && cargo build -p bot-bottle -p bot-bottle-docker )
step "Building the static egress proxy, demo agent and demo upstream (+crt-static)"
( cd "$ROOT"
  export RUSTFLAGS="-C target-feature=+crt-static"
  cargo build --release --target x86_64-unknown-linux-gnu -p bot-bottle-egress
  cargo build --release --target x86_64-unknown-linux-gnu -p bot-bottle-test-agent
  cargo build --release --target x86_64-unknown-linux-gnu -p bot-bottle-test-upstream )

step "Building the demo images (FROM scratch, nothing pulled)"
CTX="$DEMO_HOME/build"; mkdir -p "$CTX/agent" "$CTX/upstream"
cp "$STATIC/bot-bottle-test-agent" "$CTX/agent/agent"
printf 'FROM scratch\nCOPY agent /agent\nUSER 1000:1000\n' > "$CTX/agent/Dockerfile"
cp "$STATIC/bot-bottle-test-upstream" "$CTX/upstream/upstream"
printf 'FROM scratch\nCOPY upstream /upstream\nUSER 65534:65534\nENTRYPOINT ["/upstream"]\n' > "$CTX/upstream/Dockerfile"
DOCKER_BUILDKIT=0 docker build -t bot-bottle-demo-agent:latest "$CTX/agent"
DOCKER_BUILDKIT=0 docker build -t bot-bottle-demo-upstream:latest "$CTX/upstream"

# The real credential: a random demo token in a host variable. The agent
# only ever sees the placeholder below.
DEMO_API_TOKEN="demo-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export DEMO_API_TOKEN
TOKEN_SHA="$(printf '%s' "$DEMO_API_TOKEN" | sha256sum | cut -d' ' -f1)"

step "Starting the demo upstream as api.demo.test on network $NET"
docker network create "$NET" >/dev/null
docker run -d --name "$UPSTREAM" --network "$NET" --sysctl net.ipv4.ip_unprivileged_port_start=0 \
  --network-alias api.demo.test --network-alias blocked.demo.test \
  -e EXPECTED_TOKEN_SHA256="$TOKEN_SHA" \
  bot-bottle-demo-upstream:latest --https 0.0.0.0:443 --http 0.0.0.0:80 \
  --tls-name api.demo.test --tls-name blocked.demo.test >/dev/null
CERT=""
for _ in $(seq 1 100); do
  CERT="$(docker logs "$UPSTREAM" 2>/dev/null | grep '"event":"cert"' | head -1 || true)"
  [ -n "$CERT" ] && break
  sleep 0.05
done
[ -n "$CERT" ] || { echo "the demo upstream did not start" >&2; exit 1; }
# The demo route is plain HTTP: manifests cannot add upstream trust roots,
# and the proxy injects the credential on http:// routes just the same.

step "Writing the demo HOME at $DEMO_HOME"
mkdir -p "$DEMO_HOME/.bot-bottle/bottles" "$DEMO_HOME/.bot-bottle/agents" "$DEMO_HOME/workspace"
{
  cat <<YAML
---
image: bot-bottle-demo-agent:latest
agent_provider:
  template: command
  settings:
    command: ["/agent", "demo"]
    user: "1000:1000"
env:
  DEMO_URL: http://api.demo.test/v1/whoami
  DEMO_BLOCKED_URL: http://blocked.demo.test/
egress:
  routes:
    - host: api.demo.test
      auth: {scheme: Bearer, token_ref: DEMO_API_TOKEN}
      allow_private: true
---
The demo bottle: one allowed API host (the local demo upstream), with the
real credential injected by the egress proxy. Everything else is refused.
YAML
} > "$DEMO_HOME/.bot-bottle/bottles/demo.md"
cat > "$DEMO_HOME/.bot-bottle/agents/demo.md" <<'MD'
---
bottle: demo
---
A demo agent that calls an allowed route and a host with no route.
MD

step "Running: bot-bottle start demo --headless --prompt demo --yes"
export HOME="$DEMO_HOME"
export BOT_BOTTLE_DOCKER_EGRESS_NETWORK="$NET"
export BOT_BOTTLE_EGRESS_BIN="$STATIC/bot-bottle-egress"
set +e
OUT="$("$CARGO_TARGET_DIR/debug/bot-bottle" start demo --backend docker --headless --prompt demo --yes 2>&1 | tee /dev/stderr)"
CODE=$?
set -e

step "What happened"
if printf '%s' "$OUT" | grep -q '"token_valid":true'; then
  echo "  * The agent called http://api.demo.test holding only a placeholder;"
  echo "    the upstream received the real DEMO_API_TOKEN (token_valid: true),"
  echo "    injected by the egress proxy."
else
  echo "  * The allowed call did not show the injected credential (see output above)."
fi
if printf '%s' "$OUT" | grep -q 'has no egress route'; then
  echo "  * The call to http://blocked.demo.test was refused by the proxy:"
  printf '%s\n' "$OUT" | grep -o 'bot-bottle egress: host `blocked.demo.test`[^"]*' | head -1 | sed 's/\\n$//; s/^/      /'
fi
printf '%s' "$OUT" | grep -q "$DEMO_API_TOKEN" && echo "  !! the real token appeared in the output" >&2
LOG="$(find "$DEMO_HOME/.bot-bottle" "$DEMO_HOME/.local" -name egress.log 2>/dev/null | head -1 || true)"
echo "  * Egress decision log: ${LOG:-see 'bot-bottle logs <id> --egress'}"
echo "  * bot-bottle exited with $CODE"
exit "$CODE"
