//! Capped exponential backoff for the background components' retries (Kafka relay,
//! off-site copier). A leaf: it touches nothing.

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

    /// The wait after one more failure.
    pub(crate) fn failed(&mut self) -> Duration {
        let wait = self.next.min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        wait
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
        let waits: Vec<u64> = (0..7).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 10000, 10000]);
        b.succeeded();
        assert_eq!(b.failed(), Duration::from_millis(500));
    }
}
