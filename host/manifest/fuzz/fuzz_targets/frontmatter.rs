//! Any text given to the bottle and agent parsers must yield a value or a
//! `ManifestError`, never a panic, hang or stack overflow.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Rendering the error exercises the Display paths too.
    if let Err(e) = bot_bottle_manifest::parse_bottle_str(Path::new("/fuzz/bottle.md"), text) {
        let _ = e.to_string();
    }
    if let Err(e) = bot_bottle_manifest::parse_agent_str(Path::new("/fuzz/agent.md"), text) {
        let _ = e.to_string();
    }
});
