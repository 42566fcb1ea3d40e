//! Several masters to fail over between: the URLs a slave or a native
//! client was given, checked once when it starts, the one in use, and the
//! order in which they are tried.
//!
//! A connection tries the URLs in the order given; the first that answers
//! is used. When it drops, the next one in the list is tried first, then the
//! others in turn, the one that dropped last (round robin): a master that
//! just went away is the least likely to be back. Attempts within a round
//! follow each other at once; the backoff (250 ms doubling to the link's
//! longest delay) is waited before each round but the first after a drop,
//! which starts at once when there is another master to go to (a list of
//! one URL reconnects exactly as before).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::dial::DialError;

/// The master URLs of one slave or client, and the one in use.
#[derive(Debug)]
pub(crate) struct MasterUrls {
    urls: Vec<String>,
    /// Index of the URL in use (or last used, while reconnecting).
    current: AtomicUsize,
}

/// The waits between rounds of reconnection attempts (see [`MasterUrls::backoff`]).
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// The wait before the next round.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = if delay.is_zero() { self.initial } else { (delay * 2).min(self.max) };
        delay
    }
}

impl MasterUrls {
    /// `first`, then `fallbacks`, each checked for `path` (a URL that
    /// cannot be dialled is [`DialError::BadUrl`], naming it).
    pub(crate) fn new(first: String, fallbacks: Vec<String>, path: &str) -> Result<Self, DialError> {
        let urls: Vec<String> = std::iter::once(first).chain(fallbacks).collect();
        for url in &urls {
            crate::dial::check_url(url, path)?;
        }
        Ok(MasterUrls { urls, current: AtomicUsize::new(0) })
    }

    /// The waits before each round of attempts after a drop: `initial`,
    /// doubling up to `max`; with another master to go to, the first round
    /// starts at once (its state has nothing to do with the one that
    /// dropped: failing over took 257 ms, all of it that wait, in the
    /// benchmark), while a lone master needs time to come back.
    pub(crate) fn backoff(&self, initial: Duration, max: Duration) -> Backoff {
        let initial = initial.min(max);
        let next = if self.urls.len() > 1 { Duration::ZERO } else { initial };
        Backoff { next, initial, max }
    }

    /// The URL in use (or last used, while reconnecting).
    pub(crate) fn current(&self) -> &str {
        &self.urls[self.current_index()]
    }

    /// Makes `url` (one of the list) the current one, before the attempt
    /// that reached it returns: what it reports meanwhile is from that master.
    pub(crate) fn set_current(&self, url: &str) {
        if let Some(index) = self.urls.iter().position(|u| u == url) {
            self.current.store(index, Ordering::Relaxed);
        }
    }

    fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.urls.len()
    }

    /// Tries `attempt` on every URL once, from the first, until one succeeds
    /// (it becomes the current URL). When all fail, the first URL's error:
    /// the list is in order of preference.
    pub(crate) async fn connect_first<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.round(0, attempt).await
    }

    /// After a drop: tries every URL once, from the one after the current
    /// one (round robin), until one succeeds. When all fail, the error of
    /// the next URL.
    pub(crate) async fn fail_over<T, E, F, Fut>(&self, attempt: F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.round(self.current_index() + 1, attempt).await
    }

    async fn round<T, E, F, Fut>(&self, start: usize, mut attempt: F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let n = self.urls.len();
        let first_error = match self.try_one(start % n, &mut attempt).await {
            Ok(done) => return Ok(done),
            Err(e) => e,
        };
        for index in (start + 1..start + n).map(|i| i % n) {
            if let Ok(done) = self.try_one(index, &mut attempt).await {
                return Ok(done);
            }
        }
        Err(first_error)
    }

    /// One attempt on the URL at `index`, made current if it succeeds.
    async fn try_one<T, E, F, Fut>(&self, index: usize, attempt: &mut F) -> Result<T, E>
    where
        E: std::fmt::Display,
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let url = &self.urls[index];
        let outcome = attempt(url.clone()).await;
        match &outcome {
            Ok(_) => self.current.store(index, Ordering::Relaxed),
            // With one URL the caller says it; with several, which one failed matters.
            Err(e) if self.urls.len() > 1 => tracing::info!(url = %url, "master unavailable: {e}"),
            Err(_) => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(list: &[&str]) -> MasterUrls {
        let (first, rest) = list.split_first().unwrap();
        MasterUrls::new((*first).into(), rest.iter().map(|u| (*u).into()).collect(), "/enslavism/slaves").unwrap()
    }

    #[test]
    fn the_backoff_starts_at_once_only_with_another_master_to_go_to() {
        let ms = Duration::from_millis;
        let waits = |urls: &MasterUrls| {
            let mut backoff = urls.backoff(ms(250), ms(1000));
            (0..5).map(|_| backoff.next_delay()).collect::<Vec<_>>()
        };
        assert_eq!(waits(&self::urls(&["ws://a"])), [ms(250), ms(500), ms(1000), ms(1000), ms(1000)]);
        assert_eq!(waits(&self::urls(&["ws://a", "ws://b"])), [ms(0), ms(250), ms(500), ms(1000), ms(1000)]);
        assert_eq!(urls(&["ws://a"]).backoff(ms(250), ms(100)).next_delay(), ms(100), "the initial wait is capped too");
    }
    #[test]
    fn a_bad_url_in_the_list_is_named() {
        let e = MasterUrls::new("ws://a".into(), vec!["ws://b".into(), "http://c".into()], "/x").unwrap_err();
        assert!(matches!(&e, DialError::BadUrl { url, .. } if url == "http://c"), "{e}");
        assert!(e.to_string().contains("\"http://c\""), "{e}");
    }

    /// Tries `list` with the masters `up` answering; returns the URLs tried and the outcome.
    async fn tried(masters: &MasterUrls, up: &[&str], fail_over: bool) -> (Vec<String>, Result<String, String>) {
        let mut seen = Vec::new();
        let attempt = |url: String| {
            seen.push(url.clone());
            let ok = up.contains(&url.as_str());
            async move {
                if ok {
                    Ok(url)
                } else {
                    Err(format!("{url} down"))
                }
            }
        };
        let outcome = if fail_over { masters.fail_over(attempt).await } else { masters.connect_first(attempt).await };
        (seen, outcome)
    }

    #[tokio::test]
    async fn the_first_connection_tries_the_urls_in_order() {
        let masters = urls(&["ws://a", "ws://b", "ws://c"]);
        let (seen, outcome) = tried(&masters, &["ws://b", "ws://c"], false).await;
        assert_eq!(seen, ["ws://a", "ws://b"]);
        assert_eq!(outcome.unwrap(), "ws://b");
        assert_eq!(masters.current(), "ws://b");
        let (seen, outcome) = tried(&masters, &[], false).await;
        assert_eq!(seen, ["ws://a", "ws://b", "ws://c"]);
        assert_eq!(outcome.unwrap_err(), "ws://a down", "the preferred master's error");
    }

    #[tokio::test]
    async fn failing_over_starts_after_the_current_url_and_ends_with_it() {
        let masters = urls(&["ws://a", "ws://b", "ws://c"]);
        tried(&masters, &["ws://b"], false).await.1.unwrap();
        let (seen, outcome) = tried(&masters, &["ws://a"], true).await;
        assert_eq!(seen, ["ws://c", "ws://a"]);
        assert_eq!(outcome.unwrap(), "ws://a");
        let (seen, _) = tried(&masters, &[], true).await;
        assert_eq!(seen, ["ws://b", "ws://c", "ws://a"]);
        assert_eq!(masters.current(), "ws://a", "unchanged by a failed round");
        let one = urls(&["ws://only"]);
        let (seen, _) = tried(&one, &["ws://only"], true).await;
        assert_eq!(seen, ["ws://only"], "one URL: the same master again");
    }
}
