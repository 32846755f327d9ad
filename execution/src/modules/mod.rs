//! Ledger modules: one file per ledger feature behind one trait.
//!
//! A transaction calls one module ([`plume_protocol::tx::TxBody::module`]).
//! The block executor ([`crate::block`]) owns what every transaction shares
//! (envelope limits, chain id, expiry, the fee cap, the sequence number and
//! the fee charge, the block gas budget, conservation checks); a module owns
//! what its calls mean:
//! - [`Module::decode`]: its call bytes to a [`Call`] (stateless rules
//!   included), or a reason code;
//! - [`Call::gas`]: gas by the call's shape (never by state, so the block's
//!   gas budget is settled before any state is read);
//! - [`Call::touched`]: the state resources the call may read or write, so
//!   the scheduler can run calls that share none at the same time;
//! - [`Call::authorize`]: stateless signer checks;
//! - [`Call::apply`]: its effect on the [`Ledger`] (journaled: a failed call
//!   is undone, its fee stays charged);
//! - [`Module::query`]: read-only queries by name (served by the node's API
//!   as `plume_query`).
//!
//! Adding a module is one file here plus one line in [`standard`]'s list
//! (or one `.with(...)` on a [`Registry`] outside this crate). State keys
//! of a module's own records come from [`module_key`] (prefixed by its id,
//! so modules never alias each other or the core records); its reason and
//! cause codes come from its own range (see `plume_protocol::receipt`).

use crate::state::{AssetInfo, Overlay};
use crate::ExecError;
use plume_crypto::ed25519::Address;
use plume_crypto::Digest;
use plume_protocol::calls::ModuleId;
use plume_protocol::{Cause, Event, Reason};
use plume_storage::StateKey;
use std::fmt::Debug;
use std::sync::Arc;

/// What a call sees of its transaction.
#[derive(Clone, Copy, Debug)]
pub struct TxInfo<'a> {
    /// Transaction id.
    pub hash: &'a Digest,
    /// The payer (first signer).
    pub payer: &'a [u8; 32],
    /// Every signer's address, payer first.
    pub signers: &'a [Address],
    /// The payer's sequence number this transaction uses.
    pub sequence: u64,
    /// Height of the block executing it.
    pub height: u64,
    /// Time of the block executing it (ms since the Unix epoch, from the
    /// header; 0 in a mempool precheck).
    pub time_ms: u64,
    /// The chain id (the transaction's, equal to the chain's).
    pub chain_id: &'a str,
    /// The parameters in force for the block (governance may change them).
    pub params: &'a crate::Params,
}

impl TxInfo<'_> {
    /// Whether `account` signed (compared by account key: two addresses
    /// that differ only in the top bit are one account).
    pub fn signed_by(&self, account: &[u8; 32]) -> bool {
        let k = crate::state::account_key(account);
        self.signers
            .iter()
            .any(|a| crate::state::account_key(&a.0) == k)
    }
}

/// The state a call reads and writes: an overlay over the authenticated
/// state for one shard of one block, journaled per transaction.
///
/// Every `set_*` must follow a read of the same key in the same
/// transaction (the overlay learns the original value on the read).
pub trait Ledger {
    /// Balance of `account` in `asset` (the native asset is the account
    /// record's PLUME balance).
    fn balance(&mut self, account: &[u8; 32], asset: &[u8; 32]) -> Result<u128, ExecError>;
    /// Set a balance read before.
    fn set_balance(&mut self, account: &[u8; 32], asset: &[u8; 32], amount: u128);
    /// An issued asset's record.
    fn asset(&mut self, id: &[u8; 32]) -> Result<Option<AssetInfo>, ExecError>;
    /// Set an asset record read before.
    fn set_asset(&mut self, id: &[u8; 32], info: AssetInfo);
    /// A module record (key from [`module_key`]).
    fn record(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, ExecError>;
    /// Set (or delete, `None`) a module record read before.
    fn set_record(&mut self, key: &StateKey, value: Option<Vec<u8>>);
}

impl dyn Ledger + '_ {
    /// Take `amount` from `who`; an event records it.
    pub fn debit(
        &mut self,
        who: &[u8; 32],
        asset: &[u8; 32],
        amount: u128,
        cause: Cause,
        events: &mut Vec<Event>,
    ) -> Result<Result<(), Reason>, ExecError> {
        self.change(who, asset, amount, false, cause, events)
    }

    /// Give `amount` to `who`; an event records it.
    pub fn credit(
        &mut self,
        who: &[u8; 32],
        asset: &[u8; 32],
        amount: u128,
        cause: Cause,
        events: &mut Vec<Event>,
    ) -> Result<Result<(), Reason>, ExecError> {
        self.change(who, asset, amount, true, cause, events)
    }

    fn change(
        &mut self,
        who: &[u8; 32],
        asset: &[u8; 32],
        amount: u128,
        credit: bool,
        cause: Cause,
        events: &mut Vec<Event>,
    ) -> Result<Result<(), Reason>, ExecError> {
        let b = self.balance(who, asset)?;
        let nb = if credit {
            b.checked_add(amount).ok_or(Reason::Overflow)
        } else {
            b.checked_sub(amount).ok_or(Reason::InsufficientBalance)
        };
        let nb = match nb {
            Ok(v) => v,
            Err(r) => return Ok(Err(r)),
        };
        self.set_balance(who, asset, nb);
        events.push(Event {
            account: *who,
            asset: *asset,
            credit,
            amount,
            cause,
        });
        Ok(Ok(()))
    }
}

/// The block executor's overlay is the ledger calls see.
impl<S: plume_storage::AuthenticatedState + ?Sized> Ledger for Overlay<'_, S> {
    fn balance(&mut self, account: &[u8; 32], asset: &[u8; 32]) -> Result<u128, ExecError> {
        Overlay::balance(self, account, asset)
    }
    fn set_balance(&mut self, account: &[u8; 32], asset: &[u8; 32], amount: u128) {
        Overlay::set_balance(self, account, asset, amount)
    }
    fn asset(&mut self, id: &[u8; 32]) -> Result<Option<AssetInfo>, ExecError> {
        Overlay::asset(self, id)
    }
    fn set_asset(&mut self, id: &[u8; 32], info: AssetInfo) {
        Overlay::set_asset(self, id, info)
    }
    fn record(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, ExecError> {
        Overlay::record(self, key)
    }
    fn set_record(&mut self, key: &StateKey, value: Option<Vec<u8>>) {
        Overlay::set_record(self, key, value)
    }
}

/// The outcome of applying a call: `Err(ExecError)` stops the block (the
/// state failed), `Ok(Err(reason))` fails only the transaction.
pub type CallResult = Result<Result<(), Reason>, ExecError>;

/// `?` for the inner reason while the outer error is a storage failure.
#[macro_export]
macro_rules! tri {
    ($e:expr) => {
        match $e? {
            Ok(v) => v,
            Err(reason) => return Ok(Err(reason)),
        }
    };
}

/// A decoded call of one module.
pub trait Call: Debug + Send + Sync {
    /// Gas of the call by its shape (added to the envelope's intrinsic gas).
    fn gas(&self) -> u64;
    /// Every state resource the call may read or write (account keys, see
    /// [`crate::state::account_key`], asset ids, or module record keys),
    /// appended to `out`. The payer's account is added by the executor. A
    /// needless resource only costs parallelism; a missing one breaks the
    /// scheduler's guarantee (the merge asserts disjointness).
    fn touched(&self, tx: &TxInfo<'_>, out: &mut Vec<[u8; 32]>);
    /// Accounts (addresses) the call names besides its signers, whose
    /// per-account records (the compliance registry entry and window
    /// counters) the admission stage derives the keys of ahead, off the
    /// execution path. A hint: a missing one only costs a hash later.
    fn named_accounts(&self, _out: &mut Vec<[u8; 32]>) {}
    /// Stateless checks of the signers (e.g. every debited account signed).
    fn authorize(&self, _tx: &TxInfo<'_>) -> Result<(), Reason> {
        Ok(())
    }
    /// Apply the call. Balance changes go to `events`.
    fn apply(
        &self,
        tx: &TxInfo<'_>,
        ledger: &mut dyn Ledger,
        events: &mut Vec<Event>,
    ) -> CallResult;
}

/// A call decoded for this block, or borrowed from the transaction's cache.
#[derive(Debug)]
pub enum CallRef<'a> {
    /// Cached in the prepared transaction.
    Borrowed(&'a (dyn Call + 'static)),
    /// Decoded now.
    Owned(Box<dyn Call>),
}

impl std::ops::Deref for CallRef<'_> {
    type Target = dyn Call;
    fn deref(&self) -> &(dyn Call + 'static) {
        match self {
            CallRef::Borrowed(c) => *c,
            CallRef::Owned(c) => &**c,
        }
    }
}

/// Read-only access for queries.
pub trait StateRead {
    /// The value under `key`.
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, ExecError>;
}

impl<S: plume_storage::AuthenticatedState + ?Sized> StateRead for S {
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, ExecError> {
        plume_storage::AuthenticatedState::get(self, key).map_err(ExecError::storage)
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No module with that name, or the module has no such query.
    #[error("unknown query {0}")]
    Unknown(String),
    /// Bad arguments.
    #[error("bad query arguments: {0}")]
    BadArgs(String),
    /// The state failed.
    #[error(transparent)]
    State(#[from] ExecError),
}

/// One ledger module.
pub trait Module: Send + Sync + 'static {
    /// Its id in transactions.
    fn id(&self) -> ModuleId;
    /// Its name (queries, logs).
    fn name(&self) -> &'static str;
    /// Decode untrusted call bytes, stateless rules included.
    fn decode(&self, call: &[u8]) -> Result<Box<dyn Call>, Reason>;
    /// Name of one of this module's reason codes.
    fn reason_name(&self, _reason: Reason) -> Option<&'static str> {
        None
    }
    /// Name of one of this module's cause codes.
    fn cause_name(&self, _cause: Cause) -> Option<&'static str> {
        None
    }
    /// Names of the queries this module answers.
    fn queries(&self) -> &'static [&'static str] {
        &[]
    }
    /// Answer query `method` with string `args` (hex ids and the like).
    fn query(
        &self,
        _state: &dyn StateRead,
        method: &str,
        _args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        Err(QueryError::Unknown(format!("{}.{method}", self.name())))
    }
}

/// The modules a chain runs, by id.
#[derive(Clone)]
pub struct Registry {
    modules: Vec<Arc<dyn Module>>,
    /// Changes whenever the module set does (cached decodings name it).
    id: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            modules: Vec::new(),
            id: next_registry_id(),
        }
    }
}

fn next_registry_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// What a registry caches in `PreparedTx::decoded`: the decoded call and
/// the derived keys of its parties' per-account records.
struct Decoding {
    call: Result<Box<dyn Call>, Reason>,
    keys: Vec<PartyKeys>,
}

/// The state keys of one account's per-account records, derived (hashed)
/// once when the transaction is prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartyKeys {
    /// The account's key ([`crate::state::account_key`]).
    pub account: StateKey,
    /// Its compliance registry entry.
    pub entry: StateKey,
    /// Its compliance window counters.
    pub counter: StateKey,
}

impl PartyKeys {
    /// Derive them for `address`.
    pub fn of(address: &[u8; 32]) -> PartyKeys {
        PartyKeys {
            account: crate::state::account_key(address),
            entry: compliance::entry_key(address),
            counter: compliance::counter_key(address),
        }
    }
}

impl Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.modules.iter().map(|m| (m.id(), m.name())))
            .finish()
    }
}

impl Registry {
    /// No modules.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Add a module. Panics if its id or name is taken: two modules with
    /// one id would split the chain's meaning of a transaction, a bug in
    /// the node's own registration.
    #[must_use]
    pub fn with(mut self, m: impl Module) -> Registry {
        assert!(
            self.modules
                .iter()
                .all(|o| o.id() != m.id() && o.name() != m.name()),
            "module {} ({}) registered twice",
            m.id(),
            m.name()
        );
        self.modules.push(Arc::new(m));
        self.modules.sort_by_key(|m| m.id());
        self.id = next_registry_id();
        self
    }

    /// Decode `ptx`'s call once and keep the result in it, so execution
    /// does not decode it again (the node does this on the signature core).
    /// Deterministic: a cached decoding equals a fresh one.
    pub fn prepare(&self, ptx: &mut plume_protocol::PreparedTx) {
        let call = self.decode(ptx.tx.body.module, &ptx.tx.body.call);
        let mut named: Vec<[u8; 32]> = ptx.signer_addresses.iter().map(|a| a.0).collect();
        if let Ok(c) = &call {
            c.named_accounts(&mut named);
        }
        let mut keys: Vec<PartyKeys> = Vec::with_capacity(named.len());
        for a in &named {
            let k = crate::state::account_key(a);
            if !keys.iter().any(|p| p.account == k) {
                keys.push(PartyKeys::of(a));
            }
        }
        let d = Decoding { call, keys };
        ptx.decoded = Some(plume_protocol::tx::DecodedCall {
            registry: self.id,
            value: Arc::new(d),
        });
    }

    /// `ptx`'s call: the decoding this registry cached in it, else a fresh
    /// one.
    pub fn call_of<'a>(&self, ptx: &'a plume_protocol::PreparedTx) -> Result<CallRef<'a>, Reason> {
        if let Some(d) = &ptx.decoded {
            if d.registry == self.id {
                if let Some(r) = d.value.downcast_ref::<Decoding>() {
                    return match &r.call {
                        Ok(c) => Ok(CallRef::Borrowed(&**c)),
                        Err(reason) => Err(*reason),
                    };
                }
            }
        }
        self.decode(ptx.tx.body.module, &ptx.tx.body.call)
            .map(CallRef::Owned)
    }

    /// The per-account record keys [`Registry::prepare`] derived for
    /// `ptx`'s signers and named accounts (empty if it was not prepared
    /// by this registry).
    pub fn party_keys<'a>(&self, ptx: &'a plume_protocol::PreparedTx) -> &'a [PartyKeys] {
        match &ptx.decoded {
            Some(d) if d.registry == self.id => d
                .value
                .downcast_ref::<Decoding>()
                .map_or(&[], |r| r.keys.as_slice()),
            _ => &[],
        }
    }

    /// The module with this id.
    pub fn get(&self, id: ModuleId) -> Option<&dyn Module> {
        self.modules
            .binary_search_by_key(&id, |m| m.id())
            .ok()
            .map(|i| &*self.modules[i])
    }

    /// The module with this name.
    pub fn by_name(&self, name: &str) -> Option<&dyn Module> {
        self.modules.iter().find(|m| m.name() == name).map(|m| &**m)
    }

    /// Every module, by id.
    pub fn iter(&self) -> impl Iterator<Item = &dyn Module> {
        self.modules.iter().map(|m| &**m)
    }

    /// Decode a call of module `id`.
    pub fn decode(&self, id: ModuleId, call: &[u8]) -> Result<Box<dyn Call>, Reason> {
        self.get(id).ok_or(Reason::UnknownModule)?.decode(call)
    }

    /// Name of a reason code: core codes first, then the modules'.
    pub fn reason_name(&self, r: Reason) -> String {
        r.core_name()
            .or_else(|| self.iter().find_map(|m| m.reason_name(r)))
            .map_or_else(|| format!("Reason({})", r.0), str::to_string)
    }

    /// Name of a cause code: core codes first, then the modules'.
    pub fn cause_name(&self, c: Cause) -> String {
        c.core_name()
            .or_else(|| self.iter().find_map(|m| m.cause_name(c)))
            .map_or_else(|| format!("Cause({})", c.0), str::to_string)
    }

    /// Run query `module.method`.
    pub fn query(
        &self,
        state: &dyn StateRead,
        module: &str,
        method: &str,
        args: &[String],
    ) -> Result<serde_json::Value, QueryError> {
        self.by_name(module)
            .ok_or_else(|| QueryError::Unknown(format!("{module}.{method}")))?
            .query(state, method, args)
    }
}

/// The state key of a module's own record: `hash(State, "module" || id ||
/// parts...)` with the top bit set (the derived-record namespace), so no
/// account key and no other module's record can equal it.
pub fn module_key(module: ModuleId, parts: &[&[u8]]) -> StateKey {
    let id = module.to_le_bytes();
    let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 2);
    all.push(b"module");
    all.push(&id);
    all.extend_from_slice(parts);
    let mut k = plume_crypto::hash_parts(plume_crypto::Domain::State, &all).0;
    k[0] |= 0x80;
    k
}

/// rkyv `encode` / `decode` for a module's state record type (decoding
/// validates the archive; a bad one is corrupt state, never a panic).
macro_rules! rkyv_record {
    ($t:ty, $what:literal) => {
        impl $t {
            /// The stored bytes.
            pub fn encode(&self) -> Vec<u8> {
                rkyv::to_bytes::<rkyv::rancor::Error>(self)
                    .expect("serialising an owned record into memory cannot fail")
                    .into_vec()
            }
            /// Decode stored bytes.
            pub fn decode(bytes: &[u8]) -> Result<Self, $crate::ExecError> {
                let mut a = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
                a.extend_from_slice(bytes);
                rkyv::from_bytes::<$t, rkyv::rancor::Error>(&a)
                    .map_err(|_| $crate::ExecError::CorruptState($what))
            }
        }
    };
}

pub mod params;
pub mod revenue;

/// Declares the built-in modules: each line is `file => type`, where
/// `file.rs` in this directory defines the unit struct `type`
/// implementing [`Module`].
macro_rules! standard_modules {
    ($($file:ident => $ty:ident),* $(,)?) => {
        $(pub mod $file;)*
        /// The registry of every built-in module (what the node runs).
        pub fn standard() -> Registry {
            Registry::empty()$(.with($file::$ty))*
        }
    };
}

standard_modules! {
    transfer => Transfers,
    asset => Assets,
    settlement => Settlements,
    batch_pay => BatchPayments,
    compliance => Compliance,
    stake => Stake,
    governance => Governance,
    vesting => Vesting,
}

/// Parse a 32-byte hex argument of a query.
pub fn hex32_arg(args: &[String], i: usize, name: &str) -> Result<[u8; 32], QueryError> {
    let s = args
        .get(i)
        .ok_or_else(|| QueryError::BadArgs(format!("missing {name}")))?;
    let v = hex::decode(s.trim_start_matches("0x"))
        .map_err(|_| QueryError::BadArgs(format!("{name} is not hex")))?;
    v.try_into()
        .map_err(|_| QueryError::BadArgs(format!("{name} must be 32 bytes")))
}
