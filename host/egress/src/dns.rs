//! A DNS stub that answers every query NXDOMAIN, so the agent's resolver
//! is not a way out (and does not hang waiting for one).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::error::EgressError;
use crate::log::{Kind, Logger};

/// Builds the NXDOMAIN answer for a query, or `None` if it is not one.
pub fn nxdomain(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    // Echo the first question when it parses; otherwise answer without it.
    let mut end = 12;
    let mut question_ok = qdcount >= 1;
    if question_ok {
        loop {
            let Some(&len) = query.get(end) else {
                question_ok = false;
                break;
            };
            if len == 0 {
                end += 1;
                break;
            }
            if len & 0xc0 != 0 {
                question_ok = false;
                break;
            }
            end += 1 + len as usize;
        }
        end += 4;
        if end > query.len() {
            question_ok = false;
        }
    }
    let opcode = query[2] & 0x78;
    let rd = query[2] & 0x01;
    let mut out = Vec::with_capacity(end.max(12));
    out.extend_from_slice(&query[0..2]);
    out.push(0x80 | opcode | 0x04 | rd); // QR, AA
    out.push(0x80 | 0x03); // RA, NXDOMAIN
    out.extend_from_slice(&[0, u8::from(question_ok), 0, 0, 0, 0, 0, 0]);
    if question_ok {
        out.extend_from_slice(&query[12..end]);
    }
    Some(out)
}

/// Binds UDP and TCP on `addr` and answers forever in background tasks.
pub async fn spawn(addr: SocketAddr, log: Arc<Logger>) -> Result<(), EgressError> {
    let listen_err = |source| EgressError::Listen {
        addr: addr.to_string(),
        source,
    };
    let udp = UdpSocket::bind(addr).await.map_err(listen_err)?;
    let tcp = TcpListener::bind(addr).await.map_err(listen_err)?;
    let ulog = log.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                continue;
            };
            if let Some(ans) = nxdomain(&buf[..n]) {
                let _ = udp.send_to(&ans, from).await;
                ulog.write(Kind::Deny, serde_json::json!({"client": from.to_string(), "dns": "udp", "reason": "DNS is not available in the bottle; answered NXDOMAIN"}));
            }
        }
    });
    tokio::spawn(async move {
        loop {
            let Ok((mut s, from)) = tcp.accept().await else {
                continue;
            };
            let tlog = log.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                    loop {
                        let mut len = [0u8; 2];
                        if s.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
                        if s.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        let Some(ans) = nxdomain(&q) else { return };
                        tlog.write(Kind::Deny, serde_json::json!({"client": from.to_string(), "dns": "tcp", "reason": "DNS is not available in the bottle; answered NXDOMAIN"}));
                        let mut framed = (ans.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&ans);
                        if s.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                })
                .await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_nxdomain_with_question() {
        // id 0x1234, RD, one question: example.com A IN
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        let a = nxdomain(&q).unwrap();
        assert_eq!(&a[0..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 3);
        assert_eq!(&a[12..], &q[12..]);
        assert!(nxdomain(&[1, 2, 3]).is_none());
    }
}
