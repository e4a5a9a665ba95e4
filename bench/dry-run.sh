#!/usr/bin/env bash
# Measures `bot-bottle start --dry-run` end to end: process start, plugin
# discovery and loading (the bundled docker and smolmachines plugins),
# manifest parsing, provider provisioning (Codex host-credential read) and
# plan building. Target (issue 2): under 20 ms wall.
#
# usage: bench/dry-run.sh            (builds release first)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release -q -p bot-bottle -p bot-bottle-docker -p bot-bottle-smolmachines
BIN="$PWD/target/release/bot-bottle"

HOME_DIR=$(mktemp -d)
trap 'rm -rf "$HOME_DIR"' EXIT
mkdir -p "$HOME_DIR/.bot-bottle/bottles" "$HOME_DIR/.bot-bottle/agents" "$HOME_DIR/.codex" "$HOME_DIR/work"
cat > "$HOME_DIR/.bot-bottle/bottles/base.md" <<'MD'
---
env: {GIT_PAGER: cat}
egress:
  log: 1
  routes:
    - host: pypi.org
    - host: files.pythonhosted.org
---
MD
cat > "$HOME_DIR/.bot-bottle/bottles/codex.md" <<'MD'
---
extends: base
agent_provider: {template: codex, forward_host_credentials: true}
egress:
  routes:
    - host: git.example.com
      auth: {scheme: token, token_ref: GITEA_TOKEN}
      matches: [{paths: [{type: prefix, value: /api/v1/}], methods: [GET, POST]}]
---
MD
printf -- '---\nbottle: codex\n---\nYou write code.\n' > "$HOME_DIR/.bot-bottle/agents/coder.md"
python3 - "$HOME_DIR" <<'PY'
import base64, json, sys
b = lambda x: base64.urlsafe_b64encode(json.dumps(x).encode()).decode().rstrip("=")
tok = b({"alg": "RS256"}) + "." + b({"exp": 4102444800}) + ".sig"
json.dump({"OPENAI_API_KEY": None, "tokens": {"id_token": tok, "access_token": tok, "refresh_token": "r", "account_id": "a"}},
          open(sys.argv[1] + "/.codex/auth.json", "w"))
PY
cd "$HOME_DIR/work"
export HOME="$HOME_DIR" GITEA_TOKEN=bench-token XDG_DATA_HOME="$HOME_DIR/.local/share"
"$BIN" start coder --dry-run --json --backend docker > /dev/null
hyperfine --warmup 5 --runs 50 -N "$BIN start coder --dry-run --json --backend docker"
