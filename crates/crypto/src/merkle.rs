//! The Merkle tree of RFC 6962 and RFC 9162 (Certificate Transparency) over SHA-256:
//! tree roots, inclusion proofs and consistency proofs, as pure functions over leaf hashes.
//!
//! Batch signatures ([`crate::BatchSignature`]) and the message log use these same
//! functions. Leaves and interior nodes are hashed with different one-byte prefixes, so a
//! node can never be passed off as a leaf. Proofs list hashes from the leaf towards the root.
//!
//! Building a root, a proof or a consistency proof hashes each leaf once (linear time, stack
//! depth logarithmic in the tree size). Verification takes sizes as `u64`, because they come
//! from other parties and do not describe memory here; it never panics, whatever it is given,
//! and gives up after at most 64 steps however long the proof.

use sha2::{Digest as _, Sha256};

/// Prefix of a leaf hash (RFC 9162, 2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Prefix of an interior node hash (RFC 9162, 2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf: `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update([LEAF_PREFIX])
        .chain_update(data)
        .finalize()
        .into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update([NODE_PREFIX])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> [u8; 32] {
    Sha256::digest([]).into()
}

/// The root (RFC 9162 `MTH`) of the tree whose leaves have these hashes.
pub fn root(leaf_hashes: &[[u8; 32]]) -> [u8; 32] {
    match leaf_hashes {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let (left, right) = leaf_hashes.split_at(split(leaf_hashes.len()));
            node_hash(&root(left), &root(right))
        }
    }
}

/// The inclusion proof (RFC 9162 `PATH`) of leaf `index`, or `None` if there is no such leaf.
///
/// This hashes every leaf; for proofs of many leaves of one tree, build a [`Tree`].
pub fn inclusion_proof(index: usize, leaf_hashes: &[[u8; 32]]) -> Option<Vec<[u8; 32]>> {
    if index >= leaf_hashes.len() {
        return None;
    }
    let mut proof = Vec::with_capacity(usize::BITS as usize);
    path(index, leaf_hashes, &mut proof);
    Some(proof)
}

/// How many hashes the inclusion proof of leaf `index` in a tree of `tree_size` leaves has,
/// or `None` if there is no such leaf. Lets a parser refuse a proof before hashing anything.
pub fn inclusion_proof_len(index: u64, tree_size: u64) -> Option<usize> {
    if index >= tree_size {
        return None;
    }
    let (mut index, mut size, mut len) = (index, tree_size, 0);
    while size > 1 {
        let k = split_u64(size);
        if index < k {
            size = k;
        } else {
            index -= k;
            size -= k;
        }
        len += 1;
    }
    Some(len)
}

/// The root that an inclusion proof leads to from `leaf_hash` at `index` in a tree of
/// `tree_size` leaves (RFC 9162, 2.1.3.2, steps 1 to 4), or `None` if the proof does not have
/// the shape such a tree requires.
///
/// The tree size is not bound by the proof: for some leaves, one path fits several sizes. A
/// signature over a root must therefore also cover the size, as a signed tree head does.
pub fn root_from_inclusion_proof(
    leaf_hash: &[u8; 32],
    index: u64,
    tree_size: u64,
    proof: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= tree_size {
        return None;
    }
    let (mut node, mut last) = (index, tree_size - 1);
    let mut hash = *leaf_hash;
    for sibling in proof {
        if last == 0 {
            return None;
        }
        if node & 1 == 1 || node == last {
            hash = node_hash(sibling, &hash);
            // A right-most node without a sibling at this level moves up unchanged.
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    (last == 0).then_some(hash)
}

/// Whether `proof` shows that `leaf_hash` is leaf `index` of the tree of `tree_size` leaves
/// with root `root` (RFC 9162, 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &[u8; 32],
    index: u64,
    tree_size: u64,
    proof: &[[u8; 32]],
    root: &[u8; 32],
) -> bool {
    root_from_inclusion_proof(leaf_hash, index, tree_size, proof).is_some_and(|r| r == *root)
}

/// The proof (RFC 9162 `PROOF`, 2.1.4.1) that the tree of the first `old_size` leaves is a
/// prefix of the tree of all `leaf_hashes`, or `None` if `old_size` exceeds their number.
///
/// The proof is empty when `old_size` is 0 or equal to the number of leaves.
pub fn consistency_proof(old_size: usize, leaf_hashes: &[[u8; 32]]) -> Option<Vec<[u8; 32]>> {
    if old_size > leaf_hashes.len() {
        return None;
    }
    let mut proof = Vec::with_capacity(usize::BITS as usize);
    if old_size > 0 && old_size < leaf_hashes.len() {
        subproof(old_size, leaf_hashes, true, &mut proof);
    }
    Some(proof)
}

/// Whether `proof` shows that the tree of `old_size` leaves with root `old_root` is a prefix
/// of the tree of `new_size` leaves with root `new_root` (RFC 9162, 2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots. Every tree extends the empty tree, with
/// an empty proof, provided `old_root` is the [`empty_root`].
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &[u8; 32],
    new_root: &[u8; 32],
    proof: &[[u8; 32]],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    if old_size == 0 {
        return proof.is_empty() && *old_root == empty_root();
    }
    if proof.is_empty() {
        return false;
    }
    let mut rest = proof.iter();
    // When the old tree is a complete subtree, it is itself the first node of the path.
    let start = if old_size.is_power_of_two() {
        *old_root
    } else {
        match rest.next() {
            Some(first) => *first,
            None => return false,
        }
    };
    let (mut old_hash, mut new_hash) = (start, start);
    let (mut node, mut last) = (old_size - 1, new_size - 1);
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    for sibling in rest {
        if last == 0 {
            return false;
        }
        if node & 1 == 1 || node == last {
            old_hash = node_hash(sibling, &old_hash);
            new_hash = node_hash(sibling, &new_hash);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new_hash = node_hash(&new_hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    last == 0 && old_hash == *old_root && new_hash == *new_root
}

/// A tree held in memory with all its levels, for many inclusion proofs over the same leaves:
/// building it hashes each interior node once, and each proof then only copies `log n` hashes.
///
/// Levels are built bottom-up, pairing neighbours; a last node without a neighbour moves up
/// unchanged. This is the same tree as the RFC's recursive split at the largest power of two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// `levels[0]` are the leaf hashes; the last level holds the root alone (or is empty).
    levels: Vec<Vec<[u8; 32]>>,
}

impl Tree {
    /// The tree over these leaf hashes.
    pub fn new(leaf_hashes: Vec<[u8; 32]>) -> Self {
        let mut levels = vec![leaf_hashes];
        while let Some(level) = levels.last().filter(|level| level.len() > 1) {
            let parents = level
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two hashes"),
                })
                .collect();
            levels.push(parents);
        }
        Self { levels }
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root, as [`root`] computes it.
    pub fn root(&self) -> [u8; 32] {
        match self.levels.last().map(Vec::as_slice) {
            Some([root]) => *root,
            _ => empty_root(),
        }
    }

    /// The inclusion proof of leaf `index`, as [`inclusion_proof`] computes it.
    pub fn inclusion_proof(&self, index: usize) -> Option<Vec<[u8; 32]>> {
        if index >= self.len() {
            return None;
        }
        let mut proof = Vec::with_capacity(self.levels.len());
        let mut node = index;
        for level in &self.levels {
            // A node without a sibling at this level has no proof entry here.
            if let Some(sibling) = level.get(node ^ 1) {
                proof.push(*sibling);
            }
            node >>= 1;
        }
        Some(proof)
    }
}

/// RFC 9162 `PATH(m, D[n])`, appending leaf-to-root.
fn path(index: usize, leaf_hashes: &[[u8; 32]], proof: &mut Vec<[u8; 32]>) {
    if leaf_hashes.len() <= 1 {
        return;
    }
    let (left, right) = leaf_hashes.split_at(split(leaf_hashes.len()));
    if index < left.len() {
        path(index, left, proof);
        proof.push(root(right));
    } else {
        path(index - left.len(), right, proof);
        proof.push(root(left));
    }
}

/// RFC 9162 `SUBPROOF(m, D[n], b)` for `0 < m <= n`, appending leaf-to-root.
fn subproof(
    old_size: usize,
    leaf_hashes: &[[u8; 32]],
    old_is_whole_subtree: bool,
    proof: &mut Vec<[u8; 32]>,
) {
    if old_size == leaf_hashes.len() {
        // The verifier knows the old root when the old tree is this very subtree.
        if !old_is_whole_subtree {
            proof.push(root(leaf_hashes));
        }
        return;
    }
    let (left, right) = leaf_hashes.split_at(split(leaf_hashes.len()));
    if old_size <= left.len() {
        subproof(old_size, left, old_is_whole_subtree, proof);
        proof.push(root(right));
    } else {
        subproof(old_size - left.len(), right, false, proof);
        proof.push(root(left));
    }
}

/// The largest power of two smaller than `n`, for `n >= 2`: the size of the left subtree.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// [`split`] over `u64`, for sizes that come from proofs.
fn split_u64(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The Certificate Transparency test vectors (RFC 6962 reference implementation,
    /// `merkle_tree_test.cc`), stored in `tests/data/rfc6962-merkle.json`.
    struct Vectors {
        leaves: Vec<[u8; 32]>,
        json: serde_json::Value,
    }

    fn vectors() -> Vectors {
        let json: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/rfc6962-merkle.json"))
                .expect("vector file is JSON");
        let leaves = json["leaves"]
            .as_array()
            .expect("leaves")
            .iter()
            .map(|leaf| leaf_hash(&hex::decode(leaf.as_str().expect("hex")).expect("hex")))
            .collect();
        Vectors { leaves, json }
    }

    fn hash(value: &serde_json::Value) -> [u8; 32] {
        hex::decode(value.as_str().expect("hex string"))
            .expect("hex")
            .try_into()
            .expect("32 bytes")
    }

    fn hashes(value: &serde_json::Value) -> Vec<[u8; 32]> {
        value.as_array().expect("array").iter().map(hash).collect()
    }

    fn number(value: &serde_json::Value) -> usize {
        usize::try_from(value.as_u64().expect("number")).expect("fits")
    }

    #[test]
    fn roots_match_certificate_transparency_vectors() {
        let Vectors { leaves, json } = vectors();
        assert_eq!(root(&[]), hash(&json["empty_root"]));
        let roots = hashes(&json["roots"]);
        assert_eq!(roots.len(), leaves.len());
        for (size, expected) in (1..).zip(&roots) {
            assert_eq!(root(&leaves[..size]), *expected, "root of {size} leaves");
        }
        assert_eq!(
            hex::encode(root(&leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }

    #[test]
    fn inclusion_proofs_match_certificate_transparency_vectors() {
        let Vectors { leaves, json } = vectors();
        for case in json["inclusion"].as_array().expect("inclusion") {
            let (index, size) = (number(&case["index"]), number(&case["size"]));
            let expected = hashes(&case["path"]);
            let proof = inclusion_proof(index, &leaves[..size]).expect("leaf exists");
            assert_eq!(proof, expected, "path of leaf {index} in {size}");
            assert!(verify_inclusion(
                &leaves[index],
                index as u64,
                size as u64,
                &proof,
                &root(&leaves[..size])
            ));
        }
    }

    #[test]
    fn consistency_proofs_match_certificate_transparency_vectors() {
        let Vectors { leaves, json } = vectors();
        for case in json["consistency"].as_array().expect("consistency") {
            let (old, new) = (number(&case["old_size"]), number(&case["new_size"]));
            let expected = hashes(&case["proof"]);
            let proof = consistency_proof(old, &leaves[..new]).expect("old <= new");
            assert_eq!(proof, expected, "proof from {old} to {new}");
            assert!(verify_consistency(
                old as u64,
                new as u64,
                &root(&leaves[..old]),
                &root(&leaves[..new]),
                &proof
            ));
        }
    }

    #[test]
    fn out_of_range_requests_have_no_proof() {
        let leaves = distinct_leaves(0, 5);
        assert_eq!(inclusion_proof(5, &leaves), None);
        assert_eq!(inclusion_proof(0, &[]), None);
        assert_eq!(consistency_proof(6, &leaves), None);
        assert_eq!(consistency_proof(0, &leaves), Some(vec![]));
        assert_eq!(consistency_proof(5, &leaves), Some(vec![]));
        assert_eq!(inclusion_proof_len(3, 3), None);
        assert_eq!(inclusion_proof_len(0, 1), Some(0));
        assert_eq!(inclusion_proof_len(4, 5), Some(1));
        assert_eq!(inclusion_proof_len(0, 5), Some(3));
        assert_eq!(inclusion_proof_len(0, u64::MAX), Some(64));
    }

    #[test]
    fn empty_and_zero_sized_trees_are_handled() {
        let leaves = distinct_leaves(1, 3);
        let new_root = root(&leaves);
        assert!(verify_consistency(0, 3, &empty_root(), &new_root, &[]));
        assert!(!verify_consistency(0, 3, &new_root, &new_root, &[]));
        assert!(verify_consistency(0, 0, &empty_root(), &empty_root(), &[]));
        assert!(!verify_inclusion(&leaves[0], 0, 0, &[], &empty_root()));
    }

    #[test]
    fn the_level_tree_is_the_recursive_tree() {
        for size in 0..=70 {
            let leaves = distinct_leaves(3, size);
            let tree = Tree::new(leaves.clone());
            assert_eq!((tree.len(), tree.is_empty()), (size, size == 0));
            assert_eq!(tree.root(), root(&leaves), "root of {size}");
            for index in 0..=size {
                assert_eq!(
                    tree.inclusion_proof(index),
                    inclusion_proof(index, &leaves),
                    "path of leaf {index} in {size}"
                );
            }
        }
    }

    #[test]
    fn large_trees_agree_both_ways() {
        // 10,000 leaves: both constructions are linear, and they agree.
        let leaves = distinct_leaves(2, 10_000);
        let tree = Tree::new(leaves.clone());
        let tree_root = root(&leaves);
        assert_eq!(tree.root(), tree_root);
        for index in [0, 4_095, 4_096, 8_191, 8_192, 9_998, 9_999] {
            let proof = tree.inclusion_proof(index).expect("leaf exists");
            assert_eq!(Some(proof.clone()), inclusion_proof(index, &leaves));
            let i = index as u64;
            assert_eq!(Some(proof.len()), inclusion_proof_len(i, 10_000));
            assert!(verify_inclusion(
                &leaves[index],
                i,
                10_000,
                &proof,
                &tree_root
            ));
        }
    }

    /// `count` leaf hashes, all different, and different for each `seed`.
    fn distinct_leaves(seed: u64, count: usize) -> Vec<[u8; 32]> {
        (0..count as u64)
            .map(|i| leaf_hash(&[seed.to_be_bytes(), i.to_be_bytes()].concat()))
            .collect()
    }

    fn flip(hash: &[u8; 32], bit: usize) -> [u8; 32] {
        let mut flipped = *hash;
        flipped[bit / 8 % 32] ^= 1 << (bit % 8);
        flipped
    }

    proptest! {
        #[test]
        fn every_inclusion_proof_verifies_and_only_for_its_own_leaf(
            seed in any::<u64>(),
            size in 1usize..80,
            bit in 0usize..256,
        ) {
            let leaves = distinct_leaves(seed, size);
            let tree_root = root(&leaves);
            let n = size as u64;
            for (index, leaf) in leaves.iter().enumerate() {
                let proof = inclusion_proof(index, &leaves).expect("leaf exists");
                let i = index as u64;
                prop_assert_eq!(Some(proof.len()), inclusion_proof_len(i, n));
                prop_assert!(verify_inclusion(leaf, i, n, &proof, &tree_root));
                prop_assert!(!verify_inclusion(leaf, i, n, &proof, &flip(&tree_root, bit)));
                prop_assert!(!verify_inclusion(&flip(leaf, bit), i, n, &proof, &tree_root));
                prop_assert!(!verify_inclusion(leaf, n, n, &proof, &tree_root));
                // Neighbours, both ends and one more: checking all pairs is quadratic.
                let others = [0, index ^ 1, index + 1, size - 1, (index + bit) % size];
                for other in others.into_iter().filter(|&o| o != index && o < size) {
                    let o = other as u64;
                    prop_assert!(!verify_inclusion(leaf, o, n, &proof, &tree_root));
                    prop_assert!(!verify_inclusion(&leaves[other], i, n, &proof, &tree_root));
                }
                if let Some(sibling) = proof.first() {
                    let mut tampered = proof.clone();
                    tampered[0] = flip(sibling, bit);
                    prop_assert!(!verify_inclusion(leaf, i, n, &tampered, &tree_root));
                    prop_assert!(!verify_inclusion(leaf, i, n, &proof[1..], &tree_root));
                }
                let mut longer = proof.clone();
                longer.push(tree_root);
                prop_assert!(!verify_inclusion(leaf, i, n, &longer, &tree_root));
            }
        }

        #[test]
        fn consistency_proofs_verify_and_fail_when_history_differs(
            seed in any::<u64>(),
            new_size in 1usize..80,
            old_fraction in 0.0f64..=1.0,
            changed_fraction in 0.0f64..1.0,
            bit in 0usize..256,
        ) {
            let old_size = ((new_size as f64 * old_fraction) as usize).min(new_size);
            let leaves = distinct_leaves(seed, new_size);
            let (old_root, new_root) = (root(&leaves[..old_size]), root(&leaves));
            let (m, n) = (old_size as u64, new_size as u64);
            let proof = consistency_proof(old_size, &leaves).expect("old <= new");
            prop_assert!(verify_consistency(m, n, &old_root, &new_root, &proof));
            prop_assert!(!verify_consistency(m, n, &flip(&old_root, bit), &new_root, &proof));
            if old_size > 0 {
                // (Every tree extends the empty tree, whatever its root.)
                prop_assert!(!verify_consistency(m, n, &old_root, &flip(&new_root, bit), &proof));
                // One old leaf differs: neither a rewritten old tree nor a new tree that
                // rewrote history is consistent with the real one.
                let changed = (old_size as f64 * changed_fraction) as usize;
                let mut rewritten = leaves.clone();
                rewritten[changed] = flip(&rewritten[changed], bit);
                let rewritten_old_root = root(&rewritten[..old_size]);
                prop_assert!(!verify_consistency(m, n, &rewritten_old_root, &new_root, &proof));
                let rewritten_proof = consistency_proof(old_size, &rewritten).expect("proof");
                prop_assert!(!verify_consistency(
                    m, n, &old_root, &root(&rewritten), &rewritten_proof
                ));
            }
            if let Some(first) = proof.first() {
                let mut tampered = proof.clone();
                tampered[0] = flip(first, bit);
                prop_assert!(!verify_consistency(m, n, &old_root, &new_root, &tampered));
                prop_assert!(!verify_consistency(m, n, &old_root, &new_root, &proof[1..]));
            }
            let mut longer = proof.clone();
            longer.push(new_root);
            prop_assert!(!verify_consistency(m, n, &old_root, &new_root, &longer));
        }

        #[test]
        fn garbage_proofs_are_refused_without_panicking(
            leaf in any::<[u8; 32]>(),
            index in any::<u64>(),
            size_a in any::<u64>(),
            size_b in any::<u64>(),
            root_a in any::<[u8; 32]>(),
            root_b in any::<[u8; 32]>(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
        ) {
            let _ = inclusion_proof_len(index, size_a);
            prop_assert!(!verify_inclusion(&leaf, index, size_a, &proof, &root_a));
            prop_assert!(!verify_inclusion(&leaf, index % 7, 7, &proof, &root_a));
            if !proof.is_empty() {
                prop_assert!(!verify_consistency(size_a, size_b, &root_a, &root_b, &proof));
                prop_assert!(!verify_consistency(size_a % 9, 9, &root_a, &root_b, &proof));
            }
        }
    }
}
