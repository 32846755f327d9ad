//! Fuzz handshake parsing: arbitrary msg1 at a responder, arbitrary msg2 at
//! an initiator, arbitrary msg3 after a valid msg1, and the payload decoders.
//! Every outcome must be an error value or a valid session, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plume_crypto::ed25519::SigningKey;
use plume_netstack::handshake::{HandshakeConfig, Hello, IdentityProof, Initiator, Responder};
use plume_netstack::{AllowList, ChainId, PeerId};

struct Keys {
    a: HandshakeConfig,
    b: HandshakeConfig,
}

// Noise static keys are random; one pair per fuzzing thread.
thread_local! {
    static KEYS: Keys = {
        let ka = || SigningKey::from_bytes(&[1; 32]);
        let kb = || SigningKey::from_bytes(&[2; 32]);
        let allow = || AllowList::new([PeerId::from(&ka().public_key()), PeerId::from(&kb().public_key())]).unwrap();
        let chain = ChainId::from_name("fuzz");
        Keys {
            a: HandshakeConfig::new(chain, ka(), allow(), false).unwrap(),
            b: HandshakeConfig::new(chain, kb(), allow(), false).unwrap(),
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let _ = Hello::decode(data);
    let _ = IdentityProof::decode(data);
    KEYS.with(|k| {
        let _ = Responder::accept(&k.b, data);
        let (i, m1) = Initiator::start(&k.a, None).unwrap();
        let _ = i.finish(&k.a, data);
        let (r, _m2) = Responder::accept(&k.b, &m1).unwrap();
        let _ = r.finish(&k.b, data);
    });
});
