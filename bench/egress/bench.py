#!/usr/bin/env python3
"""Loopback benchmark: direct vs tinyproxy, nginx, mitmdump and bot-bottle-egress.

Origin: nginx serving a 2-byte body over HTTPS (TLS 1.3, cert from a bench CA)
and plain HTTP. Paths measured, each with the same tool:
  HTTPS (oha, through CONNECT where it is a proxy):
    direct      oha -> origin
    tinyproxy   CONNECT tunnel, no interception
    nginx       plain HTTP in, TLS out, Authorization injected (reverse proxy)
    mitmdump    CONNECT + interception, header-injection addon
    egress      CONNECT + interception, Authorization injected from a slot
  plain HTTP (wrk, absolute-form through the proxies): direct, tinyproxy,
    nginx (a plain-HTTP reverse proxy injecting Authorization, the native
    reference; origin-form), mitmdump, egress.
Throughput: 64 keep-alive connections; median of RUNS interleaved runs.
CPU per request: the proxy processes' utime+stime (/proc) over the run divided
by completed requests. Latency: one keep-alive connection (p50), and a new
connection per request (p50). Memory: bot-bottle-egress RSS with 1000 idle
client connections.
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--egress", required=True)
p.add_argument("--duration", type=int, default=int(os.environ.get("DURATION", "10")))
p.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "3")))
p.add_argument("--conns", type=int, default=int(os.environ.get("CONNS", "64")))
args = p.parse_args()

W = tempfile.mkdtemp(prefix="egress-bench-")
TICK = os.sysconf("SC_CLK_TCK")
procs = []
ORIGIN_TLS, ORIGIN_HTTP, RPROXY, TINY, MITM, EGRESS = 18443, 18080, 18081, 18888, 18889, 18890
RPROXY_HTTP = 18082
TOKEN = "bench-secret-token-value"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def start(cmd, **kw):
    pr = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
    procs.append(pr)
    return pr


def wait_port(port, t=15):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} did not open")


def cleanup(*_):
    for pr in procs:
        try:
            pr.terminate()
        except Exception:
            pass
    for pidfile in ("nginx-origin.pid", "nginx-rproxy.pid"):
        f = os.path.join(W, pidfile)
        if os.path.exists(f):
            try:
                os.kill(int(open(f).read()), signal.SIGTERM)
            except Exception:
                pass


signal.signal(signal.SIGTERM, lambda *a: (cleanup(), sys.exit(1)))

# --- certificates -------------------------------------------------------------
os.chdir(W)
sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA"])
sh(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1"])
open("ext", "w").write("subjectAltName=IP:127.0.0.1,DNS:bench.example.com\nbasicConstraints=CA:FALSE\n")
sh(["openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
    "-out", "srv.pem", "-days", "2", "-extfile", "ext"])

# --- origin and nginx reverse proxy ----------------------------------------------
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
common = f"""
worker_processes 1; daemon off; error_log {W}/nginx-error.log crit;
events {{ worker_connections 4096; }}
"""
open("origin.conf", "w").write(common + f"""pid {W}/nginx-origin.pid;
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{ORIGIN_HTTP}; location / {{ return 200 "ok"; }} }}
  server {{ listen 127.0.0.1:{ORIGIN_TLS} ssl; ssl_certificate {W}/srv.pem; ssl_certificate_key {W}/srv.key;
           ssl_protocols TLSv1.3; location / {{ return 200 "ok"; }} }}
}}""")
open("rproxy.conf", "w").write(common + f"""pid {W}/nginx-rproxy.pid;
http {{ access_log off; keepalive_requests 1000000;
  upstream origin {{ server 127.0.0.1:{ORIGIN_TLS}; keepalive 128; }}
  server {{ listen 127.0.0.1:{RPROXY};
    location / {{ proxy_pass https://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {TOKEN}"; proxy_ssl_server_name on; proxy_ssl_name bench.example.com;
      proxy_ssl_verify on; proxy_ssl_protocols TLSv1.2 TLSv1.3; proxy_ssl_trusted_certificate {W}/ca.pem; proxy_ssl_session_reuse on; }} }}
  upstream origin_http {{ server 127.0.0.1:{ORIGIN_HTTP}; keepalive 128; }}
  server {{ listen 127.0.0.1:{RPROXY_HTTP};
    location / {{ proxy_pass http://origin_http; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {TOKEN}"; }} }}
}}""")
origin = start([NGINX, "-c", f"{W}/origin.conf", "-p", W])
rproxy = start([NGINX, "-c", f"{W}/rproxy.conf", "-p", W])

# --- tinyproxy -------------------------------------------------------------------
open("tinyproxy.conf", "w").write(f"""Port {TINY}
Listen 127.0.0.1
Timeout 600
MaxClients 2000
LogLevel Critical
Allow 127.0.0.1
ConnectPort {ORIGIN_TLS}
""")
tiny = start(["tinyproxy", "-d", "-c", f"{W}/tinyproxy.conf"])

# --- mitmdump --------------------------------------------------------------------
open("inject.py", "w").write(f"""
class Inject:
    def request(self, flow):
        flow.request.headers["authorization"] = "Bearer {TOKEN}"
addons = [Inject()]
""")
mitm = start(["mitmdump", "-q", "--listen-host", "127.0.0.1", "--listen-port", str(MITM),
              "--set", f"confdir={W}/mitm", "--set", f"ssl_verify_upstream_trusted_ca={W}/ca.pem",
              "-s", f"{W}/inject.py"])

# --- bot-bottle-egress -------------------------------------------------------------
policy = {"version": 1, "log": 0, "routes": [
    {"host": "127.0.0.1", "port": ORIGIN_TLS, "allow_private": True,
     "auth": {"scheme": "Bearer", "token_env": "EGRESS_TOKEN_0"}},
    {"host": "127.0.0.1", "port": ORIGIN_HTTP, "allow_private": True,
     "auth": {"scheme": "Bearer", "token_env": "EGRESS_TOKEN_0"}}],
    "extra_roots_pem": [open("ca.pem").read()]}
json.dump(policy, open("policy.json", "w"))
egress = start([args.egress, "run", "--policy", f"{W}/policy.json", "--listen", f"127.0.0.1:{EGRESS}"],
               env={"EGRESS_TOKEN_0": TOKEN})

for port in (ORIGIN_TLS, ORIGIN_HTTP, RPROXY, RPROXY_HTTP, TINY, MITM, EGRESS):
    wait_port(port, 30)
time.sleep(1)


def children(pid):
    out = [pid]
    try:
        for c in open(f"/proc/{pid}/task/{pid}/children").read().split():
            out += children(int(c))
    except OSError:
        pass
    return out


def cpu_ticks(pr):
    if pr is None:
        return 0
    total = 0
    for pid in children(pr.pid):
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total


def oha(url, proxy=None, conns=None, n=None, keepalive=True):
    cmd = ["oha", "--no-tui", "--output-format", "json", "--insecure"]
    cmd += ["-c", str(conns or args.conns)]
    cmd += ["-n", str(n)] if n else ["-z", f"{args.duration}s"]
    if proxy:
        cmd += ["-x", proxy]
    if not keepalive:
        cmd += ["--disable-keepalive"]
    out = sh(cmd + [url]).stdout
    j = json.loads(out)
    s = j["summary"]
    ok = sum(v for k, v in j.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    return {"rps": s["requestsPerSec"], "ok": ok, "p50": j["latencyPercentiles"]["p50"],
            "errors": j.get("errorDistribution", {})}


open("abs.lua", "w").write(f'wrk.path = "http://127.0.0.1:{ORIGIN_HTTP}/"\n'
                           f'wrk.headers["Host"] = "127.0.0.1:{ORIGIN_HTTP}"\n')


def wrk(url, script=False):
    cmd = ["wrk", "-t", "2", "-c", str(args.conns), "-d", f"{args.duration}s"]
    if script:
        cmd += ["-s", f"{W}/abs.lua"]
    out = sh(cmd + [url]).stdout
    rps = float([l for l in out.splitlines() if l.startswith("Requests/sec")][0].split()[1])
    total = int([l for l in out.splitlines() if "requests in" in l][0].split()[0])
    non2xx = [l for l in out.splitlines() if "Non-2xx" in l]
    return {"rps": rps, "ok": total - (int(non2xx[0].split()[-1]) if non2xx else 0)}


HTTPS_URL = f"https://127.0.0.1:{ORIGIN_TLS}/"
https_paths = {
    "direct": (lambda **k: oha(HTTPS_URL, **k), None),
    "tinyproxy (CONNECT tunnel)": (lambda **k: oha(HTTPS_URL, proxy=f"http://127.0.0.1:{TINY}", **k), tiny),
    "nginx (http in, TLS out, inject)": (lambda **k: oha(f"http://127.0.0.1:{RPROXY}/", **k), rproxy),
    "mitmdump (intercept, inject)": (lambda **k: oha(HTTPS_URL, proxy=f"http://127.0.0.1:{MITM}", **k), mitm),
    "bot-bottle-egress (intercept, inject)": (lambda **k: oha(HTTPS_URL, proxy=f"http://127.0.0.1:{EGRESS}", **k), egress),
}
HTTP_URL = f"http://127.0.0.1:{ORIGIN_HTTP}/"
http_paths = {
    "direct": (lambda: wrk(HTTP_URL), None),
    "tinyproxy": (lambda: wrk(f"http://127.0.0.1:{TINY}/", True), tiny),
    "nginx (reverse proxy, inject)": (lambda: wrk(f"http://127.0.0.1:{RPROXY_HTTP}/"), rproxy),
    "mitmdump": (lambda: wrk(f"http://127.0.0.1:{MITM}/", True), mitm),
    "bot-bottle-egress": (lambda: wrk(f"http://127.0.0.1:{EGRESS}/", True), egress),
}


def measure(fn, pr, **kw):
    c0 = cpu_ticks(pr)
    r = fn(**kw)
    c1 = cpu_ticks(pr)
    r["cpu_us"] = (c1 - c0) / TICK * 1e6 / max(r["ok"], 1) if pr else None
    return r


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


try:
    res = {k: [] for k in https_paths}
    hres = {k: [] for k in http_paths}
    for run in range(args.runs):
        for k, (fn, pr) in https_paths.items():
            res[k].append(measure(fn, pr))
        for k, (fn, pr) in http_paths.items():
            hres[k].append(measure(fn, pr))
    lat = {k: [] for k in https_paths}
    for run in range(args.runs):
        for k, (fn, pr) in https_paths.items():
            ka = fn(conns=1, n=2000)["p50"]
            nc = fn(conns=1, n=200 if "mitm" in k else 500, keepalive=False)["p50"]
            lat[k].append((ka, nc))

    # 1000 idle client connections to bot-bottle-egress. "Idle after the
    # load" is read once the load has been over for 2 s: the proxy returns
    # freed heap 0.5 s after connections stop closing.
    time.sleep(2)
    rss0 = int([l for l in open(f"/proc/{egress.pid}/status") if l.startswith("VmRSS")][0].split()[1])
    idle = [socket.create_connection(("127.0.0.1", EGRESS)) for _ in range(1000)]
    time.sleep(1)
    rss1 = int([l for l in open(f"/proc/{egress.pid}/status") if l.startswith("VmRSS")][0].split()[1])
    for s in idle:
        s.close()

    d_rps = med(r["rps"] for r in res["direct"])
    d_ka = med(l[0] for l in lat["direct"])
    d_nc = med(l[1] for l in lat["direct"])
    print()
    print(f"HTTPS, oha, {args.conns} keep-alive connections, {args.duration}s, median of {args.runs} interleaved runs")
    print(f"{'path':40} {'req/s':>10} {'x direct':>9} {'CPU us/req':>11} {'+p50 keep-alive':>16} {'+p50 new conn':>14}")
    for k in https_paths:
        rps = med(r["rps"] for r in res[k])
        cpu = med(r["cpu_us"] for r in res[k])
        ka = med(l[0] for l in lat[k])
        nc = med(l[1] for l in lat[k])
        cpu_s = f"{cpu:.1f}" if cpu is not None else "-"
        if k == "direct":
            print(f"{k:40} {rps:10.0f} {1:9.3f} {cpu_s:>11} {'p50 ' + format(ka*1000, '.3f') + ' ms':>16} {'p50 ' + format(nc*1000, '.3f') + ' ms':>14}")
        else:
            print(f"{k:40} {rps:10.0f} {rps/d_rps:9.3f} {cpu_s:>11} {format((ka-d_ka)*1000, '+.3f') + ' ms':>16} {format((nc-d_nc)*1000, '+.3f') + ' ms':>14}")
    hd = med(r["rps"] for r in hres["direct"])
    print()
    print(f"plain HTTP, wrk, {args.conns} keep-alive connections, absolute-form through the proxies")
    print(f"{'path':40} {'req/s':>10} {'x direct':>9} {'CPU us/req':>11}")
    for k in http_paths:
        rps = med(r["rps"] for r in hres[k])
        cpu = med(r["cpu_us"] for r in hres[k])
        print(f"{k:40} {rps:10.0f} {rps/hd:9.3f} {(format(cpu, '.1f') if cpu is not None else '-'):>11}")
    print()
    print(f"bot-bottle-egress RSS: {rss0/1024:.1f} MiB idle, {rss1/1024:.1f} MiB with 1000 idle client connections")
    # oha -z ends every connection's last request at the deadline; not an error.
    errs = {k: [{e: n for e, n in r.get("errors", {}).items() if "deadline" not in e} for r in v] for k, v in res.items()}
    errs = {k: [e for e in v if e] for k, v in errs.items()}
    errs = {k: v for k, v in errs.items() if v}
    if errs:
        print("errors reported by oha:", json.dumps(errs)[:2000])
finally:
    cleanup()
