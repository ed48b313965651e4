//! Tenant API tokens: random, shown once, stored as SHA-256 (a token has 238
//! bits of entropy, so a fast hash is enough — no password stretching needed).

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

const PREFIX: &str = "sst_";

pub struct NewToken {
    /// The token itself: give it to the caller once, never store it.
    pub token: String,
    pub hash: Vec<u8>,
    /// Shown in lists so people can tell tokens apart.
    pub display_prefix: String,
}

pub fn generate() -> NewToken {
    let body: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token = format!("{PREFIX}{body}");
    NewToken {
        hash: hash(&token),
        display_prefix: token[..PREFIX.len() + 6].to_string(),
        token,
    }
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_hashed() {
        let a = super::generate();
        let b = super::generate();
        assert_ne!(a.token, b.token);
        assert_eq!(a.hash, super::hash(&a.token));
        assert!(a.token.starts_with(&a.display_prefix));
        assert_eq!(a.token.len(), 44);
    }
}
