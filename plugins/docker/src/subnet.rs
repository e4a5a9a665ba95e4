//! Addresses on a bottle's internal network.
//!
//! The internal network gets a subnet we choose, so the sidecar's address is
//! known before either container exists: the agent container can then be
//! created (with its proxy variables and resolver) and started while the
//! sidecar is still starting, instead of after it. Docker only honours a
//! fixed endpoint address on networks with a user-configured subnet.
//!
//! Blocks are /29s drawn from a pool (default `198.18.0.0/15`, the range
//! reserved for network benchmarking, RFC 2544: it is neither routed on the
//! internet nor normally used on LANs). The network is internal with no
//! address on the host side, so a block never adds a route on the host.

use std::hash::BuildHasher;
use std::net::Ipv4Addr;

use crate::error::{DockerError, Result};

/// Default pool for internal-network blocks.
pub const DEFAULT_POOL: &str = "198.18.0.0/15";
/// Prefix length of one bottle's block: network, gateway, sidecar, agent.
pub const BLOCK_PREFIX: u8 = 29;

/// An IPv4 range in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    base: u32,
    prefix: u8,
}

impl Pool {
    /// Parses `a.b.c.d/n` with `n` at most 29 (a pool holds whole blocks).
    pub fn parse(text: &str) -> Result<Pool> {
        let bad = || {
            DockerError::Config(format!(
                "BOT_BOTTLE_DOCKER_SUBNET_POOL=`{text}` is not an IPv4 range a.b.c.d/n with n from 8 to {BLOCK_PREFIX}"
            ))
        };
        let (addr, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        if !(8..=BLOCK_PREFIX).contains(&prefix) {
            return Err(bad());
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(Pool {
            base: u32::from(addr) & mask,
            prefix,
        })
    }

    /// How many blocks the pool holds.
    pub fn blocks(&self) -> u32 {
        1 << (BLOCK_PREFIX - self.prefix)
    }

    /// A pseudo-random block for `bottle`; `attempt` moves to another one
    /// after Docker reports an overlap (a concurrent bottle took it).
    pub fn pick(&self, bottle: &str, attempt: u32) -> Block {
        // RandomState is seeded per process, so two CLIs launching the same
        // id pattern still spread over the pool.
        let h = std::collections::hash_map::RandomState::new().hash_one((bottle, attempt));
        let index = (h % u64::from(self.blocks())) as u32;
        Block(self.base + (index << (32 - BLOCK_PREFIX)))
    }
}

/// One bottle's /29 on the internal network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block(u32);

impl Block {
    /// The subnet in CIDR form, as Docker's IPAM takes it.
    pub fn cidr(&self) -> String {
        format!("{}/{BLOCK_PREFIX}", Ipv4Addr::from(self.0))
    }
    /// The gateway IPAM reserves (unused: the network has no host side).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 1)
    }
    /// The egress sidecar's address.
    pub fn sidecar(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 2)
    }
    /// The agent's address.
    pub fn agent(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 3)
    }
}

/// Whether an engine error means "that subnet is taken".
pub fn is_overlap(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { message, .. }
            if message.contains("overlaps")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_stay_inside_the_pool_and_are_aligned() {
        let pool = Pool::parse("198.18.0.0/15").unwrap();
        assert_eq!(pool.blocks(), 16384);
        for attempt in 0..200 {
            let b = pool.pick("bottle-1", attempt);
            let first = u32::from(b.sidecar()) - 2;
            assert_eq!(first % 8, 0);
            assert!(b.cidr().starts_with("198.18.") || b.cidr().starts_with("198.19."));
            assert_eq!(u32::from(b.agent()), first + 3);
            assert_eq!(u32::from(b.gateway()), first + 1);
        }
    }

    #[test]
    fn retries_move_to_other_blocks() {
        let pool = Pool::parse(DEFAULT_POOL).unwrap();
        let picks: std::collections::BTreeSet<_> =
            (0..20).map(|a| pool.pick("same", a).cidr()).collect();
        assert!(picks.len() > 15, "{picks:?}");
    }

    #[test]
    fn a_single_block_pool_works() {
        let pool = Pool::parse("10.9.8.16/29").unwrap();
        assert_eq!(pool.pick("x", 7).cidr(), "10.9.8.16/29");
    }

    #[test]
    fn bad_pools_name_the_variable_and_the_form() {
        for bad in [
            "",
            "10.0.0.0",
            "10.0.0.0/30",
            "10.0.0.0/4",
            "300.0.0.0/16",
            "x/16",
        ] {
            let e = Pool::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("BOT_BOTTLE_DOCKER_SUBNET_POOL") && e.contains("a.b.c.d/n"),
                "{bad}: {e}"
            );
        }
    }
}
