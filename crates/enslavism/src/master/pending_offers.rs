//! Offers waiting for their answer, by client: what the signalling tally
//! times (offer → answer) and what the cluster refuses back when a relayed
//! offer's slave or master goes away.

use std::collections::HashMap;
use std::time::Instant;

/// Client id → (slave id, when the offer came in) for each offer waiting for
/// its answer: by client, so that a client leaving (the common case, under
/// the router's lock) costs one removal; a slave leaving (rare) a pass.
#[derive(Debug, Default)]
pub(crate) struct PendingOffers {
    by_client: HashMap<u32, Vec<(u32, Instant)>>,
    len: usize,
}

impl PendingOffers {
    /// Client `client` offered to `slave` now. A new offer to the same slave
    /// (renegotiation) is timed from now. A new one is not kept once `cap`
    /// are waiting: false then.
    pub(crate) fn offered(&mut self, client: u32, slave: u32, cap: usize) -> bool {
        let offers = self.by_client.entry(client).or_default();
        match offers.iter_mut().find(|(s, _)| *s == slave) {
            Some(offer) => offer.1 = Instant::now(),
            None if self.len < cap => {
                offers.push((slave, Instant::now()));
                self.len += 1;
            }
            None => {
                if offers.is_empty() {
                    self.by_client.remove(&client);
                }
                return false;
            }
        }
        true
    }

    /// The offer of `client` to `slave`, removed: when it came in.
    pub(crate) fn take(&mut self, client: u32, slave: u32) -> Option<Instant> {
        let offers = self.by_client.get_mut(&client)?;
        let at = offers.iter().position(|(s, _)| *s == slave)?;
        let (_, offered) = offers.swap_remove(at);
        if offers.is_empty() {
            self.by_client.remove(&client);
        }
        self.len -= 1;
        Some(offered)
    }

    /// The client left: its offers are forgotten.
    pub(crate) fn forget_client(&mut self, client: u32) {
        if let Some(offers) = self.by_client.remove(&client) {
            self.len -= offers.len();
        }
    }

    /// Removes and returns the (client, slave) offers that `matches(slave, offered_at)` selects.
    pub(crate) fn take_where(&mut self, mut matches: impl FnMut(u32, Instant) -> bool) -> Vec<(u32, u32)> {
        let mut taken = Vec::new();
        self.by_client.retain(|client, offers| {
            offers.retain(|(slave, at)| {
                let hit = matches(*slave, *at);
                if hit {
                    taken.push((*client, *slave));
                }
                !hit
            });
            !offers.is_empty()
        });
        self.len -= taken.len();
        taken
    }

    /// How many offers wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offers_are_taken_once_and_forgotten_with_their_client() {
        let mut offers = PendingOffers::default();
        assert!(offers.offered(1, 10, 4));
        assert!(offers.offered(1, 11, 4));
        assert!(offers.offered(2, 10, 4));
        assert!(offers.offered(1, 10, 3), "a renegotiation is not a new offer");
        assert!(!offers.offered(5, 10, 3), "over the cap");
        assert!(offers.take(1, 11).is_some());
        assert!(offers.take(1, 11).is_none(), "taken once");
        let mut taken = offers.take_where(|slave, _| slave == 10);
        taken.sort_unstable();
        assert_eq!(taken, vec![(1, 10), (2, 10)]);
        assert_eq!(offers.len(), 0);
        offers.offered(3, 12, 4);
        offers.offered(3, 13, 4);
        offers.forget_client(3);
        assert_eq!(offers.len(), 0);
        assert!(offers.take_where(|_, _| true).is_empty());
    }
}
