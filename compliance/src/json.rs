//! The JSON forms of the records' fields (genesis, queries, the CLI):
//! 32-byte values in hex, amounts as decimal strings, ISO 3166-1 codes.

/// Hex form of 32-byte values in JSON.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};
    /// Serialize as lower-case hex.
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    /// Parse 64 hex digits (an optional 0x prefix).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).map_err(serde::de::Error::custom)
    }
    /// Parse 64 hex digits (an optional 0x prefix).
    pub fn parse(s: &str) -> Result<[u8; 32], String> {
        let v = hex::decode(s.trim_start_matches("0x")).map_err(|e| format!("{s:?}: {e}"))?;
        v.try_into()
            .map_err(|_| format!("{s:?}: expected 32 bytes (64 hex digits)"))
    }
}

/// A list of 32-byte values as hex strings.
pub mod hex32_vec {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    /// Serialize each as hex.
    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        v.iter().map(hex::encode).collect::<Vec<_>>().serialize(s)
    }
    /// Parse each.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| super::hex32::parse(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// An asset in JSON: `"native"` for PLUME or the asset id in hex.
pub mod asset_id {
    use serde::{Deserialize, Deserializer, Serializer};
    /// `"native"` or hex.
    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        if v == &[0; 32] {
            s.serialize_str("native")
        } else {
            s.serialize_str(&hex::encode(v))
        }
    }
    /// `"native"` or hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        if s == "native" || s == "PLUME" {
            return Ok([0; 32]);
        }
        super::hex32::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A u128 amount as a decimal string in JSON (JSON numbers lose precision
/// above 2^53 in most clients).
pub mod amount {
    use serde::{Deserialize, Deserializer, Serializer};
    /// As a decimal string.
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    /// From a decimal string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<u128>()
            .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a decimal u128 amount")))
    }
}

/// Two-letter ISO 3166-1 alpha-2 codes as strings in JSON.
pub mod country {
    use serde::{Deserialize, Deserializer, Serializer};
    /// As two letters.
    pub fn serialize<S: Serializer>(v: &[u8; 2], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(v))
    }
    /// Two upper-case ASCII letters.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 2], D::Error> {
        let s = String::deserialize(d)?;
        super::parse_country(&s).map_err(serde::de::Error::custom)
    }
}

/// Parse an ISO 3166-1 alpha-2 code (two upper-case ASCII letters).
pub fn parse_country(s: &str) -> Result<[u8; 2], String> {
    let b = s.as_bytes();
    if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
        return Err(format!(
            "{s:?} is not an ISO 3166-1 alpha-2 code (two upper-case letters)"
        ));
    }
    Ok([b[0], b[1]])
}

pub(crate) fn valid_country(c: &[u8; 2]) -> bool {
    c.iter().all(u8::is_ascii_uppercase)
}

/// Blocked pairs as `[["US","KP"], ...]` in JSON.
pub mod pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    /// As pairs of two-letter strings.
    pub fn serialize<S: Serializer>(v: &[[[u8; 2]; 2]], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|p| {
                [
                    String::from_utf8_lossy(&p[0]).into_owned(),
                    String::from_utf8_lossy(&p[1]).into_owned(),
                ]
            })
            .collect::<Vec<_>>()
            .serialize(s)
    }
    /// From pairs of two-letter strings.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[[u8; 2]; 2]>, D::Error> {
        Vec::<[String; 2]>::deserialize(d)?
            .iter()
            .map(|[a, b]| {
                Ok([
                    super::parse_country(a).map_err(serde::de::Error::custom)?,
                    super::parse_country(b).map_err(serde::de::Error::custom)?,
                ])
            })
            .collect()
    }
}
