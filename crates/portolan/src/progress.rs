//! Progress while a scan runs: a bar on a terminal once the scan has run a moment, and
//! periodic status lines (Nmap's "About 45.00% done; ETC") with --stats-every. Without it,
//! as in Nmap, nothing periodic is printed where stderr is not a terminal (cron, systemd,
//! CI logs), so an unattended job prints nothing on a quiet night.

use portolan_engine::io::connect::Progress;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a scan runs before a bar appears.
const BAR_DELAY: Duration = Duration::from_millis(1500);

/// The bar on screen, if any: other lines on stderr are printed around it
/// ([`print_line`]) so they do not run into it.
pub type Bar = Arc<std::sync::Mutex<Option<indicatif::ProgressBar>>>;

/// Prints `line` on stderr, above the bar if one is shown.
pub fn print_line(bar: &Bar, line: &str) {
    let shown = bar.lock().ok().and_then(|b| b.clone());
    match shown {
        Some(b) => b.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

pub fn spawn(
    progress: Arc<Progress>,
    stats_every: Option<Duration>,
    phase: &'static str,
    stop: CancellationToken,
    shown: Bar,
) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let start = Instant::now();
        let lines_every = stats_every;
        let mut next_line = lines_every.map(|d| start + d);
        let mut bar: Option<indicatif::ProgressBar> = None;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let now = Instant::now();
            let frac = progress.fraction();
            if tty && stats_every.is_none() && now - start >= BAR_DELAY {
                let b = bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new(10_000);
                    if let Ok(style) = indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {percent:>3}% ETA {eta}",
                    ) {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b.set_message(phase);
                    if let Ok(mut slot) = shown.lock() {
                        *slot = Some(b.clone());
                    }
                    b
                });
                b.set_position((frac * 10_000.0) as u64);
            }
            if let Some(at) = next_line {
                if now >= at {
                    eprintln!("{}", status_line(phase, &progress, now - start));
                    next_line = lines_every.map(|d| at + d);
                }
            }
        }
        if let Some(b) = bar {
            if let Ok(mut slot) = shown.lock() {
                *slot = None;
            }
            b.finish_and_clear();
        }
    })
}

/// Nmap's two status lines, e.g.
/// `Stats: 0:00:12 elapsed; 1 hosts completed` / `Connect Scan Timing: About 45.00% done; ETC: 10:40 (0:00:15 remaining)`.
pub fn status_line(phase: &str, progress: &Progress, elapsed: Duration) -> String {
    let frac = progress.fraction();
    let hosts = progress.hosts_done.load(Ordering::Relaxed);
    let mut s = format!(
        "Stats: {} elapsed; {hosts} hosts completed\n{phase} Timing: About {:.2}% done",
        hms(elapsed),
        frac * 100.0
    );
    if frac > 0.0 && frac < 1.0 {
        let remaining = elapsed.mul_f64((1.0 - frac) / frac);
        let etc = chrono::Local::now() + chrono::Duration::from_std(remaining).unwrap_or_default();
        s.push_str(&format!(
            "; ETC: {} ({} remaining)",
            etc.format("%H:%M"),
            hms(remaining)
        ));
    }
    s
}

fn hms(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_reports_percent_and_eta() {
        let p = Progress::default();
        p.ports_total.store(200, Ordering::Relaxed);
        p.ports_done.store(50, Ordering::Relaxed);
        let line = status_line("Connect Scan", &p, Duration::from_secs(12));
        assert!(
            line.starts_with("Stats: 0:00:12 elapsed; 0 hosts completed\n"),
            "{line}"
        );
        assert!(
            line.contains("Connect Scan Timing: About 25.00% done; ETC: "),
            "{line}"
        );
        assert!(line.contains("(0:00:36 remaining)"), "{line}");
    }
}
