//! Tearing a bottle down when the CLI is told to stop.

use std::sync::Arc;

use bot_bottle_sdk::Backend;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// On SIGINT, SIGTERM or SIGHUP: remove bottle `id` and exit with 128+signal.
pub fn teardown_on_signal(backend: Arc<dyn Backend>, id: String) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("\nsignal {sig}: removing bottle {id}");
            if let Err(e) = backend.remove(&id) {
                eprintln!("error: removing {id}: {e}");
            }
            std::process::exit(128 + sig);
        }
    });
}
