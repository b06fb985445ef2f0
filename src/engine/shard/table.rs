//! A partition's pair table: entries in insertion order (a snapshot walks
//! them by position) and an open-addressing index over them whose slots the
//! shard can address — so a batch can look its pairs up in stages, asking
//! the CPU for what each next stage reads (`stage_*`).
//!
//! Owns: the index (linear probing over a power-of-two array of 64-bit
//! slots: the low 32 bits of the key's hash and the entry's position + 1; 0
//! is an empty slot) and the subset of `IndexMap`'s interface the shard uses,
//! with the same meaning (`swap_remove_index` moves the last entry into the
//! hole; `retain` keeps the order). A removal moves the later slots of its
//! run back, so there are no tombstones; positions fit 32 bits (a partition
//! holds fewer than 4 billion pairs).

use std::hash::{BuildHasher, Hash};
use std::ops::Range;

/// Most entries per slot before the index doubles: 3/4.
const LOAD_NUM: usize = 3;
const LOAD_DEN: usize = 4;

/// An entry at the start of a cache line. In a row of 48-byte entries
/// (a pair's key and slot) every second one lies across two lines and a
/// lookup waits for both: at 10 M pairs, where each event's lookup misses
/// the caches, events per second rose by about 14 % with an entry a line
/// (16 bytes more per pair).
#[repr(align(64))]
struct Line<T>(T);

pub struct PairTable<K, V, S> {
    entries: Vec<Line<(K, V)>>,
    slots: Vec<u64>,
    hasher: S,
}

impl<K, V, S: Default> Default for PairTable<K, V, S> {
    fn default() -> Self {
        PairTable {
            entries: Vec::new(),
            slots: Vec::new(),
            hasher: S::default(),
        }
    }
}

fn slot(hash: u32, index: usize) -> u64 {
    (u64::from(hash) << 32) | (index as u64 + 1)
}

fn slot_hash(slot: u64) -> u32 {
    (slot >> 32) as u32
}

fn slot_index(slot: u64) -> usize {
    (slot & 0xffff_ffff) as usize - 1
}

impl<K: Hash + Eq, V, S: BuildHasher> PairTable<K, V, S> {
    fn hash(&self, key: &K) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Walks the run of slots from `hash`'s home to the first empty slot;
    /// the position of the first slot with that hash whose entry `hit` says
    /// yes to.
    fn probe(&self, hash: u32, mut hit: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut at = hash as usize & mask;
        loop {
            let s = self.slots[at];
            if s == 0 {
                return None;
            }
            if slot_hash(s) == hash && hit(slot_index(s)) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The slot that holds `key` (its position in `slots`), if any.
    fn find_slot(&self, key: &K, hash: u32) -> Option<usize> {
        self.probe(hash, |i| self.entries[i].0 .0 == *key)
    }

    /// The slot that points at entry `index` (whose key hashes to `hash`).
    fn slot_of_index(&self, hash: u32, index: usize) -> usize {
        let mask = self.mask();
        let mut at = hash as usize & mask;
        while self.slots[at] == 0 || slot_index(self.slots[at]) != index {
            at = (at + 1) & mask;
        }
        at
    }

    fn place(slots: &mut [u64], hash: u32, index: usize) {
        let mask = slots.len() - 1;
        let mut at = hash as usize & mask;
        while slots[at] != 0 {
            at = (at + 1) & mask;
        }
        slots[at] = slot(hash, index);
    }

    /// Rebuilds the index for `capacity` entries at most.
    fn rebuild(&mut self, capacity: usize) {
        let size = (capacity * LOAD_DEN / LOAD_NUM + 1)
            .next_power_of_two()
            .max(8);
        let mut slots = vec![0u64; size];
        for (i, Line((key, _))) in self.entries.iter().enumerate() {
            Self::place(&mut slots, self.hasher.hash_one(key) as u32, i);
        }
        self.slots = slots;
    }

    fn fits(&self, entries: usize) -> bool {
        entries * LOAD_DEN <= self.slots.len() * LOAD_NUM
    }

    /// Empties the slot at `at`, moving later slots of its run back so that
    /// every key stays reachable from its home slot.
    fn remove_slot(&mut self, mut at: usize) {
        let mask = self.mask();
        let mut next = (at + 1) & mask;
        loop {
            let s = self.slots[next];
            if s == 0 {
                break;
            }
            let home = slot_hash(s) as usize & mask;
            // Moves back unless its home lies in (at, next] (cyclically).
            let stays = if at <= next {
                at < home && home <= next
            } else {
                at < home || home <= next
            };
            if !stays {
                self.slots[at] = s;
                at = next;
            }
            next = (next + 1) & mask;
        }
        self.slots[at] = 0;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn reserve(&mut self, more: usize) {
        self.entries.reserve(more);
        let want = self.entries.len() + more;
        if !self.fits(want) {
            self.rebuild(want);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.slots.clear();
    }

    pub fn get_index_of(&self, key: &K) -> Option<usize> {
        self.find_slot(key, self.hash(key))
            .map(|at| slot_index(self.slots[at]))
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get_index_of(key).is_some()
    }

    pub fn get_full(&self, key: &K) -> Option<(usize, &K, &V)> {
        let i = self.get_index_of(key)?;
        let (k, v) = &self.entries[i].0;
        Some((i, k, v))
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        self.get_full(key).map(|(_, _, v)| v)
    }

    pub fn get_index(&self, index: usize) -> Option<(&K, &V)> {
        self.entries.get(index).map(|Line((k, v))| (k, v))
    }

    pub fn get_index_mut(&mut self, index: usize) -> Option<(&K, &mut V)> {
        self.entries.get_mut(index).map(|Line((k, v))| (&*k, v))
    }

    /// The entries at positions `range`, if they all exist.
    pub fn get_range(&self, range: Range<usize>) -> Option<impl Iterator<Item = &(K, V)>> {
        self.entries
            .get(range)
            .map(|lines| lines.iter().map(|l| &l.0))
    }

    /// Inserts or replaces; returns the entry's position and the value it
    /// replaced.
    pub fn insert_full(&mut self, key: K, value: V) -> (usize, Option<V>) {
        let hash = self.hash(&key);
        if let Some(at) = self.find_slot(&key, hash) {
            let i = slot_index(self.slots[at]);
            return (i, Some(std::mem::replace(&mut self.entries[i].0 .1, value)));
        }
        let i = self.entries.len();
        self.entries.push(Line((key, value)));
        if self.fits(i + 1) {
            Self::place(&mut self.slots, hash, i);
        } else {
            self.rebuild((i + 1) * 2);
        }
        (i, None)
    }

    /// Removes the entry at `index`; the last entry takes its position.
    pub fn swap_remove_index(&mut self, index: usize) -> Option<(K, V)> {
        if index >= self.entries.len() {
            return None;
        }
        let hash = self.hash(&self.entries[index].0 .0);
        let at = self.slot_of_index(hash, index);
        self.remove_slot(at);
        let last = self.entries.len() - 1;
        if index != last {
            let moved = self.hash(&self.entries[last].0 .0);
            let at = self.slot_of_index(moved, last);
            self.slots[at] = slot(moved, index);
        }
        Some(self.entries.swap_remove(index).0)
    }

    /// Keeps the entries `keep` says yes to, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|Line((k, v))| keep(k, v));
        if self.entries.len() != before {
            self.rebuild(self.entries.len());
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|Line((k, v))| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|Line((k, _))| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|Line((_, v))| v)
    }

    /// Looking many keys up in stages (`Shard::warm`), each stage over
    /// every key before the next, so the cache misses of different keys
    /// overlap instead of each key waiting for its own in turn. Stage 1: the
    /// key's hash; its home slot is asked for.
    pub fn stage_hash(&self, key: &K) -> u32 {
        let h = self.hash(key);
        if !self.slots.is_empty() {
            super::prefetch(&self.slots[h as usize & self.mask()]);
        }
        h
    }

    /// Stage 2: the first entry of the key's run with its hash (the
    /// candidate), which is asked for.
    pub fn stage_candidate(&self, hash: u32) -> Option<usize> {
        let at = self.probe(hash, |_| true)?;
        let i = slot_index(self.slots[at]);
        super::prefetch(&self.entries[i]);
        Some(i)
    }

    /// Stage 3: the key's position, its candidate checked (two keys with the
    /// same 32 hash bits, rare, make the whole run searched).
    pub fn stage_confirm(&self, key: &K, hash: u32, candidate: Option<usize>) -> Option<usize> {
        match candidate {
            Some(i) if self.entries[i].0 .0 == *key => Some(i),
            None => None,
            Some(_) => self
                .find_slot(key, hash)
                .map(|at| slot_index(self.slots[at])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use proptest::prelude::*;

    /// A hasher that puts every key in few homes, so runs, wrap-arounds and
    /// equal 32-bit hashes happen all the time.
    #[derive(Default, Clone)]
    struct Crowded;

    impl BuildHasher for Crowded {
        type Hasher = CrowdedHasher;
        fn build_hasher(&self) -> CrowdedHasher {
            CrowdedHasher(0)
        }
    }

    struct CrowdedHasher(u64);

    impl std::hash::Hasher for CrowdedHasher {
        fn finish(&self) -> u64 {
            // Few distinct values, near the top of a small table.
            (self.0 % 5) * 0x9e37 + 13
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(*b));
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        SwapRemove(usize),
        Retain(u16),
        Reserve(u8),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0u16..400, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => any::<usize>().prop_map(Op::SwapRemove),
            1 => (2u16..7).prop_map(Op::Retain),
            1 => any::<u8>().prop_map(Op::Reserve),
            1 => Just(Op::Clear),
        ]
    }

    fn check<S: BuildHasher>(table: &PairTable<u16, u32, S>, model: &IndexMap<u16, u32>) {
        assert_eq!(table.len(), model.len());
        let entries: Vec<_> = table.iter().map(|(k, v)| (*k, *v)).collect();
        let expected: Vec<_> = model.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(entries, expected);
        let keys: Vec<u16> = (0..400).collect();
        let hashes: Vec<u32> = keys.iter().map(|k| table.stage_hash(k)).collect();
        let candidates: Vec<_> = hashes.iter().map(|h| table.stage_candidate(*h)).collect();
        for (k, (h, c)) in keys.iter().zip(hashes.into_iter().zip(candidates)) {
            assert_eq!(table.get_index_of(k), model.get_index_of(k), "key {k}");
            assert_eq!(
                table.stage_confirm(k, h, c),
                model.get_index_of(k),
                "key {k}"
            );
        }
    }

    fn run<S: BuildHasher + Default>(ops: Vec<Op>) {
        let mut table: PairTable<u16, u32, S> = PairTable::default();
        let mut model: IndexMap<u16, u32> = IndexMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    assert_eq!(table.insert_full(k, v), model.insert_full(k, v));
                }
                Op::SwapRemove(i) => {
                    let i = if model.is_empty() {
                        i
                    } else {
                        i % (model.len() + 1)
                    };
                    assert_eq!(table.swap_remove_index(i), model.swap_remove_index(i));
                }
                Op::Retain(m) => {
                    table.retain(|k, _| k % m != 0);
                    model.retain(|k, _| k % m != 0);
                }
                Op::Reserve(n) => table.reserve(n as usize),
                Op::Clear => {
                    table.clear();
                    model.clear();
                }
            }
            check(&table, &model);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn behaves_as_an_indexmap(ops in proptest::collection::vec(op(), 0..300)) {
            run::<ahash::RandomState>(ops);
        }

        #[test]
        fn behaves_as_an_indexmap_when_hashes_collide(ops in proptest::collection::vec(op(), 0..300)) {
            run::<Crowded>(ops);
        }
    }
}
