//! Running a resolved scan: the backend (raw sockets, or printing for --dryrun), progress
//! on stderr, Ctrl-C, and the engine's [`Scanner::run`] pushing every finished host into
//! the outputs. Ctrl-C stops the scan and still closes every output validly.

use crate::plan::Resolved;
use crate::progress;
use anyhow::Result;
use portolan_engine::io::backend::Backend;
use portolan_engine::io::connect::Progress;
use portolan_engine::io::dryrun::DryRunBackend;
use portolan_engine::io::linux::LinuxBackend;
use portolan_engine::pipeline::{BoxFuture, Observer};
use portolan_engine::Scanner;
use portolan_model::Tee;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub enum Ended {
    Completed,
    Interrupted,
}

/// Progress bars and status lines on stderr, and the engine's notes.
struct Terminal {
    stats_every: Option<Duration>,
    phase: Mutex<Option<(CancellationToken, tokio::task::JoinHandle<()>)>>,
}

impl Observer for Terminal {
    fn phase_started(&self, label: &'static str, counters: Arc<Progress>) {
        let stop = CancellationToken::new();
        let task = progress::spawn(counters, self.stats_every, label, stop.clone());
        if let Ok(mut p) = self.phase.lock() {
            *p = Some((stop, task));
        }
    }

    fn phase_ended(&self) -> BoxFuture<'_, ()> {
        let phase = self.phase.lock().ok().and_then(|mut p| p.take());
        Box::pin(async move {
            if let Some((stop, task)) = phase {
                stop.cancel();
                let _ = task.await;
            }
        })
    }

    fn note(&self, line: &str) {
        eprintln!("{line}");
    }
}

pub async fn run(resolved: Resolved, mut sink: Tee) -> Result<Ended> {
    let Resolved {
        mut plan,
        stats_every,
        ..
    } = resolved;
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("caught SIGINT signal, cleaning up");
                cancel.cancel();
            }
        });
    }
    // A dry run prints its probes on stdout, in large writes.
    let stdout: Arc<Mutex<std::io::BufWriter<std::io::Stdout>>> = Arc::new(Mutex::new(
        std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
    ));
    let backend: Arc<dyn Backend> = if plan.dry_run {
        Arc::new(DryRunBackend::new(stdout.clone(), plan.payloads.clone()))
    } else {
        Arc::new(LinuxBackend::default())
    };
    let observer = Terminal {
        stats_every,
        phase: Mutex::new(None),
    };
    let scanner = Scanner {
        backend,
        observer: &observer,
    };
    let summary = scanner.run(&mut plan, &mut sink, &cancel).await;
    if let Ok(mut out) = stdout.lock() {
        let _ = out.flush();
    }
    Ok(if summary?.interrupted {
        Ended::Interrupted
    } else {
        Ended::Completed
    })
}
