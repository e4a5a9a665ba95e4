//! The host side of smolvm's external egress interceptor.
//!
//! `machine start --egress-interceptor ADDR` makes the engine redirect every
//! TCP connection the guest opens (after its allow list) to a loopback
//! listener, prefixed by a preamble: `"SMOLICPT"`, version `1`, the 32-byte
//! launch token, the address family (`4`/`6`), the destination port and
//! address (big-endian). The listener answers one byte, `0` or a Linux errno,
//! before any payload. The engine never falls back to dialing the destination.
//!
//! This relay accepts exactly one destination — the proxy address the agent
//! was given — and splices it to the bottle's egress proxy on the host's
//! loopback. Everything else is refused with `ECONNREFUSED` and logged.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

const MAGIC: &[u8; 8] = b"SMOLICPT";
const VERSION: u8 = 1;
/// Length of the launch token in bytes.
pub const TOKEN_LEN: usize = 32;
const HEADER_LEN: usize = 8 + 1 + TOKEN_LEN + 1 + 2;
const ECONNREFUSED: u8 = 111;

/// Parses the 64-hex-digit token smolvm reads from `SMOLVM_INTERCEPTOR_TOKEN`.
pub fn parse_token(hex: &str) -> Option<[u8; TOKEN_LEN]> {
    let hex = hex.trim();
    if hex.len() != TOKEN_LEN * 2 {
        return None;
    }
    let mut out = [0u8; TOKEN_LEN];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    if out.iter().all(|b| *b == 0) {
        return None;
    }
    Some(out)
}

/// Encodes a token as smolvm expects it.
pub fn token_hex(token: &[u8; TOKEN_LEN]) -> String {
    token.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads and authenticates one preamble; returns the guest's destination.
pub fn read_preamble<R: Read>(mut r: R, token: &[u8; TOKEN_LEN]) -> io::Result<SocketAddr> {
    let mut header = [0u8; HEADER_LEN];
    r.read_exact(&mut header)?;
    // Constant-time comparison: the token is what proves the engine sent it.
    let mut mismatch = u8::from(&header[..8] != MAGIC) | u8::from(header[8] != VERSION);
    for (a, b) in header[9..9 + TOKEN_LEN].iter().zip(token.iter()) {
        mismatch |= a ^ b;
    }
    if mismatch != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "interceptor preamble rejected (bad magic, version or token)",
        ));
    }
    let family = header[9 + TOKEN_LEN];
    let port = u16::from_be_bytes([header[HEADER_LEN - 2], header[HEADER_LEN - 1]]);
    let ip = match family {
        4 => {
            let mut o = [0u8; 4];
            r.read_exact(&mut o)?;
            IpAddr::V4(Ipv4Addr::from(o))
        }
        6 => {
            let mut o = [0u8; 16];
            r.read_exact(&mut o)?;
            IpAddr::V6(Ipv6Addr::from(o))
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("interceptor preamble has unknown address family {other}"),
            ))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

/// Builds a preamble (used by tests, which play the engine's part).
pub fn preamble(token: &[u8; TOKEN_LEN], dest: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 16);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(token);
    match dest.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&dest.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&dest.port().to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
    }
    out
}

/// What the relay admits and where it sends it.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// The only destination the guest may dial (the proxy address it was given).
    pub allowed: SocketAddr,
    /// The egress proxy on the host's loopback.
    pub upstream: SocketAddr,
    /// Token shared with the engine for this launch.
    pub token: [u8; TOKEN_LEN],
}

/// Serves `listener` forever, one thread per connection.
pub fn serve(listener: TcpListener, cfg: RelayConfig, log: impl Fn(&str) + Send + Sync + 'static) {
    let log = std::sync::Arc::new(log);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let cfg = cfg.clone();
        let log = log.clone();
        std::thread::spawn(move || {
            if let Err(msg) = handle(conn, &cfg) {
                log(&msg);
            }
        });
    }
}

fn handle(mut guest: TcpStream, cfg: &RelayConfig) -> Result<(), String> {
    let _ = guest.set_read_timeout(Some(Duration::from_secs(10)));
    let dest = read_preamble(&mut guest, &cfg.token)
        .map_err(|e| format!("{{\"relay\":\"reject\",\"reason\":\"{e}\"}}"))?;
    if dest != cfg.allowed {
        let _ = guest.write_all(&[ECONNREFUSED]);
        return Err(format!(
            "{{\"relay\":\"deny\",\"destination\":\"{dest}\",\"reason\":\"direct connections are refused; only the egress proxy {} is reachable\"}}",
            cfg.allowed
        ));
    }
    let upstream = match TcpStream::connect_timeout(&cfg.upstream, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            let _ = guest.write_all(&[ECONNREFUSED]);
            return Err(format!(
                "{{\"relay\":\"error\",\"reason\":\"egress proxy {} unreachable: {e}\"}}",
                cfg.upstream
            ));
        }
    };
    guest.write_all(&[0]).map_err(|e| e.to_string())?;
    let _ = guest.set_read_timeout(None);
    splice(guest, upstream);
    Ok(())
}

fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || copy_then_close(a2, b2));
    copy_then_close(b, a);
    let _ = t.join();
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_round_trip_and_wrong_token() {
        let t = [7u8; TOKEN_LEN];
        let d: SocketAddr = "10.254.254.254:3128".parse().unwrap();
        assert_eq!(read_preamble(&preamble(&t, d)[..], &t).unwrap(), d);
        let e = read_preamble(&preamble(&[8u8; TOKEN_LEN], d)[..], &t).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn token_hex_round_trip_rejects_zero_and_short() {
        let t = [0xabu8; TOKEN_LEN];
        assert_eq!(parse_token(&token_hex(&t)), Some(t));
        assert_eq!(parse_token(&"0".repeat(64)), None);
        assert_eq!(parse_token("abcd"), None);
    }
}
