//! Record protection after the handshake: Noise transport messages, or the
//! clear for benchmark runs configured without encryption.
//!
//! A Noise message carries at most [`NOISE_PLAIN_MAX`] plaintext bytes, so a
//! frame is sealed as consecutive Noise messages of [`NOISE_MSG_MAX`]
//! ciphertext bytes (the last one shorter), concatenated into one record.
//! The receiver derives the same chunk layout from the record length.

use crate::frame::{FrameError, FRAME_HEADER};

/// Largest Noise message.
pub const NOISE_MSG_MAX: usize = 65535;
/// AEAD tag bytes per Noise message.
pub const NOISE_TAG: usize = 16;
/// Plaintext bytes per full Noise message.
pub const NOISE_PLAIN_MAX: usize = NOISE_MSG_MAX - NOISE_TAG;

/// Bytes a frame of `plain_len` bytes occupies on the wire (record body).
pub fn sealed_len(plain_len: usize, encrypted: bool) -> usize {
    if !encrypted {
        return plain_len;
    }
    plain_len + NOISE_TAG * plain_len.div_ceil(NOISE_PLAIN_MAX)
}

/// Largest record body a session accepts for `payload_max`.
pub fn record_body_max(payload_max: usize, encrypted: bool) -> usize {
    sealed_len(FRAME_HEADER + payload_max, encrypted)
}

/// Plaintext length of an encrypted record body, if its layout is possible.
pub fn opened_len(body_len: usize) -> Option<usize> {
    let full = body_len / NOISE_MSG_MAX;
    let rest = body_len % NOISE_MSG_MAX;
    if rest != 0 && rest <= NOISE_TAG {
        return None;
    }
    let chunks = full + usize::from(rest != 0);
    if chunks == 0 {
        return None;
    }
    Some(body_len - NOISE_TAG * chunks)
}

/// How records of one session are protected.
pub enum SessionCipher {
    /// Noise transport state (ChaCha/AES-GCM keys and nonces for both directions).
    Noise(Box<snow::TransportState>),
    /// No protection (both ends configured `encrypt = false`; benchmarks).
    Clear,
}

impl std::fmt::Debug for SessionCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionCipher::Noise(_) => f.write_str("SessionCipher::Noise"),
            SessionCipher::Clear => f.write_str("SessionCipher::Clear"),
        }
    }
}

impl SessionCipher {
    /// Whether records are encrypted.
    pub fn encrypted(&self) -> bool {
        matches!(self, SessionCipher::Noise(_))
    }

    /// Seal `plain` into `out`, which must be exactly `sealed_len` bytes.
    pub fn seal(&mut self, plain: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        assert_eq!(out.len(), sealed_len(plain.len(), self.encrypted()));
        match self {
            SessionCipher::Clear => {
                out.copy_from_slice(plain);
                Ok(())
            }
            SessionCipher::Noise(t) => {
                let mut o = 0;
                for chunk in plain.chunks(NOISE_PLAIN_MAX) {
                    let n = t.write_message(chunk, &mut out[o..o + chunk.len() + NOISE_TAG])?;
                    debug_assert_eq!(n, chunk.len() + NOISE_TAG);
                    o += n;
                }
                debug_assert_eq!(o, out.len());
                Ok(())
            }
        }
    }

    /// Open a record body into `out` (cleared first). Any failure means the
    /// session must close: the nonce sequence is lost.
    pub fn open(&mut self, body: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.clear();
        match self {
            SessionCipher::Clear => {
                out.extend_from_slice(body);
                Ok(())
            }
            SessionCipher::Noise(t) => {
                let plain_len =
                    opened_len(body.len()).ok_or(FrameError::BadCiphertextLayout(body.len()))?;
                out.resize(plain_len, 0);
                let mut o = 0;
                for chunk in body.chunks(NOISE_MSG_MAX) {
                    let n = t
                        .read_message(chunk, &mut out[o..])
                        .map_err(|_| FrameError::Decrypt)?;
                    o += n;
                }
                if o != plain_len {
                    return Err(FrameError::BadCiphertextLayout(body.len()));
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_and_opened_lengths_agree() {
        for p in [
            1,
            2,
            100,
            NOISE_PLAIN_MAX - 1,
            NOISE_PLAIN_MAX,
            NOISE_PLAIN_MAX + 1,
            3 * NOISE_PLAIN_MAX + 7,
        ] {
            assert_eq!(opened_len(sealed_len(p, true)), Some(p), "plain {p}");
        }
        assert_eq!(opened_len(0), None);
        assert_eq!(opened_len(16), None);
        assert_eq!(opened_len(17), Some(1));
        assert_eq!(opened_len(NOISE_MSG_MAX + 5), None);
    }
}
