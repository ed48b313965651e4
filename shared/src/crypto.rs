//! Secrets at rest (target credentials, signing secrets): AES-256-GCM with a
//! key from the environment. `SALESYNC_ENCRYPTION_KEYS` lists `id:base64key`
//! pairs, comma-separated; the first encrypts, all decrypt — so a key is
//! rotated by putting a new one first, re-saving secrets, then dropping the old.
//! Ciphertext layout: `[id length][id][12-byte nonce][ciphertext+tag]`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

#[derive(Clone)]
pub struct SecretBox {
    /// (key id, cipher); the first is the active one.
    keys: Vec<(String, Aes256Gcm)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error("SALESYNC_ENCRYPTION_KEYS: {0}")]
    BadKeys(String),
    #[error("ciphertext is malformed")]
    Malformed,
    #[error("no key with id '{0}' (was it rotated out?)")]
    UnknownKey(String),
    #[error("decryption failed: wrong key or tampered data")]
    Tampered,
}

impl SecretBox {
    /// Parses `id:base64(32 bytes)[,id:base64…]`.
    pub fn from_spec(spec: &str) -> Result<Self, CryptoError> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, b64) = part.split_once(':').ok_or_else(|| {
                CryptoError::BadKeys(format!(
                    "'{id}' must be id:base64key",
                    id = part.split(':').next().unwrap_or("")
                ))
            })?;
            if id.is_empty() || id.len() > 32 {
                return Err(CryptoError::BadKeys(
                    "key id must be 1..=32 characters".into(),
                ));
            }
            let raw = B64
                .decode(b64)
                .map_err(|_| CryptoError::BadKeys(format!("key '{id}' is not base64")))?;
            if raw.len() != 32 {
                return Err(CryptoError::BadKeys(format!(
                    "key '{id}' must be 32 bytes, got {}",
                    raw.len()
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&raw)
                .map_err(|_| CryptoError::BadKeys("bad key".into()))?;
            keys.push((id.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(CryptoError::BadKeys("no key given".into()));
        }
        Ok(Self { keys })
    }

    /// A fresh key spec (`id:base64`), for set-up scripts and tests.
    pub fn generate_spec(id: &str) -> String {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        format!("{id}:{}", B64.encode(k))
    }

    pub fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let (id, cipher) = &self.keys[0];
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption with a valid key and nonce only fails for absurd lengths.
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + id.len() + 12 + ct.len());
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id_len = *data.first().ok_or(CryptoError::Malformed)? as usize;
        if data.len() < 1 + id_len + 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let id = std::str::from_utf8(&data[1..1 + id_len]).map_err(|_| CryptoError::Malformed)?;
        let nonce = &data[1 + id_len..1 + id_len + 12];
        let ct = &data[1 + id_len + 12..];
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Tampered)
    }

    pub fn encrypt_json<T: serde::Serialize>(&self, value: &T) -> Vec<u8> {
        self.encrypt(&serde_json::to_vec(value).unwrap_or_default())
    }

    pub fn decrypt_json<T: serde::de::DeserializeOwned>(
        &self,
        data: &[u8],
    ) -> Result<T, CryptoError> {
        serde_json::from_slice(&self.decrypt(data)?).map_err(|_| CryptoError::Malformed)
    }
}

/// The clap argument every service that touches secrets takes.
#[derive(clap::Args, Debug, Clone)]
pub struct EncryptionArgs {
    /// Keys for secrets at rest: `id:base64(32 bytes)[,id:…]`; the first encrypts.
    #[arg(long, env = "SALESYNC_ENCRYPTION_KEYS", hide_env_values = true, value_parser = parse_secret_box)]
    pub encryption_keys: SecretBox,
}

fn parse_secret_box(s: &str) -> Result<SecretBox, String> {
    SecretBox::from_spec(s).map_err(|e| e.to_string())
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "SecretBox(keys: {ids:?})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rotates() {
        let old_spec = SecretBox::generate_spec("k1");
        let old = SecretBox::from_spec(&old_spec).unwrap();
        let ct = old.encrypt(b"token-123");
        assert!(!ct.windows(9).any(|w| w == b"token-123"));
        let rotated =
            SecretBox::from_spec(&format!("{},{old_spec}", SecretBox::generate_spec("k2")))
                .unwrap();
        assert_eq!(rotated.decrypt(&ct).unwrap(), b"token-123");
        assert!(rotated.encrypt(b"x").starts_with(b"\x02k2"));
        let mut tampered = ct.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(old.decrypt(&tampered), Err(CryptoError::Tampered));
        let other = SecretBox::from_spec(&SecretBox::generate_spec("k9")).unwrap();
        assert_eq!(
            other.decrypt(&ct),
            Err(CryptoError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(SecretBox::from_spec("").is_err());
        assert!(SecretBox::from_spec("k1:notbase64!").is_err());
        assert!(SecretBox::from_spec("k1:AAAA").is_err());
    }
}
