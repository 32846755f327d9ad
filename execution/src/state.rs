//! Key layout and value encodings of the ledger in the authenticated state,
//! and the in-memory overlay a block executes through.
//!
//! Keys (all 32 bytes) are split in two namespaces by their top bit, so no
//! account can ever alias a ledger record, whatever 32 bytes a client names
//! as a recipient:
//! - account record ([`account_key`]): the address with the top bit of its
//!   first byte cleared (no hashing on the hot path); value: sequence u64 LE
//!   || PLUME balance u128 LE (24 bytes). Two addresses share a record only
//!   if they differ in that one bit: finding a key for such a twin of a real
//!   address is a 255-bit preimage search.
//! - derived records, top bit set: asset balance
//!   `hash(State, "bal" || account key || asset)` (u128 LE); asset record
//!   `hash(State, "asset" || asset id)` (issuer (32) || supply u128 LE ||
//!   decimals u8 || policy u8 (0 fixed, 1 mintable) || symbol length u8 ||
//!   symbol); ledger metadata `hash(State, "ledger/meta")` ([`LedgerMeta`]).
//!
//! Values are fixed-width little-endian records rather than rkyv archives:
//! they are read on every transaction and a 24-byte record decodes with two
//! loads, no validation pass. Zero records (balance 0, sequence 0) are
//! deleted, so the root does not depend on whether an account was touched.

use crate::{ExecError, Params};
use plume_crypto::ed25519::Address;
use plume_crypto::{hash_parts, Domain};
use plume_protocol::calls::{SupplyPolicy, SYMBOL_LEN_MAX};
use plume_protocol::tx::NATIVE_ASSET;
use plume_storage::{AuthenticatedState, StateKey, StateWrite};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Most genesis allocations (mirrors the node's ALLOCS_MAX).
pub const GENESIS_ALLOCS_MAX: usize = 100_000;

/// Key of an account record (and the account's identity everywhere in
/// execution): the address with the top bit cleared.
pub fn account_key(address: &[u8; 32]) -> StateKey {
    plume_protocol::account::account_key(address)
}

/// A derived record's key: a hash with the top bit set.
fn derived(parts: &[&[u8]]) -> StateKey {
    let mut k = hash_parts(Domain::State, parts).0;
    k[0] |= 0x80;
    k
}

/// Key of an account's asset balance.
pub fn balance_key(account: &[u8; 32], asset: &[u8; 32]) -> StateKey {
    derived(&[b"bal", &account_key(account), asset])
}

/// Key of an asset record.
pub fn asset_key(asset: &[u8; 32]) -> StateKey {
    derived(&[b"asset", asset])
}

/// Key of the ledger metadata.
pub fn meta_key() -> StateKey {
    derived(&[b"ledger/meta"])
}

/// Sequence and PLUME balance of an account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountRecord {
    /// Next sequence number the account's transactions must carry.
    pub sequence: u64,
    /// PLUME balance.
    pub balance: u128,
}

impl AccountRecord {
    /// Encoded length.
    pub const LEN: usize = 24;

    /// Encode (`None` for the all-zero record, which is deleted).
    pub fn encode(&self) -> Option<Vec<u8>> {
        plume_protocol::account::encode_account_value(self.sequence, self.balance)
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Self, ExecError> {
        let (sequence, balance) = plume_protocol::account::decode_account_value(b)
            .ok_or(ExecError::CorruptState("account record length"))?;
        Ok(AccountRecord { sequence, balance })
    }
}

fn encode_amount(v: u128) -> Option<Vec<u8>> {
    (v != 0).then(|| v.to_le_bytes().to_vec())
}

fn decode_amount(b: &[u8]) -> Result<u128, ExecError> {
    let a: [u8; 16] = b
        .try_into()
        .map_err(|_| ExecError::CorruptState("balance length"))?;
    Ok(u128::from_le_bytes(a))
}

/// An issued asset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetInfo {
    /// The only account that may mint or burn.
    pub issuer: [u8; 32],
    /// Current supply.
    pub supply: u128,
    /// Display decimals.
    pub decimals: u8,
    /// Supply rule.
    pub policy: SupplyPolicy,
    /// Ticker.
    pub symbol: String,
}

impl AssetInfo {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(51 + self.symbol.len());
        v.extend_from_slice(&self.issuer);
        v.extend_from_slice(&self.supply.to_le_bytes());
        v.push(self.decimals);
        v.push(match self.policy {
            SupplyPolicy::Fixed => 0,
            SupplyPolicy::IssuerMintable => 1,
        });
        v.push(self.symbol.len() as u8);
        v.extend_from_slice(self.symbol.as_bytes());
        v
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Self, ExecError> {
        let bad = ExecError::CorruptState("asset record");
        if b.len() < 51 {
            return Err(bad);
        }
        let sym_len = b[50] as usize;
        if sym_len > SYMBOL_LEN_MAX || b.len() != 51 + sym_len {
            return Err(bad);
        }
        let policy = match b[49] {
            0 => SupplyPolicy::Fixed,
            1 => SupplyPolicy::IssuerMintable,
            _ => return Err(bad),
        };
        Ok(AssetInfo {
            issuer: b[..32].try_into().expect("32 bytes"),
            supply: u128::from_le_bytes(b[32..48].try_into().expect("16 bytes")),
            decimals: b[48],
            policy,
            symbol: String::from_utf8(b[51..].to_vec()).map_err(|_| bad)?,
        })
    }
}

/// Chain-wide ledger state: height, base fee and PLUME supply accounting.
/// Invariant (asserted after every block): the sum of all PLUME balances
/// equals `genesis_supply + minted - burned`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerMeta {
    /// Height of the last applied block (0: genesis).
    pub height: u64,
    /// Base fee per gas of the next block.
    pub base_fee_per_gas: u64,
    /// PLUME allocated at genesis.
    pub genesis_supply: u128,
    /// PLUME minted since genesis (no issuance exists yet: stays 0).
    pub minted: u128,
    /// PLUME burned since genesis (fee burn).
    pub burned: u128,
}

impl LedgerMeta {
    /// Encoded length.
    pub const LEN: usize = 64;

    /// Total PLUME supply.
    pub fn total_supply(&self) -> u128 {
        self.genesis_supply + self.minted - self.burned
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&self.height.to_le_bytes());
        v.extend_from_slice(&self.base_fee_per_gas.to_le_bytes());
        v.extend_from_slice(&self.genesis_supply.to_le_bytes());
        v.extend_from_slice(&self.minted.to_le_bytes());
        v.extend_from_slice(&self.burned.to_le_bytes());
        v
    }

    /// Decode.
    pub fn decode(b: &[u8]) -> Result<Self, ExecError> {
        if b.len() != Self::LEN {
            return Err(ExecError::CorruptState("ledger meta length"));
        }
        let m = LedgerMeta {
            height: u64::from_le_bytes(b[0..8].try_into().expect("8")),
            base_fee_per_gas: u64::from_le_bytes(b[8..16].try_into().expect("8")),
            genesis_supply: u128::from_le_bytes(b[16..32].try_into().expect("16")),
            minted: u128::from_le_bytes(b[32..48].try_into().expect("16")),
            burned: u128::from_le_bytes(b[48..64].try_into().expect("16")),
        };
        if m.genesis_supply.checked_add(m.minted).is_none()
            || m.burned > m.genesis_supply + m.minted
        {
            return Err(ExecError::CorruptState("ledger meta supply"));
        }
        Ok(m)
    }
}

/// Read the ledger metadata.
pub fn read_ledger_meta<S: AuthenticatedState + ?Sized>(
    state: &S,
) -> Result<LedgerMeta, ExecError> {
    match state.get(&meta_key()).map_err(ExecError::storage)? {
        Some(b) => LedgerMeta::decode(&b),
        None => Err(ExecError::NoGenesis),
    }
}

/// Read an account record.
pub fn read_account<S: AuthenticatedState + ?Sized>(
    state: &S,
    account: &Address,
) -> Result<AccountRecord, ExecError> {
    match state
        .get(&account_key(&account.0))
        .map_err(ExecError::storage)?
    {
        Some(b) => AccountRecord::decode(&b),
        None => Ok(AccountRecord::default()),
    }
}

/// Read a balance of any asset (NATIVE_ASSET for PLUME).
pub fn read_balance<S: AuthenticatedState + ?Sized>(
    state: &S,
    account: &Address,
    asset: &[u8; 32],
) -> Result<u128, ExecError> {
    if asset == &NATIVE_ASSET {
        return Ok(read_account(state, account)?.balance);
    }
    match state
        .get(&balance_key(&account.0, asset))
        .map_err(ExecError::storage)?
    {
        Some(b) => decode_amount(&b),
        None => Ok(0),
    }
}

/// Read an asset record.
pub fn read_asset<S: AuthenticatedState + ?Sized>(
    state: &S,
    asset: &[u8; 32],
) -> Result<Option<AssetInfo>, ExecError> {
    match state.get(&asset_key(asset)).map_err(ExecError::storage)? {
        Some(b) => AssetInfo::decode(&b).map(Some),
        None => Ok(None),
    }
}

/// The writes that create the genesis state: PLUME allocations and the
/// ledger metadata (height 0, `base_fee_initial`). Sorted by key.
pub fn genesis_writes(
    params: &Params,
    allocs: &[(Address, u128)],
) -> Result<Vec<StateWrite>, ExecError> {
    params.validate()?;
    if allocs.len() > GENESIS_ALLOCS_MAX {
        return Err(ExecError::BadGenesis("too many allocations"));
    }
    let mut supply: u128 = 0;
    let mut writes: Vec<StateWrite> = Vec::with_capacity(allocs.len() + 1);
    for (addr, amount) in allocs {
        if *amount == 0 {
            return Err(ExecError::BadGenesis("zero allocation"));
        }
        supply = supply
            .checked_add(*amount)
            .ok_or(ExecError::BadGenesis("supply overflows u128"))?;
        let rec = AccountRecord {
            sequence: 0,
            balance: *amount,
        };
        writes.push((account_key(&addr.0), rec.encode()));
    }
    let meta = LedgerMeta {
        height: 0,
        base_fee_per_gas: params.base_fee_initial,
        genesis_supply: supply,
        minted: 0,
        burned: 0,
    };
    writes.push((meta_key(), Some(meta.encode())));
    writes.sort_by_key(|w| w.0);
    if writes.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(ExecError::BadGenesis(
            "duplicate address (or two addresses sharing an account key)",
        ));
    }
    Ok(writes)
}

/// Sort writes by key. Keys are hashes, so comparing their first eight
/// bytes as an integer decides almost every comparison without a memcmp.
pub(crate) fn sort_writes(w: &mut [StateWrite]) {
    let head = |k: &StateKey| u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
    w.sort_unstable_by(|a, b| head(&a.0).cmp(&head(&b.0)).then_with(|| a.0.cmp(&b.0)));
}

/// Hasher for keys that are already uniform hashes (addresses, asset ids):
/// a fixed-key multiply-rotate mix of the bytes. Fixed so the core has no
/// randomness; iteration order never reaches an output (writes are sorted).
#[derive(Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(K);
        }
    }

    fn write_usize(&mut self, _: usize) {
        // Length prefixes of fixed-size arrays carry no information.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed by hashes.
pub type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

#[derive(Clone, Debug)]
pub(crate) struct Slot<T> {
    pub(crate) orig: T,
    pub(crate) cur: T,
}

#[derive(Clone, Debug)]
pub(crate) struct BalSlot {
    pub(crate) key: StateKey,
    pub(crate) orig: u128,
    pub(crate) cur: u128,
}

enum Undo {
    Account([u8; 32], AccountRecord),
    Balance(([u8; 32], [u8; 32]), u128),
    Asset([u8; 32], Option<AssetInfo>),
    Record(StateKey, Option<Vec<u8>>),
}

/// Reads through to the state once per key, then serves and records
/// changes in memory; a journal undoes a failed payload.
pub(crate) struct Overlay<'s, S: ?Sized> {
    state: &'s S,
    pub(crate) accounts: KeyMap<[u8; 32], Slot<AccountRecord>>,
    pub(crate) balances: KeyMap<([u8; 32], [u8; 32]), BalSlot>,
    pub(crate) assets: KeyMap<[u8; 32], Slot<Option<AssetInfo>>>,
    /// Modules' own records (keys from `modules::module_key`).
    pub(crate) records: KeyMap<StateKey, Slot<Option<Vec<u8>>>>,
    journal: Vec<Undo>,
}

impl<'s, S: AuthenticatedState + ?Sized> Overlay<'s, S> {
    pub(crate) fn new(state: &'s S, capacity: usize) -> Self {
        Overlay {
            state,
            accounts: KeyMap::with_capacity_and_hasher(capacity, Default::default()),
            balances: KeyMap::default(),
            assets: KeyMap::default(),
            // Module records: compliance counters, one per checked sender.
            records: KeyMap::with_capacity_and_hasher(capacity / 2, Default::default()),
            journal: Vec::new(),
        }
    }

    /// The state under the overlay (the block-start state).
    pub(crate) fn base(&self) -> &'s S {
        self.state
    }

    /// Journal position, for [`Overlay::rollback`].
    pub(crate) fn mark(&self) -> usize {
        self.journal.len()
    }

    /// Forget the journal (the transaction is final).
    pub(crate) fn clear_journal(&mut self) {
        self.journal.clear();
    }

    /// Undo every change after `mark`.
    pub(crate) fn rollback(&mut self, mark: usize) {
        while self.journal.len() > mark {
            match self.journal.pop().expect("len > mark") {
                Undo::Account(k, v) => self.accounts.get_mut(&k).expect("journaled").cur = v,
                Undo::Balance(k, v) => self.balances.get_mut(&k).expect("journaled").cur = v,
                Undo::Asset(k, v) => self.assets.get_mut(&k).expect("journaled").cur = v,
                Undo::Record(k, v) => self.records.get_mut(&k).expect("journaled").cur = v,
            }
        }
    }

    pub(crate) fn account(&mut self, a: &[u8; 32]) -> Result<AccountRecord, ExecError> {
        use std::collections::hash_map::Entry;
        let k = account_key(a);
        match self.accounts.entry(k) {
            Entry::Occupied(e) => Ok(e.get().cur),
            Entry::Vacant(e) => {
                let rec = match self.state.get(&k).map_err(ExecError::storage)? {
                    Some(b) => AccountRecord::decode(&b)?,
                    None => AccountRecord::default(),
                };
                e.insert(Slot {
                    orig: rec,
                    cur: rec,
                });
                Ok(rec)
            }
        }
    }

    pub(crate) fn set_account(&mut self, a: &[u8; 32], rec: AccountRecord) {
        let k = account_key(a);
        let s = self.accounts.get_mut(&k).expect("read before write");
        self.journal.push(Undo::Account(k, s.cur));
        s.cur = rec;
    }

    pub(crate) fn balance(&mut self, a: &[u8; 32], asset: &[u8; 32]) -> Result<u128, ExecError> {
        if asset == &NATIVE_ASSET {
            return Ok(self.account(a)?.balance);
        }
        let a = account_key(a);
        if let Some(s) = self.balances.get(&(a, *asset)) {
            return Ok(s.cur);
        }
        let key = balance_key(&a, asset);
        let v = match self.state.get(&key).map_err(ExecError::storage)? {
            Some(b) => decode_amount(&b)?,
            None => 0,
        };
        self.balances.insert(
            (a, *asset),
            BalSlot {
                key,
                orig: v,
                cur: v,
            },
        );
        Ok(v)
    }

    /// Set a balance read before in this overlay.
    pub(crate) fn set_balance(&mut self, a: &[u8; 32], asset: &[u8; 32], v: u128) {
        let a = account_key(a);
        if asset == &NATIVE_ASSET {
            let s = self.accounts.get_mut(&a).expect("read before write");
            self.journal.push(Undo::Account(a, s.cur));
            s.cur.balance = v;
            return;
        }
        let s = self
            .balances
            .get_mut(&(a, *asset))
            .expect("read before write");
        self.journal.push(Undo::Balance((a, *asset), s.cur));
        s.cur = v;
    }

    pub(crate) fn asset(&mut self, id: &[u8; 32]) -> Result<Option<AssetInfo>, ExecError> {
        if let Some(s) = self.assets.get(id) {
            return Ok(s.cur.clone());
        }
        let v = match self.state.get(&asset_key(id)).map_err(ExecError::storage)? {
            Some(b) => Some(AssetInfo::decode(&b)?),
            None => None,
        };
        self.assets.insert(
            *id,
            Slot {
                orig: v.clone(),
                cur: v.clone(),
            },
        );
        Ok(v)
    }

    pub(crate) fn set_asset(&mut self, id: &[u8; 32], info: AssetInfo) {
        let s = self.assets.get_mut(id).expect("read before write");
        let old = s.cur.replace(info);
        self.journal.push(Undo::Asset(*id, old));
    }

    /// Take over the entries of another overlay over the same state whose
    /// keys are disjoint from ours (a shard's result).
    pub(crate) fn record(&mut self, key: &StateKey) -> Result<Option<Vec<u8>>, ExecError> {
        if let Some(s) = self.records.get(key) {
            return Ok(s.cur.clone());
        }
        let v = self.state.get(key).map_err(ExecError::storage)?;
        let out = v.clone();
        self.records.insert(
            *key,
            Slot {
                orig: v.clone(),
                cur: v,
            },
        );
        Ok(out)
    }

    pub(crate) fn set_record(&mut self, key: &StateKey, value: Option<Vec<u8>>) {
        let s = self.records.get_mut(key).expect("read before write");
        let old = std::mem::replace(&mut s.cur, value);
        self.journal.push(Undo::Record(*key, old));
    }

    pub(crate) fn absorb(&mut self, other: Overlay<'s, S>) {
        for (k, v) in other.accounts {
            let prev = self.accounts.insert(k, v);
            assert!(prev.is_none(), "shards touched the same account");
        }
        for (k, v) in other.balances {
            let prev = self.balances.insert(k, v);
            assert!(prev.is_none(), "shards touched the same balance");
        }
        for (k, v) in other.assets {
            let prev = self.assets.insert(k, v);
            assert!(prev.is_none(), "shards touched the same asset");
        }
        for (k, v) in other.records {
            let prev = self.records.insert(k, v);
            assert!(prev.is_none(), "shards touched the same module record");
        }
    }

    /// Net change of every asset's balances (credits minus debits, modulo
    /// 2^128), per asset, for the conservation check.
    pub(crate) fn net_deltas(&self) -> KeyMap<[u8; 32], u128> {
        let mut m: KeyMap<[u8; 32], u128> = KeyMap::default();
        let mut native = 0u128;
        for s in self.accounts.values() {
            native = native.wrapping_add(s.cur.balance.wrapping_sub(s.orig.balance));
        }
        m.insert(NATIVE_ASSET, native);
        for ((_, asset), s) in &self.balances {
            let e = m.entry(*asset).or_insert(0);
            *e = e.wrapping_add(s.cur.wrapping_sub(s.orig));
        }
        m
    }

    /// Supply change of every issued asset touched (new assets from 0).
    pub(crate) fn supply_deltas(&self) -> KeyMap<[u8; 32], u128> {
        let mut m: KeyMap<[u8; 32], u128> = KeyMap::default();
        for (id, s) in &self.assets {
            let orig = s.orig.as_ref().map_or(0, |a| a.supply);
            let cur = s.cur.as_ref().map_or(0, |a| a.supply);
            m.insert(*id, cur.wrapping_sub(orig));
        }
        m
    }

    /// The changed entries as state writes, sorted by key, each key once.
    pub(crate) fn into_writes(self) -> Vec<StateWrite> {
        let mut w: Vec<StateWrite> = Vec::with_capacity(
            self.accounts.len() + self.balances.len() + self.assets.len() + self.records.len(),
        );
        for (k, s) in self.accounts {
            if s.cur != s.orig {
                w.push((k, s.cur.encode()));
            }
        }
        for (_, s) in self.balances {
            if s.cur != s.orig {
                w.push((s.key, encode_amount(s.cur)));
            }
        }
        for (id, s) in self.assets {
            if s.cur != s.orig {
                w.push((asset_key(&id), s.cur.as_ref().map(AssetInfo::encode)));
            }
        }
        for (k, s) in self.records {
            if s.cur != s.orig {
                w.push((k, s.cur));
            }
        }
        sort_writes(&mut w);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_record_encodings() {
        let a = AccountRecord {
            sequence: 1,
            balance: 0x0102,
        };
        assert_eq!(
            hex::encode(a.encode().unwrap()),
            "010000000000000002010000000000000000000000000000"
        );
        assert_eq!(AccountRecord::default().encode(), None);
        assert_eq!(AccountRecord::decode(&a.encode().unwrap()).unwrap(), a);
        assert!(AccountRecord::decode(&[0; 23]).is_err());

        let info = AssetInfo {
            issuer: [7; 32],
            supply: 5,
            decimals: 2,
            policy: SupplyPolicy::IssuerMintable,
            symbol: "USD".into(),
        };
        let enc = info.encode();
        assert_eq!(
            hex::encode(&enc[32..]),
            "050000000000000000000000000000000201035553 44".replace(' ', "")
        );
        assert_eq!(AssetInfo::decode(&enc).unwrap(), info);
        let mut bad = enc.clone();
        bad[49] = 9;
        assert!(AssetInfo::decode(&bad).is_err());
        assert!(AssetInfo::decode(&enc[..enc.len() - 1]).is_err());

        let m = LedgerMeta {
            height: 3,
            base_fee_per_gas: 10,
            genesis_supply: 100,
            minted: 0,
            burned: 7,
        };
        assert_eq!(LedgerMeta::decode(&m.encode()).unwrap(), m);
        assert_eq!(m.total_supply(), 93);
        let mut broken = m;
        broken.burned = 101;
        assert!(LedgerMeta::decode(&broken.encode()).is_err());
    }

    #[test]
    fn keys_are_pinned() {
        // Changing a key derivation changes every root: pin them.
        let mut want = plume_crypto::hash(Domain::State, b"ledger/meta").0;
        want[0] |= 0x80;
        assert_eq!(meta_key(), want);
        assert_eq!(account_key(&[0xff; 32])[0], 0x7f);
        assert_eq!(account_key(&[0xff; 32])[1..], [0xff; 31]);
        for k in [
            meta_key(),
            asset_key(&[0; 32]),
            balance_key(&[0xff; 32], &[0; 32]),
        ] {
            assert!(
                k[0] & 0x80 != 0,
                "derived keys live in the top-bit namespace"
            );
        }
        // Twins (differing in the top bit only) are one account.
        let mut twin = [0xff; 32];
        twin[0] = 0x7f;
        assert_eq!(
            balance_key(&[0xff; 32], &[3; 32]),
            balance_key(&twin, &[3; 32])
        );
        assert_ne!(
            balance_key(&[1; 32], &[2; 32]),
            balance_key(&[2; 32], &[1; 32])
        );
        assert_ne!(asset_key(&[1; 32]), balance_key(&[1; 32], &[0; 32]));
    }

    #[test]
    fn genesis_rejects_bad_allocations() {
        let p = Params::with_defaults("t");
        let a = Address([1; 32]);
        assert!(genesis_writes(&p, &[(a, 0)]).is_err());
        assert!(genesis_writes(&p, &[(a, 1), (a, 2)]).is_err());
        assert!(genesis_writes(&p, &[(a, u128::MAX), (Address([2; 32]), 1)]).is_err());
        let w = genesis_writes(&p, &[(a, 5)]).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w.windows(2).all(|x| x[0].0 < x[1].0));
    }
}
