//! Tearing a bottle down when the CLI is told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bot_bottle_sdk::Backend;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// On SIGINT, SIGTERM or SIGHUP: remove bottle `id` and exit with 128+signal.
///
/// Installed before the launch: a signal that arrives while `launching` is
/// held waits for the launch to return first, so the removal sees every
/// resource the launch created (a create already sent to the engine would
/// otherwise appear after the removal looked).
pub fn teardown_on_signal(backend: Arc<dyn Backend>, id: String, launching: Arc<Mutex<()>>) {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            STOPPING.store(true, Ordering::SeqCst);
            eprintln!("\nsignal {sig}: removing bottle {id}");
            drop(launching.lock().unwrap_or_else(|p| p.into_inner()));
            if let Err(e) = backend.remove(&id) {
                eprintln!("error: removing {id}: {e}");
            }
            std::process::exit(128 + sig);
        }
    });
}

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Once a signal started the teardown, the thread that handles it removes the
/// bottle and ends the process with 128+signal; the main thread must not end
/// it first with the agent's status (the agent died of that teardown).
pub fn yield_to_teardown() {
    if STOPPING.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}
