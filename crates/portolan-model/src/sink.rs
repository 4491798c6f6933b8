//! The push interface between the engine and every output: results are handed to each
//! sink as they arrive, so files fill while a scan runs and can be closed validly on Ctrl-C.

use crate::model::{Host, ScanRun};

/// Errors a writer or reader can meet.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Transparent: its message once, not again as its own source (`{:#}` printed both).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A document could not be encoded (kept abstract so this crate needs no JSON library).
    #[error("JSON: {0}")]
    Json(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl OutputError {
    /// Wraps an encoder's error, e.g. `serde_json::to_writer(..).map_err(OutputError::json)?`.
    pub fn json(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        OutputError::Json(Box::new(e))
    }
}

/// What shapes the rendering of results (not the results themselves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// `--reason`: show why each state was concluded.
    pub reason: bool,
    /// `-v` level.
    pub verbose: u8,
    /// `-d` level.
    pub debugging: u8,
    /// `--open`: list only open (and possibly-open) ports.
    pub open_only: bool,
}

/// A consumer of results, fed in the order begin → host* → end.
pub trait Sink {
    /// Once, before any host: `run` carries args, start time and scaninfo.
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError>;
    /// Once per host, as soon as the host is finished.
    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError>;
    /// Once, at the end; `run.runstats` is set (exit = error after an interrupt).
    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError>;
}

/// Feeds every result to several sinks.
#[derive(Default)]
pub struct Tee {
    pub sinks: Vec<Box<dyn Sink + Send>>,
}

impl Sink for Tee {
    fn begin(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        self.sinks.iter_mut().try_for_each(|s| s.begin(run))
    }
    fn host(&mut self, run: &ScanRun, host: &Host) -> Result<(), OutputError> {
        self.sinks.iter_mut().try_for_each(|s| s.host(run, host))
    }
    fn end(&mut self, run: &ScanRun) -> Result<(), OutputError> {
        self.sinks.iter_mut().try_for_each(|s| s.end(run))
    }
}
