//! The slave list as a client keeps it: the master's ids, and, across a
//! reconnection to the master, which newly listed slave is one already known.
//!
//! Slave ids are the master's. As the browser bundle does, what a new
//! connection lists is matched against the slaves listed before (orphans
//! until then):
//! - a slave listed under an orphan's id, with the orphan's userData, is
//!   that slave: masters in a cluster give a slave the same id on every
//!   master, so a failover between them changes nothing (kept, no event);
//! - otherwise a slave whose userData only one orphan had is that slave (it
//!   registered again, and got a new id: relisted, not added).
//!
//! Either way its [`SlaveConnection`](super::SlaveConnection) and open
//! channels are kept. Orphans not listed again wait a grace period, then are
//! removed. (Both the id and the userData must match: a lone master gives
//! ids afresh when it restarts, so an orphan's id may come back on another slave.)

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::proto::SlaveEntry;

/// Names one slave for the client's lifetime, whatever ids masters give it.
pub(crate) type SlaveKey = u64;

/// A listed slave, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveInfo {
    /// The slave's id, given by the master (it changes when the client or
    /// the slave reconnects to the master).
    pub id: u32,
    /// Names this slave for the client's lifetime: the same across
    /// reconnections, when `id` changes (see [`MasterEvent::SlaveRelisted`](super::MasterEvent::SlaveRelisted)).
    pub uid: u64,
    /// What the slave registered with, as JSON text.
    pub user_data: String,
}

/// A change of the list, to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Added(SlaveInfo),
    /// A slave of an earlier master connection, listed again under a new id.
    Relisted(SlaveInfo),
    /// A slave of an earlier master connection, listed again under its id.
    Kept(SlaveInfo),
    Removed(SlaveInfo),
    /// A listed slave's userData changed; it stays listed under the same id.
    Updated(SlaveInfo),
}

#[derive(Debug)]
struct Listed {
    key: SlaveKey,
    user_data: String,
}

#[derive(Debug, Default)]
pub(crate) struct SlaveList {
    by_id: BTreeMap<u32, Listed>,
    ids: HashMap<SlaveKey, u32>,
    /// Slaves listed before a reconnection and not listed again yet, by
    /// their last id: (key, userData).
    orphans: HashMap<u32, (SlaveKey, String)>,
    /// The orphans' last ids by userData: a slave listed under a new id is
    /// matched when one orphan alone has its userData. (Indexed both ways so
    /// that a resync of n slaves costs O(n), not O(n²).)
    orphans_by_data: HashMap<String, HashSet<u32>>,
    next_key: SlaveKey,
}

impl SlaveList {
    /// Adds what an AddSlaves frame lists. An id listed already is an update
    /// of that slave's userData: masters never reuse ids, and a 0.9.0
    /// master lists a slave again when it registers a second time.
    pub(crate) fn add(&mut self, entries: Vec<SlaveEntry>) -> Vec<Change> {
        let mut changes = Vec::new();
        for SlaveEntry { id, user_data } in entries {
            if self.by_id.contains_key(&id) {
                changes.extend(self.update(vec![SlaveEntry { id, user_data }]));
                continue;
            }
            let key = if let Some(key) = self.take_orphan_by_id(id, &user_data) {
                changes.push(Change::Kept(SlaveInfo { id, uid: key, user_data: user_data.clone() }));
                key
            } else if let Some(key) = self.take_orphan(&user_data) {
                changes.push(Change::Relisted(SlaveInfo { id, uid: key, user_data: user_data.clone() }));
                key
            } else {
                self.next_key += 1;
                changes.push(Change::Added(SlaveInfo { id, uid: self.next_key, user_data: user_data.clone() }));
                self.next_key
            };
            self.ids.insert(key, id);
            self.by_id.insert(id, Listed { key, user_data });
        }
        changes
    }

    /// Takes in what an UpdateSlaves frame lists: new userData for listed
    /// slaves. Unknown ids (a slave removed meanwhile) are ignored.
    pub(crate) fn update(&mut self, entries: Vec<SlaveEntry>) -> Vec<Change> {
        entries
            .into_iter()
            .filter_map(|SlaveEntry { id, user_data }| {
                let listed = self.by_id.get_mut(&id)?;
                listed.user_data.clone_from(&user_data);
                Some(Change::Updated(SlaveInfo { id, uid: listed.key, user_data }))
            })
            .collect()
    }

    /// The orphan that had this id and this userData.
    fn take_orphan_by_id(&mut self, id: u32, user_data: &str) -> Option<SlaveKey> {
        if self.orphans.get(&id).is_none_or(|(_, data)| data != user_data) {
            return None;
        }
        self.take_orphan_at(id)
    }

    /// The orphan with this userData, if it is the only one that has it.
    fn take_orphan(&mut self, user_data: &str) -> Option<SlaveKey> {
        let same = self.orphans_by_data.get(user_data)?;
        let id = match same.len() {
            1 => *same.iter().next().expect("one"),
            _ => return None,
        };
        self.take_orphan_at(id)
    }

    /// Takes the orphan whose last id was `id` out of both indexes.
    fn take_orphan_at(&mut self, id: u32) -> Option<SlaveKey> {
        let (key, user_data) = self.orphans.remove(&id)?;
        if let Some(same) = self.orphans_by_data.get_mut(&user_data) {
            same.remove(&id);
            if same.is_empty() {
                self.orphans_by_data.remove(&user_data);
            }
        }
        Some(key)
    }

    /// Removes the slaves a RemoveSlaves frame names; unknown ids are ignored.
    pub(crate) fn remove(&mut self, ids: &[u32]) -> Vec<Change> {
        ids.iter()
            .filter_map(|id| {
                let gone = self.by_id.remove(id)?;
                self.ids.remove(&gone.key);
                Some(Change::Removed(SlaveInfo { id: *id, uid: gone.key, user_data: gone.user_data }))
            })
            .collect()
    }

    /// A new master connection starts: every listed slave waits to be listed again.
    pub(crate) fn orphan_all(&mut self) {
        self.ids.clear();
        for (id, listed) in std::mem::take(&mut self.by_id) {
            self.orphans_by_data.entry(listed.user_data.clone()).or_default().insert(id);
            self.orphans.insert(id, (listed.key, listed.user_data));
        }
    }

    /// True while slaves of an earlier connection wait to be listed again.
    pub(crate) fn has_orphans(&self) -> bool {
        !self.orphans.is_empty()
    }

    /// The grace period is over: the slaves not listed again are gone.
    pub(crate) fn drop_orphans(&mut self) -> Vec<Change> {
        self.orphans_by_data.clear();
        self.orphans.drain().map(|(id, (uid, user_data))| Change::Removed(SlaveInfo { id, uid, user_data })).collect()
    }

    /// The current id of a slave, if it is listed now.
    pub(crate) fn id_of(&self, key: SlaveKey) -> Option<u32> {
        self.ids.get(&key).copied()
    }

    /// The slave listed under `id` now.
    pub(crate) fn key_of(&self, id: u32) -> Option<SlaveKey> {
        self.by_id.get(&id).map(|listed| listed.key)
    }

    /// The listed slaves, by id.
    pub(crate) fn snapshot(&self) -> Vec<SlaveInfo> {
        self.by_id
            .iter()
            .map(|(id, listed)| SlaveInfo { id: *id, uid: listed.key, user_data: listed.user_data.clone() })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, user_data: &str) -> SlaveEntry {
        SlaveEntry { id, user_data: user_data.into() }
    }

    #[test]
    fn slaves_are_added_and_removed_by_id() {
        let mut list = SlaveList::default();
        let added = list.add(vec![entry(1, "{\"n\":1}"), entry(2, "{\"n\":2}")]);
        assert_eq!(added.len(), 2);
        assert!(matches!(&added[0], Change::Added(SlaveInfo { id: 1, .. })));
        let key = list.key_of(2).unwrap();
        assert_eq!(list.id_of(key), Some(2));
        assert_eq!(list.remove(&[2, 99]), vec![Change::Removed(SlaveInfo { id: 2, uid: key, user_data: "{\"n\":2}".into() })]);
        assert_eq!(list.id_of(key), None);
        let one = list.key_of(1).unwrap();
        assert_eq!(list.snapshot(), vec![SlaveInfo { id: 1, uid: one, user_data: "{\"n\":1}".into() }]);
    }

    #[test]
    fn a_slave_listed_again_or_updated_keeps_its_key() {
        let mut list = SlaveList::default();
        list.add(vec![entry(1, "\"a\"")]);
        let key = list.key_of(1).unwrap();
        let relisted = list.add(vec![entry(1, "\"b\"")]);
        assert_eq!(relisted, vec![Change::Updated(SlaveInfo { id: 1, uid: key, user_data: "\"b\"".into() })]);
        let updated = list.update(vec![entry(1, "\"c\""), entry(99, "\"unknown\"")]);
        assert_eq!(updated, vec![Change::Updated(SlaveInfo { id: 1, uid: key, user_data: "\"c\"".into() })]);
        assert_eq!(list.snapshot(), vec![SlaveInfo { id: 1, uid: key, user_data: "\"c\"".into() }]);
    }

    #[test]
    fn after_a_reconnection_a_slave_with_unique_user_data_keeps_its_key() {
        let mut list = SlaveList::default();
        list.add(vec![entry(1, "\"a\""), entry(2, "\"twin\""), entry(3, "\"twin\""), entry(4, "\"gone\"")]);
        let a = list.key_of(1).unwrap();
        list.orphan_all();
        assert_eq!(list.id_of(a), None, "no id while orphaned");
        let changes = list.add(vec![entry(10, "\"a\""), entry(11, "\"twin\"")]);
        assert_eq!(list.id_of(a), Some(10));
        assert!(matches!(&changes[0], Change::Relisted(SlaveInfo { uid, .. }) if *uid == a), "the same uid");
        // Two earlier slaves had this userData: the new one is not proof of either.
        assert!(
            matches!(&changes[..], [Change::Relisted(SlaveInfo { id: 10, .. }), Change::Added(SlaveInfo { id: 11, .. })]),
            "{changes:?}"
        );
        let removed = list.drop_orphans();
        assert_eq!(removed.len(), 3);
        assert!(!list.has_orphans());
    }

    /// Clustered masters give a slave the same id on every master: a
    /// failover from one to another must not make it flicker.
    #[test]
    fn a_slave_listed_again_under_its_id_and_user_data_is_kept_without_any_event() {
        let mut list = SlaveList::default();
        list.add(vec![entry(7, "\"a\""), entry(8, "\"b\""), entry(9, "\"twin\""), entry(10, "\"twin\"")]);
        let [a, b, twin1, twin2] = [7, 8, 9, 10].map(|id| list.key_of(id).unwrap());
        list.orphan_all();
        // 7 as it was, a twin under its id (userData alone could not tell
        // twins apart), 8's id on another slave, 8 under a new id.
        let changes = list.add(vec![entry(7, "\"a\""), entry(10, "\"twin\""), entry(8, "\"c\""), entry(11, "\"b\"")]);
        assert_eq!(
            changes,
            vec![
                Change::Kept(SlaveInfo { id: 7, uid: a, user_data: "\"a\"".into() }),
                Change::Kept(SlaveInfo { id: 10, uid: twin2, user_data: "\"twin\"".into() }),
                Change::Added(SlaveInfo { id: 8, uid: twin2 + 1, user_data: "\"c\"".into() }),
                Change::Relisted(SlaveInfo { id: 11, uid: b, user_data: "\"b\"".into() }),
            ]
        );
        // Listed later in the grace period, under its id: kept too.
        let later = list.add(vec![entry(9, "\"twin\"")]);
        assert_eq!(later, vec![Change::Kept(SlaveInfo { id: 9, uid: twin1, user_data: "\"twin\"".into() })]);
        assert!(!list.has_orphans());
        assert_eq!(list.drop_orphans(), vec![], "nothing removed");
    }
}
