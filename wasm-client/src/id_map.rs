//! A map keyed by ids, as a list sorted by id. The client's maps (publishes awaiting
//! their acknowledgement, requests, relayed calls) get ids from counters, so inserts
//! land at the end and removals are mostly near the front; a list also keeps
//! hashing and tree code out of the wasm binary.

/// Values by id, iterated in id order.
#[derive(Debug)]
pub struct IdMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for IdMap<K, V> {
    fn default() -> Self {
        Self { entries: Vec::new() }
    }
}

impl<K: Ord + Copy, V> IdMap<K, V> {
    /// Stores `value` under `key`, replacing the value stored there before.
    pub fn insert(&mut self, key: K, value: V) {
        match self.entries.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(index) => self.entries[index].1 = value,
            Err(index) => self.entries.insert(index, (key, value)),
        }
    }

    /// Takes the value stored under `key`.
    pub fn remove(&mut self, key: K) -> Option<V> {
        let index = self.entries.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        Some(self.entries.remove(index).1)
    }

    /// Takes every entry, in id order.
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.entries.drain(..)
    }

    /// The entries, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(key, value)| (key, value))
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;

    #[test]
    fn entries_come_out_in_id_order_whatever_the_insert_order() {
        let mut map = IdMap::default();
        for id in [5u32, 1, 9, 3] {
            map.insert(id, id * 10);
        }
        map.insert(3, 31);
        assert_eq!(map.remove(9), Some(90));
        assert_eq!(map.remove(9), None);
        assert_eq!(map.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(map.drain().collect::<Vec<_>>(), [(1, 10), (3, 31), (5, 50)]);
        assert_eq!(map.remove(1), None);
    }
}
