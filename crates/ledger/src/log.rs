//! [`MerkleLog`], the append-only RFC 9162 tree over record leaf hashes, and the tree heads
//! the log signs ([`SignedTreeHead`]) and has timestamped ([`TimestampedHead`]).
//!
//! The log keeps every complete, aligned subtree hash: level `k` holds the hashes of leaves
//! `[i * 2^k, (i + 1) * 2^k)` for every such range already filled. That is fewer than two
//! hashes per leaf (64 bytes a leaf, 6.4 MB for 100,000 leaves). Appending costs amortised
//! O(1) hashes; a root at any past size, an inclusion proof or a consistency proof costs
//! O(log n) lookups and at most O(log n) hashes (the right-hand edge is not cached because it
//! changes with every size). The proofs are exactly those of [`merkle`], so the verifiers
//! there check them.

use crate::encoding::hex_hash;
use lienthong_crypto::{CryptoError, PublicKey, Signature, Signer, merkle};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// An append-only Merkle tree over leaf hashes, with proofs for any past size.
///
/// A log may start from a purged prefix ([`MerkleLog::from_frontier`]): the first `pruned`
/// leaves are gone, and only the roots of the complete subtrees covering them (the
/// *frontier*, at most 64 hashes) are kept. Every node the tree needs for sizes of at least
/// `pruned` is then either one of those roots, built from them and later leaves, or built
/// from later leaves alone: an aligned subtree never straddles a frontier subtree's edge.
/// So roots at, inclusion proofs of leaves at and consistency proofs from sizes of at least
/// `pruned` still work; anything reaching into the purged prefix is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleLog {
    /// Leaves before this index are purged.
    pruned: u64,
    /// `levels[k][i]` is the root of leaves `[(base(k) + i) << k, (base(k) + i + 1) << k)`,
    /// present once all of them are (or kept from the frontier); `levels[0]` are leaf hashes.
    levels: Vec<Vec<[u8; 32]>>,
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A log holding these leaf hashes, in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = [u8; 32]>) -> Self {
        let mut log = Self::new();
        for leaf in leaves {
            log.append(leaf);
        }
        log
    }

    /// A log of `size` leaves of which only the frontier is known: the roots of the
    /// complete subtrees covering them, largest (leftmost) first, as
    /// [`MerkleLog::frontier`] gives them. `None` if there are not exactly as many hashes
    /// as `size` has one bits.
    pub fn from_frontier(size: u64, frontier: &[[u8; 32]]) -> Option<Self> {
        if frontier.len() != size.count_ones() as usize {
            return None;
        }
        let height = (u64::BITS - size.leading_zeros()) as usize;
        let mut levels = vec![Vec::new(); height];
        let mut hashes = frontier.iter();
        for (level, nodes) in levels.iter_mut().enumerate().rev() {
            if (size >> level) & 1 == 1 {
                nodes.push(*hashes.next()?);
            }
        }
        Some(Self {
            pruned: size,
            levels,
        })
    }

    /// Append a leaf hash; returns its index.
    pub fn append(&mut self, leaf: [u8; 32]) -> u64 {
        let index = self.size();
        let mut hash = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let base = self.base(level);
            let nodes = &mut self.levels[level];
            nodes.push(hash);
            // An odd index means the node just added completed a pair; its left sibling is
            // stored, because every level's first stored index is even.
            if (base + nodes.len() as u64 - 1).is_multiple_of(2) {
                break;
            }
            hash = merkle::node_hash(&nodes[nodes.len() - 2], &nodes[nodes.len() - 1]);
            level += 1;
        }
        index
    }

    /// The number of leaves (purged ones included).
    pub fn size(&self) -> u64 {
        self.levels
            .first()
            .map_or(self.pruned, |leaves| self.base(0) + leaves.len() as u64)
    }

    /// How many leading leaves are purged (0 for a log built from all its leaves).
    pub fn pruned(&self) -> u64 {
        self.pruned
    }

    /// The leaf hash at `index`, if there is one and it is not purged.
    pub fn leaf(&self, index: u64) -> Option<[u8; 32]> {
        if index < self.pruned {
            return None;
        }
        self.node(0, index)
    }

    /// The root of the whole log.
    pub fn root(&self) -> [u8; 32] {
        self.root_at(self.size()).unwrap_or_else(merkle::empty_root)
    }

    /// The root the log had when it held `size` leaves, or `None` if it never had that many
    /// (or, for a purged log, if the purged leaves would be needed).
    pub fn root_at(&self, size: u64) -> Option<[u8; 32]> {
        if size > self.size() {
            return None;
        }
        if size == 0 {
            Some(merkle::empty_root())
        } else {
            self.subtree(0, size)
        }
    }

    /// The roots of the complete subtrees covering the first `size` leaves, largest first
    /// (one per one bit of `size`): what [`MerkleLog::from_frontier`] needs to continue the
    /// log after purging those leaves.
    pub fn frontier(&self, size: u64) -> Option<Vec<[u8; 32]>> {
        if size > self.size() {
            return None;
        }
        let mut start = 0;
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..u64::BITS).rev() {
            let len = 1u64 << level;
            if size & len != 0 {
                hashes.push(self.subtree(start, len)?);
                start += len;
            }
        }
        Some(hashes)
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves, or `None`
    /// if `index >= size`, the log is smaller than `size` or the leaf is purged.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<[u8; 32]>> {
        if index >= size || size > self.size() || index < self.pruned {
            return None;
        }
        let mut proof = Vec::with_capacity(64);
        self.path(index, 0, size, &mut proof)?;
        Some(proof)
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves, or
    /// `None` if `old > new`, the log is smaller than `new`, or purged leaves are needed.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Option<Vec<[u8; 32]>> {
        if old > new || new > self.size() {
            return None;
        }
        let mut proof = Vec::with_capacity(64);
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof)?;
        }
        Some(proof)
    }

    /// The first index stored at `level`: even, so that pairs complete inside the store.
    fn base(&self, level: usize) -> u64 {
        self.pruned.checked_shr(level as u32).unwrap_or(0) & !1
    }

    /// The node `index` of `level`, if stored.
    fn node(&self, level: usize, index: u64) -> Option<[u8; 32]> {
        let offset = usize::try_from(index.checked_sub(self.base(level))?).ok()?;
        self.levels.get(level)?.get(offset).copied()
    }

    /// RFC 9162 `MTH` of leaves `[start, start + len)`, `len >= 1`, if all are available.
    fn subtree(&self, start: u64, len: u64) -> Option<[u8; 32]> {
        if len.is_power_of_two() && start.is_multiple_of(len) {
            let level = len.trailing_zeros() as usize;
            return self.node(level, start >> level);
        }
        let k = split(len);
        Some(merkle::node_hash(
            &self.subtree(start, k)?,
            &self.subtree(start + k, len - k)?,
        ))
    }

    /// RFC 9162 `PATH(index, D[start..start + len])`, appending leaf-to-root.
    fn path(&self, index: u64, start: u64, len: u64, proof: &mut Vec<[u8; 32]>) -> Option<()> {
        if len <= 1 {
            return Some(());
        }
        let k = split(len);
        if index < k {
            self.path(index, start, k, proof)?;
            proof.push(self.subtree(start + k, len - k)?);
        } else {
            self.path(index - k, start + k, len - k, proof)?;
            proof.push(self.subtree(start, k)?);
        }
        Some(())
    }

    /// RFC 9162 `SUBPROOF(old, D[start..start + len], whole)`, appending leaf-to-root.
    fn subproof(
        &self,
        old: u64,
        start: u64,
        len: u64,
        whole: bool,
        proof: &mut Vec<[u8; 32]>,
    ) -> Option<()> {
        if old == len {
            if !whole {
                proof.push(self.subtree(start, len)?);
            }
            return Some(());
        }
        let k = split(len);
        if old <= k {
            self.subproof(old, start, k, whole, proof)?;
            proof.push(self.subtree(start + k, len - k)?);
        } else {
            self.subproof(old - k, start + k, len - k, false, proof)?;
            proof.push(self.subtree(start, k)?);
        }
        Some(())
    }
}

/// The largest power of two smaller than `n`, for `n >= 2`.
fn split(n: u64) -> u64 {
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// Domain separation for tree head signatures, so that no other lienthong signature can be
/// passed off as one.
const TREE_HEAD_DOMAIN: &[u8] = b"lienthong-tree-head-v1\0";

/// What the log asserts at a moment: it held `size` records with this root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeHead {
    /// Which log (one per gateway).
    pub log_id: String,
    /// The number of records.
    pub size: u64,
    /// The root over them (hex in JSON).
    #[serde(with = "hex_hash")]
    pub root: [u8; 32],
    /// When the head was made, Unix milliseconds.
    pub time_ms: i64,
}

impl TreeHead {
    /// The bytes a signature covers: the domain string (NUL-terminated), then the log id
    /// as a 4-byte big-endian length and its UTF-8 bytes, the size (8 bytes big-endian),
    /// the root (32 bytes) and the time (8 bytes big-endian, two's complement).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let id = self.log_id.as_bytes();
        let mut bytes = Vec::with_capacity(TREE_HEAD_DOMAIN.len() + 4 + id.len() + 48);
        bytes.extend_from_slice(TREE_HEAD_DOMAIN);
        // A log id longer than 4 GiB cannot be built from the JSON limits of a bundle.
        bytes.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(&self.size.to_be_bytes());
        bytes.extend_from_slice(&self.root);
        bytes.extend_from_slice(&self.time_ms.to_be_bytes());
        bytes
    }

    /// Sign this head with the log's key.
    pub fn sign(self, signer: &dyn Signer) -> Result<SignedTreeHead, CryptoError> {
        let signature = signer.sign(&self.signing_bytes())?.to_text();
        Ok(SignedTreeHead {
            head: self,
            signature,
        })
    }
}

/// Sign `head` with the log's key.
pub fn sign_head(head: TreeHead, signer: &dyn Signer) -> Result<SignedTreeHead, CryptoError> {
    head.sign(signer)
}

/// A tree head with the log's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTreeHead {
    /// The head.
    pub head: TreeHead,
    /// The signature over [`TreeHead::signing_bytes`], text form `SUITE:BASE64`.
    pub signature: String,
}

impl SignedTreeHead {
    /// Check the signature with the log's public key.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CryptoError> {
        let signature = Signature::from_text(&self.signature)?;
        key.verify(&self.head.signing_bytes(), &signature)
    }

    /// Compact JSON, fields in declaration order (`{"head":{"log_id",...},"signature"}`):
    /// the bytes written to `tree-head.json` and hashed for the timestamp.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a tree head serializes: it has no maps and no floats")
    }

    /// The message imprint the TSA stamps: SHA-256 of [`Self::to_canonical_json`].
    pub fn timestamp_imprint(&self) -> [u8; 32] {
        Sha256::digest(self.to_canonical_json()).into()
    }
}

/// A signed tree head with the federation TSA's RFC 3161 token over its imprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampedHead {
    /// The signed head.
    pub signed: SignedTreeHead,
    /// The RFC 3161 `TimeStampToken`, DER.
    pub tsa_token: Vec<u8>,
}

impl TimestampedHead {
    /// What the token must stamp: [`SignedTreeHead::timestamp_imprint`].
    pub fn timestamp_imprint(&self) -> [u8; 32] {
        self.signed.timestamp_imprint()
    }
}

/// The right edge of an RFC 9162 tree: its size and the roots of the complete subtrees
/// covering its leaves, largest (leftmost) first — at most 64 hashes whatever the size.
/// Enough to append leaves and give the root in constant memory, which is what sealing a
/// log needs; [`MerkleLog`] keeps every subtree, for proofs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    frontier: Vec<[u8; 32]>,
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of `size` leaves known by its frontier, as [`MerkleLog::frontier`] gives it;
    /// `None` if there are not exactly as many hashes as `size` has one bits.
    pub fn from_frontier(size: u64, frontier: &[[u8; 32]]) -> Option<Self> {
        (frontier.len() == size.count_ones() as usize).then(|| Self {
            size,
            frontier: frontier.to_vec(),
        })
    }

    /// Append a leaf hash: the complete subtrees it completes merge, as a binary counter
    /// carries.
    pub fn append(&mut self, leaf: [u8; 32]) {
        let mut node = leaf;
        let mut carry = self.size;
        while carry & 1 == 1 {
            let Some(left) = self.frontier.pop() else {
                break;
            };
            node = merkle::node_hash(&left, &node);
            carry >>= 1;
        }
        self.frontier.push(node);
        self.size += 1;
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the complete subtrees covering the leaves, largest first.
    pub fn frontier(&self) -> &[[u8; 32]] {
        &self.frontier
    }

    /// The tree's root: the frontier folded from the right (RFC 9162, section 2.1.1).
    pub fn root(&self) -> [u8; 32] {
        match self.frontier.split_last() {
            None => merkle::empty_root(),
            Some((last, rest)) => rest
                .iter()
                .rev()
                .fold(*last, |right, left| merkle::node_hash(left, &right)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lienthong_crypto::{SoftwareKey, Suite};
    use proptest::prelude::*;

    pub(crate) fn leaves(seed: u64, count: u64) -> Vec<[u8; 32]> {
        (0..count)
            .map(|i| merkle::leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat()))
            .collect()
    }

    pub(crate) fn key() -> SoftwareKey {
        SoftwareKey::generate(Suite::Ed25519).expect("key").0
    }

    #[test]
    fn agrees_with_the_reference_functions_for_every_small_size() {
        let all = leaves(1, 70);
        let log = MerkleLog::from_leaves(all.iter().copied());
        assert_eq!(log.size(), 70);
        assert_eq!(log.root_at(71), None);
        assert_eq!(log.inclusion_proof(0, 71), None);
        assert_eq!(log.consistency_proof(3, 71), None);
        assert_eq!(log.consistency_proof(4, 3), None);
        for size in 0..=70usize {
            let prefix = &all[..size];
            let n = size as u64;
            assert_eq!(log.root_at(n), Some(merkle::root(prefix)), "root {size}");
            for index in 0..=size {
                assert_eq!(
                    log.inclusion_proof(index as u64, n),
                    merkle::inclusion_proof(index, prefix),
                    "path {index} of {size}"
                );
            }
            for old in 0..=size {
                assert_eq!(
                    log.consistency_proof(old as u64, n),
                    merkle::consistency_proof(old, prefix),
                    "consistency {old} to {size}"
                );
            }
        }
    }

    #[test]
    fn a_log_continued_from_a_frontier_proves_what_the_full_log_proves() {
        let all = leaves(3, 70);
        let full = MerkleLog::from_leaves(all.iter().copied());
        for pruned in 0..=40u64 {
            let frontier = full.frontier(pruned).expect("frontier");
            assert_eq!(frontier.len(), pruned.count_ones() as usize);
            let mut log = MerkleLog::from_frontier(pruned, &frontier).expect("frontier fits");
            assert_eq!((log.size(), log.pruned()), (pruned, pruned));
            assert_eq!(log.root_at(pruned), full.root_at(pruned), "root {pruned}");
            for leaf in &all[pruned as usize..] {
                log.append(*leaf);
            }
            assert_eq!(log.size(), 70);
            assert_eq!(log.root(), full.root());
            for size in pruned..=70 {
                assert_eq!(
                    log.root_at(size),
                    full.root_at(size),
                    "root {size} after {pruned}"
                );
                assert_eq!(log.frontier(size), full.frontier(size));
                for index in 0..size {
                    let proof = log.inclusion_proof(index, size);
                    if index < pruned {
                        assert_eq!(proof, None);
                        assert_eq!(log.leaf(index), None);
                    } else {
                        assert_eq!(
                            proof,
                            full.inclusion_proof(index, size),
                            "path {index} of {size}"
                        );
                        assert_eq!(log.leaf(index), full.leaf(index));
                    }
                }
                for old in 0..=size {
                    let proof = log.consistency_proof(old, size);
                    if old >= pruned {
                        assert_eq!(proof, full.consistency_proof(old, size), "{old} to {size}");
                    } else if proof.is_some() {
                        assert_eq!(proof, full.consistency_proof(old, size));
                    }
                }
            }
        }
        assert_eq!(MerkleLog::from_frontier(5, &[[0; 32]]), None);
        assert_eq!(MerkleLog::from_frontier(5, &[[0; 32]; 3]), None);
    }

    #[test]
    fn a_large_log_gives_proofs_the_verifiers_accept() {
        let all = leaves(2, 100_003);
        let mut log = MerkleLog::new();
        for (i, leaf) in all.iter().enumerate() {
            assert_eq!(log.append(*leaf), i as u64);
        }
        let root = log.root();
        assert_eq!(root, merkle::root(&all));
        for index in [0u64, 1, 65_535, 65_536, 99_999, 100_002] {
            let proof = log.inclusion_proof(index, log.size()).expect("proof");
            let leaf = log.leaf(index).expect("leaf");
            assert!(merkle::verify_inclusion(
                &leaf,
                index,
                log.size(),
                &proof,
                &root
            ));
        }
        for old in [1u64, 4_096, 65_537, 99_999] {
            let proof = log.consistency_proof(old, log.size()).expect("proof");
            let old_root = log.root_at(old).expect("root");
            assert!(merkle::verify_consistency(
                old,
                log.size(),
                &old_root,
                &root,
                &proof
            ));
        }
    }

    #[test]
    fn signed_heads_verify_and_only_unchanged() {
        let key = key();
        let head = TreeHead {
            log_id: "gw-1".into(),
            size: 5,
            root: [3; 32],
            time_ms: 1_790_000_000_000,
        };
        let signed = sign_head(head.clone(), &key).expect("signs");
        assert!(signed.verify(key.public_key()).is_ok());
        let changes = [
            TreeHead {
                log_id: "gw-2".into(),
                ..head.clone()
            },
            TreeHead {
                size: 6,
                ..head.clone()
            },
            TreeHead {
                root: [4; 32],
                ..head.clone()
            },
            TreeHead {
                time_ms: 1,
                ..head.clone()
            },
        ];
        for changed in changes {
            let forged = SignedTreeHead {
                head: changed,
                signature: signed.signature.clone(),
            };
            assert!(forged.verify(key.public_key()).is_err());
            assert_ne!(forged.timestamp_imprint(), signed.timestamp_imprint());
        }
        assert!(signed.verify(self::key().public_key()).is_err());
        let json = signed.to_canonical_json();
        assert!(json.starts_with(br#"{"head":{"log_id":"gw-1","size":5,"root":"0303"#));
        let back: SignedTreeHead = serde_json::from_slice(&json).expect("parses");
        assert_eq!(back, signed);
        let stamped = TimestampedHead {
            signed: signed.clone(),
            tsa_token: vec![],
        };
        assert_eq!(
            stamped.timestamp_imprint(),
            <[u8; 32]>::from(Sha256::digest(&json))
        );
    }

    #[test]
    fn the_signing_bytes_are_length_prefixed() {
        let a = TreeHead {
            log_id: "a".into(),
            size: 0,
            root: [0; 32],
            time_ms: 0,
        };
        let bytes = a.signing_bytes();
        assert!(bytes.starts_with(b"lienthong-tree-head-v1\0\0\0\0\x01a"));
        assert_eq!(bytes.len(), 23 + 4 + 1 + 8 + 32 + 8);
    }

    proptest! {
        /// The compact tree has the root and frontier of the full one at every size, also
        /// when continued from a frontier.
        #[test]
        fn compact_tree_matches_the_full_log(seed in any::<u64>(), size in 0u64..1_500, cut in 0.0f64..=1.0) {
            let all = leaves(seed, size);
            let log = MerkleLog::from_leaves(all.clone());
            let mut compact = CompactTree::new();
            prop_assert_eq!(compact.root(), merkle::empty_root());
            for (n, leaf) in all.iter().enumerate() {
                compact.append(*leaf);
                let grown = n as u64 + 1;
                prop_assert_eq!(compact.size(), grown);
                prop_assert_eq!(Some(compact.root()), log.root_at(grown));
            }
            let cut = (size as f64 * cut) as u64;
            let frontier = log.frontier(cut).expect("frontier");
            let mut continued = CompactTree::from_frontier(cut, &frontier).expect("compact");
            for leaf in &all[cut as usize..] {
                continued.append(*leaf);
            }
            prop_assert_eq!(continued.root(), log.root());
            prop_assert_eq!(Some(continued.frontier().to_vec()), log.frontier(size));
        }

        #[test]
        fn proofs_verify_for_random_sizes(
            seed in any::<u64>(),
            size in 1u64..3_000,
            index_fraction in 0.0f64..1.0,
            old_fraction in 0.0f64..=1.0,
        ) {
            let log = MerkleLog::from_leaves(leaves(seed, size));
            let index = ((size as f64 * index_fraction) as u64).min(size - 1);
            let old = ((size as f64 * old_fraction) as u64).min(size);
            let root = log.root();
            let proof = log.inclusion_proof(index, size).expect("proof");
            let leaf = log.leaf(index).expect("leaf");
            prop_assert!(merkle::verify_inclusion(&leaf, index, size, &proof, &root));
            let old_root = log.root_at(old).expect("root");
            let proof = log.consistency_proof(old, size).expect("proof");
            prop_assert!(merkle::verify_consistency(old, size, &old_root, &root, &proof));
            // An inclusion proof in an older tree verifies against that tree's root.
            if index < old {
                let proof = log.inclusion_proof(index, old).expect("proof");
                prop_assert!(merkle::verify_inclusion(&leaf, index, old, &proof, &old_root));
            }
        }
    }
}
