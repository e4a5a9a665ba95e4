#!/usr/bin/env bash
# Quick plain-HTTP comparison (for iterating on the proxy, not for README
# figures: use run.sh for those). Starts an nginx origin and an nginx
# reverse proxy, runs the given bot-bottle-egress binaries, and prints
# wrk req/s, the ratio to direct and the proxy's CPU per request, for
# RUNS interleaved runs of DURATION seconds.
#
#   bench/egress/quick-http.sh BIN [BIN...]
set -euo pipefail
DURATION=${DURATION:-5}; RUNS=${RUNS:-3}; CONNS=${CONNS:-64}
W=$(mktemp -d /tmp/egress-quick-XXXX)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cat > "$W/o.conf" <<C
worker_processes 1; daemon off; error_log $W/e.log crit; pid $W/o.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:19080; location / { return 200 "ok"; } } }
C
cat > "$W/r.conf" <<C
worker_processes 1; daemon off; error_log $W/e.log crit; pid $W/r.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream o { server 127.0.0.1:19080; keepalive 128; }
  server { listen 127.0.0.1:19082; location / { proxy_pass http://o; proxy_http_version 1.1;
    proxy_set_header Connection ""; proxy_set_header Authorization "Bearer x"; } } }
C
"$NGINX" -c "$W/o.conf" -p "$W" & OG=$!
"$NGINX" -c "$W/r.conf" -p "$W" & NG=$!
echo '{"version":1,"log":0,"routes":[{"host":"127.0.0.1","port":19080,"allow_private":true,"auth":{"scheme":"Bearer","token_env":"EGRESS_TOKEN_0"}}]}' > "$W/p.json"
pids=(); port=19100
for b in "$@"; do
  EGRESS_TOKEN_0=tok "$b" run --policy "$W/p.json" --listen 127.0.0.1:$port --ready-file "$W/r$port" & pids+=($!)
  port=$((port+1))
done
trap 'kill $OG $NG ${pids[*]} 2>/dev/null; rm -rf $W' EXIT
sleep 1
printf 'wrk.path = "http://127.0.0.1:19080/"\nwrk.headers["Host"] = "127.0.0.1:19080"\n' > "$W/abs.lua"
# utime+stime of a process and its children (nginx's worker), in ticks.
ticks() { local t=0 p; for p in $1 $(cat /proc/$1/task/*/children 2>/dev/null); do
  t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
run() { wrk -t 2 -c "$CONNS" -d "${DURATION}s" "$@" | awk '/Requests\/sec/{print $2}'; }
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$RUNS"); do
  d=$(run http://127.0.0.1:19080/)
  n0=$(ticks $NG); ng=$(run http://127.0.0.1:19082/); n1=$(ticks $NG)
  line="run $r: direct $d  nginx-rp $ng ($(echo "$ng/$d" | bc -l | cut -c1-5)x, $(echo "($n1-$n0)*10000/($ng*$DURATION)" | bc -l | cut -c1-5)us/req)"
  i=0
  for p in "${pids[@]}"; do
    c0=$(ticks $p); e=$(run -s "$W/abs.lua" http://127.0.0.1:$((19100+i))/); c1=$(ticks $p)
    cpu=$(echo "($c1-$c0)*10000/($e*$DURATION)" | bc -l | cut -c1-5)
    line="$line  bin$i $e ($(echo "$e/$d" | bc -l | cut -c1-5)x, ${cpu}us/req)"
    i=$((i+1))
  done
  echo "$line"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
