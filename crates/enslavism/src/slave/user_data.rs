//! The slave's userData: the latest the application set, what the master
//! last accepted, and the callers of [`Slave::set_user_data`](super::Slave::set_user_data)
//! waiting for the master to have it.
//!
//! Updates are numbered. The master link sends only the latest (a V2 master
//! gets an UpdateUserData, a 0.9.0 master a second Register), and a result
//! for update N settles every caller waiting on N or earlier: the master
//! keeps only the latest too.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::{oneshot, Notify};

/// Why an update did not reach the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotApplied {
    /// The master refused it, for this reason.
    Refused(String),
    /// The master link ended for good (it closed and `reconnect` is off).
    NoMaster,
}

/// How a wait for the master ends.
pub(crate) type Settled = Result<(), NotApplied>;

#[derive(Debug)]
struct State {
    latest: String,
    accepted: String,
    /// The number of the latest update (0: none since the start).
    latest_seq: u32,
    /// The number of the latest update the link sent.
    sent_seq: u32,
    waiters: Vec<(u32, oneshot::Sender<Settled>)>,
    /// The master link ended for good: nothing will be sent any more.
    link_ended: bool,
}

/// Shared between the slave's handle and its master link.
#[derive(Debug)]
pub(crate) struct UserData {
    state: Mutex<State>,
    /// Wakes the link when there is an update to send.
    pub(crate) changed: Notify,
}

/// An update for the link to send.
pub(crate) struct Pending {
    pub seq: u32,
    pub user_data: String,
}

impl UserData {
    pub(crate) fn new(initial: String) -> Self {
        let state = State {
            latest: initial.clone(),
            accepted: initial,
            latest_seq: 0,
            sent_seq: 0,
            waiters: Vec::new(),
            link_ended: false,
        };
        UserData { state: Mutex::new(state), changed: Notify::new() }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest userData set.
    pub(crate) fn latest(&self) -> String {
        self.state().latest.clone()
    }

    /// Makes `json` the latest (already checked) and wakes the link; the
    /// receiver settles once the master has it or refused it.
    pub(crate) fn set(&self, json: String) -> oneshot::Receiver<Settled> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            state.latest = json;
            if state.link_ended {
                let _ = tx.send(Err(NotApplied::NoMaster));
                return rx;
            }
            state.latest_seq = state.latest_seq.wrapping_add(1);
            let seq = state.latest_seq;
            state.waiters.push((seq, tx));
        }
        self.changed.notify_one();
        rx
    }

    /// The latest update if the link has not sent it yet; marks it sent.
    pub(crate) fn take_unsent(&self) -> Option<Pending> {
        let mut state = self.state();
        if state.sent_seq == state.latest_seq {
            return None;
        }
        state.sent_seq = state.latest_seq;
        Some(Pending { seq: state.latest_seq, user_data: state.latest.clone() })
    }

    /// What a (re)registration sends: the latest, counted as sent.
    pub(crate) fn for_registration(&self) -> Pending {
        let mut state = self.state();
        state.sent_seq = state.latest_seq;
        Pending { seq: state.latest_seq, user_data: state.latest.clone() }
    }

    /// The master has update `seq` (or refused it): settles it and every
    /// earlier one. A refusal of the latest makes the last accepted userData
    /// the latest again.
    pub(crate) fn settle(&self, seq: u32, refusal: Option<String>) {
        let waiters = {
            let mut state = self.state();
            match &refusal {
                None if seq == state.latest_seq => state.accepted = state.latest.clone(),
                Some(_) if seq == state.latest_seq => {
                    state.latest = state.accepted.clone();
                    state.sent_seq = seq;
                }
                _ => {}
            }
            // Sequence numbers wrap after 2³² updates: "earlier" is within half the range.
            let (done, waiting) =
                std::mem::take(&mut state.waiters).into_iter().partition(|(n, _)| seq.wrapping_sub(*n) < u32::MAX / 2);
            state.waiters = waiting;
            done
        };
        let outcome = refusal.map_or(Ok(()), |reason| Err(NotApplied::Refused(reason)));
        for (_, waiter) in waiters {
            let _ = waiter.send(outcome.clone());
        }
    }

    /// The master link ended for good: every waiting update fails.
    pub(crate) fn end_link(&self) {
        let waiters = {
            let mut state = self.state();
            state.link_ended = true;
            std::mem::take(&mut state.waiters)
        };
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(NotApplied::NoMaster));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_settles_its_update_and_every_earlier_one() {
        let data = UserData::new("{}".into());
        let mut first = data.set("1".into());
        let mut second = data.set("2".into());
        let pending = data.take_unsent().expect("an update to send");
        assert_eq!((pending.seq, pending.user_data.as_str()), (2, "2"), "only the latest is sent");
        assert!(data.take_unsent().is_none());
        let mut third = data.set("3".into());
        data.settle(2, None);
        assert_eq!(first.try_recv(), Ok(Ok(())));
        assert_eq!(second.try_recv(), Ok(Ok(())));
        assert!(third.try_recv().is_err(), "a later update still waits");
        assert_eq!(data.latest(), "3");
    }

    #[test]
    fn a_refused_update_restores_the_accepted_user_data() {
        let data = UserData::new("\"start\"".into());
        let mut ok = data.set("\"ok\"".into());
        data.settle(1, None);
        assert_eq!(ok.try_recv(), Ok(Ok(())));
        let mut refused = data.set("\"too much\"".into());
        let _ = data.take_unsent();
        data.settle(2, Some("too large".into()));
        assert_eq!(refused.try_recv(), Ok(Err(NotApplied::Refused("too large".into()))));
        assert_eq!(data.latest(), "\"ok\"");
        assert!(data.take_unsent().is_none(), "nothing left to send");
        let mut waiting = data.set("\"later\"".into());
        data.end_link();
        assert_eq!(waiting.try_recv(), Ok(Err(NotApplied::NoMaster)));
        assert_eq!(data.set("\"after\"".into()).try_recv(), Ok(Err(NotApplied::NoMaster)));
    }
}
