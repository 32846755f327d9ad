//! The byte encoding of consensus messages, blocks and certificates over
//! the BLS scheme: what validators send each other, what the block store
//! keeps, and what finality proofs carry.
//!
//! A hand-written, length-checked little-endian codec rather than rkyv: the
//! consensus types are generic over the signature scheme and the BLS points
//! must be decoded through `blst` (curve and subgroup checks) anyway, so a
//! zero-copy archive would buy nothing here (docs/adr/0002). Every count is
//! bounded by a named constant before anything is allocated; decoding never
//! panics; every decoder refuses trailing bytes, so an encoding is canonical.

use crate::consensus::{
    Block, CommitProof, Message, Proposal, QuorumCert, Timeout, TimeoutCert, Vote,
    PAYLOAD_DIGESTS_MAX, SYNC_BLOCKS_MAX, TC_ENTRIES_MAX,
};
use crate::scheme::BlsScheme;
use plume_crypto::bls;
use plume_crypto::qc::QuorumCertificate;
use plume_crypto::Digest;

/// Consensus message over the BLS scheme.
pub type ConsensusMsg = Message<BlsScheme>;

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct CodecError(pub &'static str);

// ------------------------------------------------------------------ encode

/// Little-endian writer (the encoders' common part).
#[derive(Debug, Default)]
pub struct Writer(pub Vec<u8>);

impl Writer {
    /// Append (see the decoder of the same name).
    pub fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    /// Append (see the decoder of the same name).
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Append (see the decoder of the same name).
    pub fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// Append (see the decoder of the same name).
    pub fn digest(&mut self, d: &Digest) {
        self.0.extend_from_slice(d.as_bytes());
    }
    /// Append (see the decoder of the same name).
    pub fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    /// Append (see the decoder of the same name).
    pub fn sig(&mut self, s: &bls::Signature) {
        self.0.extend_from_slice(&s.to_bytes());
    }
    /// Append (see the decoder of the same name).
    pub fn qc(&mut self, qc: &QuorumCert<BlsScheme>) {
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
    /// Append (see the decoder of the same name).
    pub fn block(&mut self, b: &Block<BlsScheme>) {
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
        self.digest(&b.state_root);
        self.u64(b.time_ms);
        self.qc(&b.justify);
    }
    /// Append (see the decoder of the same name).
    pub fn tc(&mut self, tc: &TimeoutCert<BlsScheme>) {
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

impl Writer {
    /// Append a consensus message.
    pub fn message(&mut self, m: &ConsensusMsg) {
        let w = self;
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
}

/// Encode a consensus message.
pub fn encode_message(m: &ConsensusMsg) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(256));
    w.message(m);
    w.0
}

// ------------------------------------------------------------------ decode

/// Bounds-checked reader (the decoders' common part).
#[derive(Debug)]
pub struct Reader<'a> {
    /// What is left to read.
    pub b: &'a [u8],
}

type Res<T> = Result<T, CodecError>;

impl<'a> Reader<'a> {
    /// Read (see the encoder of the same name).
    pub fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        if self.b.len() < n {
            return Err(CodecError("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    /// Read (see the encoder of the same name).
    pub fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    /// Read (see the encoder of the same name).
    pub fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// Read (see the encoder of the same name).
    pub fn u64(&mut self) -> Res<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// Read (see the encoder of the same name).
    pub fn digest(&mut self) -> Res<Digest> {
        Ok(Digest(self.take(32)?.try_into().expect("32 bytes")))
    }
    /// Read (see the encoder of the same name).
    pub fn count(&mut self, max: usize, what: &'static str) -> Res<usize> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(CodecError(what));
        }
        Ok(n)
    }
    /// Read (see the encoder of the same name).
    pub fn bytes(&mut self, max: usize) -> Res<&'a [u8]> {
        let n = self.count(max, "byte string too long")?;
        self.take(n)
    }
    /// Read (see the encoder of the same name).
    pub fn sig(&mut self) -> Res<bls::Signature> {
        bls::Signature::from_bytes(self.take(bls::SIGNATURE_LEN)?)
            .map_err(|_| CodecError("bad BLS signature"))
    }
    /// Read (see the encoder of the same name).
    pub fn opt(&mut self) -> Res<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError("bad option tag")),
        }
    }
    /// Read (see the encoder of the same name).
    pub fn qc(&mut self) -> Res<QuorumCert<BlsScheme>> {
        let epoch = self.u64()?;
        let view = self.u64()?;
        let block = self.digest()?;
        let height = self.u64()?;
        let cert = if self.opt()? {
            let raw = self.bytes(4 + 128 + bls::SIGNATURE_LEN)?;
            Some(
                QuorumCertificate::from_bytes(raw)
                    .map_err(|_| CodecError("bad quorum certificate"))?,
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
    /// Read (see the encoder of the same name).
    pub fn block(&mut self) -> Res<Block<BlsScheme>> {
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
        let state_root = self.digest()?;
        let time_ms = self.u64()?;
        let justify = self.qc()?;
        Ok(Block {
            id,
            epoch,
            view,
            height,
            parent,
            proposer,
            payload,
            state_root,
            time_ms,
            justify,
        })
    }
    /// Read (see the encoder of the same name).
    pub fn tc(&mut self) -> Res<TimeoutCert<BlsScheme>> {
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
    /// Error unless everything was read.
    pub fn finish(&self) -> Res<()> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(CodecError("trailing bytes"))
        }
    }
}

impl Reader<'_> {
    /// Read a consensus message.
    pub fn message(&mut self) -> Res<ConsensusMsg> {
        let r = self;
        Ok(match r.u8()? {
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
                Message::EpochProof(CommitProof { child, child_qc })
            }
            _ => return Err(CodecError("unknown consensus message tag")),
        })
    }
}

/// Decode a consensus message; the whole input must be consumed.
pub fn decode_message(bytes: &[u8]) -> Result<ConsensusMsg, CodecError> {
    let mut r = Reader { b: bytes };
    let m = r.message()?;
    r.finish()?;
    Ok(m)
}

/// Encode a block.
pub fn encode_block(b: &Block<BlsScheme>) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.block(b);
    w.0
}

/// Decode a block encoded by [`encode_block`].
pub fn decode_block(bytes: &[u8]) -> Result<Block<BlsScheme>, CodecError> {
    let mut r = Reader { b: bytes };
    let b = r.block()?;
    if !r.b.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(b)
}

/// Encode a timeout certificate.
pub fn encode_tc(tc: &TimeoutCert<BlsScheme>) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.tc(tc);
    w.0
}

/// Decode a timeout certificate encoded by [`encode_tc`].
pub fn decode_tc(bytes: &[u8]) -> Result<TimeoutCert<BlsScheme>, CodecError> {
    let mut r = Reader { b: bytes };
    let t = r.tc()?;
    if !r.b.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(t)
}

/// Encode a quorum certificate of the consensus layer.
pub fn encode_qc(qc: &QuorumCert<BlsScheme>) -> Vec<u8> {
    let mut w = Writer(Vec::new());
    w.qc(qc);
    w.0
}

/// Decode a certificate encoded by [`encode_qc`].
pub fn decode_qc(bytes: &[u8]) -> Result<QuorumCert<BlsScheme>, CodecError> {
    let mut r = Reader { b: bytes };
    let q = r.qc()?;
    if !r.b.is_empty() {
        return Err(CodecError("trailing bytes"));
    }
    Ok(q)
}

/// Encode a commit proof: the child block, then its certificate.
pub fn encode_commit_proof(p: &CommitProof<BlsScheme>) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(512));
    w.block(&p.child);
    w.qc(&p.child_qc);
    w.0
}

/// Decode [`encode_commit_proof`].
pub fn decode_commit_proof(bytes: &[u8]) -> Result<CommitProof<BlsScheme>, CodecError> {
    let mut r = Reader { b: bytes };
    let child = r.block()?;
    let child_qc = r.qc()?;
    r.finish()?;
    Ok(CommitProof { child, child_qc })
}
