//! The byte encoding of everything validators send each other: consensus
//! messages (BLS scheme) and transaction batches.
//!
//! A hand-written, length-checked little-endian codec rather than rkyv: the
//! consensus types are generic over the signature scheme and the BLS points
//! must be decoded through `blst` (curve and subgroup checks) anyway, so a
//! zero-copy archive would buy nothing here. Every count is bounded by a
//! named constant before anything is allocated; decoding never panics.

use plume_consensus::{
    Block, BlsScheme, Message, Proposal, QuorumCert, Timeout, TimeoutCert, Vote,
    PAYLOAD_DIGESTS_MAX, SYNC_BLOCKS_MAX, TC_ENTRIES_MAX,
};
use plume_crypto::bls;
use plume_crypto::qc::QuorumCertificate;
use plume_crypto::Digest;

/// Consensus message over the BLS scheme.
pub type ConsensusMsg = Message<BlsScheme>;

/// Largest encoded frame accepted (a full sync response of big blocks, or
/// a full batch).
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most transactions in one batch.
pub const BATCH_TXS_MAX: usize = 4096;
/// Largest transaction accepted in a batch (the execution limit).
pub const TX_BYTES_MAX: usize = plume_execution::tx::TX_BYTES_MAX;
/// Most batch digests one batch request may name.
pub const BATCH_REQUEST_MAX: usize = 256;

/// Everything on a validator link.
#[derive(Debug, Clone)]
pub enum NetMsg {
    /// A consensus message.
    Consensus(ConsensusMsg),
    /// A batch of signed transactions (raw encodings), identified by digest.
    Batch {
        /// Digest of the batch ([`batch_digest`]).
        digest: Digest,
        /// The encoded transactions.
        txs: Vec<Vec<u8>>,
    },
    /// "Send me these batches."
    BatchRequest(Vec<Digest>),
}

// Equality by encoding: the consensus types only derive `PartialEq` for
// schemes that do, and the encoding is canonical (decode rejects anything
// else), so equal encodings mean equal messages.
impl PartialEq for NetMsg {
    fn eq(&self, other: &Self) -> bool {
        encode(self) == encode(other)
    }
}

impl Eq for NetMsg {}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct WireError(pub &'static str);

/// Digest of a batch: hash of the transaction ids in order.
pub fn batch_digest(tx_ids: &[Digest]) -> Digest {
    let mut h = plume_crypto::Hasher::new(plume_crypto::Domain::Batch);
    h.update_u64(tx_ids.len() as u64);
    for id in tx_ids {
        h.update(id.as_bytes());
    }
    h.finalize()
}

// ------------------------------------------------------------------ encode

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn digest(&mut self, d: &Digest) {
        self.0.extend_from_slice(d.as_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn sig(&mut self, s: &bls::Signature) {
        self.0.extend_from_slice(&s.to_bytes());
    }
    fn qc(&mut self, qc: &QuorumCert<BlsScheme>) {
        self.u64(qc.epoch);
        self.u64(qc.view);
        self.digest(&qc.block);
        self.u64(qc.height);
        match &qc.cert {
            None => self.u8(0),
            Some(c) => {
                self.u8(1);
                self.bytes(&c.to_bytes());
            }
        }
    }
    fn block(&mut self, b: &Block<BlsScheme>) {
        self.digest(&b.id);
        self.u64(b.epoch);
        self.u64(b.view);
        self.u64(b.height);
        self.digest(&b.parent);
        self.u32(b.proposer);
        self.u32(b.payload.len() as u32);
        for d in &b.payload {
            self.digest(d);
        }
        self.qc(&b.justify);
    }
    fn tc(&mut self, tc: &TimeoutCert<BlsScheme>) {
        self.u64(tc.epoch);
        self.u64(tc.view);
        self.u32(tc.entries.len() as u32);
        for (v, hv, s) in &tc.entries {
            self.u32(*v);
            self.u64(*hv);
            self.sig(s);
        }
    }
}

/// Encode a message.
pub fn encode(msg: &NetMsg) -> Vec<u8> {
    let mut w = W(Vec::with_capacity(256));
    match msg {
        NetMsg::Consensus(m) => {
            w.u8(1);
            match m {
                Message::Proposal(p) => {
                    w.u8(1);
                    w.block(&p.block);
                    match &p.tc {
                        None => w.u8(0),
                        Some(tc) => {
                            w.u8(1);
                            w.tc(tc);
                        }
                    }
                }
                Message::Vote(v) => {
                    w.u8(2);
                    w.u64(v.epoch);
                    w.u64(v.view);
                    w.digest(&v.block);
                    w.u64(v.height);
                    w.u32(v.voter);
                    w.sig(&v.sig);
                }
                Message::Timeout(t) => {
                    w.u8(3);
                    w.u64(t.epoch);
                    w.u64(t.view);
                    w.qc(&t.high_qc);
                    w.u32(t.voter);
                    w.sig(&t.sig);
                }
                Message::Certificates { high_qc, tc } => {
                    w.u8(4);
                    w.qc(high_qc);
                    match tc {
                        None => w.u8(0),
                        Some(tc) => {
                            w.u8(1);
                            w.tc(tc);
                        }
                    }
                }
                Message::SyncRequest { block, max } => {
                    w.u8(5);
                    w.digest(block);
                    w.u32(*max);
                }
                Message::SyncResponse { blocks } => {
                    w.u8(6);
                    w.u32(blocks.len() as u32);
                    for b in blocks {
                        w.block(b);
                    }
                }
                Message::EpochProof(p) => {
                    w.u8(7);
                    w.block(&p.child);
                    w.qc(&p.child_qc);
                }
            }
        }
        NetMsg::Batch { digest, txs } => {
            w.u8(2);
            w.digest(digest);
            w.u32(txs.len() as u32);
            for t in txs {
                w.bytes(t);
            }
        }
        NetMsg::BatchRequest(ds) => {
            w.u8(3);
            w.u32(ds.len() as u32);
            for d in ds {
                w.digest(d);
            }
        }
    }
    w.0
}

// ------------------------------------------------------------------ decode

struct R<'a> {
    b: &'a [u8],
}

type Res<T> = Result<T, WireError>;

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if self.b.len() < n {
            return Err(WireError("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn digest(&mut self) -> Res<Digest> {
        Ok(Digest(self.take(32)?.try_into().expect("32 bytes")))
    }
    fn count(&mut self, max: usize, what: &'static str) -> Res<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(WireError(what));
        }
        Ok(n)
    }
    fn bytes(&mut self, max: usize) -> Res<&'a [u8]> {
        let n = self.count(max, "byte string too long")?;
        self.take(n)
    }
    fn sig(&mut self) -> Res<bls::Signature> {
        bls::Signature::from_bytes(self.take(bls::SIGNATURE_LEN)?)
            .map_err(|_| WireError("bad BLS signature"))
    }
    fn opt(&mut self) -> Res<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError("bad option tag")),
        }
    }
    fn qc(&mut self) -> Res<QuorumCert<BlsScheme>> {
        let epoch = self.u64()?;
        let view = self.u64()?;
        let block = self.digest()?;
        let height = self.u64()?;
        let cert = if self.opt()? {
            let raw = self.bytes(4 + 128 + bls::SIGNATURE_LEN)?;
            Some(
                QuorumCertificate::from_bytes(raw)
                    .map_err(|_| WireError("bad quorum certificate"))?,
            )
        } else {
            None
        };
        Ok(QuorumCert {
            epoch,
            view,
            block,
            height,
            cert,
        })
    }
    fn block(&mut self) -> Res<Block<BlsScheme>> {
        let id = self.digest()?;
        let epoch = self.u64()?;
        let view = self.u64()?;
        let height = self.u64()?;
        let parent = self.digest()?;
        let proposer = self.u32()?;
        let n = self.count(PAYLOAD_DIGESTS_MAX, "too many payload digests")?;
        let mut payload = Vec::with_capacity(n);
        for _ in 0..n {
            payload.push(self.digest()?);
        }
        let justify = self.qc()?;
        Ok(Block {
            id,
            epoch,
            view,
            height,
            parent,
            proposer,
            payload,
            justify,
        })
    }
    fn tc(&mut self) -> Res<TimeoutCert<BlsScheme>> {
        let epoch = self.u64()?;
        let view = self.u64()?;
        let n = self.count(TC_ENTRIES_MAX, "too many timeout entries")?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push((self.u32()?, self.u64()?, self.sig()?));
        }
        Ok(TimeoutCert {
            epoch,
            view,
            entries,
        })
    }
}

/// Decode a message; the whole input must be consumed.
pub fn decode(bytes: &[u8]) -> Result<NetMsg, WireError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(WireError("frame too large"));
    }
    let mut r = R { b: bytes };
    let msg = match r.u8()? {
        1 => NetMsg::Consensus(match r.u8()? {
            1 => {
                let block = r.block()?;
                let tc = if r.opt()? { Some(r.tc()?) } else { None };
                Message::Proposal(Proposal { block, tc })
            }
            2 => Message::Vote(Vote {
                epoch: r.u64()?,
                view: r.u64()?,
                block: r.digest()?,
                height: r.u64()?,
                voter: r.u32()?,
                sig: r.sig()?,
            }),
            3 => Message::Timeout(Timeout {
                epoch: r.u64()?,
                view: r.u64()?,
                high_qc: r.qc()?,
                voter: r.u32()?,
                sig: r.sig()?,
            }),
            4 => {
                let high_qc = r.qc()?;
                let tc = if r.opt()? { Some(r.tc()?) } else { None };
                Message::Certificates { high_qc, tc }
            }
            5 => Message::SyncRequest {
                block: r.digest()?,
                max: r.u32()?,
            },
            6 => {
                let n = r.count(SYNC_BLOCKS_MAX, "too many sync blocks")?;
                let mut blocks = Vec::with_capacity(n);
                for _ in 0..n {
                    blocks.push(r.block()?);
                }
                Message::SyncResponse { blocks }
            }
            7 => {
                let child = r.block()?;
                let child_qc = r.qc()?;
                Message::EpochProof(plume_consensus::CommitProof { child, child_qc })
            }
            _ => return Err(WireError("unknown consensus message tag")),
        }),
        2 => {
            let digest = r.digest()?;
            let n = r.count(BATCH_TXS_MAX, "too many transactions in batch")?;
            let mut txs = Vec::with_capacity(n);
            for _ in 0..n {
                txs.push(r.bytes(TX_BYTES_MAX)?.to_vec());
            }
            NetMsg::Batch { digest, txs }
        }
        3 => {
            let n = r.count(BATCH_REQUEST_MAX, "too many batch digests requested")?;
            let mut ds = Vec::with_capacity(n);
            for _ in 0..n {
                ds.push(r.digest()?);
            }
            NetMsg::BatchRequest(ds)
        }
        _ => return Err(WireError("unknown message tag")),
    };
    if !r.b.is_empty() {
        return Err(WireError("trailing bytes"));
    }
    Ok(msg)
}

/// Encode a finality proof (block + certificates) for clients.
pub fn encode_block(b: &Block<BlsScheme>) -> Vec<u8> {
    let mut w = W(Vec::new());
    w.block(b);
    w.0
}

/// Decode a block encoded by [`encode_block`].
pub fn decode_block(bytes: &[u8]) -> Result<Block<BlsScheme>, WireError> {
    let mut r = R { b: bytes };
    let b = r.block()?;
    if !r.b.is_empty() {
        return Err(WireError("trailing bytes"));
    }
    Ok(b)
}

/// Encode a timeout certificate.
pub fn encode_tc(tc: &TimeoutCert<BlsScheme>) -> Vec<u8> {
    let mut w = W(Vec::new());
    w.tc(tc);
    w.0
}

/// Decode a timeout certificate encoded by [`encode_tc`].
pub fn decode_tc(bytes: &[u8]) -> Result<TimeoutCert<BlsScheme>, WireError> {
    let mut r = R { b: bytes };
    let t = r.tc()?;
    if !r.b.is_empty() {
        return Err(WireError("trailing bytes"));
    }
    Ok(t)
}

/// Encode a quorum certificate of the consensus layer.
pub fn encode_qc(qc: &QuorumCert<BlsScheme>) -> Vec<u8> {
    let mut w = W(Vec::new());
    w.qc(qc);
    w.0
}

/// Decode a certificate encoded by [`encode_qc`].
pub fn decode_qc(bytes: &[u8]) -> Result<QuorumCert<BlsScheme>, WireError> {
    let mut r = R { b: bytes };
    let q = r.qc()?;
    if !r.b.is_empty() {
        return Err(WireError("trailing bytes"));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_crypto::qc::{Validator, ValidatorSet, VoteAggregator};
    use rand::SeedableRng;

    fn fixture() -> (Vec<bls::SecretKey>, ValidatorSet) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let sks: Vec<bls::SecretKey> = (0..4).map(|_| bls::SecretKey::generate(&mut rng)).collect();
        let set = ValidatorSet::new_pop_checked(
            sks.iter()
                .map(|k| Validator {
                    key: k.public_key(),
                    power: 1,
                })
                .collect(),
        )
        .unwrap();
        (sks, set)
    }

    fn sample_messages() -> Vec<NetMsg> {
        let (sks, set) = fixture();
        let genesis = Block::<BlsScheme>::genesis(7);
        let gqc = QuorumCert::genesis(0, &genesis);
        let b1 = Block::new(0, 1, 1, vec![Digest([3; 32]), Digest([4; 32])], gqc.clone());
        let msg = QuorumCert::<BlsScheme>::vote_message(0, 1, &b1.id, 1);
        let mut agg = VoteAggregator::new(&set, msg.as_bytes());
        for (i, k) in sks.iter().enumerate().take(3) {
            agg.add(i, k.sign(msg.as_bytes())).unwrap();
        }
        let qc1 = QuorumCert {
            epoch: 0,
            view: 1,
            block: b1.id,
            height: 1,
            cert: Some(agg.finish().unwrap()),
        };
        let b2 = Block::new(0, 3, 2, vec![], qc1.clone());
        let tc = TimeoutCert {
            epoch: 0,
            view: 2,
            entries: vec![(0, 1, sks[0].sign(b"t")), (2, 1, sks[2].sign(b"t"))],
        };
        vec![
            NetMsg::Consensus(Message::Proposal(Proposal {
                block: b1.clone(),
                tc: None,
            })),
            NetMsg::Consensus(Message::Proposal(Proposal {
                block: b2.clone(),
                tc: Some(tc.clone()),
            })),
            NetMsg::Consensus(Message::Vote(Vote {
                epoch: 0,
                view: 1,
                block: b1.id,
                height: 1,
                voter: 2,
                sig: sks[2].sign(msg.as_bytes()),
            })),
            NetMsg::Consensus(Message::Timeout(Timeout {
                epoch: 0,
                view: 2,
                high_qc: qc1.clone(),
                voter: 1,
                sig: sks[1].sign(b"x"),
            })),
            NetMsg::Consensus(Message::Certificates {
                high_qc: qc1,
                tc: Some(tc),
            }),
            NetMsg::Consensus(Message::SyncRequest {
                block: b2.id,
                max: 10,
            }),
            NetMsg::Consensus(Message::SyncResponse {
                blocks: vec![b2, b1],
            }),
            NetMsg::Batch {
                digest: Digest([9; 32]),
                txs: vec![vec![1, 2, 3], vec![]],
            },
            NetMsg::BatchRequest(vec![Digest([1; 32]), Digest([2; 32])]),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in sample_messages() {
            let bytes = encode(&m);
            assert_eq!(decode(&bytes).unwrap(), m);
        }
    }

    #[test]
    fn truncations_and_trailing_bytes_are_errors_not_panics() {
        for m in sample_messages() {
            let bytes = encode(&m);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_err(), "prefix {cut} of {m:?}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert_eq!(decode(&long), Err(WireError("trailing bytes")));
        }
    }

    #[test]
    fn oversized_counts_are_refused_before_allocation() {
        let mut b = vec![3u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(WireError("too many batch digests requested"))
        );
        let mut b = vec![2u8];
        b.extend_from_slice(&[0; 32]);
        b.extend_from_slice(&(BATCH_TXS_MAX as u32 + 1).to_le_bytes());
        assert_eq!(decode(&b), Err(WireError("too many transactions in batch")));
        assert_eq!(decode(&[9]), Err(WireError("unknown message tag")));
    }

    #[test]
    fn corrupted_signature_bytes_are_refused() {
        let m = &sample_messages()[2];
        let mut bytes = encode(m);
        let n = bytes.len();
        for b in &mut bytes[n - 96..] {
            *b = 0x11;
        }
        assert_eq!(decode(&bytes), Err(WireError("bad BLS signature")));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }
    }
}
