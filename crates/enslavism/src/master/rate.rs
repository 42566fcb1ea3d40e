//! Rate limits: what a client may ask slaves for, how often a slave may
//! change its userData.

use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, holding at most one second's worth.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket; a rate of 0 means no limit.
    pub(crate) fn new(rate: u32, now: Instant) -> Self {
        TokenBucket { rate: f64::from(rate), tokens: f64::from(rate), last: now }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl TokenBucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.rate);
    }

    /// How long until a token is there (zero when one is).
    pub(crate) fn wait(&mut self, now: Instant) -> std::time::Duration {
        if self.rate == 0.0 {
            return std::time::Duration::ZERO;
        }
        self.refill(now);
        std::time::Duration::from_secs_f64((1.0 - self.tokens).max(0.0) / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Duration;

    #[test]
    fn a_burst_of_one_seconds_worth_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, start);
        assert_eq!((0..20).filter(|_| bucket.try_take(start)).count(), 10);
        let later = start + Duration::from_millis(500);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 5);
        // Never more than a second's worth, however long the pause.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(much_later)).count(), 10);
    }

    #[test]
    fn the_wait_is_until_the_next_token() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(4, start);
        assert_eq!(bucket.wait(start), Duration::ZERO);
        while bucket.try_take(start) {}
        assert_eq!(bucket.wait(start), Duration::from_millis(250));
        let wait = bucket.wait(start + Duration::from_millis(100));
        assert!(wait.abs_diff(Duration::from_millis(150)) < Duration::from_micros(1), "{wait:?}");
        assert!(bucket.try_take(start + Duration::from_millis(250)));
    }

    #[test]
    fn zero_means_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, now);
        assert!((0..10_000).all(|_| bucket.try_take(now)));
    }
}
