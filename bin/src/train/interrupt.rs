//! Ctrl-C. The first one asks the run to stop at its next safe point: after the
//! training step in progress (then `last/` is saved), or after the validation or
//! test batch in progress; while data loads or the model is built, where nothing
//! is worth saving yet, it exits at once. A second Ctrl-C exits at once. The exit
//! code of an interrupted run is 130 (128 + SIGINT), as a shell reports it.
//!
//! Test hook: `FINETUNE_IMDB_PAUSE=<point>:<ms>[,…]` sleeps that long at each
//! named point (`loading`, `step`, `valid-batch`, `test-batch`, `save`: inside a
//! checkpoint write), so that tests
//! can send a signal while the run is in a given phase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Interrupt {
    requested: AtomicBool,
    /// Nothing worth saving is in progress: a Ctrl-C exits at once.
    exit_at_once: AtomicBool,
}

impl Interrupt {
    pub const EXIT_CODE: u8 = 130;

    /// The Ctrl-C handler.
    pub fn ctrl_c(&self) {
        if self.requested.swap(true, Ordering::SeqCst) || self.exit_at_once.load(Ordering::SeqCst) {
            eprintln!("\ninterrupted");
            std::process::exit(Self::EXIT_CODE.into());
        }
        eprintln!("\nCtrl-C: stopping at the next safe point (Ctrl-C again to exit at once)");
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Asks for a stop, as a first Ctrl-C does.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Enters (`true`) or leaves a phase where a Ctrl-C exits at once; entering it
    /// with a stop already asked for exits now.
    pub fn exit_at_once(&self, yes: bool) {
        self.exit_at_once.store(yes, Ordering::SeqCst);
        if yes && self.requested() {
            eprintln!("\ninterrupted");
            std::process::exit(Self::EXIT_CODE.into());
        }
    }
}

/// The `FINETUNE_IMDB_PAUSE` test hook (see the module docs).
pub fn pause_point(point: &str) {
    let Ok(spec) = std::env::var("FINETUNE_IMDB_PAUSE") else {
        return;
    };
    for item in spec.split(',') {
        if let Some((p, ms)) = item.split_once(':') {
            if p == point {
                std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            }
        }
    }
}
