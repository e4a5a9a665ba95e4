#!/bin/sh
# Installs the smolvm engine (smol-vmm, libkrun.so, libkrunfw.so.5) from the
# `smolmachines` wheel on PyPI into a cache directory, and prints the values
# to use for SMOLVM and SMOLVM_LIB_DIR.
#
# Idempotent: a complete install of the pinned version is reused as is.
#
#   scripts/install-smolvm.sh            # prints SMOLVM=... and SMOLVM_LIB_DIR=...
#   eval "$(scripts/install-smolvm.sh)"  # exports them into the current shell
#
# Environment:
#   SMOLMACHINES_VERSION   wheel version (default 1.32.2)
#   BOT_BOTTLE_SMOLVM_HOME cache directory (default /var/cache/bot-bottle/smolvm for root,
#                          else ${XDG_CACHE_HOME:-$HOME/.cache}/bot-bottle/smolvm)
#   PYTHON                 python interpreter with pip (default python3)
set -eu

version="${SMOLMACHINES_VERSION:-1.32.2}"
# smolvm boots the VM as an unprivileged per-VM uid, which must be able to read
# libkrun: root's home is not readable by it, so root installs under /var/cache.
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/bot-bottle/smolvm
else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/bot-bottle/smolvm"; fi
cache="${BOT_BOTTLE_SMOLVM_HOME:-$default_cache}"
python="${PYTHON:-python3}"
dest="$cache/$version"
smol="$dest/smol"

complete() {
    [ -x "$smol/smol-vmm" ] && [ -f "$smol/libkrun.so" ] && [ -f "$smol/libkrunfw.so.5" ] \
        && [ -f "$dest/.complete" ]
}

if ! complete; then
    command -v "$python" >/dev/null 2>&1 || {
        echo "install-smolvm: $python not found; install python3 with pip" >&2
        exit 1
    }
    mkdir -p "$cache"
    tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT INT TERM
    echo "install-smolvm: downloading smolmachines==$version from PyPI" >&2
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
        "smolmachines==$version" -d "$tmp/wheel" >&2
    wheel="$(ls "$tmp"/wheel/smolmachines-*.whl | head -n 1)"
    # A wheel is a zip; python's zipfile avoids depending on unzip.
    "$python" - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile, os, stat
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith("smol/"):
            continue
        path = z.extract(info, out)
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
PY
    for f in smol-vmm libkrun.so libkrunfw.so.5; do
        [ -f "$tmp/unpacked/smol/$f" ] || {
            echo "install-smolvm: the wheel has no smol/$f" >&2
            exit 1
        }
    done
    chmod 0755 "$tmp/unpacked/smol/smol-vmm"
    rm -rf "$dest"
    mkdir -p "$dest"
    mv "$tmp/unpacked/smol" "$smol"
    chmod -R a+rX "$dest"
    : >"$dest/.complete"
fi

echo "SMOLVM=$smol/smol-vmm"
echo "SMOLVM_LIB_DIR=$smol"
