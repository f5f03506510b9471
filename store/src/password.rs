//! The admin password as stored (`pwd`): the reference's two formats, plain text or
//! `pbkdf2:<salt>:<hash>` (PBKDF2-HMAC-SHA512 of the trimmed password with the salt's text,
//! 64-byte key, hex). poolgate always writes the hashed form.

use pbkdf2::pbkdf2_hmac;
use sha2::Sha512;
use subtle::ConstantTimeEq;

/// Rounds poolgate writes (the reference's current count).
pub const ROUNDS: u32 = 310_000;
/// Rounds of older reference releases, still accepted when checking.
const LEGACY_ROUNDS: u32 = 100_000;
const KEY_LEN: usize = 64;

fn derive(password: &str, salt: &str, rounds: u32) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    pbkdf2_hmac::<Sha512>(password.trim().as_bytes(), salt.as_bytes(), rounds, &mut out);
    out
}

/// The stored form of `password`, with a fresh random salt.
pub fn hash(password: &str) -> String {
    let salt = hex::encode(rand::random::<[u8; 16]>());
    let key = derive(password, &salt, ROUNDS);
    format!("pbkdf2:{salt}:{}", hex::encode(key))
}

/// True when the stored value is already the hashed form.
pub fn is_hashed(stored: &str) -> bool {
    stored.starts_with("pbkdf2:")
}

/// Checks `password` against a stored value of either format, in constant time. Slow on
/// purpose (PBKDF2): call it off the async executor.
pub fn verify(password: &str, stored: &str) -> bool {
    let password = password.trim();
    if password.is_empty() {
        return false;
    }
    let stored = stored.trim();
    if !is_hashed(stored) {
        return bool::from(password.as_bytes().ct_eq(stored.as_bytes()));
    }
    let mut parts = stored.splitn(3, ':').skip(1);
    let (Some(salt), Some(want)) = (parts.next(), parts.next()) else { return false };
    let Ok(want) = hex::decode(want) else { return false };
    if want.len() != KEY_LEN {
        return false;
    }
    [ROUNDS, LEGACY_ROUNDS].into_iter().any(|rounds| bool::from(derive(password, salt, rounds).ct_eq(&want[..])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_and_plain_forms_check() {
        let stored = hash("s3cret pass");
        assert!(stored.starts_with("pbkdf2:") && stored.split(':').count() == 3);
        assert!(verify("s3cret pass", &stored));
        assert!(verify("  s3cret pass\n", &stored), "trimmed as the reference does");
        assert!(!verify("s3cret pas", &stored));
        assert!(verify("plain", "plain"));
        assert!(!verify("plai", "plain"));
        assert!(!verify("", ""), "an empty password never matches");
        assert_ne!(hash("x"), hash("x"), "fresh salt each time");
    }

    #[test]
    fn reads_reference_hashes_of_both_round_counts() {
        // Written the way the reference's Node code does: crypto.pbkdf2(pw, saltText, n, 64, 'sha512').
        for rounds in [ROUNDS, LEGACY_ROUNDS] {
            let salt = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
            let stored = format!("pbkdf2:{salt}:{}", hex::encode(derive("admin-pass", salt, rounds)));
            assert!(verify("admin-pass", &stored));
        }
        assert!(!verify("x", "pbkdf2:salt:nothex"));
        assert!(!verify("x", "pbkdf2:onlysalt"));
    }
}
