//! Polling until the system reaches a state. End-to-end tests never sleep a
//! fixed time and hope: they poll a condition with a generous deadline, so a
//! slow machine makes a test slower, not red.

use std::future::Future;
use std::time::{Duration, Instant};

/// The condition did not hold before the deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout {
    pub waited: Duration,
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "condition still false after {:?}", self.waited)
    }
}

impl std::error::Error for Timeout {}

/// Calls `check` every `poll` until it returns true or `timeout` passes.
pub async fn wait_until<F, Fut>(
    timeout: Duration,
    poll: Duration,
    mut check: F,
) -> Result<(), Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, poll, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Calls `probe` every `poll` until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(
    timeout: Duration,
    poll: Duration,
    mut probe: F,
) -> Result<T, Timeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(Timeout {
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn wait_until_returns_once_true() {
        let calls = AtomicU32::new(0);
        let r = wait_until(Duration::from_secs(5), Duration::from_millis(1), || async {
            calls.fetch_add(1, Ordering::SeqCst) >= 2
        })
        .await;
        assert_eq!(r, Ok(()));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn wait_until_times_out() {
        let r = wait_until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { false },
        )
        .await;
        let err = r.expect_err("never true");
        assert!(err.waited >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn wait_for_yields_the_value() {
        let calls = AtomicU32::new(0);
        let v = wait_for(Duration::from_secs(5), Duration::from_millis(1), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            (n == 1).then_some(n * 10)
        })
        .await;
        assert_eq!(v, Ok(10));
    }
}
