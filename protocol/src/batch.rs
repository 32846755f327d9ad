//! Transaction batches: the unit validators disseminate and blocks order.
//!
//! A batch is a list of encoded transactions; blocks carry only batch
//! digests. Today a batch's digest is the Merkle root over its transaction
//! ids ([`batch_root`]), so a finality proof can show one transaction's
//! membership with a Merkle path.

use plume_crypto::{merkle, Digest};

/// Digest of a batch: Merkle root over the transaction ids, in order.
pub fn batch_root(ids: &[Digest]) -> Digest {
    let leaves: Vec<Digest> = ids
        .iter()
        .map(|d| merkle::leaf_hash(d.as_bytes()))
        .collect();
    merkle::root_of_leaves(&leaves)
}
