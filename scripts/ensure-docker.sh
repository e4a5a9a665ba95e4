#!/usr/bin/env bash
# Makes sure a Docker engine answers: installs Debian's docker.io when there
# is no engine at all (as root), and starts dockerd when it is not running.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  if [ "$(id -u)" != 0 ]; then
    echo "No Docker engine found. Install one (Debian/Ubuntu: sudo apt-get install docker.io) and retry." >&2
    exit 1
  fi
  echo "==> installing docker.io" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
  echo "Docker is installed but not running. Start it (sudo systemctl start docker) and retry." >&2
  exit 1
fi
echo "==> starting dockerd (log: /tmp/bot-bottle-dockerd.log)" >&2
nohup dockerd >/tmp/bot-bottle-dockerd.log 2>&1 &
for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
echo "dockerd did not start; see /tmp/bot-bottle-dockerd.log" >&2
exit 1
