//! The transaction format: golden bytes, decoding of untrusted bytes, the
//! built-in calls, and signatures (single and batched).

use plume_crypto::ed25519::{Address, SigningKey};
use plume_protocol::calls::{
    AssetCall, BatchPay, EncodedCall, Leg, ModuleCall, Payment, Settle, SupplyPolicy, Transfer,
    LEGS_MAX, PAYEES_MAX,
};
use plume_protocol::tx::{
    address_of_key, verify_batch, TxError, CALL_BYTES_MAX, MEMO_BYTES_MAX, NATIVE_ASSET,
    TX_BYTES_MAX,
};
use plume_protocol::{Reason, Transaction, TxBody};

fn golden_body() -> TxBody {
    let mut b = TxBody::for_call(Transfer {
        asset: NATIVE_ASSET,
        to: [0x22; 32],
        amount: 12_345,
    });
    b.chain_id = "plume-golden".into();
    b.signers = vec![[0x11; 32]];
    b.sequence = 7;
    b.max_fee_per_gas = 100;
    b.priority_fee_per_gas = 2;
    b.gas_limit = 50_000;
    b.expiry_height = 1_000;
    b.memo = b"invoice 42".to_vec();
    b
}

fn key(n: u8) -> (SigningKey, [u8; 32]) {
    let sk = SigningKey::from_bytes(&[n; 32]);
    let pk = sk.public_key().to_bytes();
    (sk, pk)
}

fn body(signers: &[[u8; 32]], call: impl Into<EncodedCall>) -> TxBody {
    let mut b = TxBody::for_call(call);
    b.chain_id = "plume-test".into();
    b.signers = signers.to_vec();
    b.gas_limit = 1_000_000;
    b.max_fee_per_gas = 100;
    b.expiry_height = 1_000;
    b
}

#[test]
fn golden_bytes_of_the_transaction_format() {
    // If this fails, the wire and disk format changed: every stored
    // transaction and every signature would break. Change deliberately.
    let tx = Transaction {
        body: golden_body(),
        signatures: vec![[0x33; 64]],
    };
    let bytes = tx.to_bytes();
    assert_eq!(hex::encode(&bytes), GOLDEN_TX_HEX);
    assert_eq!(
        tx.body.signing_hash().to_hex(),
        GOLDEN_SIGNING_HASH,
        "signing hash"
    );
    assert_eq!(Transaction::from_bytes(&bytes).unwrap(), tx);
    // The call inside is the transfer module's own archive.
    assert_eq!(hex::encode(&tx.body.call), GOLDEN_CALL_HEX);
}

const GOLDEN_TX_HEX: &str = "706c756d652d676f6c64656e11111111111111111111111111111111111111111111111111111111111111110000000000000000000000000000000000000000000000000000000000000000222222222222222222222222222222222222222222222222222222222222222239300000000000000000000000000000696e766f6963652034323333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333300008c00000038ffffff3cffffff0100000007000000000000006400000000000000020000000000000050c3000000000000e8030000000000000100000028ffffff5000000070ffffff0a000000000000006effffff01000000";
const GOLDEN_SIGNING_HASH: &str =
    "0146277dbb35dfa2a53abdb34278d9a87393dfeafc1b1ecdcdba34eb8b45f732";
const GOLDEN_CALL_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000222222222222222222222222222222222222222222222222222222222222222239300000000000000000000000000000";

#[test]
fn every_builtin_call_round_trips_and_keeps_its_rules() {
    fn round<C: ModuleCall + PartialEq + std::fmt::Debug + Clone>(c: C) {
        let enc: EncodedCall = c.clone().into();
        assert_eq!(enc.module, C::MODULE);
        assert_eq!(C::decode(&enc.bytes).unwrap(), c);
        let tx = Transaction {
            body: body(&[[1; 32]], enc),
            signatures: vec![[0; 64]],
        };
        let bytes = tx.to_bytes();
        assert!(bytes.len() <= TX_BYTES_MAX, "{} bytes", bytes.len());
        assert_eq!(Transaction::from_bytes(&bytes).unwrap(), tx);
    }
    round(AssetCall::Create {
        symbol: "EUR".into(),
        decimals: 2,
        policy: SupplyPolicy::IssuerMintable,
        initial_supply: 0,
    });
    round(AssetCall::Mint {
        asset: [1; 32],
        to: [2; 32],
        amount: u128::MAX,
    });
    round(AssetCall::Burn {
        asset: [1; 32],
        amount: 1,
    });
    let leg = Leg {
        asset: [1; 32],
        from: [3; 32],
        to: [4; 32],
        amount: 9,
    };
    round(Settle {
        legs: vec![leg.clone(); LEGS_MAX],
    });
    let pay = Payment {
        to: [5; 32],
        amount: 1,
    };
    round(BatchPay {
        asset: NATIVE_ASSET,
        payments: vec![pay.clone(); PAYEES_MAX],
    });
    // Each call type's stateless rules hold at decode.
    let cases: Vec<(EncodedCall, Reason)> = vec![
        (
            BatchPay {
                asset: NATIVE_ASSET,
                payments: vec![pay; PAYEES_MAX + 1],
            }
            .into(),
            Reason::PayeeCount,
        ),
        (
            Settle {
                legs: vec![leg; LEGS_MAX + 1],
            }
            .into(),
            Reason::LegCount,
        ),
        (Settle { legs: vec![] }.into(), Reason::LegCount),
        (
            Transfer {
                asset: NATIVE_ASSET,
                to: [1; 32],
                amount: 0,
            }
            .into(),
            Reason::ZeroAmount,
        ),
        (
            AssetCall::Create {
                symbol: "eur".into(),
                decimals: 2,
                policy: SupplyPolicy::Fixed,
                initial_supply: 1,
            }
            .into(),
            Reason::BadSymbol,
        ),
        (
            AssetCall::Create {
                symbol: "EUR".into(),
                decimals: 19,
                policy: SupplyPolicy::Fixed,
                initial_supply: 1,
            }
            .into(),
            Reason::BadDecimals,
        ),
        (
            AssetCall::Create {
                symbol: "EUR".into(),
                decimals: 2,
                policy: SupplyPolicy::Fixed,
                initial_supply: 0,
            }
            .into(),
            Reason::ZeroAmount,
        ),
    ];
    for (enc, want) in cases {
        let got = match enc.module {
            1 => Transfer::decode(&enc.bytes).map(|_| ()),
            2 => AssetCall::decode(&enc.bytes).map(|_| ()),
            3 => Settle::decode(&enc.bytes).map(|_| ()),
            4 => BatchPay::decode(&enc.bytes).map(|_| ()),
            m => panic!("module {m}"),
        };
        assert_eq!(got, Err(want), "module {}", enc.module);
    }
    // Bytes of another call type, or garbage, are a malformed call.
    let transfer = Transfer {
        asset: NATIVE_ASSET,
        to: [1; 32],
        amount: 5,
    }
    .encode();
    assert_eq!(Settle::decode(&[1, 2, 3]), Err(Reason::MalformedCall));
    assert!(AssetCall::decode(&transfer).is_err());
}

#[test]
fn untrusted_bytes_are_errors_never_panics() {
    let good = Transaction {
        body: golden_body(),
        signatures: vec![[0x33; 64]],
    }
    .to_bytes();
    assert!(matches!(
        Transaction::from_bytes(&[]),
        Err(TxError::Decode(_))
    ));
    assert!(matches!(
        Transaction::from_bytes(&vec![0u8; TX_BYTES_MAX + 1]),
        Err(TxError::TooLarge(_))
    ));
    // Every truncation and many single-byte corruptions.
    for n in 0..good.len() {
        let _ = Transaction::from_bytes(&good[..n]);
    }
    for i in 0..good.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= flip;
            let _ = Transaction::from_bytes(&b);
        }
    }
    // Structurally valid archives that break an envelope limit.
    let refused = |b: TxBody, sigs: usize| {
        Transaction::from_bytes(
            &Transaction {
                body: b,
                signatures: vec![[0; 64]; sigs],
            }
            .to_bytes(),
        )
    };
    let mut b = golden_body();
    b.memo = vec![7; MEMO_BYTES_MAX + 1];
    assert_eq!(refused(b, 1), Err(TxError::Malformed(Reason::MemoTooLong)));
    let mut b = golden_body();
    b.call = vec![7; CALL_BYTES_MAX + 1];
    assert_eq!(
        refused(b, 1),
        Err(TxError::Malformed(Reason::MalformedCall))
    );
    let mut b = golden_body();
    b.signers = vec![[1; 32], [1; 32]];
    assert_eq!(
        refused(b, 2),
        Err(TxError::Malformed(Reason::DuplicateSigner))
    );
    assert_eq!(
        refused(golden_body(), 0),
        Err(TxError::Malformed(Reason::SignatureCount))
    );
    // The envelope does not judge the call: a call no module would accept
    // still decodes here (its module refuses it with a receipt).
    let mut b = golden_body();
    b.module = 999;
    b.call = vec![1, 2, 3];
    assert!(refused(b, 1).is_ok());
}

#[test]
fn address_of_key_matches_crypto() {
    let (sk, pk) = key(9);
    assert_eq!(Address::from_ed25519(&sk.public_key()), address_of_key(&pk));
}

#[test]
fn signatures_verify_single_and_batched() {
    let (ka, a) = key(1);
    let (kb, b) = key(2);
    let settle = body(
        &[a, b],
        Settle {
            legs: vec![Leg {
                asset: NATIVE_ASSET,
                from: address_of_key(&b).0,
                to: address_of_key(&a).0,
                amount: 1,
            }],
        },
    );
    let good = Transaction::sign(settle.clone(), &[&ka, &kb]);
    good.verify_signatures().unwrap();
    // Signatures in the wrong order, a signature by a non-signer, a changed body.
    let swapped = Transaction::sign(settle.clone(), &[&kb, &ka]);
    assert_eq!(swapped.verify_signatures(), Err(TxError::BadSignature(0)));
    let (kc, _) = key(3);
    let stranger = Transaction::sign(settle.clone(), &[&ka, &kc]);
    assert_eq!(stranger.verify_signatures(), Err(TxError::BadSignature(1)));
    let mut tampered = good.clone();
    tampered.body.sequence = 1;
    assert!(tampered.verify_signatures().is_err());
    let mut memo_changed = good.clone();
    memo_changed.body.memo = b"x".to_vec();
    assert!(memo_changed.verify_signatures().is_err());

    let single = Transaction::sign(
        body(
            &[a],
            AssetCall::Burn {
                asset: [1; 32],
                amount: 1,
            },
        ),
        &[&ka],
    );
    let batch = vec![
        good.clone(),
        swapped,
        single.clone(),
        tampered,
        good,
        single,
        memo_changed,
    ];
    assert_eq!(verify_batch(&batch), vec![1, 3, 6]);
    assert!(verify_batch(&batch[4..6]).is_empty());
}
