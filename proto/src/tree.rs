//! Merkle hash trees: one signature over many messages, each still checkable alone.
//!
//! A sender with many messages to sign at once (the master's one event per return)
//! hashes each message into a leaf, builds a binary hash tree over the leaves and
//! signs only the root. Each message then travels with its *inclusion path*: the
//! sibling hashes from its leaf up to the root. A receiver recomputes the root from
//! the message, its position and the path, and checks the one signature over that
//! root — so every message is verified on its own, and a receiver that sees many
//! messages of one tree checks the signature once (see
//! [`crate::envelope::TreeRoots`]).
//!
//! The tree has the shape of RFC 9162's (§2.1.1): for `n > 1` leaves, the left
//! subtree holds the largest power of two smaller than `n`. Leaves and inner nodes
//! are hashed with different leading bytes (`0x00`, `0x01`), so a leaf can never be
//! passed off as an inner node or the other way round, and the signed root also names
//! the number of leaves (see [`crate::envelope`]).

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf, an inner node or a root.
pub type Hash = [u8; 32];

/// The most leaves one tree may have: paths stay short (at most 12 hashes, 384
/// bytes), and a sender with more messages builds several trees.
pub const MAX_LEAVES: usize = 4096;

/// The longest inclusion path a receiver accepts: enough for `u32::MAX` leaves.
pub const MAX_PATH: usize = 32;

/// The leaf hash of a message: `SHA-256(0x00 ‖ kind ‖ body)`.
pub fn leaf(kind: u8, body: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00, kind]);
    h.update(body);
    h.finalize().into()
}

/// An inner node: `SHA-256(0x01 ‖ left ‖ right)`.
fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Where a tree of `n > 1` leaves splits: the largest power of two below `n`.
fn split(n: usize) -> usize {
    debug_assert!(n > 1);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of a tree over `leaves` (at least one) and every leaf's inclusion path,
/// nearest sibling first.
pub fn build(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    assert!(!leaves.is_empty(), "a hash tree needs at least one leaf");
    let depth = (usize::BITS - (leaves.len() - 1).leading_zeros()) as usize;
    let mut paths: Vec<Vec<Hash>> = (0..leaves.len()).map(|_| Vec::with_capacity(depth)).collect();
    let root = build_into(leaves, &mut paths);
    (root, paths)
}

fn build_into(leaves: &[Hash], paths: &mut [Vec<Hash>]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split(leaves.len());
    let (left_paths, right_paths) = paths.split_at_mut(k);
    let left = build_into(&leaves[..k], left_paths);
    let right = build_into(&leaves[k..], right_paths);
    for p in left_paths {
        p.push(right);
    }
    for p in right_paths {
        p.push(left);
    }
    node(&left, &right)
}

/// The root that leaf `index` of a tree of `size` leaves, with inclusion path
/// `path`, leads to; `None` if the position and the path do not fit together (a path
/// too short or too long for that position, or an index outside the tree).
///
/// The walk follows RFC 9162 §2.1.3.2: `last` is the index of the last leaf at the
/// current level; a node that is a right child, or the last node of its level with no
/// sibling to its right, takes its sibling from the left.
pub fn root_from_path(index: u64, size: u64, leaf: Hash, path: &[Hash]) -> Option<Hash> {
    if index >= size || path.len() > MAX_PATH {
        return None;
    }
    let (mut at, mut last) = (index, size - 1);
    let mut hash = leaf;
    for sibling in path {
        if last == 0 {
            return None;
        }
        if at & 1 == 1 || at == last {
            hash = node(sibling, &hash);
            // A last node without a right sibling moves up unchanged through every
            // level where it is a left child.
            while at & 1 == 0 && at != 0 {
                at >>= 1;
                last >>= 1;
            }
        } else {
            hash = node(&hash, sibling);
        }
        at >>= 1;
        last >>= 1;
    }
    (last == 0).then_some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf(7, format!("message {i}").as_bytes())).collect()
    }

    /// The root by the definition, without paths.
    fn root_of(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = split(leaves.len());
        node(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
    }

    #[test]
    fn every_path_of_every_tree_up_to_70_leaves_leads_to_its_root() {
        for n in 1..=70 {
            let ls = leaves(n);
            let (root, paths) = build(&ls);
            assert_eq!(root, root_of(&ls), "n={n}");
            for (i, path) in paths.iter().enumerate() {
                assert!(path.len() <= 7, "n={n} i={i}");
                assert_eq!(root_from_path(i as u64, n as u64, ls[i], path), Some(root), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn a_path_leads_nowhere_else() {
        for n in [2usize, 3, 5, 8, 13, 64, 100] {
            let ls = leaves(n);
            let (root, paths) = build(&ls);
            for (i, path) in paths.iter().enumerate() {
                // Another position, another leaf, a changed, cut or lengthened path.
                for j in 0..n {
                    if j != i {
                        assert_ne!(root_from_path(j as u64, n as u64, ls[i], path), Some(root), "n={n} {i}->{j}");
                    }
                }
                // (A path can fit another size too — leaf 0 of 3 walks as leaf 0 of 4 —
                // which is why the signature covers the size with the root.)
                assert_ne!(root_from_path(i as u64, n as u64, ls[(i + 1) % n], path), Some(root));
                let mut changed = path.clone();
                changed[0][5] ^= 1;
                assert_ne!(root_from_path(i as u64, n as u64, ls[i], &changed), Some(root));
                assert_eq!(root_from_path(i as u64, n as u64, ls[i], &path[..path.len() - 1]), None);
                let mut longer = path.clone();
                longer.push(root);
                assert_eq!(root_from_path(i as u64, n as u64, ls[i], &longer), None);
            }
        }
    }

    #[test]
    fn a_leaf_cannot_pose_as_an_inner_node() {
        // The root of two leaves is SHA-256(0x01 ‖ a ‖ b); as the only leaf of a tree,
        // the same bytes hash with 0x00 first and lead elsewhere.
        let ls = leaves(2);
        let (root, _) = build(&ls);
        let mut joined = Vec::new();
        joined.extend_from_slice(&ls[0]);
        joined.extend_from_slice(&ls[1]);
        for kind in 0..=255u8 {
            assert_ne!(root_from_path(0, 1, leaf(kind, &joined), &[]), Some(root));
        }
    }

    #[test]
    fn positions_outside_the_tree_and_overlong_paths_are_refused() {
        let l = leaf(1, b"x");
        assert_eq!(root_from_path(0, 1, l, &[]), Some(l));
        assert_eq!(root_from_path(1, 1, l, &[]), None);
        assert_eq!(root_from_path(0, 0, l, &[]), None);
        assert_eq!(root_from_path(0, u64::MAX, l, &[l; MAX_PATH + 1]), None);
    }
}
