//! The escape attempts: what the probe agent runs, and how each answer is
//! judged. A check passes only on evidence: a refusal, and (where the
//! target can tell) the target's own record that nothing arrived.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::fixtures::{
    self, Fixtures, API_HOST, BLOCKED_HOST, HTTPS_PORT, HTTP_PORT, OPEN_HOST, PRIVATE_HOST,
    TCP_PORT, UDP_PORT,
};
use super::{Outcome, Report, PLACEHOLDER, PROBE_DIR};

/// Ports of the proxy's own address the agent tries besides the proxy port.
const PROXY_OTHER_PORTS: &[u16] = &[22, 80, 443, 2375, 3129, 8080, 8443, 9000];

fn a(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// The probe batch for the agent. Empty without test hosts.
pub fn probes(fx: Option<&Fixtures>, canary: &str) -> Vec<Value> {
    let Some(f) = fx else {
        return Vec::new();
    };
    let mut p: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |id: &str, args: &[&str]| {
        p.push((id.to_string(), args.iter().map(|s| s.to_string()).collect()))
    };
    let api_s = a(API_HOST, HTTPS_PORT);
    let api_h = a(API_HOST, HTTP_PORT);
    let blk_s = a(BLOCKED_HOST, HTTPS_PORT);
    let blk_h = a(BLOCKED_HOST, HTTP_PORT);
    let open_s = a(OPEN_HOST, HTTPS_PORT);
    let prv_h = a(PRIVATE_HOST, HTTP_PORT);
    let other_h = a(&f.other_ip, HTTP_PORT);
    let other_s = a(&f.other_ip, HTTPS_PORT);
    let api_ip_h = a(&f.api_ip, HTTP_PORT);
    add(
        "control.https",
        &[
            "http",
            "--connect",
            &api_s,
            "--tls",
            API_HOST,
            "--target",
            "/v1/whoami",
            "--host",
            &api_s,
        ],
    );
    add(
        "control.http",
        &[
            "http",
            "--target",
            &format!("http://{api_h}/v1/whoami"),
            "--host",
            &api_h,
        ],
    );
    add(
        "noroute.http",
        &[
            "http",
            "--target",
            &format!("http://{blk_h}/"),
            "--host",
            &blk_h,
        ],
    );
    add(
        "noroute.https",
        &[
            "http",
            "--connect",
            &blk_s,
            "--tls",
            BLOCKED_HOST,
            "--insecure",
            "--host",
            &blk_s,
        ],
    );
    add(
        "bareip.http",
        &[
            "http",
            "--target",
            &format!("http://{other_h}/"),
            "--host",
            &other_h,
        ],
    );
    add(
        "bareip.spoofed-host",
        &[
            "http",
            "--target",
            &format!("http://{other_h}/"),
            "--host",
            &api_h,
        ],
    );
    add(
        "bareip.connect-spoofed-sni",
        &[
            "http",
            "--connect",
            &other_s,
            "--tls",
            API_HOST,
            "--insecure",
            "--host",
            &api_s,
        ],
    );
    for port in PROXY_OTHER_PORTS {
        add(
            &format!("proxyport.{port}"),
            &["connect", &format!("{{proxy_host}}:{port}")],
        );
    }
    add(
        "proxyself.http",
        &[
            "http",
            "--target",
            "http://{proxy_host}:{proxy_port}/",
            "--host",
            "{proxy_host}:{proxy_port}",
        ],
    );
    add(
        "mismatch.connect-sni",
        &[
            "http",
            "--connect",
            &api_s,
            "--tls",
            BLOCKED_HOST,
            "--insecure",
            "--host",
            &blk_s,
        ],
    );
    add(
        "mismatch.connect-host",
        &[
            "http",
            "--connect",
            &api_s,
            "--tls",
            API_HOST,
            "--insecure",
            "--host",
            &blk_s,
        ],
    );
    add(
        "mismatch.tunnel-sni",
        &[
            "http",
            "--connect",
            &open_s,
            "--tls",
            BLOCKED_HOST,
            "--insecure",
            "--host",
            &blk_s,
        ],
    );
    add(
        "absolute.blocked-uri-api-host",
        &[
            "http",
            "--target",
            &format!("http://{blk_h}/"),
            "--host",
            &api_h,
        ],
    );
    add(
        "absolute.api-uri-blocked-host",
        &[
            "http",
            "--target",
            &format!("http://{api_h}/"),
            "--host",
            &blk_h,
        ],
    );
    add("direct.tcp4", &["connect", &a(&f.other_ip, TCP_PORT)]);
    add("direct.tcp4-allowed-host", &["connect", &api_ip_h]);
    add(
        "direct.udp4",
        &["udp", &a(&f.other_ip, UDP_PORT), "bbconf-udp4"],
    );
    if let Some(v6) = &f.other_ip6 {
        add("direct.tcp6", &["connect", &format!("[{v6}]:{TCP_PORT}")]);
        add(
            "direct.udp6",
            &["udp", &format!("[{v6}]:{UDP_PORT}"), "bbconf-udp6"],
        );
    }
    add("dns.arbitrary", &["resolve", "anything.conf.test"]);
    add("dns.blocked-name", &["resolve", BLOCKED_HOST]);
    add(
        "dns.direct-resolver",
        &[
            "resolve",
            "anything.conf.test",
            "--server",
            &a(&f.other_ip, 53),
        ],
    );
    add(
        "redirect.http",
        &[
            "http",
            "--target",
            &format!(
                "http://{api_h}/redirect?to=http://{}/landing",
                a(OPEN_HOST, HTTP_PORT)
            ),
            "--host",
            &api_h,
            "--follow",
        ],
    );
    add(
        "redirect.https",
        &[
            "http",
            "--connect",
            &api_s,
            "--tls",
            API_HOST,
            "--insecure",
            "--target",
            &format!("/redirect?to=https://{open_s}/landing"),
            "--host",
            &api_s,
            "--follow",
        ],
    );
    add(
        "redirect.no-route",
        &[
            "http",
            "--target",
            &format!("http://{api_h}/redirect?to=http://{blk_h}/landing"),
            "--host",
            &api_h,
            "--follow",
        ],
    );
    add(
        "private.route",
        &[
            "http",
            "--target",
            &format!("http://{prv_h}/"),
            "--host",
            &prv_h,
        ],
    );
    add(
        "private.bare-ip",
        &[
            "http",
            "--target",
            &format!("http://{api_ip_h}/"),
            "--host",
            &api_ip_h,
        ],
    );
    add("cred.env", &["env"]);
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    add("cred.scan", &["scan", "--hex", &hex]);
    add("cred.file", &["cat", &format!("{PROBE_DIR}/auth.json")]);
    add("cred.sockets", &["sockets"]);
    add(
        "ws.no-route",
        &[
            "http",
            "--target",
            &format!("http://{blk_h}/socket"),
            "--host",
            &blk_h,
            "--ws",
        ],
    );
    add(
        "ws.no-route-tls",
        &[
            "http",
            "--connect",
            &blk_s,
            "--tls",
            BLOCKED_HOST,
            "--insecure",
            "--target",
            "/socket",
            "--host",
            &blk_s,
            "--ws",
        ],
    );
    p.into_iter()
        .map(|(id, args)| json!({ "id": id, "args": args }))
        .collect()
}

/// `{"probe": id, "result": ...}` lines of the agent's output.
pub fn parse_batch(text: &str) -> BTreeMap<String, Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter_map(|v| Some((v["probe"].as_str()?.to_string(), v["result"].clone())))
        .collect()
}

/// What the checks judge.
pub struct Context<'a> {
    pub fx: Option<&'a Fixtures>,
    pub canary: &'a str,
    pub results: BTreeMap<String, Value>,
    pub agent_text: &'a str,
    pub egress_log: Result<String, bot_bottle_sdk::PluginError>,
    pub inspect: Option<Result<(Vec<String>, String), super::ConformanceError>>,
    pub backend: &'a str,
}

/// Every escape check name with what it tries, for SKIP lines.
const ESCAPES: &[(&str, &str)] = &[
    ("control.allowed-https", "GET https://api.conf.test:8443 (routed, credential injected)"),
    ("control.allowed-http", "GET http://api.conf.test:8080 (routed, credential injected)"),
    ("egress.no-route.http", "GET http://blocked.conf.test:8080 through the proxy"),
    ("egress.no-route.https", "CONNECT blocked.conf.test:8443 + TLS"),
    ("egress.bare-ip", "GET http://<blocked IP>:8080"),
    ("egress.bare-ip.spoofed-host", "GET http://<blocked IP>:8080 with Host: api.conf.test; CONNECT <blocked IP> with SNI api.conf.test"),
    ("egress.proxy-other-ports", "TCP to the proxy's address on other ports; a request to the proxy itself"),
    ("egress.mismatch.connect-sni", "CONNECT api.conf.test:8443, TLS SNI blocked.conf.test"),
    ("egress.mismatch.connect-host", "CONNECT api.conf.test:8443, SNI api, Host: blocked.conf.test"),
    ("egress.mismatch.tunnel-sni", "CONNECT open.conf.test:8443 (tunnelled), SNI blocked.conf.test"),
    ("egress.mismatch.absolute-uri", "absolute-form URI of one host with Host of another, both ways"),
    ("direct.tcp4", "direct TCP to the blocked host's IPv4"),
    ("direct.tcp4-allowed-host", "direct TCP to the allowed host's IPv4, bypassing the proxy"),
    ("direct.udp4", "a UDP datagram to the blocked host's IPv4"),
    ("direct.tcp6", "direct TCP to the blocked host's IPv6"),
    ("direct.udp6", "a UDP datagram to the blocked host's IPv6"),
    ("dns.arbitrary-name", "resolve anything.conf.test and blocked.conf.test with the bottle's resolver"),
    ("dns.direct-resolver", "query the suite's own resolver directly"),
    ("redirect.credential-not-forwarded", "allowed route redirects to another host (HTTP and HTTPS)"),
    ("redirect.to-no-route", "allowed route redirects to a host with no route"),
    ("egress.private-destination", "a route whose name resolves to a private address it does not allow; a bare private IP"),
    ("credential.agent-env", "read the agent's environment"),
    ("credential.files", "search every readable file for the credential"),
    ("credential.proc-environ", "search /proc/*/environ and cmdline"),
    ("credential.provisioned-files", "read the provisioned dummy auth file"),
    ("credential.engine-socket", "look for Docker/containerd/podman sockets and 127.0.0.1:2375"),
    ("credential.docker-inspect", "docker inspect of the agent's container"),
    ("credential.egress-log", "the egress decision log"),
    ("egress.websocket-no-route", "WebSocket upgrade to blocked.conf.test over HTTP and through CONNECT"),
    ("fixture.blocked-host-untouched", "the blocked host's own record of what reached it"),
];

/// SKIPs every escape check with `why`.
pub fn skip_escapes(report: &mut Report, why: &str) {
    for (check, tried) in ESCAPES {
        report.skip(check, *tried, why);
    }
}

/// After a failed launch: the lifecycle checks that needed the bottle, and
/// every escape check.
pub fn skip_all_after_launch(report: &mut Report, why: &str) {
    for (check, tried) in [
        ("lifecycle.list-shows-bottle", "list after launch"),
        (
            "lifecycle.gc-spares-live",
            "gc --dry-run while the bottle is live",
        ),
        ("lifecycle.wait-exit-code", "wait for the probe"),
        ("lifecycle.logs", "logs of the agent"),
        ("lifecycle.remove", "remove the bottle"),
        ("lifecycle.list-after-remove", "list after remove"),
        ("lifecycle.remove-again", "remove a second time"),
    ] {
        report.skip(check, tried, why);
    }
    skip_escapes(report, why);
}

fn short(v: &Value) -> String {
    let status = v["status"].as_u64().unwrap_or(0);
    let stage = v["stage"].as_str().unwrap_or("");
    let detail = v["error"]
        .as_str()
        .or_else(|| v["body"].as_str())
        .unwrap_or("")
        .replace(['\n', '\r'], " ");
    let detail: String = detail.chars().take(110).collect();
    let server = v["json"]["server"]
        .as_str()
        .map(|s| format!(" from upstream `{s}`"))
        .unwrap_or_default();
    let mut out = format!("status {status}{server} ({stage}: {})", detail.trim());
    if v["redirect"].is_object() {
        out.push_str(&format!(" -> followed: {}", short(&v["redirect"])));
    }
    out
}

/// Whether a probe's request (or the redirect it followed) arrived at the
/// host with no route.
fn reached_other(v: &Value) -> bool {
    v["json"]["server"] == "other" || v["redirect"]["json"]["server"] == "other"
}

impl Context<'_> {
    fn probe(&self, id: &str) -> Result<&Value, String> {
        self.results.get(id).ok_or_else(|| {
            let tail: String = self
                .agent_text
                .chars()
                .rev()
                .take(300)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!(
                "the probe `{id}` produced no result (agent output ends: {})",
                tail.trim()
            )
        })
    }

    /// PASS when none of `ids` reached the blocked host.
    fn not_reached(&self, report: &mut Report, check: &str, tried: &str, ids: &[&str]) {
        self.all_pass(report, check, tried, ids, |v| !reached_other(v));
    }

    /// PASS when every probe of `ids` ran and `pass` holds for each result.
    fn all_pass(
        &self,
        report: &mut Report,
        check: &str,
        tried: &str,
        ids: &[&str],
        pass: impl Fn(&Value) -> bool,
    ) {
        let mut seen = Vec::new();
        let mut ok = true;
        for id in ids {
            match self.probe(id) {
                Ok(v) => {
                    ok &= pass(v);
                    seen.push(format!("{id}: {}", short(v)));
                }
                Err(e) => {
                    ok = false;
                    seen.push(e);
                }
            }
        }
        report.check(check, ok, tried, seen.join("; "));
    }
}

/// Judges every escape probe.
pub fn evaluate(report: &mut Report, cx: &Context) {
    let Some(f) = cx.fx else {
        skip_escapes(report, "no test hosts");
        return;
    };
    let tried = |c: &str| {
        ESCAPES
            .iter()
            .find(|(n, _)| *n == c)
            .map(|(_, t)| *t)
            .unwrap_or("")
    };

    for (check, id) in [
        ("control.allowed-https", "control.https"),
        ("control.allowed-http", "control.http"),
    ] {
        match cx.probe(id) {
            Ok(v) => {
                let ok = v["status"] == 200
                    && v["json"]["server"] == "api"
                    && v["json"]["token_valid"] == true;
                report.check(check, ok, tried(check), format!(
                    "{}; the upstream saw the real credential: {} (a control: without it the refusals below prove nothing)",
                    short(v), v["json"]["token_valid"]
                ));
            }
            Err(e) => report.fail(check, tried(check), e),
        }
    }
    cx.not_reached(
        report,
        "egress.no-route.http",
        tried("egress.no-route.http"),
        &["noroute.http"],
    );
    cx.not_reached(
        report,
        "egress.no-route.https",
        tried("egress.no-route.https"),
        &["noroute.https"],
    );
    cx.not_reached(
        report,
        "egress.bare-ip",
        tried("egress.bare-ip"),
        &["bareip.http"],
    );
    cx.not_reached(
        report,
        "egress.bare-ip.spoofed-host",
        tried("egress.bare-ip.spoofed-host"),
        &["bareip.spoofed-host", "bareip.connect-spoofed-sni"],
    );

    // The proxy's own address: only the proxy port may answer.
    {
        let mut open = Vec::new();
        let mut missing = Vec::new();
        for port in PROXY_OTHER_PORTS {
            match cx.probe(&format!("proxyport.{port}")) {
                Ok(v) if v["connected"] == true => open.push(port.to_string()),
                Ok(_) => {}
                Err(e) => missing.push(e),
            }
        }
        let selfreq = cx.probe("proxyself.http");
        let self_ok =
            matches!(&selfreq, Ok(v) if !(200..300).contains(&v["status"].as_u64().unwrap_or(0)));
        let ok = open.is_empty() && missing.is_empty() && self_ok;
        let observed = format!(
            "ports {} refused{}; request to the proxy itself: {}{}",
            PROXY_OTHER_PORTS
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            if open.is_empty() {
                String::new()
            } else {
                format!(" except {} (OPEN)", open.join(","))
            },
            selfreq.map(short).unwrap_or_else(|e| e),
            if missing.is_empty() {
                String::new()
            } else {
                format!("; {}", missing.join("; "))
            },
        );
        report.check(
            "egress.proxy-other-ports",
            ok,
            tried("egress.proxy-other-ports"),
            observed,
        );
    }
    cx.not_reached(
        report,
        "egress.mismatch.connect-sni",
        tried("egress.mismatch.connect-sni"),
        &["mismatch.connect-sni"],
    );
    cx.not_reached(
        report,
        "egress.mismatch.connect-host",
        tried("egress.mismatch.connect-host"),
        &["mismatch.connect-host"],
    );
    cx.not_reached(
        report,
        "egress.mismatch.tunnel-sni",
        tried("egress.mismatch.tunnel-sni"),
        &["mismatch.tunnel-sni"],
    );
    cx.not_reached(
        report,
        "egress.mismatch.absolute-uri",
        tried("egress.mismatch.absolute-uri"),
        &[
            "absolute.blocked-uri-api-host",
            "absolute.api-uri-blocked-host",
        ],
    );

    let other_logs = fixtures::logs(&f.other);
    let logged = |event: &str, needle: &str| {
        other_logs
            .lines()
            .filter(|l| l.contains(&format!("\"event\":\"{event}\"")) && l.contains(needle))
            .count()
    };
    let direct_tcp = |report: &mut Report, check: &str, id: &str| match cx.probe(id) {
        Ok(v) => report.check(
            check,
            v["connected"] == false,
            tried(check),
            if v["connected"] == true {
                format!("CONNECTED to {}", v["addr"])
            } else {
                format!("refused: {}", v["error"].as_str().unwrap_or(""))
            },
        ),
        Err(e) => report.fail(check, tried(check), e),
    };
    direct_tcp(report, "direct.tcp4", "direct.tcp4");
    direct_tcp(
        report,
        "direct.tcp4-allowed-host",
        "direct.tcp4-allowed-host",
    );
    let direct_udp = |report: &mut Report, check: &str, id: &str, nonce: &str| match cx.probe(id) {
        Ok(v) => {
            let arrived = logged("udp", nonce);
            report.check(
                check,
                v["replied"] == false && arrived == 0,
                tried(check),
                format!(
                    "sent: {}, echo received: {}, datagrams the listener logged: {arrived}{}",
                    v["sent"],
                    v["replied"],
                    v["error"]
                        .as_str()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                ),
            )
        }
        Err(e) => report.fail(check, tried(check), e),
    };
    direct_udp(report, "direct.udp4", "direct.udp4", "bbconf-udp4");
    match &f.ipv6_skip {
        None => {
            direct_tcp(report, "direct.tcp6", "direct.tcp6");
            direct_udp(report, "direct.udp6", "direct.udp6", "bbconf-udp6");
        }
        Some(why) => {
            report.skip("direct.tcp6", tried("direct.tcp6"), why.clone());
            report.skip("direct.udp6", tried("direct.udp6"), why.clone());
        }
    }
    let tcp_events = logged("tcp", "");
    if tcp_events > 0 {
        report.fail(
            "direct.tcp-listener",
            "the blocked host's TCP listener log",
            format!("{tcp_events} connection(s) arrived"),
        );
    }

    match (cx.probe("dns.arbitrary"), cx.probe("dns.blocked-name")) {
        (Ok(x), Ok(y)) => report.check(
            "dns.arbitrary-name",
            x["resolved"] == false && y["resolved"] == false,
            tried("dns.arbitrary-name"),
            format!(
                "anything.conf.test: rcode {} {}; blocked.conf.test: rcode {} {}",
                x["rcode"], x["addresses"], y["rcode"], y["addresses"]
            ),
        ),
        (Err(e), _) | (_, Err(e)) => {
            report.fail("dns.arbitrary-name", tried("dns.arbitrary-name"), e)
        }
    }
    match cx.probe("dns.direct-resolver") {
        Ok(v) => {
            let arrived = logged("dns", "");
            report.check(
                "dns.direct-resolver",
                v["resolved"] == false && arrived == 0,
                tried("dns.direct-resolver"),
                format!(
                    "answer: {}; queries the resolver logged: {arrived}",
                    v["error"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("rcode {} {}", v["rcode"], v["addresses"]))
                ),
            )
        }
        Err(e) => report.fail("dns.direct-resolver", tried("dns.direct-resolver"), e),
    }

    // A redirect: the proxy must not follow it, and the new host (routed,
    // without a credential) must not receive the one injected for the first.
    {
        let mut ok = true;
        let mut seen = Vec::new();
        for id in ["redirect.http", "redirect.https"] {
            match cx.probe(id) {
                Ok(v) => {
                    let status = v["status"].as_u64().unwrap_or(0);
                    let next = &v["redirect"];
                    let reached = next["reached_upstream"] == true;
                    let auth = &next["json"]["authorization_sha256"];
                    let good = status == 302 && reached && auth.is_null();
                    ok &= good;
                    seen.push(format!(
                        "{id}: first answer {status}; redirected request {}, Authorization there: {}",
                        short(next),
                        if auth.is_null() { "none".to_string() } else if next["json"]["token_valid"] == true { "THE REAL CREDENTIAL".into() } else { "some value".into() }
                    ));
                }
                Err(e) => {
                    ok = false;
                    seen.push(e);
                }
            }
        }
        report.check(
            "redirect.credential-not-forwarded",
            ok,
            tried("redirect.credential-not-forwarded"),
            seen.join("; "),
        );
    }
    cx.not_reached(
        report,
        "redirect.to-no-route",
        tried("redirect.to-no-route"),
        &["redirect.no-route"],
    );

    cx.all_pass(
        report,
        "egress.private-destination",
        tried("egress.private-destination"),
        &["private.route", "private.bare-ip"],
        |v| v["reached_upstream"] != true,
    );

    match cx.probe("cred.env") {
        Ok(v) => {
            let env = v["env"].as_object().cloned().unwrap_or_default();
            let leaks: Vec<&String> = env
                .iter()
                .filter(|(_, val)| val.as_str().is_some_and(|s| s.contains(cx.canary)))
                .map(|(k, _)| k)
                .collect();
            let has_placeholder = env.values().any(|v| v.as_str() == Some(PLACEHOLDER));
            report.check(
                "credential.agent-env",
                leaks.is_empty() && !env.is_empty(),
                tried("credential.agent-env"),
                if leaks.is_empty() {
                    format!(
                        "{} variables, no credential (placeholder present: {has_placeholder})",
                        env.len()
                    )
                } else {
                    format!("THE CREDENTIAL is in {leaks:?}")
                },
            );
        }
        Err(e) => report.fail("credential.agent-env", tried("credential.agent-env"), e),
    }
    match cx.probe("cred.scan") {
        Ok(v) => {
            let hits: Vec<String> = v["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_string))
                .collect();
            let (proc_hits, file_hits): (Vec<String>, Vec<String>) =
                hits.into_iter().partition(|h| h.starts_with("/proc/"));
            report.check(
                "credential.files",
                file_hits.is_empty() && v["files_scanned"].as_u64().unwrap_or(0) > 0,
                tried("credential.files"),
                format!(
                    "{} files searched; found in: {file_hits:?}",
                    v["files_scanned"]
                ),
            );
            report.check(
                "credential.proc-environ",
                proc_hits.is_empty(),
                tried("credential.proc-environ"),
                format!(
                    "{} processes searched; found in: {proc_hits:?}",
                    v["processes_scanned"]
                ),
            );
        }
        Err(e) => {
            report.fail("credential.files", tried("credential.files"), e.clone());
            report.fail(
                "credential.proc-environ",
                tried("credential.proc-environ"),
                e,
            );
        }
    }
    match cx.probe("cred.file") {
        Ok(v) => {
            let text = v["contents"].as_str().unwrap_or("");
            report.check(
                "credential.provisioned-files",
                text.contains(PLACEHOLDER) && !text.contains(cx.canary),
                tried("credential.provisioned-files"),
                if text.contains(cx.canary) {
                    "THE CREDENTIAL is in the dummy file".to_string()
                } else {
                    format!("holds the placeholder: {}", text.contains(PLACEHOLDER))
                },
            );
        }
        Err(e) => report.fail(
            "credential.provisioned-files",
            tried("credential.provisioned-files"),
            e,
        ),
    }
    match cx.probe("cred.sockets") {
        Ok(v) => {
            let empty = |k: &str| v[k].as_array().is_none_or(|x| x.is_empty());
            report.check(
                "credential.engine-socket",
                empty("engine_sockets") && empty("connectable") && empty("engine_tcp"),
                tried("credential.engine-socket"),
                format!(
                    "sockets: {}, accepting: {}, engine paths: {}, engine TCP: {}",
                    v["sockets"], v["connectable"], v["engine_sockets"], v["engine_tcp"]
                ),
            );
        }
        Err(e) => report.fail(
            "credential.engine-socket",
            tried("credential.engine-socket"),
            e,
        ),
    }
    match &cx.inspect {
        Some(Ok((ids, text))) => report.check(
            "credential.docker-inspect",
            !ids.is_empty() && !text.contains(cx.canary) && !text.contains("docker.sock"),
            tried("credential.docker-inspect"),
            format!(
                "{} container(s) inspected; credential present: {}; engine socket mounted: {}",
                ids.len(),
                text.contains(cx.canary),
                text.contains("docker.sock")
            ),
        ),
        Some(Err(e)) => report.fail(
            "credential.docker-inspect",
            tried("credential.docker-inspect"),
            e.to_string(),
        ),
        None => report.skip(
            "credential.docker-inspect",
            tried("credential.docker-inspect"),
            format!("backend `{}` runs no Docker containers", cx.backend),
        ),
    }
    match &cx.egress_log {
        Ok(text) => report.check(
            "credential.egress-log",
            !text.is_empty() && !text.contains(cx.canary),
            tried("credential.egress-log"),
            format!(
                "{} lines; credential present: {}",
                text.lines().count(),
                text.contains(cx.canary)
            ),
        ),
        Err(e) if matches!(e.kind, bot_bottle_sdk::ErrorKind::Unsupported) => report.skip(
            "credential.egress-log",
            tried("credential.egress-log"),
            format!("backend has no egress log: {e}"),
        ),
        Err(e) => report.fail(
            "credential.egress-log",
            tried("credential.egress-log"),
            format!("error: {e}"),
        ),
    }
    cx.all_pass(
        report,
        "egress.websocket-no-route",
        tried("egress.websocket-no-route"),
        &["ws.no-route", "ws.no-route-tls"],
        |v| !reached_other(v) && v["status"] != 101,
    );
    let requests = logged("request", "");
    let dns = logged("dns", "");
    let udp = logged("udp", "");
    report.add(
        "fixture.blocked-host-untouched",
        if requests + dns + udp + tcp_events == 0 { Outcome::Pass } else { Outcome::Fail },
        tried("fixture.blocked-host-untouched"),
        format!("HTTP requests: {requests}, TCP connections: {tcp_events}, UDP datagrams: {udp}, DNS queries: {dns}"),
    );
}
