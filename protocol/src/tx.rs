//! The transaction format: one rkyv archive, validated (`bytecheck`) before
//! anything reads it, with strict size and count limits.
//!
//! A transaction is a [`TxBody`] plus one Ed25519 signature per signer. The
//! body names its signers by public key; `signers[0]` is the payer, whose
//! per-account sequence number protects against replay. Every signature
//! covers the same domain-separated signing hash ([`TxBody::signing_hash`]),
//! which is also the transaction id.
//!
//! What a transaction *does* is a call to one ledger module: `module` names
//! it ([`crate::calls::ModuleId`]) and `call` holds the module's own
//! encoding of the call (the built-in modules' formats are in
//! [`crate::calls`]). The envelope knows nothing about the call beyond its
//! length; the module decodes and checks it. A free-form `memo` (bounded)
//! carries references for the payer's back office.

use crate::calls::{EncodedCall, ModuleId};
use crate::receipt::Reason;
use plume_crypto::ed25519::{self, Address};
use plume_crypto::zip215;
use plume_crypto::{hash_parts, Digest, Domain};
use rkyv::rancor;

/// Largest encoded transaction.
pub const TX_BYTES_MAX: usize = 32 * 1024;
/// Most signers of one transaction.
pub const SIGNERS_MAX: usize = 16;
/// Longest chain id.
pub const CHAIN_ID_LEN_MAX: usize = 64;
/// Longest memo in bytes.
pub const MEMO_BYTES_MAX: usize = 1024;
/// Longest module call encoding in bytes.
pub const CALL_BYTES_MAX: usize = 24 * 1024;
/// The native token's asset id (all zero; created assets get hash ids).
pub const NATIVE_ASSET: [u8; 32] = [0; 32];

/// Version tag hashed into the signing hash (changing the format changes it).
const SIGNING_TAG: &[u8] = b"plume/tx/v2";

/// The signed part of a transaction.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TxBody {
    /// Chain id (must equal the chain's).
    pub chain_id: String,
    /// Ed25519 public keys of the signers; `signers[0]` pays and sequences.
    pub signers: Vec<[u8; 32]>,
    /// The payer's next sequence number.
    pub sequence: u64,
    /// Most the payer pays per gas (base fee + tip).
    pub max_fee_per_gas: u64,
    /// Tip per gas to the proposer (capped by max fee - base fee).
    pub priority_fee_per_gas: u64,
    /// Most gas this transaction may use.
    pub gas_limit: u64,
    /// Last block height at which the transaction may execute.
    pub expiry_height: u64,
    /// The ledger module called.
    pub module: ModuleId,
    /// The module's encoding of the call.
    pub call: Vec<u8>,
    /// Free-form reference (at most [`MEMO_BYTES_MAX`] bytes); not interpreted.
    pub memo: Vec<u8>,
}

/// A body and one signature per signer, in signer order.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The signed body.
    pub body: TxBody,
    /// Ed25519 signatures over [`TxBody::signing_hash`], one per signer.
    pub signatures: Vec<[u8; 64]>,
}

/// A transaction that cannot be decoded or breaks a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// Longer than TX_BYTES_MAX.
    #[error("transaction is {0} bytes, at most {TX_BYTES_MAX}")]
    TooLarge(usize),
    /// Not a valid archive.
    #[error("transaction does not decode: {0}")]
    Decode(String),
    /// A limit or well-formedness rule is broken.
    #[error("malformed transaction: {0:?}")]
    Malformed(Reason),
    /// A signature does not verify (or a key/signature does not parse).
    #[error("signature {0} does not verify")]
    BadSignature(usize),
}

/// The id of the asset created by `issuer` with sequence `sequence`.
pub fn asset_id(issuer: &[u8; 32], sequence: u64) -> [u8; 32] {
    hash_parts(
        Domain::State,
        &[b"asset-id", issuer, &sequence.to_le_bytes()],
    )
    .0
}

/// Address of a raw Ed25519 public key, equal to
/// `Address::from_ed25519` without decompressing the point (a test pins
/// the equality).
pub fn address_of_key(pk: &[u8; 32]) -> Address {
    Address(hash_parts(Domain::Address, &[&[0u8], pk]).0)
}

impl TxBody {
    /// A body calling `call` with the other fields zero/empty (callers
    /// then set chain id, signers, sequence and fees).
    pub fn for_call(call: impl Into<EncodedCall>) -> TxBody {
        let call = call.into();
        TxBody {
            chain_id: String::new(),
            signers: Vec::new(),
            sequence: 0,
            max_fee_per_gas: 0,
            priority_fee_per_gas: 0,
            gas_limit: 0,
            expiry_height: 0,
            module: call.module,
            call: call.bytes,
            memo: Vec::new(),
        }
    }

    /// The rkyv bytes of the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("serialising an owned body into memory cannot fail")
            .into_vec()
    }

    /// The hash every signer signs; also the transaction id.
    pub fn signing_hash(&self) -> Digest {
        hash_parts(Domain::Tx, &[SIGNING_TAG, &self.to_bytes()])
    }

    /// Stateless well-formedness of the envelope: chain id, signer count and
    /// distinctness, call and memo lengths. (The call's own rules are its
    /// module's.)
    pub fn check_limits(&self) -> Result<(), Reason> {
        if self.chain_id.is_empty() || self.chain_id.len() > CHAIN_ID_LEN_MAX {
            return Err(Reason::WrongChain);
        }
        if self.signers.is_empty() || self.signers.len() > SIGNERS_MAX {
            return Err(Reason::SignerCount);
        }
        for (i, s) in self.signers.iter().enumerate() {
            if self.signers[..i].contains(s) {
                return Err(Reason::DuplicateSigner);
            }
        }
        if self.call.len() > CALL_BYTES_MAX {
            return Err(Reason::MalformedCall);
        }
        if self.memo.len() > MEMO_BYTES_MAX {
            return Err(Reason::MemoTooLong);
        }
        Ok(())
    }
}

impl Transaction {
    /// Sign `body` with `keys` (in signer order; `body.signers` must list
    /// their public keys in the same order).
    pub fn sign(body: TxBody, keys: &[&ed25519::SigningKey]) -> Transaction {
        let h = body.signing_hash();
        let signatures = keys.iter().map(|k| k.sign(&h.0).to_bytes()).collect();
        Transaction { body, signatures }
    }

    /// The rkyv bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        rkyv::to_bytes::<rancor::Error>(self)
            .expect("serialising an owned transaction into memory cannot fail")
            .into_vec()
    }

    /// Decode untrusted bytes: size limit, archive validation, then the
    /// stateless limits (signature count included). Signatures are not
    /// verified here: see [`Transaction::verify_signatures`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Transaction, TxError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(TxError::TooLarge(bytes.len()));
        }
        let tx = crate::archive::with_aligned(bytes, |b| {
            rkyv::from_bytes::<Transaction, rancor::Error>(b)
                .map_err(|e| TxError::Decode(e.to_string()))
        })?;
        tx.check_limits().map_err(TxError::Malformed)?;
        Ok(tx)
    }

    /// Stateless limits of the body plus one signature per signer.
    pub fn check_limits(&self) -> Result<(), Reason> {
        self.body.check_limits()?;
        if self.signatures.len() != self.body.signers.len() {
            return Err(Reason::SignatureCount);
        }
        Ok(())
    }

    /// Verify every signature alone under the chain's rule
    /// (`plume_crypto::zip215`, which batch verification agrees with
    /// exactly). Batch callers use [`verify_batch`].
    pub fn verify_signatures(&self) -> Result<(), TxError> {
        if self.signatures.len() != self.body.signers.len() {
            return Err(TxError::Malformed(Reason::SignatureCount));
        }
        let h = self.body.signing_hash();
        for (i, (pk, sig)) in self.body.signers.iter().zip(&self.signatures).enumerate() {
            if !zip215::verify(pk, &h.0, sig) {
                return Err(TxError::BadSignature(i));
            }
        }
        Ok(())
    }
}

/// A transaction with what every stage derives from it computed once (on
/// the signature-verification core): its hash, its signers' addresses and,
/// once a ledger registry decoded it, its module call.
#[derive(Clone, Debug)]
pub struct PreparedTx {
    /// The transaction.
    pub tx: Transaction,
    /// Signing hash = transaction id.
    pub hash: Digest,
    /// Addresses of `tx.body.signers`, same order.
    pub signer_addresses: Vec<Address>,
    /// The call as decoded by a registry, kept so execution does not decode
    /// it again (see [`DecodedCall`]). Not part of the transaction's
    /// identity: equality ignores it.
    pub decoded: Option<DecodedCall>,
}

impl PartialEq for PreparedTx {
    fn eq(&self, other: &Self) -> bool {
        self.tx == other.tx
            && self.hash == other.hash
            && self.signer_addresses == other.signer_addresses
    }
}

impl Eq for PreparedTx {}

/// A module call decoded once, type-erased (this crate does not know the
/// modules' types; the execution crate stores and reads it). `registry`
/// identifies the registry that decoded it, so a different registry
/// decodes again instead of trusting it.
#[derive(Clone)]
pub struct DecodedCall {
    /// Identity of the registry that decoded the call.
    pub registry: u64,
    /// The decoding result, as the registry stores it.
    pub value: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for DecodedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecodedCall(registry {})", self.registry)
    }
}

impl PreparedTx {
    /// Compute the hash and addresses.
    pub fn new(tx: Transaction) -> PreparedTx {
        let hash = tx.body.signing_hash();
        let signer_addresses = tx.body.signers.iter().map(address_of_key).collect();
        PreparedTx {
            tx,
            hash,
            signer_addresses,
            decoded: None,
        }
    }

    /// The payer (first signer); `None` for a transaction without signers.
    pub fn payer(&self) -> Option<&Address> {
        self.signer_addresses.first()
    }

    /// Whether `account` signed. Addresses are compared with the top bit
    /// of their first byte cleared: the ledger keeps an account's record
    /// under that key, so two addresses that differ only there are one
    /// account (see the execution crate's state layout).
    pub fn signed_by(&self, account: &[u8; 32]) -> bool {
        let k = |a: &[u8; 32]| {
            let mut k = *a;
            k[0] &= 0x7f;
            k
        };
        let want = k(account);
        self.signer_addresses.iter().any(|a| k(&a.0) == want)
    }
}

/// Verify the signatures of many transactions at once (batch verification
/// under the chain's rule, `plume_crypto::zip215`). Returns the sorted
/// indices of the transactions with a bad or missing signature: exactly
/// those [`Transaction::verify_signatures`] refuses, whatever else is in
/// the batch.
pub fn verify_batch(txs: &[Transaction]) -> Vec<usize> {
    let mut bad = Vec::new();
    let hashes: Vec<Digest> = txs.iter().map(|t| t.body.signing_hash()).collect();
    let mut items = Vec::new();
    let mut owners = Vec::new();
    for (i, tx) in txs.iter().enumerate() {
        if tx.signatures.len() != tx.body.signers.len() || tx.signatures.is_empty() {
            bad.push(i);
            continue;
        }
        for (pk, sig) in tx.body.signers.iter().zip(&tx.signatures) {
            items.push(zip215::Item {
                key: pk,
                msg: &hashes[i].0,
                sig,
            });
            owners.push(i);
        }
    }
    if let Err(failed) = zip215::verify_batch(&items) {
        bad.extend(failed.into_iter().map(|j| owners[j]));
    }
    bad.sort_unstable();
    bad.dedup();
    bad
}
