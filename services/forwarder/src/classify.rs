//! The forwarder's two pure decisions, kept free of I/O so a table of cases
//! pins them down:
//!
//! - [`classify`]: what one HTTP attempt's result means — delivered, worth
//!   retrying (maybe after the target's `Retry-After`), or permanently refused;
//! - [`next_step`]: for a retry, which delay queue the copy waits in and its
//!   jittered per-message expiration — or that the attempts are used up;
//! - [`defer_step`]: the same for a delivery put back unsent (open breaker,
//!   busy target), which uses no attempt.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How much of a refusing target's body goes into the dead reason.
const REASON_BODY_CHARS: usize = 200;

/// What came back from one HTTP attempt, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq)]
pub enum HttpOutcome {
    /// The target answered with a status line (the body may be garbage; it
    /// does not matter for the verdict).
    Response {
        status: u16,
        /// Parsed `Retry-After` header, if any.
        retry_after: Option<Duration>,
        /// The start of the response body, lossily decoded.
        body_excerpt: String,
    },
    /// No status line arrived.
    Transport(TransportError),
}

/// Why no status line arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The total request timeout elapsed.
    Timeout,
    /// TCP/TLS connection could not be established (refused, DNS, TLS).
    Connect(String),
    /// The connection broke (closed/reset) before a complete response head.
    Connection(String),
    /// The request could not even be built (unparsable URL, bad scheme …):
    /// no retry will fix that.
    InvalidRequest(String),
}

/// What to do about one attempt's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The target took it (any 2xx).
    Delivered,
    /// Try again later. `kind` is a bounded label for metrics; `retry_after`
    /// is the target's own wish, honoured for 429 and 503.
    Retry {
        reason: String,
        kind: String,
        retry_after: Option<Duration>,
    },
    /// The target refused for good (or the request is unsendable): dead-letter.
    Permanent { reason: String },
}

/// Decides one attempt's outcome.
pub fn classify(outcome: &HttpOutcome) -> Verdict {
    match outcome {
        HttpOutcome::Response {
            status,
            retry_after,
            body_excerpt,
        } => classify_status(*status, *retry_after, body_excerpt),
        HttpOutcome::Transport(e) => match e {
            TransportError::Timeout => retry("request timed out", "timeout", None),
            TransportError::Connect(m) => retry(&format!("cannot connect: {m}"), "connect", None),
            TransportError::Connection(m) => {
                retry(&format!("connection broke: {m}"), "connection", None)
            }
            TransportError::InvalidRequest(m) => Verdict::Permanent {
                reason: format!("invalid request: {m}"),
            },
        },
    }
}

fn classify_status(status: u16, retry_after: Option<Duration>, body: &str) -> Verdict {
    let answered = format!("target answered {}", status_text(status));
    match status {
        200..=299 => Verdict::Delivered,
        // Throttled or temporarily down: these two may say when to come back.
        429 | 503 => retry(&answered, &format!("http_{status}"), retry_after),
        // Request timeout and server errors are worth another try.
        408 | 500..=599 => retry(&answered, &format!("http_{status}"), None),
        // Redirects are not followed (a target must not bounce signed sales
        // elsewhere), and resending will not change the answer.
        300..=399 => Verdict::Permanent {
            reason: format!("{answered}: redirects are not followed, fix the target URL"),
        },
        _ => Verdict::Permanent {
            reason: format!("{answered}: {}", truncate_chars(body, REASON_BODY_CHARS)),
        },
    }
}

fn retry(reason: &str, kind: &str, retry_after: Option<Duration>) -> Verdict {
    Verdict::Retry {
        reason: reason.to_string(),
        kind: kind.to_string(),
        retry_after,
    }
}

/// "400 Bad Request", or just "599" for codes without a canonical reason.
pub fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(r) => format!("{status} {r}"),
        None => status.to_string(),
    }
}

/// The first `n` characters of `s` (never splitting a character).
pub fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP-date (relative to
/// `now`; a date in the past means "now"). Anything else is ignored.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// Where a failed attempt goes next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Publish the next attempt to the delay queue of `queue_delay`, with a
    /// per-message expiration of `expiration_ms` (≤ the queue's TTL).
    RetryIn {
        queue_delay: Duration,
        expiration_ms: u64,
    },
    /// Attempts used up: dead-letter.
    GiveUp,
}

/// Decides the retry of attempt number `attempt` (1-based) that just failed.
///
/// Backoff is exponential through the tiers `delays` (attempt 1 → `delays[0]`,
/// attempt 2 → `delays[1]`, …, capped at the last). A `retry_after` moves the
/// retry up to the smallest tier that waits at least that long (never down:
/// a target saying "retry after 0" must not defeat the backoff). Jitter: the
/// message expires after tier × uniform(0.8, 1.0), but never before
/// `retry_after`; since messages expire only at the head of a delay queue,
/// jitter stays inside a tier and delays a copy by at most 20 %.
///
/// `jitter` is a random number in [0, 1) supplied by the caller, so tests are
/// deterministic.
pub fn next_step(
    attempt: u32,
    max_attempts: u32,
    delays: &[Duration],
    retry_after: Option<Duration>,
    jitter: f64,
) -> Step {
    if attempt >= max_attempts || delays.is_empty() {
        return Step::GiveUp;
    }
    let last = delays.len() - 1;
    let backoff_tier = (attempt.max(1) as usize - 1).min(last);
    let wished_tier = retry_after.map_or(0, |wish| {
        delays.iter().position(|d| *d >= wish).unwrap_or(last)
    });
    let queue_delay = delays[backoff_tier.max(wished_tier)];

    let factor = 0.8 + 0.2 * jitter.clamp(0.0, 1.0);
    let jittered = queue_delay.mul_f64(factor);
    let floor = retry_after.unwrap_or(Duration::ZERO).min(queue_delay);
    let expiration = jittered.max(floor).min(queue_delay);
    Step::RetryIn {
        queue_delay,
        // At least 1 ms: an expiration of 0 would skip the delay entirely.
        expiration_ms: (expiration.as_millis() as u64).max(1),
    }
}

/// Where a delivery that was not sent (its target's breaker is open, or the
/// target is too busy) waits: the smallest tier that lasts at least `wait`
/// (the last tier if none does), jittered like a retry but never shorter
/// than `wait`. `None` only without tiers.
pub fn defer_step(wait: Duration, delays: &[Duration], jitter: f64) -> Option<Step> {
    // A retry of attempt 1 with the target asking for `wait`: the first tier
    // or the one `wait` lifts it to. No attempt is used, so none can run out.
    match next_step(1, u32::MAX, delays, Some(wait), jitter) {
        step @ Step::RetryIn { .. } => Some(step),
        Step::GiveUp => None,
    }
}

/// The end of one attempt: the verdict combined with the retry policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    Delivered,
    /// Publish attempt + 1 to the delay queue of `queue_delay`.
    Retry {
        queue_delay: Duration,
        expiration_ms: u64,
        reason: String,
        kind: String,
    },
    /// Dead-letter with this reason (refused, or attempts used up).
    Dead {
        reason: String,
    },
}

/// Resolves attempt number `attempt` given its verdict and the retry policy.
pub fn resolve(
    verdict: Verdict,
    attempt: u32,
    max_attempts: u32,
    delays: &[Duration],
    jitter: f64,
) -> Resolution {
    match verdict {
        Verdict::Delivered => Resolution::Delivered,
        Verdict::Permanent { reason } => Resolution::Dead { reason },
        Verdict::Retry {
            reason,
            kind,
            retry_after,
        } => match next_step(attempt, max_attempts, delays, retry_after, jitter) {
            Step::RetryIn {
                queue_delay,
                expiration_ms,
            } => Resolution::Retry {
                queue_delay,
                expiration_ms,
                reason,
                kind,
            },
            // The prefix before ':' is the metric label: keep it bounded.
            Step::GiveUp => Resolution::Dead {
                reason: format!("gave up after {attempt} attempts: {reason}"),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, retry_after: Option<u64>, body: &str) -> HttpOutcome {
        HttpOutcome::Response {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body_excerpt: body.into(),
        }
    }

    /// What a verdict boils down to, for compact tables.
    fn summary(v: &Verdict) -> (&'static str, String, Option<Duration>) {
        match v {
            Verdict::Delivered => ("delivered", String::new(), None),
            Verdict::Retry {
                reason,
                retry_after,
                ..
            } => ("retry", reason.clone(), *retry_after),
            Verdict::Permanent { reason } => ("permanent", reason.clone(), None),
        }
    }

    #[test]
    fn classifies_http_outcomes() {
        let long_body = "x".repeat(500);
        let cut_reason = format!(
            "target answered 422 Unprocessable Entity: {}",
            "x".repeat(200)
        );
        let secs = |s| Some(Duration::from_secs(s));
        let cases: Vec<(&str, HttpOutcome, &str, &str, Option<Duration>)> = vec![
            ("200", resp(200, None, "{}"), "delivered", "", None),
            ("201", resp(201, None, ""), "delivered", "", None),
            ("204", resp(204, None, ""), "delivered", "", None),
            (
                "200 with garbage body is still taken",
                resp(200, None, "<<<\u{fffd}not json"),
                "delivered",
                "",
                None,
            ),
            (
                "503 honours Retry-After",
                resp(503, Some(7), ""),
                "retry",
                "target answered 503 Service Unavailable",
                secs(7),
            ),
            (
                "429 honours Retry-After",
                resp(429, Some(30), "slow down"),
                "retry",
                "target answered 429 Too Many Requests",
                secs(30),
            ),
            (
                "500 ignores Retry-After",
                resp(500, Some(30), "boom"),
                "retry",
                "target answered 500 Internal Server Error",
                None,
            ),
            (
                "408",
                resp(408, None, ""),
                "retry",
                "target answered 408 Request Timeout",
                None,
            ),
            (
                "502",
                resp(502, None, ""),
                "retry",
                "target answered 502 Bad Gateway",
                None,
            ),
            (
                "599 has no canonical text",
                resp(599, None, ""),
                "retry",
                "target answered 599",
                None,
            ),
            (
                "400 carries the body",
                resp(400, None, "missing field lines"),
                "permanent",
                "target answered 400 Bad Request: missing field lines",
                None,
            ),
            (
                "401",
                resp(401, None, ""),
                "permanent",
                "target answered 401 Unauthorized: ",
                None,
            ),
            (
                "404",
                resp(404, None, "nope"),
                "permanent",
                "target answered 404 Not Found: nope",
                None,
            ),
            (
                "422 body cut at 200 chars",
                resp(422, None, &long_body),
                "permanent",
                &cut_reason,
                None,
            ),
            (
                "301 is not followed",
                resp(301, None, ""),
                "permanent",
                "target answered 301 Moved Permanently: redirects are not followed, fix the target URL",
                None,
            ),
            (
                "timeout",
                HttpOutcome::Transport(TransportError::Timeout),
                "retry",
                "request timed out",
                None,
            ),
            (
                "connect",
                HttpOutcome::Transport(TransportError::Connect("refused".into())),
                "retry",
                "cannot connect: refused",
                None,
            ),
            (
                "closed mid-response",
                HttpOutcome::Transport(TransportError::Connection("closed".into())),
                "retry",
                "connection broke: closed",
                None,
            ),
            (
                "unbuildable request",
                HttpOutcome::Transport(TransportError::InvalidRequest("bad url".into())),
                "permanent",
                "invalid request: bad url",
                None,
            ),
        ];
        for (name, outcome, verdict, reason, retry_after) in cases {
            let got = classify(&outcome);
            assert_eq!(
                summary(&got),
                (verdict, reason.to_string(), retry_after),
                "case {name}"
            );
        }
    }

    #[test]
    fn retry_kinds_are_bounded_labels() {
        let kind = |o: HttpOutcome| match classify(&o) {
            Verdict::Retry { kind, .. } => kind,
            other => panic!("expected a retry, got {other:?}"),
        };
        assert_eq!(kind(resp(503, None, "")), "http_503");
        assert_eq!(
            kind(HttpOutcome::Transport(TransportError::Timeout)),
            "timeout"
        );
        assert_eq!(
            kind(HttpOutcome::Transport(TransportError::Connect("x".into()))),
            "connect"
        );
    }

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 200), "hi");
        assert_eq!(truncate_chars("", 3), "");
    }

    #[test]
    fn parses_retry_after() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap();
        let cases: Vec<(&str, Option<Duration>)> = vec![
            ("120", Some(Duration::from_secs(120))),
            (" 5 ", Some(Duration::from_secs(5))),
            ("0", Some(Duration::ZERO)),
            (
                "Wed, 21 Oct 2015 07:28:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_retry_after(value, now), want, "value {value:?}");
        }
    }

    #[test]
    fn steps_through_the_tiers() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let tiers = [s(1), s(5), s(30), s(120)];
        let retry = |delay: Duration, exp: u64| Step::RetryIn {
            queue_delay: delay,
            expiration_ms: exp,
        };
        // (name, attempt, max attempts, retry-after, jitter, expected)
        type Case = (&'static str, u32, u32, Option<Duration>, f64, Step);
        let cases: Vec<Case> = vec![
            (
                "attempt 1 → first tier, max jitter",
                1,
                8,
                None,
                0.0,
                retry(s(1), 800),
            ),
            (
                "attempt 1 → first tier, no jitter",
                1,
                8,
                None,
                0.999_999,
                retry(s(1), 999),
            ),
            ("attempt 1, mid jitter", 1, 8, None, 0.5, retry(s(1), 900)),
            (
                "attempt 2 → second tier",
                2,
                8,
                None,
                0.0,
                retry(s(5), 4000),
            ),
            (
                "attempt 3 → third tier",
                3,
                8,
                None,
                0.0,
                retry(s(30), 24000),
            ),
            (
                "attempt 4 → last tier",
                4,
                8,
                None,
                0.0,
                retry(s(120), 96000),
            ),
            (
                "attempt 7 capped at the last tier",
                7,
                8,
                None,
                0.0,
                retry(s(120), 96000),
            ),
            ("attempt 8 of 8 gives up", 8, 8, None, 0.0, Step::GiveUp),
            ("past max gives up", 9, 8, None, 0.0, Step::GiveUp),
            (
                "max 1: first failure gives up",
                1,
                1,
                None,
                0.0,
                Step::GiveUp,
            ),
            (
                "retry-after lifts to the smallest tier ≥ it",
                1,
                8,
                Some(s(3)),
                0.0,
                retry(s(5), 4000),
            ),
            (
                "retry-after keeps the jitter above itself",
                1,
                8,
                Some(ms(4500)),
                0.0,
                retry(s(5), 4500),
            ),
            (
                "retry-after equal to a tier",
                1,
                8,
                Some(s(30)),
                0.0,
                retry(s(30), 30000),
            ),
            (
                "retry-after beyond every tier → last tier",
                1,
                8,
                Some(s(3600)),
                0.0,
                retry(s(120), 120000),
            ),
            (
                "retry-after shorter than the backoff does not shorten it",
                3,
                8,
                Some(s(1)),
                0.0,
                retry(s(30), 24000),
            ),
            ("retry-after 0", 1, 8, Some(s(0)), 0.0, retry(s(1), 800)),
            (
                "retry-after does not save the last attempt",
                8,
                8,
                Some(s(1)),
                0.0,
                Step::GiveUp,
            ),
            (
                "jitter out of range is clamped",
                1,
                8,
                None,
                7.0,
                retry(s(1), 1000),
            ),
            ("attempt 0 treated as 1", 0, 8, None, 0.0, retry(s(1), 800)),
        ];
        for (name, attempt, max, retry_after, jitter, want) in cases {
            assert_eq!(
                next_step(attempt, max, &tiers, retry_after, jitter),
                want,
                "case {name}"
            );
        }
    }

    #[test]
    fn no_tiers_means_give_up() {
        assert_eq!(next_step(1, 8, &[], None, 0.0), Step::GiveUp);
    }

    #[test]
    fn tiny_tiers_never_expire_at_zero() {
        let step = next_step(1, 8, &[Duration::from_millis(1)], None, 0.0);
        assert_eq!(
            step,
            Step::RetryIn {
                queue_delay: Duration::from_millis(1),
                expiration_ms: 1
            }
        );
    }
    #[test]
    fn defers_to_the_tier_that_covers_the_wait() {
        let ms = Duration::from_millis;
        let s = Duration::from_secs;
        let tiers = [s(1), s(5), s(30)];
        let retry = |delay: Duration, exp: u64| {
            Some(Step::RetryIn {
                queue_delay: delay,
                expiration_ms: exp,
            })
        };
        // (name, wait, jitter, expected)
        let cases: Vec<(&str, Duration, f64, Option<Step>)> = vec![
            ("no wait → first tier", ms(0), 0.0, retry(s(1), 800)),
            (
                "short wait stays above itself",
                ms(900),
                0.0,
                retry(s(1), 900),
            ),
            ("lifted to the covering tier", s(2), 0.0, retry(s(5), 4000)),
            ("cooldown equal to a tier", s(30), 0.5, retry(s(30), 30000)),
            (
                "longer than every tier → last",
                s(3600),
                0.0,
                retry(s(30), 30000),
            ),
        ];
        for (name, wait, jitter, want) in cases {
            assert_eq!(defer_step(wait, &tiers, jitter), want, "case {name}");
        }
        assert_eq!(defer_step(s(1), &[], 0.0), None);
    }

    #[test]
    fn resolves_verdicts_with_the_policy() {
        let tiers = [Duration::from_secs(1), Duration::from_secs(5)];
        let retry = || Verdict::Retry {
            reason: "request timed out".into(),
            kind: "timeout".into(),
            retry_after: None,
        };
        let cases: Vec<(&str, Verdict, u32, Resolution)> = vec![
            ("delivered", Verdict::Delivered, 1, Resolution::Delivered),
            (
                "delivered on the last attempt",
                Verdict::Delivered,
                3,
                Resolution::Delivered,
            ),
            (
                "permanent at once",
                Verdict::Permanent {
                    reason: "target answered 400 Bad Request: x".into(),
                },
                1,
                Resolution::Dead {
                    reason: "target answered 400 Bad Request: x".into(),
                },
            ),
            (
                "retry",
                retry(),
                2,
                Resolution::Retry {
                    queue_delay: Duration::from_secs(5),
                    expiration_ms: 4000,
                    reason: "request timed out".into(),
                    kind: "timeout".into(),
                },
            ),
            (
                "attempts used up",
                retry(),
                3,
                Resolution::Dead {
                    reason: "gave up after 3 attempts: request timed out".into(),
                },
            ),
        ];
        for (name, verdict, attempt, want) in cases {
            assert_eq!(
                resolve(verdict, attempt, 3, &tiers, 0.0),
                want,
                "case {name}"
            );
        }
    }
}
