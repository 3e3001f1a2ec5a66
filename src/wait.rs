//! Waiting on a condition: poll a probe until it answers `Ready`, with a
//! timeout whose error says what was awaited and what was last seen.

use std::future::Future;
use std::time::{Duration, Instant};

use thiserror::Error;

/// What one poll of a condition saw.
#[derive(Debug)]
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the text describes the state seen, for the timeout message.
    NotYet(String),
}

#[derive(Debug, Error)]
#[error("timed out after {}s waiting for {what}; last seen: {last}", .timeout.as_secs())]
pub struct WaitError {
    pub what: String,
    pub timeout: Duration,
    pub last: String,
}

/// Polls `probe` every `interval` until it is ready or `timeout` passes.
pub async fn wait_for_every<T, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let start = Instant::now();
    let mut last;
    let mut last_seen: Option<String> = None;
    loop {
        // Each probe runs under what is left of the wait (at least a
        // second): a probe that hangs (a frozen peer, a partitioned
        // socket) ends the wait at its deadline instead of never.
        let left = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_secs(1));
        match tokio::time::timeout(left, probe()).await {
            Ok(Poll::Ready(v)) => return Ok(v),
            Ok(Poll::NotYet(s)) => {
                last_seen = Some(s.clone());
                last = s;
            }
            // What an earlier poll saw stays: the last poll is the one the
            // deadline cuts, and "did not answer" alone hides the state.
            Err(_) => {
                let cut = format!("the probe did not answer within {}s", left.as_secs());
                last = match last_seen.take() {
                    Some(prev) => format!("{prev} (then {cut})"),
                    None => cut,
                };
            }
        }
        if start.elapsed() >= timeout {
            return Err(WaitError {
                what: what.to_string(),
                timeout,
                last,
            });
        }
        tokio::time::sleep(interval).await;
    }
}

/// [`wait_for_every`] with a 200 ms poll interval.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    wait_for_every(what, timeout, Duration::from_millis(200), probe).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_after_a_few_polls() {
        let mut n = 0;
        let v = wait_for("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let n = n;
            async move {
                if n >= 3 {
                    Poll::Ready(n)
                } else {
                    Poll::NotYet(format!("n = {n}"))
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn a_hanging_probe_ends_at_the_deadline() {
        let t0 = Instant::now();
        let e = wait_for_every::<(), _, _>(
            "a hanging probe",
            Duration::from_millis(50),
            Duration::from_millis(10),
            std::future::pending,
        )
        .await
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert!(e.to_string().contains("did not answer"), "{e}");
    }

    #[tokio::test]
    async fn timeout_names_what_and_last() {
        let e = wait_for_every::<(), _, _>(
            "the moon",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || async { Poll::NotYet("still dark".into()) },
        )
        .await
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("the moon") && s.contains("still dark"), "{s}");
    }
}
