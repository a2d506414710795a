//! A small memory of values computed from byte strings that a gateway's records repeat
//! from one to the next: its peers' certificates and OCSP responses, the same bytes for
//! hours. Finding one of the last few by comparing bytes is far cheaper than encoding or
//! hashing a kilobyte again for every record.

/// The last `capacity` byte strings seen, each with the value computed from it.
#[derive(Debug)]
pub struct Recent<V> {
    entries: Vec<(Box<[u8]>, V)>,
    capacity: usize,
}

impl<V: Clone> Recent<V> {
    /// An empty memory of at most `capacity` entries (at least one).
    pub const fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity,
        }
    }

    /// The value for `key`: remembered if `key` is one of the last byte strings seen,
    /// otherwise `make(key)`, which is then remembered in place of the oldest.
    pub fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce(&[u8]) -> V) -> V {
        if let Some((_, value)) = self.entries.iter().find(|(known, _)| **known == *key) {
            return value.clone();
        }
        let value = make(key);
        if self.entries.len() >= self.capacity.max(1) {
            self.entries.remove(0);
        }
        self.entries.push((key.into(), value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remembered value is the one `make` gives for those bytes: the same key again, and
    /// keys of the same length that differ in one byte, with more keys than remembered;
    /// `make` runs only for keys not remembered.
    #[test]
    fn a_remembered_value_is_the_keys_value() {
        let make = |key: &[u8]| key.iter().map(|&b| u64::from(b)).sum::<u64>() + key.len() as u64;
        let keys: Vec<Vec<u8>> = (0..24u8)
            .map(|i| {
                let mut key = vec![0x30; 700];
                key[350] = i % 20;
                key
            })
            .collect();
        let mut recent = Recent::new(8);
        let mut made = 0;
        for key in keys.iter().chain(keys.iter().rev()) {
            let value = recent.get_or_insert_with(key, |k| {
                made += 1;
                make(k)
            });
            assert_eq!(value, make(key));
        }
        assert!(made < 2 * keys.len(), "nothing was remembered");
        let again = recent.get_or_insert_with(&keys[0], |_| unreachable!("remembered"));
        assert_eq!(again, make(&keys[0]));
    }
}
