//! Capped exponential backoff with jitter for the background components'
//! retries (Kafka relay, off-site copier, backup schedule). A leaf: it touches
//! nothing.

use std::time::Duration;

/// Waits that double after each failure up to a cap, and start over after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) const fn new(first: Duration, cap: Duration) -> Self {
        Backoff {
            first,
            cap,
            next: first,
        }
    }

    /// The wait after one more failure: between half and all of the current
    /// step (so components that failed together do not retry together).
    pub(crate) fn failed(&mut self) -> Duration {
        use rand::Rng;
        let step = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        let half = step / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=step - half)
    }

    /// Whether the next wait is already the cap.
    pub(crate) fn capped(&self) -> bool {
        self.next >= self.cap
    }

    pub(crate) fn succeeded(&mut self) {
        self.next = self.first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_start_over_after_a_success() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        let steps = [500, 1000, 2000, 4000, 8000, 10000, 10000];
        for (i, step) in steps.into_iter().enumerate() {
            assert_eq!(b.capped(), i >= 5, "step {i}");
            let wait = b.failed().as_millis() as u64;
            assert!((step / 2..=step).contains(&wait), "step {i}: {wait} ms");
        }
        b.succeeded();
        assert!(!b.capped());
        assert!(b.failed() <= Duration::from_millis(500));
    }
}
