//! Conformance: RFC 8032 and Wycheproof for Ed25519, the Ethereum consensus
//! BLS suite for BLS12-381. Sources and licences: `tests/vectors/README.md`.

use plume_crypto::bls;
use plume_crypto::ed25519::{self, BatchItem};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).expect("vector hex")
}

// ---------------------------------------------------------------- Ed25519

/// RFC 8032 section 7.1, TEST 1-3 and TEST SHA(abc): (secret, public,
/// message, signature).
const RFC8032: &[(&str, &str, &str, &str)] = &[
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

#[test]
fn rfc8032_section_7_1() {
    for (i, (sk, pk, msg, sig)) in RFC8032.iter().enumerate() {
        let sk: [u8; 32] = unhex(sk).try_into().unwrap();
        let key = ed25519::SigningKey::from_bytes(&sk);
        assert_eq!(key.public_key().to_hex(), *pk, "vector {i}: public key");
        let msg = unhex(msg);
        let s = key.sign(&msg);
        assert_eq!(hex::encode(s.to_bytes()), *sig, "vector {i}: signature");
        let pk = ed25519::PublicKey::from_hex(pk).unwrap();
        assert!(pk.verify(&msg, &s).is_ok(), "vector {i}: verify");
        let mut tampered = msg.clone();
        tampered.push(0);
        assert!(pk.verify(&tampered, &s).is_err(), "vector {i}: tampered");
    }
}

/// Verify a Wycheproof case the way Plume would: parse the key (strict),
/// parse the signature (exactly 64 bytes), verify strictly.
fn plume_ed25519_verdict(pk: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(pk) = ed25519::PublicKey::from_slice(pk) else {
        return false;
    };
    let Ok(sig) = ed25519::Signature::from_slice(sig) else {
        return false;
    };
    pk.verify(msg, &sig).is_ok()
}

#[test]
fn wycheproof_ed25519() {
    use wycheproof::eddsa::{TestName, TestSet};
    use wycheproof::TestResult;
    let set = TestSet::load(TestName::Ed25519).expect("wycheproof ed25519 set");
    let mut checked = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            let ours = plume_ed25519_verdict(&g.key.pk, &t.msg, &t.sig);
            match t.result {
                TestResult::Valid => assert!(ours, "tc {} ({}) must verify", t.tc_id, t.comment),
                TestResult::Invalid => assert!(!ours, "tc {} ({}) must fail", t.tc_id, t.comment),
                TestResult::Acceptable => {}
            }
            // Batch verification agrees with strict single verification.
            if let (Ok(pk), Ok(sig)) = (
                ed25519::PublicKey::from_slice(&g.key.pk),
                ed25519::Signature::from_slice(&t.sig),
            ) {
                let item = [BatchItem {
                    msg: &t.msg,
                    sig: &sig,
                    key: &pk,
                }];
                assert_eq!(
                    ed25519::verify_batch(&item).is_ok(),
                    ours,
                    "tc {}: batch and strict disagree",
                    t.tc_id
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {checked} wycheproof cases ran");
}

// ---------------------------------------------------------------- BLS

fn vectors(handler: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/eth-bls")
        .join(handler);
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no vectors in {}", dir.display());
    out
}

fn pk(s: &Value) -> Option<bls::PublicKey> {
    bls::PublicKey::from_bytes(&unhex(s.as_str()?)).ok()
}

fn sig(s: &Value) -> Option<bls::Signature> {
    bls::Signature::from_bytes(&unhex(s.as_str()?)).ok()
}

#[test]
fn eth_bls_sign() {
    for (p, v) in vectors("sign") {
        let sk_bytes = unhex(v["input"]["privkey"].as_str().unwrap());
        let msg = unhex(v["input"]["message"].as_str().unwrap());
        let got = <[u8; 32]>::try_from(sk_bytes.as_slice())
            .ok()
            .and_then(|b| bls::SecretKey::from_bytes(&b).ok())
            .map(|sk| format!("0x{}", sk.sign(&msg).to_hex()));
        assert_eq!(got.as_deref(), v["output"].as_str(), "{}", p.display());
    }
}

#[test]
fn eth_bls_verify() {
    for (p, v) in vectors("verify") {
        let i = &v["input"];
        let msg = unhex(i["message"].as_str().unwrap());
        let ok = match (pk(&i["pubkey"]), sig(&i["signature"])) {
            (Some(pk), Some(s)) => pk.verify(&msg, &s).is_ok(),
            _ => false,
        };
        assert_eq!(ok, v["output"].as_bool().unwrap(), "{}", p.display());
    }
}

#[test]
fn eth_bls_fast_aggregate_verify() {
    for (p, v) in vectors("fast_aggregate_verify") {
        let i = &v["input"];
        let msg = unhex(i["message"].as_str().unwrap());
        let pks: Option<Vec<bls::PublicKey>> =
            i["pubkeys"].as_array().unwrap().iter().map(pk).collect();
        let ok = match (pks, sig(&i["signature"])) {
            (Some(pks), Some(s)) => s
                .fast_aggregate_verify(&msg, &pks.iter().collect::<Vec<_>>())
                .is_ok(),
            _ => false,
        };
        assert_eq!(ok, v["output"].as_bool().unwrap(), "{}", p.display());
    }
}

#[test]
fn eth_bls_aggregate_verify() {
    for (p, v) in vectors("aggregate_verify") {
        let i = &v["input"];
        let msgs: Vec<Vec<u8>> = i["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| unhex(m.as_str().unwrap()))
            .collect();
        let pks: Option<Vec<bls::PublicKey>> =
            i["pubkeys"].as_array().unwrap().iter().map(pk).collect();
        let ok = match (pks, sig(&i["signature"])) {
            (Some(pks), Some(s)) => s
                .aggregate_verify(
                    &msgs.iter().map(|m| m.as_slice()).collect::<Vec<_>>(),
                    &pks.iter().collect::<Vec<_>>(),
                )
                .is_ok(),
            _ => false,
        };
        assert_eq!(ok, v["output"].as_bool().unwrap(), "{}", p.display());
    }
}

#[test]
fn eth_bls_aggregate() {
    for (p, v) in vectors("aggregate") {
        let sigs: Option<Vec<bls::Signature>> =
            v["input"].as_array().unwrap().iter().map(sig).collect();
        let got = sigs
            .and_then(|s| bls::Signature::aggregate(&s.iter().collect::<Vec<_>>()).ok())
            .map(|s| format!("0x{}", s.to_hex()));
        assert_eq!(got.as_deref(), v["output"].as_str(), "{}", p.display());
    }
}

#[test]
fn eth_bls_deserialization() {
    for (p, v) in vectors("deserialization_G2") {
        let ok = sig(&v["input"]["signature"]).is_some();
        assert_eq!(ok, v["output"].as_bool().unwrap(), "{}", p.display());
    }
    for (p, v) in vectors("deserialization_G1") {
        let bytes = unhex(v["input"]["pubkey"].as_str().unwrap());
        let is_infinity = bytes.first() == Some(&0xc0) && bytes[1..].iter().all(|&b| b == 0);
        // The suite tests point decoding, where the identity is a valid
        // point; a *public key* must not be the identity (KeyValidate), so
        // Plume refuses that one case on purpose.
        let expected = v["output"].as_bool().unwrap() && !is_infinity;
        let ok = bls::PublicKey::from_bytes(&bytes).is_ok();
        assert_eq!(ok, expected, "{}", p.display());
    }
}
