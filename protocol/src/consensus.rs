//! Blocks, votes, certificates and messages of the two-chain protocol.

use crate::scheme::Scheme;
use plume_crypto::{Digest, Domain, Hasher};

/// Most transaction-batch digests one block may carry.
pub const PAYLOAD_DIGESTS_MAX: usize = 1024;
/// Most blocks one sync response may carry.
pub const SYNC_BLOCKS_MAX: usize = 64;
/// Most entries a timeout certificate may carry (the crypto crate's bound).
pub const TC_ENTRIES_MAX: usize = plume_crypto::qc::VALIDATORS_MAX;

/// Consensus view (round) number. Views start at 1; view 0 is genesis.
pub type View = u64;

/// A certificate that a quorum voted for `block` in `view`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumCert<S: Scheme> {
    /// Epoch of the committee that signed.
    pub epoch: u64,
    /// View of the certified block.
    pub view: View,
    /// Id of the certified block.
    pub block: Digest,
    /// Height of the certified block.
    pub height: u64,
    /// The aggregate; `None` only for the genesis certificate.
    pub cert: Option<S::Cert>,
}

impl<S: Scheme> QuorumCert<S> {
    /// The bytes a vote for (`epoch`, `view`, `block`, `height`) on chain
    /// `chain` signs (domain `Vote`, chain id first).
    pub fn vote_message(chain: u64, epoch: u64, view: View, block: &Digest, height: u64) -> Digest {
        let mut h = Hasher::new(Domain::Vote);
        h.update_u64(chain)
            .update_u64(epoch)
            .update_u64(view)
            .update(block.as_bytes())
            .update_u64(height);
        h.finalize()
    }

    /// The message this certificate's signers signed (on chain `chain`).
    pub fn signed_message(&self, chain: u64) -> Digest {
        Self::vote_message(chain, self.epoch, self.view, &self.block, self.height)
    }

    /// The certificate of the genesis block of an epoch (needs no signatures).
    pub fn genesis(epoch: u64, genesis: &Block<S>) -> Self {
        QuorumCert {
            epoch,
            view: 0,
            block: genesis.id,
            height: genesis.height,
            cert: None,
        }
    }
}

/// A proposed block. Its `id` covers every field, of `justify.cert` only the
/// signer set (the aggregate signature is checked on its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block<S: Scheme> {
    /// Hash of the header fields; recomputed and compared on receipt.
    pub id: Digest,
    /// Epoch whose committee runs this block's view.
    pub epoch: u64,
    /// View in which it was proposed.
    pub view: View,
    /// Parent height + 1.
    pub height: u64,
    /// Id of the parent (= `justify.block`).
    pub parent: Digest,
    /// Committee index of the proposer.
    pub proposer: u32,
    /// Transaction-batch digests (the data itself travels outside consensus).
    pub payload: Vec<Digest>,
    /// The state root after the block at height `height - STATE_LAG`
    /// (saturating at 0: the genesis state), as its proposer computed it;
    /// a validator votes only if it computed the same. All zeros where
    /// state roots are not agreed on (`STATE_LAG` off).
    pub state_root: Digest,
    /// Block time, milliseconds since the Unix epoch: the proposer's clock,
    /// never below the parent's time; validators vote only for a block
    /// whose time is at most [`MAX_CLOCK_AHEAD_MS`] ahead of their own
    /// clock. Execution reads time from here, never from a node's clock.
    pub time_ms: u64,
    /// Certificate of the parent.
    pub justify: QuorumCert<S>,
}

/// How far ahead of a validator's own clock a block's time may be for it
/// to vote for the block.
pub const MAX_CLOCK_AHEAD_MS: u64 = 2_000;

/// How many blocks behind its own height a block's `state_root` is:
/// execution stays off the consensus critical path (a proposer needs the
/// root of a block committed several rounds earlier, which execution has
/// long finished in the steady state; if it has not, the proposal and the
/// votes wait for it: consensus never outruns execution by more).
pub const STATE_LAG: u64 = 8;

/// The height whose state root block `height` carries.
pub fn state_height(height: u64) -> u64 {
    height.saturating_sub(STATE_LAG)
}

impl<S: Scheme> Block<S> {
    /// Build a block and compute its id.
    pub fn new(
        epoch: u64,
        view: View,
        proposer: u32,
        payload: Vec<Digest>,
        justify: QuorumCert<S>,
    ) -> Self {
        let mut b = Block {
            id: Digest::ZERO,
            epoch,
            view,
            height: justify.height + 1,
            parent: justify.block,
            proposer,
            payload,
            state_root: Digest::ZERO,
            time_ms: 0,
            justify,
        };
        b.id = b.compute_id();
        b
    }

    /// The same block with time `time_ms` (id recomputed).
    pub fn with_time(mut self, time_ms: u64) -> Self {
        self.time_ms = time_ms;
        self.id = self.compute_id();
        self
    }

    /// The same block carrying `root` as its state root (id recomputed).
    pub fn with_state_root(mut self, root: Digest) -> Self {
        self.state_root = root;
        self.id = self.compute_id();
        self
    }

    /// The genesis block of the chain (height 0, view 0).
    pub fn genesis(chain_id: u64) -> Self {
        let mut b = Block {
            id: Digest::ZERO,
            epoch: 0,
            view: 0,
            height: 0,
            parent: Digest::ZERO,
            proposer: 0,
            payload: Vec::new(),
            state_root: Digest::ZERO,
            time_ms: 0,
            justify: QuorumCert {
                epoch: 0,
                view: 0,
                block: Digest::ZERO,
                height: 0,
                cert: None,
            },
        };
        b.payload.clear();
        let mut h = Hasher::new(Domain::Block);
        h.update(b"genesis").update_u64(chain_id);
        b.id = h.finalize();
        b
    }

    /// Hash of the header fields.
    pub fn compute_id(&self) -> Digest {
        let mut h = Hasher::new(Domain::Block);
        h.update_u64(self.epoch)
            .update_u64(self.view)
            .update_u64(self.height)
            .update(self.parent.as_bytes())
            .update_u64(u64::from(self.proposer))
            .update_u64(self.justify.epoch)
            .update_u64(self.justify.view);
        // The signer set of the parent certificate is part of the identity:
        // leader reputation reads it, so all who agree on a block id must
        // agree on it (the signature itself is checked separately).
        let signers = self
            .justify
            .cert
            .as_ref()
            .map(S::cert_signers)
            .unwrap_or_default();
        h.update_u64(signers.len() as u64);
        for i in signers {
            h.update_u64(i as u64);
        }
        h.update_u64(self.payload.len() as u64);
        for d in &self.payload {
            h.update(d.as_bytes());
        }
        h.update(self.state_root.as_bytes());
        h.update_u64(self.time_ms);
        h.finalize()
    }
}

/// One validator's vote for a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote<S: Scheme> {
    /// Epoch.
    pub epoch: u64,
    /// View of the block.
    pub view: View,
    /// Block id.
    pub block: Digest,
    /// Block height.
    pub height: u64,
    /// Voter's committee index.
    pub voter: u32,
    /// Signature over [`QuorumCert::vote_message`].
    pub sig: S::Sig,
}

/// "I give up on `view`; my highest certificate is `high_qc`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout<S: Scheme> {
    /// Epoch.
    pub epoch: u64,
    /// The view abandoned.
    pub view: View,
    /// The sender's highest certificate.
    pub high_qc: QuorumCert<S>,
    /// Sender's committee index.
    pub voter: u32,
    /// Signature over [`timeout_message`]`(chain, epoch, view, high_qc.view)`.
    pub sig: S::Sig,
}

/// The bytes a timeout signs (domain `Timeout`, chain id first): the view
/// and the view of the sender's highest
/// certificate (Jolteon §4: timeouts bind `qc_high.round`).
pub fn timeout_message(chain: u64, epoch: u64, view: View, high_qc_view: View) -> Digest {
    let mut h = Hasher::new(Domain::Timeout);
    h.update_u64(chain)
        .update_u64(epoch)
        .update_u64(view)
        .update_u64(high_qc_view);
    h.finalize()
}

/// A timeout certificate: a quorum of signed timeouts for one view. Each
/// entry is (voter, view of its high QC, signature) — the signed messages
/// differ, so entries are kept individually (aggregation over distinct
/// messages is not built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeoutCert<S: Scheme> {
    /// Epoch.
    pub epoch: u64,
    /// The view that timed out.
    pub view: View,
    /// Signed timeouts, voters ascending.
    pub entries: Vec<(u32, View, S::Sig)>,
}

impl<S: Scheme> TimeoutCert<S> {
    /// Highest high-QC view among the entries.
    pub fn max_high_qc_view(&self) -> View {
        self.entries.iter().map(|e| e.1).max().unwrap_or(0)
    }

    /// Check signatures (over chain `chain`), distinct voters and quorum.
    pub fn verify(&self, committee: &S::Committee, chain: u64) -> bool {
        if self.entries.len() > TC_ENTRIES_MAX || !self.entries.windows(2).all(|w| w[0].0 < w[1].0)
        {
            return false;
        }
        let voters: Vec<usize> = self.entries.iter().map(|e| e.0 as usize).collect();
        S::has_quorum(committee, &voters)
            && self.entries.iter().all(|(v, hv, sig)| {
                *hv < self.view
                    && S::verify(
                        committee,
                        *v as usize,
                        timeout_message(chain, self.epoch, self.view, *hv).as_bytes(),
                        sig,
                    )
            })
    }
}

/// A proposal: a block plus, when its parent certificate is not from the
/// previous view, the timeout certificate that justifies skipping views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal<S: Scheme> {
    /// The block.
    pub block: Block<S>,
    /// Timeout certificate for `block.view - 1`, if the view was entered by timeout.
    pub tc: Option<TimeoutCert<S>>,
}

/// Everything validators send each other. The sender's identity comes from
/// the authenticated transport (the driver passes it in
/// `plume_consensus::Input::Message`); votes and timeouts are signed as well, because
/// they are aggregated and forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<S: Scheme> {
    /// A leader's proposal.
    Proposal(Proposal<S>),
    /// A vote, sent to the leader of the next view.
    Vote(Vote<S>),
    /// A timeout, broadcast.
    Timeout(Timeout<S>),
    /// Certificates for view synchronisation (broadcast when a TC forms, and
    /// sent to peers that are behind).
    Certificates {
        /// The sender's highest QC.
        high_qc: QuorumCert<S>,
        /// A timeout certificate, if the sender has a recent one.
        tc: Option<TimeoutCert<S>>,
    },
    /// "Send me block `block` and up to `max` of its ancestors."
    SyncRequest {
        /// Wanted block id.
        block: Digest,
        /// How many blocks at most (capped at [`SYNC_BLOCKS_MAX`]).
        max: u32,
    },
    /// Blocks, newest first, each the parent of the one before.
    SyncResponse {
        /// The blocks (at most [`SYNC_BLOCKS_MAX`]).
        blocks: Vec<Block<S>>,
    },
    /// The proof that finalized the last block of an epoch, sent to a peer
    /// still in that epoch so it can finalize it and switch.
    EpochProof(CommitProof<S>),
}

/// What must be on disk before a vote or timeout leaves the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyState<S: Scheme> {
    /// Epoch the state belongs to.
    pub epoch: u64,
    /// Highest view this validator voted or timed out in; it never votes
    /// again at or below it.
    pub last_voted_view: View,
    /// Highest certificate seen (Jolteon's `qc_high`; carried in timeouts).
    pub high_qc: QuorumCert<S>,
    /// Highest timeout certificate (justifies the view entered after it).
    pub high_tc: Option<TimeoutCert<S>>,
    /// Id of the block the epoch extends (the previous epoch's last block).
    pub epoch_start: Digest,
    /// The proof that finalized the previous epoch's last block (kept so a
    /// restarted validator can still hand it to peers left behind).
    pub epoch_proof: Option<CommitProof<S>>,
    /// The blocks above the last executed height on the way to `high_qc`
    /// and to the last block voted for, lowest first: with them a
    /// restarted validator (or all of them) can propose on `high_qc` and
    /// finalize what it had not executed (at most [`SAFETY_BLOCKS_MAX`]).
    pub blocks: Vec<Block<S>>,
}

/// Most blocks a safety state carries.
pub const SAFETY_BLOCKS_MAX: usize = 256;

/// Offline-checkable proof that `child.justify.block` is final under the
/// two-chain rule: `child` extends it in the very next view and `child_qc`
/// certifies `child`. A client checks both certificates against the epoch's
/// committee, `child_qc.block == child.id`, and
/// `child.view == child.justify.view + 1`. Blocks below it are final by
/// following parent links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitProof<S: Scheme> {
    /// The block's direct child (its `justify` certifies the final block).
    pub child: Block<S>,
    /// Certificate of `child`.
    pub child_qc: QuorumCert<S>,
}

impl<S: Scheme> CommitProof<S> {
    /// Check the proof for `committed` (which may be the directly committed
    /// block or, with `chain`, an ancestor). `committee` is the committee of
    /// `child`'s epoch.
    pub fn verify_direct(
        &self,
        committee: &S::Committee,
        chain: u64,
    ) -> Result<Digest, &'static str> {
        let b1 = &self.child;
        let qc0 = &b1.justify;
        if b1.compute_id() != b1.id || self.child_qc.block != b1.id {
            return Err("child id / child certificate mismatch");
        }
        if self.child_qc.view != b1.view || self.child_qc.height != b1.height {
            return Err("child certificate view/height mismatch");
        }
        if Some(b1.view) != qc0.view.checked_add(1) {
            return Err("child is not in the next view (not a two-chain)");
        }
        let check = |qc: &QuorumCert<S>| -> bool {
            match &qc.cert {
                Some(c) => S::verify_cert(committee, qc.signed_message(chain).as_bytes(), c),
                None => false,
            }
        };
        if !check(qc0) || !check(&self.child_qc) {
            return Err("certificate does not verify");
        }
        Ok(qc0.block)
    }
}
