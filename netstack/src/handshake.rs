//! The authenticated key exchange, as a sans-IO state machine.
//!
//! Noise `XX` (`Noise_XX_25519_AESGCM_SHA256`) with a per-process X25519
//! static key. Each side proves its genesis network identity (Ed25519) by
//! signing, inside its encrypted handshake payload, a digest that binds
//! the chain id, its role, its Noise static key and the handshake hash so
//! far (which covers both ephemerals seen by then). So:
//!
//! - msg1 (initiator → responder, clear): `Hello` = version, flags, chain
//!   id. A wrong chain id or flag mismatch is refused before any DH work.
//! - msg2 (responder → initiator): responder's [`IdentityProof`].
//! - msg3 (initiator → responder): initiator's [`IdentityProof`]. The
//!   responder checks the allow-list here; a non-member never reaches the
//!   session, so it cannot send a single application frame.
//!
//! A replayed msg1/msg3 fails: the responder's fresh ephemeral key changes
//! every key derived after msg1, so a recorded msg3 does not decrypt.

use crate::PeerId;
use plume_crypto::ed25519::{PublicKey, Signature, SigningKey};
use plume_crypto::hash::{hash_parts, Domain};
use std::collections::HashSet;
use thiserror::Error;

use crate::session::SessionCipher;

/// Noise protocol name: X25519, AES-256-GCM (AES-NI), SHA-256 (SHA-NI).
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";
/// Prologue mixed into the handshake hash.
pub const PROLOGUE: &[u8] = b"plume-net/1";
/// Wire version in [`Hello`].
pub const VERSION: u8 = 1;
/// Largest handshake message accepted (ours are at most ~200 bytes).
pub const HANDSHAKE_MSG_MAX: usize = 512;
/// Most keys in an allow-list.
pub const ALLOW_LIST_MAX: usize = 4096;
/// Bytes of an encoded [`Hello`].
pub const HELLO_LEN: usize = 2 + 32;
/// Bytes of an encoded [`IdentityProof`].
pub const PROOF_LEN: usize = 32 + 64;
/// Flag bit: records are sent in the clear (benchmarks only).
pub const FLAG_CLEAR: u8 = 1;

/// The network a session belongs to: a digest of the genesis chain id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChainId(pub [u8; 32]);

impl ChainId {
    /// Chain id of a genesis `chain_id` string.
    pub fn from_name(name: &str) -> ChainId {
        ChainId(hash_parts(Domain::Handshake, &[b"chain-id", name.as_bytes()]).0)
    }
}

/// Why a handshake failed. Each maps to a metrics counter.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// Malformed handshake bytes.
    #[error("malformed handshake message: {0}")]
    Malformed(&'static str),
    /// Noise rejected a message (bad ciphertext, replay, wrong key).
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    /// The other side is on another chain.
    #[error("wrong chain id")]
    WrongChain,
    /// Unsupported version.
    #[error("unsupported handshake version {0}")]
    Version(u8),
    /// One side encrypts and the other does not.
    #[error("encryption setting differs from the peer's")]
    FlagsMismatch,
    /// The identity key is not in the allow-list.
    #[error("peer {0} is not in the allow-list")]
    NotAllowed(PeerId),
    /// The identity is allowed but is not the one we dialled.
    #[error("expected peer {expected}, got {got}")]
    UnexpectedPeer {
        /// Whom we dialled.
        expected: PeerId,
        /// Who answered.
        got: PeerId,
    },
    /// The identity signature does not verify.
    #[error("identity proof signature invalid")]
    BadSignature,
    /// A peer presented our own identity.
    #[error("peer presented our own identity")]
    SelfConnect,
}

/// The set of network identity keys allowed to hold a session (from
/// genesis).
#[derive(Clone, Debug, Default)]
pub struct AllowList(HashSet<PeerId>);

impl AllowList {
    /// Build from keys; at most [`ALLOW_LIST_MAX`].
    pub fn new(keys: impl IntoIterator<Item = PeerId>) -> Result<AllowList, HandshakeError> {
        let set: HashSet<PeerId> = keys.into_iter().collect();
        if set.len() > ALLOW_LIST_MAX {
            return Err(HandshakeError::Malformed("allow-list too long"));
        }
        Ok(AllowList(set))
    }
    /// Membership.
    pub fn contains(&self, id: &PeerId) -> bool {
        self.0.contains(id)
    }
    /// Members.
    pub fn iter(&self) -> impl Iterator<Item = &PeerId> {
        self.0.iter()
    }
    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// msg1 payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Wire version.
    pub version: u8,
    /// Flags ([`FLAG_CLEAR`]).
    pub flags: u8,
    /// Chain.
    pub chain_id: ChainId,
}

impl Hello {
    /// Encode.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0] = self.version;
        b[1] = self.flags;
        b[2..].copy_from_slice(&self.chain_id.0);
        b
    }
    /// Decode, exact length.
    pub fn decode(b: &[u8]) -> Result<Hello, HandshakeError> {
        if b.len() != HELLO_LEN {
            return Err(HandshakeError::Malformed("hello length"));
        }
        let mut c = [0u8; 32];
        c.copy_from_slice(&b[2..]);
        Ok(Hello {
            version: b[0],
            flags: b[1],
            chain_id: ChainId(c),
        })
    }
}

/// msg2/msg3 payload: an Ed25519 identity and its signature over the
/// binding digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityProof {
    /// Ed25519 network key.
    pub identity: [u8; 32],
    /// Signature over [`binding_digest`].
    pub signature: [u8; 64],
}

impl IdentityProof {
    /// Encode.
    pub fn encode(&self) -> [u8; PROOF_LEN] {
        let mut b = [0u8; PROOF_LEN];
        b[..32].copy_from_slice(&self.identity);
        b[32..].copy_from_slice(&self.signature);
        b
    }
    /// Decode, exact length.
    pub fn decode(b: &[u8]) -> Result<IdentityProof, HandshakeError> {
        if b.len() != PROOF_LEN {
            return Err(HandshakeError::Malformed("identity proof length"));
        }
        let mut identity = [0u8; 32];
        identity.copy_from_slice(&b[..32]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[32..]);
        Ok(IdentityProof {
            identity,
            signature,
        })
    }
}

/// What the identity key signs.
pub fn binding_digest(
    role: Role,
    chain: &ChainId,
    flags: u8,
    noise_static: &[u8],
    handshake_hash: &[u8],
) -> [u8; 32] {
    hash_parts(
        Domain::Handshake,
        &[
            b"identity",
            &[role as u8, flags],
            &chain.0,
            noise_static,
            handshake_hash,
        ],
    )
    .0
}

/// Which end of the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Dialler.
    Initiator = 0,
    /// Listener.
    Responder = 1,
}

/// Our side's handshake parameters.
pub struct HandshakeConfig {
    /// Chain.
    pub chain_id: ChainId,
    /// Our Ed25519 network identity.
    pub identity: SigningKey,
    /// Our identity as a peer id.
    pub id: PeerId,
    /// X25519 static key pair for Noise, generated at start-up.
    pub noise_private: Vec<u8>,
    /// Its public half.
    pub noise_public: Vec<u8>,
    /// Who may hold a session.
    pub allow: AllowList,
    /// Records in the clear (benchmarks only).
    pub clear: bool,
}

impl std::fmt::Debug for HandshakeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeConfig")
            .field("id", &self.id)
            .field("allow", &self.allow.len())
            .field("clear", &self.clear)
            .finish_non_exhaustive()
    }
}

impl HandshakeConfig {
    /// New config with a fresh Noise static key.
    pub fn new(
        chain_id: ChainId,
        identity: SigningKey,
        allow: AllowList,
        clear: bool,
    ) -> Result<HandshakeConfig, HandshakeError> {
        let kp = snow::Builder::new(params()).generate_keypair()?;
        let id = PeerId::from(&identity.public_key());
        Ok(HandshakeConfig {
            chain_id,
            identity,
            id,
            noise_private: kp.private,
            noise_public: kp.public,
            allow,
            clear,
        })
    }

    fn flags(&self) -> u8 {
        if self.clear {
            FLAG_CLEAR
        } else {
            0
        }
    }

    fn proof(&self, role: Role, hh: &[u8]) -> [u8; PROOF_LEN] {
        let d = binding_digest(role, &self.chain_id, self.flags(), &self.noise_public, hh);
        IdentityProof {
            identity: self.id.0,
            signature: self.identity.sign(&d).to_bytes(),
        }
        .encode()
    }

    fn check_proof(
        &self,
        role: Role,
        payload: &[u8],
        remote_static: Option<&[u8]>,
        hh: &[u8],
    ) -> Result<PeerId, HandshakeError> {
        let proof = IdentityProof::decode(payload)?;
        let id = PeerId(proof.identity);
        if id == self.id {
            return Err(HandshakeError::SelfConnect);
        }
        if !self.allow.contains(&id) {
            return Err(HandshakeError::NotAllowed(id));
        }
        let rs = remote_static.ok_or(HandshakeError::Malformed("no remote static key"))?;
        let d = binding_digest(role, &self.chain_id, self.flags(), rs, hh);
        let pk =
            PublicKey::from_bytes(&proof.identity).map_err(|_| HandshakeError::BadSignature)?;
        pk.verify(&d, &Signature::from_bytes(&proof.signature))
            .map_err(|_| HandshakeError::BadSignature)?;
        Ok(id)
    }
}

fn params() -> snow::params::NoiseParams {
    NOISE_PARAMS.parse().expect("static noise parameters parse")
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    /// The authenticated, allow-listed peer.
    pub peer: PeerId,
    /// Record protection for the session.
    pub cipher: SessionCipher,
}

fn finish(
    hs: snow::HandshakeState,
    clear: bool,
    peer: PeerId,
) -> Result<Established, HandshakeError> {
    let cipher = if clear {
        SessionCipher::Clear
    } else {
        SessionCipher::Noise(Box::new(hs.into_transport_mode()?))
    };
    Ok(Established { peer, cipher })
}

/// Initiator after sending msg1.
pub struct Initiator {
    hs: snow::HandshakeState,
    expected: Option<PeerId>,
}

impl std::fmt::Debug for Initiator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initiator")
            .field("expected", &self.expected)
            .finish()
    }
}

impl Initiator {
    /// Start a handshake toward `expected` (None: any allow-listed peer);
    /// returns the state and msg1.
    pub fn start(
        cfg: &HandshakeConfig,
        expected: Option<PeerId>,
    ) -> Result<(Initiator, Vec<u8>), HandshakeError> {
        let mut hs = snow::Builder::new(params())
            .local_private_key(&cfg.noise_private)
            .prologue(PROLOGUE)
            .build_initiator()?;
        let hello = Hello {
            version: VERSION,
            flags: cfg.flags(),
            chain_id: cfg.chain_id,
        }
        .encode();
        let mut out = vec![0u8; HANDSHAKE_MSG_MAX];
        let n = hs.write_message(&hello, &mut out)?;
        out.truncate(n);
        Ok((Initiator { hs, expected }, out))
    }

    /// Read msg2, check the responder, write msg3.
    pub fn finish(
        mut self,
        cfg: &HandshakeConfig,
        msg2: &[u8],
    ) -> Result<(Established, Vec<u8>), HandshakeError> {
        if msg2.len() > HANDSHAKE_MSG_MAX {
            return Err(HandshakeError::Malformed("msg2 too long"));
        }
        let hh_before = self.hs.get_handshake_hash().to_vec();
        let mut payload = [0u8; HANDSHAKE_MSG_MAX];
        let n = self.hs.read_message(msg2, &mut payload)?;
        // The responder signed the hash as it was before it wrote msg2.
        let peer = cfg.check_proof(
            Role::Responder,
            &payload[..n],
            self.hs.get_remote_static(),
            &hh_before,
        )?;
        if let Some(e) = self.expected {
            if e != peer {
                return Err(HandshakeError::UnexpectedPeer {
                    expected: e,
                    got: peer,
                });
            }
        }
        let proof = cfg.proof(Role::Initiator, self.hs.get_handshake_hash());
        let mut out = vec![0u8; HANDSHAKE_MSG_MAX];
        let m = self.hs.write_message(&proof, &mut out)?;
        out.truncate(m);
        Ok((finish(self.hs, cfg.clear, peer)?, out))
    }
}

/// Responder after reading msg1 and sending msg2.
pub struct Responder {
    hs: snow::HandshakeState,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder")
    }
}

impl Responder {
    /// Read msg1; refuse another chain or a flags mismatch; write msg2.
    pub fn accept(
        cfg: &HandshakeConfig,
        msg1: &[u8],
    ) -> Result<(Responder, Vec<u8>), HandshakeError> {
        if msg1.len() > HANDSHAKE_MSG_MAX {
            return Err(HandshakeError::Malformed("msg1 too long"));
        }
        let mut hs = snow::Builder::new(params())
            .local_private_key(&cfg.noise_private)
            .prologue(PROLOGUE)
            .build_responder()?;
        let mut payload = [0u8; HANDSHAKE_MSG_MAX];
        let n = hs.read_message(msg1, &mut payload)?;
        let hello = Hello::decode(&payload[..n])?;
        if hello.version != VERSION {
            return Err(HandshakeError::Version(hello.version));
        }
        if hello.chain_id != cfg.chain_id {
            return Err(HandshakeError::WrongChain);
        }
        if hello.flags != cfg.flags() {
            return Err(HandshakeError::FlagsMismatch);
        }
        let proof = cfg.proof(Role::Responder, hs.get_handshake_hash());
        let mut out = vec![0u8; HANDSHAKE_MSG_MAX];
        let m = hs.write_message(&proof, &mut out)?;
        out.truncate(m);
        Ok((Responder { hs }, out))
    }

    /// Read msg3; check the initiator against the allow-list.
    pub fn finish(
        mut self,
        cfg: &HandshakeConfig,
        msg3: &[u8],
    ) -> Result<Established, HandshakeError> {
        if msg3.len() > HANDSHAKE_MSG_MAX {
            return Err(HandshakeError::Malformed("msg3 too long"));
        }
        let hh_before = self.hs.get_handshake_hash().to_vec();
        let mut payload = [0u8; HANDSHAKE_MSG_MAX];
        let n = self.hs.read_message(msg3, &mut payload)?;
        let peer = cfg.check_proof(
            Role::Initiator,
            &payload[..n],
            self.hs.get_remote_static(),
            &hh_before,
        )?;
        finish(self.hs, cfg.clear, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn cfg(seed: u8, chain: &str, allow: &[u8]) -> HandshakeConfig {
        let allow =
            AllowList::new(allow.iter().map(|s| PeerId::from(&key(*s).public_key()))).unwrap();
        HandshakeConfig::new(ChainId::from_name(chain), key(seed), allow, false).unwrap()
    }

    fn run(
        a: &HandshakeConfig,
        b: &HandshakeConfig,
    ) -> Result<(Established, Established), HandshakeError> {
        let (i, m1) = Initiator::start(a, None)?;
        let (r, m2) = Responder::accept(b, &m1)?;
        let (ea, m3) = i.finish(a, &m2)?;
        let eb = r.finish(b, &m3)?;
        Ok((ea, eb))
    }

    #[test]
    fn members_agree_and_talk() {
        let a = cfg(1, "c", &[1, 2]);
        let b = cfg(2, "c", &[1, 2]);
        let (mut ea, mut eb) = run(&a, &b).unwrap();
        assert_eq!(ea.peer, b.id);
        assert_eq!(eb.peer, a.id);
        let mut sealed = vec![0u8; crate::session::sealed_len(5, true)];
        ea.cipher.seal(b"hello", &mut sealed).unwrap();
        let mut out = Vec::new();
        eb.cipher.open(&sealed, &mut out).unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn refusals() {
        let a = cfg(1, "c", &[1, 2]);
        let b_other_chain = cfg(2, "other", &[1, 2]);
        assert!(matches!(
            run(&a, &b_other_chain),
            Err(HandshakeError::WrongChain)
        ));
        let b_no_a = cfg(2, "c", &[2, 3]);
        assert!(matches!(run(&a, &b_no_a), Err(HandshakeError::NotAllowed(p)) if p == a.id));
        let a_no_b = cfg(1, "c", &[1, 3]);
        let b = cfg(2, "c", &[1, 2]);
        assert!(matches!(run(&a_no_b, &b), Err(HandshakeError::NotAllowed(p)) if p == b.id));
        let mut clear = cfg(1, "c", &[1, 2]);
        clear.clear = true;
        assert!(matches!(
            run(&clear, &b),
            Err(HandshakeError::FlagsMismatch)
        ));
    }

    #[test]
    fn replayed_messages_are_refused() {
        let a = cfg(1, "c", &[1, 2]);
        let b = cfg(2, "c", &[1, 2]);
        let (i, m1) = Initiator::start(&a, None).unwrap();
        let (r, m2) = Responder::accept(&b, &m1).unwrap();
        let (_ea, m3) = i.finish(&a, &m2).unwrap();
        r.finish(&b, &m3).unwrap();
        // Replay both initiator messages against a fresh responder run.
        let (r2, _m2b) = Responder::accept(&b, &m1).unwrap();
        assert!(matches!(r2.finish(&b, &m3), Err(HandshakeError::Noise(_))));
    }

    #[test]
    fn forged_identity_is_refused() {
        // Attacker (key 9) not allowed but claims identity 1: it cannot sign.
        let b = cfg(2, "c", &[1, 2]);
        let mallory = cfg(9, "c", &[1, 2]);
        let mut rng = rand_chacha_free(7);
        let (mut i, m1) = Initiator::start(&mallory, None).unwrap();
        let (r, m2) = Responder::accept(&b, &m1).unwrap();
        let mut payload = [0u8; HANDSHAKE_MSG_MAX];
        i.hs.read_message(&m2, &mut payload).unwrap();
        let mut sig = [0u8; 64];
        rand::RngCore::fill_bytes(&mut rng, &mut sig);
        let fake = IdentityProof {
            identity: PeerId::from(&key(1).public_key()).0,
            signature: sig,
        }
        .encode();
        let mut m3 = vec![0u8; HANDSHAKE_MSG_MAX];
        let n = i.hs.write_message(&fake, &mut m3).unwrap();
        assert!(matches!(
            r.finish(&b, &m3[..n]),
            Err(HandshakeError::BadSignature)
        ));
    }

    fn rand_chacha_free(seed: u64) -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(seed)
    }

    #[test]
    fn garbage_never_panics() {
        let b = cfg(2, "c", &[1, 2]);
        for len in [0usize, 1, 31, 32, 33, 66, 200, 600] {
            let junk = vec![0x5au8; len];
            assert!(Responder::accept(&b, &junk).is_err(), "len {len}");
        }
        assert!(Hello::decode(&[0; 33]).is_err());
        assert!(IdentityProof::decode(&[0; 95]).is_err());
    }
}
