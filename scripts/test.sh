#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the
# tests need (Docker engine, curl, the smolvm engine), builds the workspace
# and the static binaries the Docker images are made from, then runs lints
# and every test. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '\n==> %s\n' "$*"; }

need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v python3 >/dev/null || need_apt+=(python3)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
scripts/ensure-docker.sh

if [ -x scripts/install-smolvm.sh ]; then
  log "installing the smolvm engine (cached)"
  # shellcheck disable=SC2046
  export $(scripts/install-smolvm.sh)
fi

log "building the workspace"
cargo build --workspace --all-targets

log "building the static egress proxy (for FROM scratch images)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release -p bot-bottle-egress --target x86_64-unknown-linux-gnu
export BOT_BOTTLE_EGRESS_BIN="$ROOT/target/x86_64-unknown-linux-gnu/release/bot-bottle-egress"

log "lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The SDK's rustdoc is what plugin authors read: broken links fail the run.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

log "tests"
# A test that cannot run here says so (tests/support): the list is printed
# last, so a skip is never mistaken for a pass.
skips=$(mktemp)
trap 'rm -f "$skips"' EXIT
status=0
BOT_BOTTLE_SKIP_LOG="$skips" cargo test --workspace || status=$?
if [ -s "$skips" ]; then
  log "skipped: $(wc -l <"$skips") (could not do their work on this machine)"
  sort "$skips"
else
  log "no test was skipped"
fi
exit "$status"
