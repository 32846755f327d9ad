//! The envelope of everything validators send each other: consensus
//! messages (encoded by `plume_protocol::codec`), proposals with the
//! certificates of their payload, batches, batch votes and certificates,
//! verification and batch requests.
//!
//! Every count is bounded by a named constant before anything is
//! allocated; decoding never panics and refuses trailing bytes.

use plume_crypto::Digest;
use plume_protocol::batch::{
    BatchCertificate, BatchVote, Verdict, CERT_BYTES_MAX, VERDICT_BYTES_MAX,
};
use plume_protocol::catchup::{read_segment, write_segment, SegmentBlock};
use plume_protocol::codec::{CodecError, ConsensusMsg, Reader, Writer};
use plume_protocol::consensus::{Message, PAYLOAD_DIGESTS_MAX};

/// Largest encoded frame accepted (a full sync response of big blocks, or
/// a full batch).
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most transactions in one batch.
pub const BATCH_TXS_MAX: usize = plume_protocol::batch::BATCH_TXS_MAX;
/// Largest transaction accepted in a batch (the format's limit).
pub const TX_BYTES_MAX: usize = plume_protocol::tx::TX_BYTES_MAX;
/// Most batch digests one batch request may name.
pub const BATCH_REQUEST_MAX: usize = 256;
/// Everything of a batch frame but the transactions' bytes, at most: tag,
/// author, expiry, verdict, count, a length prefix per transaction, and a
/// certificate.
pub const BATCH_FRAME_OVERHEAD_MAX: usize =
    1 + 4 + 8 + VERDICT_BYTES_MAX + 4 + 4 * BATCH_TXS_MAX + 1 + CERT_BYTES_MAX;
/// Most bytes of transactions in one batch: a full batch, with its
/// certificate, still fits one frame.
pub const BATCH_BYTES_MAX: usize = FRAME_BYTES_MAX - BATCH_FRAME_OVERHEAD_MAX;

/// Everything on a validator link.
#[derive(Debug, Clone)]
pub enum NetMsg {
    /// A consensus message (a proposal goes as [`NetMsg::Proposal`]).
    Consensus(ConsensusMsg),
    /// A proposal and the certificates of every batch it carries.
    Proposal {
        /// The proposal (a `Message::Proposal`).
        msg: ConsensusMsg,
        /// One certificate per payload digest, in payload order.
        certs: Vec<BatchCertificate>,
    },
    /// A batch of signed transactions (raw encodings) by `author`; its
    /// digest is computed from the bytes (`plume_protocol::batch_digest`).
    Batch {
        /// The author.
        author: u32,
        /// The last block height that may carry it.
        expires: u64,
        /// The author's verdict.
        verdict: Verdict,
        /// The encoded transactions.
        txs: Vec<Vec<u8>>,
        /// Its certificate, when answering a request.
        cert: Option<BatchCertificate>,
    },
    /// A vote on a batch, to its author.
    BatchVote(BatchVote),
    /// A batch certificate, from the batch's author.
    BatchCert(BatchCertificate),
    /// "Please verify my batch" (the author to a fallback verifier).
    VerifyRequest(Digest),
    /// "Send me these batches, with their certificates."
    BatchRequest(Vec<Digest>),
    /// "Send me the finalized blocks from this height on, from your store"
    /// (catch-up from any distance).
    CatchUpRequest {
        /// First height wanted.
        from: u64,
    },
    /// Finalized blocks from the sender's store, consecutive, with the
    /// transactions they executed (checked by
    /// `plume_protocol::catchup::verify_segment`).
    CatchUp(Vec<SegmentBlock>),
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
pub type WireError = CodecError;

/// Encode a message.
pub fn encode(msg: &NetMsg) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    match msg {
        NetMsg::Consensus(m) => {
            w.u8(1);
            w.message(m);
        }
        NetMsg::Batch {
            author,
            expires,
            verdict,
            txs,
            cert,
        } => {
            w.u8(2);
            w.u32(*author);
            w.u64(*expires);
            verdict.write(&mut w);
            w.u32(txs.len() as u32);
            for t in txs {
                w.bytes(t);
            }
            match cert {
                None => w.u8(0),
                Some(c) => {
                    w.u8(1);
                    c.write(&mut w);
                }
            }
        }
        NetMsg::BatchRequest(ds) => {
            w.u8(3);
            w.u32(ds.len() as u32);
            for d in ds {
                w.digest(d);
            }
        }
        NetMsg::Proposal { msg, certs } => {
            w.u8(4);
            w.message(msg);
            w.u32(certs.len() as u32);
            for c in certs {
                c.write(&mut w);
            }
        }
        NetMsg::BatchVote(v) => {
            w.u8(5);
            v.write(&mut w);
        }
        NetMsg::BatchCert(c) => {
            w.u8(6);
            c.write(&mut w);
        }
        NetMsg::CatchUpRequest { from } => {
            w.u8(8);
            w.u64(*from);
        }
        NetMsg::CatchUp(seg) => {
            w.u8(9);
            write_segment(&mut w, seg);
        }
        NetMsg::VerifyRequest(d) => {
            w.u8(7);
            w.digest(d);
        }
    }
    w.0
}

/// Decode a message; the whole input must be consumed.
pub fn decode(bytes: &[u8]) -> Result<NetMsg, WireError> {
    if bytes.len() > FRAME_BYTES_MAX {
        return Err(CodecError("frame too large"));
    }
    let mut r = Reader { b: bytes };
    let msg = match r.u8()? {
        1 => NetMsg::Consensus(r.message()?),
        2 => {
            let author = r.u32()?;
            let expires = r.u64()?;
            let verdict = Verdict::read(&mut r)?;
            let n = r.count(BATCH_TXS_MAX, "too many transactions in batch")?;
            let mut txs = Vec::with_capacity(n);
            for _ in 0..n {
                txs.push(r.bytes(TX_BYTES_MAX)?.to_vec());
            }
            let cert = if r.opt()? {
                Some(BatchCertificate::read(&mut r)?)
            } else {
                None
            };
            NetMsg::Batch {
                author,
                expires,
                verdict,
                txs,
                cert,
            }
        }
        3 => {
            let n = r.count(BATCH_REQUEST_MAX, "too many batch digests requested")?;
            let mut ds = Vec::with_capacity(n);
            for _ in 0..n {
                ds.push(r.digest()?);
            }
            NetMsg::BatchRequest(ds)
        }
        4 => {
            let msg = r.message()?;
            if !matches!(msg, Message::Proposal(_)) {
                return Err(CodecError("certificates attached to a non-proposal"));
            }
            let n = r.count(PAYLOAD_DIGESTS_MAX, "too many certificates")?;
            let mut certs = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                certs.push(BatchCertificate::read(&mut r)?);
            }
            NetMsg::Proposal { msg, certs }
        }
        5 => NetMsg::BatchVote(BatchVote::read(&mut r)?),
        6 => NetMsg::BatchCert(BatchCertificate::read(&mut r)?),
        7 => NetMsg::VerifyRequest(r.digest()?),
        8 => NetMsg::CatchUpRequest { from: r.u64()? },
        9 => NetMsg::CatchUp(read_segment(&mut r)?),
        _ => return Err(CodecError("unknown message tag")),
    };
    r.finish()?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plume_consensus::{
        Block, BlsScheme, Message, Proposal, QuorumCert, Timeout, TimeoutCert, Vote,
    };
    use plume_crypto::bls;
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

    fn sample_cert() -> BatchCertificate {
        let id = plume_protocol::batch::BatchId {
            epoch: 0,
            digest: Digest([6; 32]),
            author: 0,
            items: 3,
            expires: 9,
        };
        BatchCertificate::from_votes(
            id,
            Verdict::new(vec![2]),
            4,
            &[(0, true, [1; 64]), (1, false, [2; 64]), (3, true, [3; 64])],
        )
    }

    fn sample_messages() -> Vec<NetMsg> {
        let (sks, set) = fixture();
        let genesis = Block::<BlsScheme>::genesis(7);
        let gqc = QuorumCert::genesis(0, &genesis);
        let b1 = Block::new(0, 1, 1, vec![Digest([3; 32]), Digest([4; 32])], gqc.clone());
        let msg = QuorumCert::<BlsScheme>::vote_message(9, 0, 1, &b1.id, 1);
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
            NetMsg::Proposal {
                msg: Message::Proposal(Proposal {
                    block: b1.clone(),
                    tc: None,
                }),
                certs: vec![sample_cert(), sample_cert()],
            },
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
                author: 2,
                expires: 300,
                verdict: Verdict::new(vec![1]),
                txs: vec![vec![1, 2, 3], vec![]],
                cert: None,
            },
            NetMsg::Batch {
                author: 0,
                expires: 9,
                verdict: Verdict::all_valid(),
                txs: vec![vec![5; 40]],
                cert: Some(sample_cert()),
            },
            NetMsg::BatchVote(BatchVote {
                id: sample_cert().id,
                voter: 3,
                verdict: Some(Verdict::new(vec![0])),
                sig: [4; 64],
            }),
            NetMsg::BatchCert(sample_cert()),
            NetMsg::VerifyRequest(Digest([8; 32])),
            NetMsg::BatchRequest(vec![Digest([1; 32]), Digest([2; 32])]),
            NetMsg::CatchUpRequest { from: 1 << 40 },
            NetMsg::CatchUp(vec![]),
            NetMsg::CatchUp(vec![
                SegmentBlock {
                    record: vec![9; 77],
                    txs: vec![vec![1; 30], vec![]],
                },
                SegmentBlock {
                    record: vec![],
                    txs: vec![],
                },
            ]),
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
            assert_eq!(decode(&long), Err(CodecError("trailing bytes")));
        }
    }

    #[test]
    fn oversized_counts_are_refused_before_allocation() {
        let mut b = vec![3u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(CodecError("too many batch digests requested"))
        );
        let mut b = vec![2u8];
        b.extend_from_slice(&0u32.to_le_bytes()); // author
        b.extend_from_slice(&0u64.to_le_bytes()); // expiry
        b.extend_from_slice(&0u32.to_le_bytes()); // empty verdict
        b.extend_from_slice(&(BATCH_TXS_MAX as u32 + 1).to_le_bytes());
        assert_eq!(
            decode(&b),
            Err(CodecError("too many transactions in batch"))
        );
        let mut b = vec![9u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&b), Err(CodecError("too many blocks in a segment")));
        assert_eq!(decode(&[10]), Err(CodecError("unknown message tag")));
    }

    #[test]
    fn a_full_batch_fits_one_frame() {
        // The largest batch config allows, in the most transactions.
        let per = BATCH_BYTES_MAX / BATCH_TXS_MAX;
        let m = NetMsg::Batch {
            author: 1,
            expires: u64::MAX,
            verdict: Verdict::new((0..BATCH_TXS_MAX as u32).collect()),
            txs: vec![vec![0u8; per.min(TX_BYTES_MAX)]; BATCH_TXS_MAX],
            cert: Some(sample_cert()),
        };
        let bytes = encode(&m);
        assert!(bytes.len() <= FRAME_BYTES_MAX, "{}", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), m);
        assert_eq!(BATCH_BYTES_MAX + BATCH_FRAME_OVERHEAD_MAX, FRAME_BYTES_MAX);
    }

    #[test]
    fn corrupted_signature_bytes_are_refused() {
        let m = &sample_messages()[3];
        let mut bytes = encode(m);
        let n = bytes.len();
        for b in &mut bytes[n - 96..] {
            *b = 0x11;
        }
        assert_eq!(decode(&bytes), Err(CodecError("bad BLS signature")));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }
    }
}
