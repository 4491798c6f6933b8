//! Timing: Nmap's templates (-T0..-T5), explicit overrides, time values (`500ms`, `2s`, `5m`),
//! and the RTT estimator that turns replies into per-host timeouts.

use std::time::{Duration, Instant};

/// Nmap's six timing templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Template {
    Paranoid = 0,
    Sneaky = 1,
    Polite = 2,
    Normal = 3,
    Aggressive = 4,
    Insane = 5,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    #[error("invalid timing template {0:?}: use paranoid, sneaky, polite, normal, aggressive, insane or a number from 0 (paranoid) to 5 (insane)")]
    Template(String),
    #[error("invalid time value {0:?}: use a number with an optional unit ms, s, m or h (e.g. 500ms, 2s, 5m)")]
    TimeValue(String),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, TimingError> {
        Ok(match s {
            "0" | "paranoid" => Template::Paranoid,
            "1" | "sneaky" => Template::Sneaky,
            "2" | "polite" => Template::Polite,
            "3" | "normal" => Template::Normal,
            "4" | "aggressive" => Template::Aggressive,
            "5" | "insane" => Template::Insane,
            _ => return Err(TimingError::Template(s.to_string())),
        })
    }

    /// The template's values, as nmap-formats.md §3 tabulates them.
    pub fn timing(self) -> Timing {
        let ms = Duration::from_millis;
        let (scan_delay, max_par, init, min, max, retries, max_delay, host_to) = match self {
            Template::Paranoid => (300_000, Some(1), 300_000, 100, 300_000, 10, 1000, None),
            Template::Sneaky => (15_000, Some(1), 15_000, 100, 15_000, 10, 1000, None),
            Template::Polite => (400, Some(1), 1000, 100, 10_000, 10, 1000, None),
            Template::Normal => (0, None, 1000, 100, 10_000, 10, 1000, None),
            Template::Aggressive => (0, None, 500, 100, 1250, 6, 10, None),
            Template::Insane => (0, None, 250, 50, 300, 2, 5, Some(900_000)),
        };
        Timing {
            template: self,
            scan_delay: ms(scan_delay),
            max_scan_delay: ms(max_delay),
            min_parallelism: None,
            max_parallelism: max_par,
            initial_rtt_timeout: ms(init),
            min_rtt_timeout: ms(min),
            max_rtt_timeout: ms(max),
            max_retries: retries,
            host_timeout: host_to.map(ms),
            min_rate: None,
            max_rate: None,
        }
    }
}

/// The resolved timing of a scan: a template with the user's overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub template: Template,
    pub scan_delay: Duration,
    pub max_scan_delay: Duration,
    pub min_parallelism: Option<u32>,
    pub max_parallelism: Option<u32>,
    pub initial_rtt_timeout: Duration,
    pub min_rtt_timeout: Duration,
    pub max_rtt_timeout: Duration,
    pub max_retries: u32,
    pub host_timeout: Option<Duration>,
    /// Probes per second.
    pub min_rate: Option<f64>,
    pub max_rate: Option<f64>,
}

impl Default for Timing {
    fn default() -> Self {
        Template::Normal.timing()
    }
}

/// Parses Nmap's time values: a number (seconds by default) with an optional unit
/// `ms`, `s`, `m` or `h`. Fractions are allowed (`0.5s`).
pub fn parse_time(s: &str) -> Result<Duration, TimingError> {
    let bad = || TimingError::TimeValue(s.to_string());
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let v: f64 = num.parse().map_err(|_| bad())?;
    let secs = v * mult;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Nmap's RTT estimator (RFC 6298 shaped): srtt/rttvar from samples, timeout clamped
/// to the template's [min, max].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    initial: Duration,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    pub fn new(t: &Timing) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            initial: t.initial_rtt_timeout,
            min: t.min_rtt_timeout,
            max: t.max_rtt_timeout,
        }
    }

    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt.clamp(Duration::from_millis(5), Duration::from_secs(2));
            }
            Some(srtt) => {
                let (s, r, d) = (
                    srtt.as_secs_f64(),
                    self.rttvar.as_secs_f64(),
                    rtt.as_secs_f64(),
                );
                let err = d - s;
                let ns = (s + err / 8.0).max(0.0);
                let nr = (r + (err.abs() - r) / 4.0).max(0.0);
                self.srtt = Some(Duration::from_secs_f64(ns));
                self.rttvar = Duration::from_secs_f64(nr);
            }
        }
    }

    /// The timeout to wait for a probe's answer.
    pub fn timeout(&self) -> Duration {
        match self.srtt {
            None => self.initial.clamp(self.min, self.max.max(self.min)),
            Some(s) => (s + self.rttvar * 4).clamp(self.min, self.max.max(self.min)),
        }
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }
}

/// Paces sending at a rate: the average holds exactly even when the timer wakes late,
/// and at most `burst` worth of sending goes out back to back after such a wake-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    refilled: Option<Instant>,
}

/// The shortest wait pacing asks for: a deficit of a hair under one token must not round
/// to a zero wait, which would spin without the clock moving.
const MIN_WAIT: Duration = Duration::from_micros(1);

impl Default for TokenBucket {
    fn default() -> Self {
        TokenBucket {
            tokens: 1.0,
            refilled: None,
        }
    }
}

impl TokenBucket {
    /// Refills at `rate` per second up to `burst` worth, and says when one token will be
    /// there: `None` if it is there now (take it with [`Self::take`]).
    pub fn wait(&mut self, now: Instant, rate: f64, burst: Duration) -> Option<Instant> {
        let cap = (rate * burst.as_secs_f64()).max(1.0);
        if let Some(t) = self.refilled {
            let credit = now.saturating_duration_since(t).as_secs_f64() * rate;
            self.tokens = (self.tokens + credit).min(cap);
        }
        self.refilled = Some(now);
        if self.tokens >= 1.0 {
            return None;
        }
        let wait = (1.0 - self.tokens) / rate;
        Some(now + Duration::from_secs_f64(wait).max(MIN_WAIT))
    }

    /// A bucket a hair short of one token, as of `at` (for regression tests).
    #[cfg(test)]
    pub(crate) fn with_deficit(deficit: f64, at: Instant) -> Self {
        TokenBucket {
            tokens: 1.0 - deficit,
            refilled: Some(at),
        }
    }

    /// Spends one token (a probe went out).
    pub fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_carry_nmaps_values() {
        let t4 = Template::Aggressive.timing();
        assert_eq!(t4.initial_rtt_timeout, Duration::from_millis(500));
        assert_eq!(t4.max_rtt_timeout, Duration::from_millis(1250));
        assert_eq!(t4.max_retries, 6);
        assert_eq!(t4.max_scan_delay, Duration::from_millis(10));
        let t5 = Template::Insane.timing();
        assert_eq!(t5.host_timeout, Some(Duration::from_secs(900)));
        assert_eq!(t5.max_retries, 2);
        assert_eq!(
            Template::Polite.timing().scan_delay,
            Duration::from_millis(400)
        );
        assert_eq!(Template::Paranoid.timing().max_parallelism, Some(1));
    }

    #[test]
    fn template_names_and_numbers() {
        assert_eq!(Template::parse("4"), Ok(Template::Aggressive));
        assert_eq!(Template::parse("insane"), Ok(Template::Insane));
        assert!(matches!(
            Template::parse("9"),
            Err(TimingError::Template(_))
        ));
        assert!(Template::parse("9")
            .unwrap_err()
            .to_string()
            .contains("0 (paranoid) to 5 (insane)"));
    }

    #[test]
    fn time_values() {
        assert_eq!(parse_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_time("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_time("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_time("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("0.5s"), Ok(Duration::from_millis(500)));
        for bad in ["", "ms", "-1s", "5x", "1e3", "abc", "nan"] {
            assert!(parse_time(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn rtt_estimator_follows_samples_and_clamps() {
        let t = Template::Aggressive.timing();
        let mut e = RttEstimator::new(&t);
        assert_eq!(e.timeout(), Duration::from_millis(500));
        e.sample(Duration::from_millis(1));
        // srtt 1ms, rttvar clamped up to 5ms: 21ms, then clamped to min 100ms.
        assert_eq!(e.timeout(), Duration::from_millis(100));
        for _ in 0..50 {
            e.sample(Duration::from_millis(400));
        }
        let to = e.timeout();
        assert!(to >= Duration::from_millis(400) && to <= Duration::from_millis(1250));
        for _ in 0..50 {
            e.sample(Duration::from_secs(5));
        }
        assert_eq!(e.timeout(), Duration::from_millis(1250));
    }

    /// Regression: a deficit below a nanosecond made pacing ask to wait until `now`,
    /// which stalls a fake clock and spins a real one.
    #[test]
    fn token_bucket_never_asks_for_a_zero_wait() {
        let now = Instant::now();
        let mut b = TokenBucket::with_deficit(1e-15, now);
        let at = b.wait(now, 300_000.0, Duration::from_millis(4));
        assert!(at.is_some_and(|t| t > now), "{at:?}");
    }

    #[test]
    fn token_bucket_paces_the_average_and_caps_bursts() {
        let start = Instant::now();
        let mut b = TokenBucket::default();
        // After a long idle spell only `burst` worth goes out at once.
        let later = start + Duration::from_secs(10);
        b.wait(start, 1000.0, Duration::from_millis(10));
        let mut burst = 0;
        while b.wait(later, 1000.0, Duration::from_millis(10)).is_none() {
            b.take();
            burst += 1;
        }
        assert_eq!(burst, 10);
    }
}
