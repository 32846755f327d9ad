//! Fuzz the record decoder and frame parser: any bytes, split anywhere, must
//! decode to records within the limit or to an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plume_netstack::frame::{decode_record, parse_frame, Decoded, LEN_PREFIX};
use plume_netstack::session::{opened_len, SessionCipher};

fuzz_target!(|data: &[u8]| {
    let (limit, stream) = match data.split_first() {
        Some((l, rest)) => (1 + *l as usize * 64, rest),
        None => return,
    };
    let mut at = 0;
    let mut plain = Vec::new();
    while at < stream.len() {
        match decode_record(&stream[at..], limit) {
            Ok(Decoded::Record { body_len }) => {
                assert!(body_len >= 1 && body_len <= limit);
                let body = &stream[at + LEN_PREFIX..at + LEN_PREFIX + body_len];
                let _ = opened_len(body.len());
                SessionCipher::Clear.open(body, &mut plain).expect("clear open never fails");
                if let Ok(f) = parse_frame(&plain, limit) {
                    assert!(f.payload.len() <= limit);
                }
                at += LEN_PREFIX + body_len;
            }
            Ok(Decoded::NeedMore { total }) => {
                if let Some(t) = total {
                    assert!(t > stream.len() - at);
                }
                break;
            }
            Err(_) => break,
        }
    }
});
