#!/usr/bin/env bash
# Runs every cargo-fuzz target of the repository, one after the other.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs limit the run to those names
# (frontmatter, extends, policy, authority, framewatch, h1). Not part of the
# normal test suite. New corpus entries go to <crate>/fuzz/corpus/<target>/
# (kept in git); a crash leaves its input in <crate>/fuzz/artifacts/<target>/
# and makes the script exit non-zero after the remaining targets ran.
#
# cargo-fuzz needs nightly compiler flags (-Zsanitizer, -Cpasses); on a
# stable toolchain RUSTC_BOOTSTRAP=1 unlocks them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_EACH=${1:-60}
shift || true
case $SECONDS_EACH in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
ONLY=("$@")

export RUSTC_BOOTSTRAP=1
# cargo-fuzz keeps its build in <crate>/fuzz/target (git-ignored).
unset CARGO_TARGET_DIR

if ! command -v cargo-fuzz >/dev/null; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

failed=()
ran=0
for dir in host/manifest/fuzz host/egress/fuzz; do
  cd "$ROOT/$dir"
  for target in $(cargo fuzz list); do
    if [ ${#ONLY[@]} -gt 0 ] && [[ " ${ONLY[*]} " != *" $target "* ]]; then
      continue
    fi
    ran=$((ran + 1))
    mkdir -p "corpus/$target"
    args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    if [ -f "dict/$target.dict" ]; then
      args+=(-dict="dict/$target.dict")
    fi
    echo "==> $dir: $target for ${SECONDS_EACH}s"
    if ! cargo fuzz run -O "$target" "corpus/$target" -- "${args[@]}"; then
      failed+=("$dir:$target")
    fi
  done
done
cd "$ROOT"

if [ "$ran" -eq 0 ]; then
  echo "no fuzz target matched: ${ONLY[*]}" >&2
  exit 2
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "==> failed: ${failed[*]} (inputs under <crate>/fuzz/artifacts/)" >&2
  exit 1
fi
echo "==> $ran fuzz targets ran ${SECONDS_EACH}s each without a crash"
