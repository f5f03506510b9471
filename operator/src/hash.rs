//! Content hashes recorded in status: SHA-256, hex, first 16 characters.

use sha2::{Digest, Sha256};

/// Hash of one byte string.
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))[..16].to_string()
}

/// Hash of a key → value map, independent of iteration order (keys are sorted).
pub fn map_hash<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut sorted: Vec<(&str, &[u8])> = entries.into_iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (k, v) in sorted {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    hex::encode(h.finalize())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_hash_is_order_independent_and_unambiguous() {
        let a = map_hash([("a", b"1".as_slice()), ("b", b"2".as_slice())]);
        let b = map_hash([("b", b"2".as_slice()), ("a", b"1".as_slice())]);
        assert_eq!(a, b);
        assert_ne!(map_hash([("ab", b"".as_slice())]), map_hash([("a", b"b".as_slice())]));
        assert_eq!(short_hash(b"x").len(), 16);
    }
}
