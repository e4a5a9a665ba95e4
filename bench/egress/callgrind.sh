#!/usr/bin/env bash
# User-space instructions per request of bot-bottle-egress binaries under
# callgrind (steadier than req/s on a shared machine): N keep-alive requests
# over 4 connections with oha, plain HTTP (absolute-form) and intercepted
# HTTPS through CONNECT, against an nginx origin. Counters are zeroed after
# a warm-up, so start-up and the CA's leaf generation are not counted.
#
#   bench/egress/callgrind.sh BIN [BIN...]      # N=2000 by default
set -euo pipefail
N=${N:-2000}
W=$(mktemp -d /tmp/egress-cg-XXXX)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
  -days 2 -subj /CN=cg-ca >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr \
  -subj /CN=127.0.0.1 >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext
openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
  -extfile ext >/dev/null 2>&1
cat > o.conf <<C
worker_processes 1; daemon off; error_log $W/e.log crit; pid $W/o.pid;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19180; location / { return 200 "ok"; } }
  server { listen 127.0.0.1:19443 ssl; ssl_certificate $W/srv.pem; ssl_certificate_key $W/srv.key;
           ssl_protocols TLSv1.3; location / { return 200 "ok"; } } }
C
"$NGINX" -c "$W/o.conf" -p "$W" & OG=$!
python3 - "$W" <<'P'
import json, sys
w = sys.argv[1]
routes = [{"host": "127.0.0.1", "port": p, "allow_private": True,
           "auth": {"scheme": "Bearer", "token_env": "EGRESS_TOKEN_0"}} for p in (19180, 19443)]
json.dump({"version": 1, "log": 0, "routes": routes, "extra_roots_pem": [open(f"{w}/ca.pem").read()]},
          open(f"{w}/p.json", "w"))
P
trap 'kill $OG 2>/dev/null; rm -rf $W' EXIT
sleep 0.5
ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1}'; }
for b in "$@"; do
  for kind in http https; do
    url=http://127.0.0.1:19180/; [ $kind = https ] && url=https://127.0.0.1:19443/
    EGRESS_TOKEN_0=tok valgrind --tool=callgrind --callgrind-out-file="$W/cg.%p" \
      "$b" run --policy "$W/p.json" --listen 127.0.0.1:19190 >/dev/null 2>&1 & vp=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/19190) 2>/dev/null && break; sleep 0.2; done
    oha --no-tui -n 200 -c 4 --insecure -x http://127.0.0.1:19190 "$url" >/dev/null
    callgrind_control -z $vp >/dev/null
    oha --no-tui -n "$N" -c 4 --insecure -x http://127.0.0.1:19190 "$url" >/dev/null
    callgrind_control -d $vp >/dev/null
    sleep 0.5
    total=0
    for f in "$W"/cg.$vp.*; do [ -f "$f" ] && total=$((total + $(ir "$f"))); done
    kill $vp; wait $vp 2>/dev/null || true
    rm -f "$W"/cg.*
    echo "$(basename "$b") $kind: $((total / N)) instructions/request"
  done
done
