//! Shared helpers of the execution tests: a ledger over
//! `plume_storage::MemoryState` and transaction builders.
#![allow(dead_code)]

use plume_crypto::ed25519::{Address, SigningKey};
use plume_execution::{
    apply_block, apply_block_sharded, commit, genesis_writes, BlockContext, BlockOutput, Params,
    PreparedTx, Registry,
};
use plume_protocol::calls::{
    AssetCall, BatchPay, EncodedCall, Leg, Payment, Settle, SupplyPolicy, Transfer,
};
use plume_protocol::tx::{address_of_key, Transaction, TxBody, NATIVE_ASSET};
use plume_storage::{AuthenticatedState, MemoryState};
use std::collections::BTreeSet;

pub const CHAIN: &str = "plume-test";

pub fn params() -> Params {
    Params::with_defaults(CHAIN)
}

pub fn proposer() -> Address {
    Address([0xee; 32])
}

/// A fake signer: a 32-byte "public key" (execution never verifies
/// signatures) and its address.
#[derive(Clone, Copy, Debug)]
pub struct Who {
    pub pk: [u8; 32],
    pub addr: Address,
}

pub fn who(n: u64) -> Who {
    let pk = plume_crypto::hash(plume_crypto::Domain::Handshake, &n.to_le_bytes()).0;
    Who {
        pk,
        addr: address_of_key(&pk),
    }
}

pub fn key(n: u8) -> (SigningKey, Who) {
    let sk = SigningKey::from_bytes(&[n; 32]);
    let pk = sk.public_key().to_bytes();
    (
        sk,
        Who {
            pk,
            addr: address_of_key(&pk),
        },
    )
}

/// The built-in modules' calls as one enum (a test convenience: the
/// protocol has one call type per module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    Transfer {
        asset: [u8; 32],
        to: [u8; 32],
        amount: u128,
    },
    CreateAsset {
        symbol: String,
        decimals: u8,
        policy: SupplyPolicy,
        initial_supply: u128,
    },
    Mint {
        asset: [u8; 32],
        to: [u8; 32],
        amount: u128,
    },
    Burn {
        asset: [u8; 32],
        amount: u128,
    },
    Settle {
        legs: Vec<Leg>,
    },
    BatchPay {
        asset: [u8; 32],
        payments: Vec<Payment>,
    },
}

impl From<Payload> for EncodedCall {
    fn from(p: Payload) -> EncodedCall {
        match p {
            Payload::Transfer { asset, to, amount } => Transfer { asset, to, amount }.into(),
            Payload::CreateAsset {
                symbol,
                decimals,
                policy,
                initial_supply,
            } => AssetCall::Create {
                symbol,
                decimals,
                policy,
                initial_supply,
            }
            .into(),
            Payload::Mint { asset, to, amount } => AssetCall::Mint { asset, to, amount }.into(),
            Payload::Burn { asset, amount } => AssetCall::Burn { asset, amount }.into(),
            Payload::Settle { legs } => Settle { legs }.into(),
            Payload::BatchPay { asset, payments } => BatchPay { asset, payments }.into(),
        }
    }
}

pub fn registry() -> Registry {
    plume_execution::standard()
}

pub fn body(signers: &[Who], sequence: u64, payload: impl Into<EncodedCall>) -> TxBody {
    let mut b = TxBody::for_call(payload);
    b.chain_id = CHAIN.into();
    b.signers = signers.iter().map(|w| w.pk).collect();
    b.sequence = sequence;
    b.max_fee_per_gas = 100;
    b.priority_fee_per_gas = 2;
    b.gas_limit = 1_000_000;
    b.expiry_height = 1_000;
    b
}

/// An unsigned (zero-signature) prepared transaction.
pub fn prep(body: TxBody) -> PreparedTx {
    let n = body.signers.len();
    PreparedTx::new(Transaction {
        body,
        signatures: vec![[0; 64]; n],
    })
}

pub fn transfer(from: Who, seq: u64, to: Who, amount: u128) -> PreparedTx {
    prep(body(
        &[from],
        seq,
        Payload::Transfer {
            asset: NATIVE_ASSET,
            to: to.addr.0,
            amount,
        },
    ))
}

pub struct Ledger {
    pub state: MemoryState,
    pub params: Params,
    pub registry: Registry,
    pub height: u64,
    pub accounts: BTreeSet<Address>,
    /// Block time step: block h has time h x block_ms.
    pub block_ms: u64,
}

impl Ledger {
    pub fn new(allocs: &[(Address, u128)]) -> Ledger {
        Self::with_params(params(), allocs)
    }

    pub fn with_params(params: Params, allocs: &[(Address, u128)]) -> Ledger {
        Self::with_compliance(params, allocs, None)
    }

    pub fn with_compliance(
        params: Params,
        allocs: &[(Address, u128)],
        compliance: Option<&plume_compliance::GenesisCompliance>,
    ) -> Ledger {
        let mut state = MemoryState::new();
        let writes = match compliance {
            None => genesis_writes(&params, allocs).unwrap(),
            Some(c) => plume_execution::genesis_writes_with(&params, allocs, Some(c)).unwrap(),
        };
        state.apply(&writes).unwrap();
        let mut accounts: BTreeSet<Address> = allocs.iter().map(|a| a.0).collect();
        accounts.insert(params.treasury);
        accounts.insert(plume_execution::fee_pool_address());
        accounts.insert(proposer());
        Ledger {
            state,
            params,
            registry: registry(),
            height: 0,
            accounts,
            block_ms: 1_000,
        }
    }

    pub fn ctx(&self) -> BlockContext {
        BlockContext {
            height: self.height + 1,
            proposer: proposer(),
            time_ms: (self.height + 1) * self.block_ms,
        }
    }

    /// Apply sequentially and commit.
    pub fn block(&mut self, txs: &[PreparedTx]) -> BlockOutput {
        let out = apply_block(&self.state, &self.params, &self.registry, &self.ctx(), txs).unwrap();
        self.commit(&out);
        out
    }

    /// Apply with `shards` threads and commit.
    pub fn block_sharded(&mut self, txs: &[PreparedTx], shards: usize) -> BlockOutput {
        let out = apply_block_sharded(
            &self.state,
            &self.params,
            &self.registry,
            &self.ctx(),
            txs,
            shards,
        )
        .unwrap();
        self.commit(&out);
        out
    }

    pub fn commit(&mut self, out: &BlockOutput) {
        for r in &out.receipts {
            for e in &r.events {
                self.accounts.insert(Address(e.account));
            }
        }
        commit(&mut self.state, out).unwrap();
        self.height += 1;
    }

    pub fn native(&self, a: Address) -> u128 {
        plume_execution::state::read_balance(&self.state, &a, &NATIVE_ASSET).unwrap()
    }

    pub fn balance(&self, a: Address, asset: &[u8; 32]) -> u128 {
        plume_execution::state::read_balance(&self.state, &a, asset).unwrap()
    }

    pub fn sequence(&self, a: Address) -> u64 {
        plume_execution::state::read_account(&self.state, &a)
            .unwrap()
            .sequence
    }

    /// Sum of PLUME over every account the ledger has seen.
    pub fn native_sum(&self) -> u128 {
        self.accounts.iter().map(|a| self.native(*a)).sum()
    }

    pub fn asset_sum(&self, asset: &[u8; 32]) -> u128 {
        self.accounts.iter().map(|a| self.balance(*a, asset)).sum()
    }

    pub fn root(&self) -> plume_crypto::Digest {
        self.state.root()
    }

    pub fn meta(&self) -> plume_execution::LedgerMeta {
        plume_execution::read_ledger_meta(&self.state).unwrap()
    }
}
