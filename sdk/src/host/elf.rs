//! A cheap structural check of a shared library before `dlopen`.
//!
//! The dynamic loader maps segments straight from the file: a truncated
//! library (an interrupted copy or download) makes it fault with SIGBUS
//! inside `dlopen`, killing the host. Checking that every loadable segment
//! lies inside the file turns that into an ordinary error.

use std::io::Read;
use std::path::Path;

const PT_LOAD: u32 = 1;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `Ok` when the file is not a 64-bit little-endian ELF (other formats are
/// left to the loader) or when its segments and section table fit the file.
pub(crate) fn check(path: &Path) -> Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot stat: {e}"))?
        .len();
    let mut head = Vec::new();
    file.by_ref()
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| format!("cannot read: {e}"))?;
    if head.len() < 4 || &head[..4] != b"\x7fELF" {
        let mach_o = head.len() >= 4 && head[..4] == [0xcf, 0xfa, 0xed, 0xfe];
        let pe = head.len() >= 2 && &head[..2] == b"MZ";
        return if mach_o || pe {
            Ok(())
        } else {
            Err("not a shared library (no ELF header)".into())
        };
    }
    if head.get(4) != Some(&2) || head.get(5) != Some(&1) {
        return Ok(()); // 32-bit or big-endian: left to the loader
    }
    let truncated = || format!("truncated or corrupt ELF file ({len} bytes); reinstall it");
    let phoff = u64_at(&head, 0x20).ok_or_else(truncated)?;
    let shoff = u64_at(&head, 0x28).ok_or_else(truncated)?;
    let phentsize = u64::from(u16_at(&head, 0x36).ok_or_else(truncated)?);
    let phnum = u64::from(u16_at(&head, 0x38).ok_or_else(truncated)?);
    let shentsize = u64::from(u16_at(&head, 0x3a).ok_or_else(truncated)?);
    let shnum = u64::from(u16_at(&head, 0x3c).ok_or_else(truncated)?);
    if shoff.saturating_add(shentsize.saturating_mul(shnum)) > len {
        return Err(truncated());
    }
    for i in 0..phnum {
        let at = usize::try_from(phoff + i * phentsize).map_err(|_| truncated())?;
        let (Some(kind), Some(offset), Some(filesz)) = (
            u32_at(&head, at),
            u64_at(&head, at + 8),
            u64_at(&head, at + 32),
        ) else {
            return Err(truncated());
        };
        if kind == PT_LOAD && offset.saturating_add(filesz) > len {
            return Err(truncated());
        }
    }
    Ok(())
}
