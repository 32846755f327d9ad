//! The transaction format: golden bytes, decoding of untrusted bytes, and
//! signatures (single and batched).

mod common;

use common::*;
use plume_crypto::ed25519::Address;
use plume_execution::tx::{
    address_of_key, verify_batch, Leg, Payment, SupplyPolicy, TxError, NATIVE_ASSET, PAYEES_MAX,
    TX_BYTES_MAX,
};
use plume_execution::{Payload, Reason, Transaction, TxBody};

fn golden_body() -> TxBody {
    TxBody {
        chain_id: "plume-golden".into(),
        signers: vec![[0x11; 32]],
        sequence: 7,
        max_fee_per_gas: 100,
        priority_fee_per_gas: 2,
        gas_limit: 50_000,
        expiry_height: 1_000,
        payload: Payload::Transfer {
            asset: NATIVE_ASSET,
            to: [0x22; 32],
            amount: 12_345,
        },
    }
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
}

const GOLDEN_TX_HEX: &str = "706c756d652d676f6c64656e111111111111111111111111111111111111111111111111111111111111111133333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333000000008c00000090ffffff94ffffff0100000007000000000000006400000000000000020000000000000050c3000000000000e80300000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000002222222222222222222222222222222222222222222222222222222222222222000000000000000000000000000000393000000000000000000000000000001cffffff010000000000000000000000";
const GOLDEN_SIGNING_HASH: &str =
    "9d8c7fb7a664f353044a825fd47cbb224e0ea949de9be61ad0e1d22c1c5719c5";

#[test]
fn every_payload_round_trips() {
    let payloads = vec![
        Payload::CreateAsset {
            symbol: "EUR".into(),
            decimals: 2,
            policy: SupplyPolicy::IssuerMintable,
            initial_supply: 0,
        },
        Payload::Mint {
            asset: [1; 32],
            to: [2; 32],
            amount: u128::MAX,
        },
        Payload::Burn {
            asset: [1; 32],
            amount: 1,
        },
        Payload::Settle {
            legs: vec![
                Leg {
                    asset: [1; 32],
                    from: [3; 32],
                    to: [4; 32],
                    amount: 9
                };
                3
            ],
        },
        Payload::BatchPay {
            asset: NATIVE_ASSET,
            payments: vec![
                Payment {
                    to: [5; 32],
                    amount: 1
                };
                PAYEES_MAX
            ],
        },
    ];
    for p in payloads {
        let mut b = golden_body();
        b.payload = p;
        let tx = Transaction {
            body: b,
            signatures: vec![[0; 64]],
        };
        let bytes = tx.to_bytes();
        assert!(bytes.len() <= TX_BYTES_MAX, "{} bytes", bytes.len());
        assert_eq!(Transaction::from_bytes(&bytes).unwrap(), tx);
    }
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
    // A structurally valid archive that breaks a limit.
    let mut b = golden_body();
    b.payload = Payload::BatchPay {
        asset: NATIVE_ASSET,
        payments: vec![
            Payment {
                to: [5; 32],
                amount: 1
            };
            PAYEES_MAX + 1
        ],
    };
    let bytes = Transaction {
        body: b,
        signatures: vec![[0; 64]],
    }
    .to_bytes();
    assert_eq!(
        Transaction::from_bytes(&bytes),
        Err(TxError::Malformed(Reason::PayeeCount))
    );
    let no_sig = Transaction {
        body: golden_body(),
        signatures: vec![],
    }
    .to_bytes();
    assert_eq!(
        Transaction::from_bytes(&no_sig),
        Err(TxError::Malformed(Reason::SignatureCount))
    );
}

#[test]
fn address_of_key_matches_crypto() {
    let (sk, w) = key(9);
    assert_eq!(Address::from_ed25519(&sk.public_key()), w.addr);
    assert_eq!(address_of_key(&w.pk), w.addr);
}

#[test]
fn signatures_verify_single_and_batched() {
    let (ka, a) = key(1);
    let (kb, b) = key(2);
    let settle = body(
        &[a, b],
        0,
        Payload::Settle {
            legs: vec![Leg {
                asset: NATIVE_ASSET,
                from: b.addr.0,
                to: a.addr.0,
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

    let single = Transaction::sign(
        body(
            &[a],
            0,
            Payload::Burn {
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
    ];
    assert_eq!(verify_batch(&batch), vec![1, 3]);
    assert!(verify_batch(&batch[4..]).is_empty());
}
