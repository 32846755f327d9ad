//! The compliance reason codes (the 200s of `plume_protocol::receipt`).
//! Stable: never renumber one. One code per rule kind, so a receipt names
//! the rule that stopped it; the block's verdict record names the rule id.

use plume_protocol::Reason;

/// Defines the codes and their names in one table.
macro_rules! compliance_codes {
    ($($name:ident = $code:expr, $doc:expr;)*) => {
        $(#[doc = $doc] pub const $name: Reason = Reason($code);)*
        /// The name of a compliance reason code.
        pub fn name(r: Reason) -> Option<&'static str> {
            match r.0 {
                $($code => Some(stringify!($name)),)*
                _ => None,
            }
        }
        /// Every compliance code with its name and meaning.
        pub const ALL: &[(Reason, &str, &str)] = &[$(($name, stringify!($name), $doc),)*];
    };
}

compliance_codes! {
    SANCTIONED = 200, "A party is on the deny (sanctions) list.";
    KYC_MISSING = 201, "A party has no identity or no attestation from a registered provider.";
    KYC_EXPIRED = 202, "A party's attestations have all expired (by height or block time).";
    KYC_PROVIDER_REVOKED = 203, "A party's attestations all come from providers revoked at this height.";
    KYC_NOT_VERIFIED = 204, "A party's attestation is pending or suspended, not verified.";
    RISK_TIER = 205, "A party's risk tier is above the rule's maximum.";
    JURISDICTION_BLOCKED = 206, "Sender and receiver jurisdictions are a blocked pair.";
    SINGLE_LIMIT = 207, "One transaction moves more than the single-transaction limit.";
    VELOCITY_AMOUNT = 208, "The sender's amount in the window would exceed the limit.";
    VELOCITY_COUNT = 209, "The sender's transfer count in the window would exceed the limit.";
    TRAVEL_RULE = 210, "At or above the travel-rule threshold without an envelope commitment.";
    STRUCTURING = 211, "Too many just-below-threshold transfers in the window.";
    NOT_AUTHORITY = 212, "Only the compliance admin (or list keeper, or the provider) may do this.";
    UNKNOWN_PROVIDER = 213, "The claim's provider is not registered, or is revoked.";
    CLAIM_WRONG_CHAIN = 214, "The claim names another chain id.";
    CLAIM_BAD_SIGNATURE = 215, "The claim's provider signature does not verify.";
    CLAIM_STALE = 216, "The claim is older than the identity's attestation or revocation from that provider.";
    ADDRESS_LINKED = 217, "An address of the claim belongs to another identity.";
    BAD_RULES = 218, "The rule set breaks a limit (count, duplicate id, bad parameter, counter entries, a window rule id reused with another window).";
    TOO_MANY = 219, "A registry record would exceed its bound (providers, attestations).";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_in_the_compliance_range_and_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for (r, n, _) in ALL {
            assert!((200..300).contains(&r.0), "{n}");
            assert!(seen.insert(r.0), "{n} reuses {}", r.0);
            assert_eq!(name(*r), Some(*n));
            assert!(r.core_name().is_none());
        }
        assert_eq!(name(Reason(299)), None);
    }
}
