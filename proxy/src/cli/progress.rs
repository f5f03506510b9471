//! Progress output: a redrawn bar on a terminal, plain start/finish lines otherwise (logs of a
//! Kubernetes Job must not fill up with carriage returns).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use poolgate_store::transfer::Progress;

/// Phases smaller than this draw no bar (a bar for ten items is noise).
const BAR_MIN_ITEMS: usize = 200;
const BAR_WIDTH: usize = 30;

/// Progress on stderr.
pub struct StderrProgress {
    terminal: bool,
    quiet: bool,
    phase: Mutex<(String, usize, Instant)>,
    done: AtomicUsize,
    drawn: AtomicUsize,
}

impl StderrProgress {
    /// `quiet` suppresses everything (e.g. `--json` in a pipe).
    pub fn new(quiet: bool) -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            quiet,
            phase: Mutex::new((String::new(), 0, Instant::now())),
            done: AtomicUsize::new(0),
            drawn: AtomicUsize::new(0),
        }
    }

    /// The phase state; a panic elsewhere cannot make progress output fail.
    fn lock(&self) -> MutexGuard<'_, (String, usize, Instant)> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn draw(&self, done: usize, total: usize, name: &str) {
        let filled = (done * BAR_WIDTH).checked_div(total).unwrap_or(BAR_WIDTH).min(BAR_WIDTH);
        let bar: String = "#".repeat(filled) + &"-".repeat(BAR_WIDTH - filled);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{name:<30} [{bar}] {done}/{total}");
        let _ = err.flush();
    }
}

impl Progress for StderrProgress {
    fn start(&self, phase: &str, total: usize) {
        *self.lock() = (phase.to_string(), total, Instant::now());
        self.done.store(0, Ordering::SeqCst);
        self.drawn.store(0, Ordering::SeqCst);
        if self.quiet || total == 0 {
            return;
        }
        if self.terminal && total >= BAR_MIN_ITEMS {
            self.draw(0, total, phase);
        } else {
            eprintln!("{phase}: {total} to do");
        }
    }

    fn advance(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::SeqCst) + n;
        let (name, total) = {
            let p = self.lock();
            (p.0.clone(), p.1)
        };
        if self.quiet || !self.terminal || total < BAR_MIN_ITEMS {
            return;
        }
        // Redraw at most every 1% to keep the terminal cheap.
        let step = (total / 100).max(1);
        let last = self.drawn.load(Ordering::SeqCst);
        if done >= last + step || done >= total {
            self.drawn.store(done, Ordering::SeqCst);
            self.draw(done.min(total), total, &name);
        }
    }

    fn finish(&self) {
        let (name, total, started) = self.lock().clone();
        if self.quiet || total == 0 {
            return;
        }
        let secs = started.elapsed().as_secs_f64();
        if self.terminal && total >= BAR_MIN_ITEMS {
            eprintln!();
        }
        eprintln!("{name}: {} done in {secs:.2}s", self.done.load(Ordering::SeqCst));
    }
}
