//! How a long backup or restore reports as it goes, without knowing who watches: the CLI draws a
//! bar on a terminal (plain lines otherwise), Lambda logs one line per finished phase.

/// Receives progress. Phases are short names (`configs`, `redis export`, `verify`, …); `total`
/// is known for some (objects to copy, records to restore) and estimated or absent for others.
pub trait Progress: Send + Sync {
    /// A phase starts.
    fn begin(&self, phase: &str, total: Option<u64>);
    /// `n` more units of the current phase are done.
    fn advance(&self, n: u64);
    /// The phase ended; `summary` says what it did.
    fn end(&self, phase: &str, summary: &str);
}

/// Logs each finished phase (Lambda, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn begin(&self, _phase: &str, _total: Option<u64>) {}

    fn advance(&self, _n: u64) {}

    fn end(&self, phase: &str, summary: &str) {
        tracing::info!(phase, summary, "phase finished");
    }
}
