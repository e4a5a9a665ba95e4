//! `FrameWatch`, which follows HTTP/1.1 framing on the client's bytes to
//! catch a head with both `Content-Length` and `Transfer-Encoding`.
//!
//! Besides never panicking on any bytes, what it concludes must not depend
//! on how the bytes were split into reads: a client chooses its TCP segment
//! boundaries, so a split that hid the ambiguity would be a bypass.
#![no_main]

use std::sync::atomic::Ordering;

use bot_bottle_egress::io::FrameWatch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split_seed, bytes)) = data.split_first() else {
        return;
    };
    let max_head = 256;

    let mut whole = FrameWatch::new(max_head);
    whole.feed(bytes);

    // Reads of 1..=8 bytes, sizes taken from the seed.
    let mut pieces = FrameWatch::new(max_head);
    let mut rest = bytes;
    let mut seed = split_seed as usize;
    while !rest.is_empty() {
        let n = (seed % 8 + 1).min(rest.len());
        seed = seed.wrapping_mul(31).wrapping_add(7);
        pieces.feed(&rest[..n]);
        rest = &rest[n..];
    }

    let mut bytewise = FrameWatch::new(max_head);
    for b in bytes {
        bytewise.feed(std::slice::from_ref(b));
    }

    let a = whole.ambiguous.load(Ordering::SeqCst);
    assert_eq!(
        a,
        pieces.ambiguous.load(Ordering::SeqCst),
        "the split changed the verdict"
    );
    assert_eq!(
        a,
        bytewise.ambiguous.load(Ordering::SeqCst),
        "byte-by-byte reads changed the verdict"
    );
});
