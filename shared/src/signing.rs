//! Outgoing request signatures in the Standard Webhooks format, so a receiver
//! can verify them with any Standard Webhooks library:
//! `webhook-id`, `webhook-timestamp`, and `webhook-signature: v1,<base64
//! HMAC-SHA256(key, "{id}.{timestamp}.{body}")>` — one entry per active secret,
//! space-separated, so a secret can be rotated without a gap.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new random secret, `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{PREFIX}{}", B64.encode(key))
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SignatureError {
    #[error("secret is not 'whsec_' followed by base64")]
    BadSecret,
    #[error("no secret to sign with")]
    NoSecret,
    #[error("timestamp header is missing or not a number")]
    BadTimestamp,
    #[error("timestamp is outside the tolerance window")]
    Expired,
    #[error("no signature matches")]
    Mismatch,
}

fn key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    B64.decode(secret.strip_prefix(PREFIX).unwrap_or(secret))
        .map_err(|_| SignatureError::BadSecret)
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `webhook-signature` header value for `body`, signed with every secret.
pub fn sign(
    secrets: &[String],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    if secrets.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let mut parts = Vec::with_capacity(secrets.len());
    for s in secrets {
        let sig = mac(&key(s)?, id, timestamp, body).finalize().into_bytes();
        parts.push(format!("v1,{}", B64.encode(sig)));
    }
    Ok(parts.join(" "))
}

/// Verifies like a receiver would: the timestamp is within `tolerance_secs`
/// of `now` (replay protection) and one of the `v1` signatures matches.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if (now - ts).abs() > tolerance_secs {
        return Err(SignatureError::Expired);
    }
    let key = key(secret)?;
    for part in signature_header.split(' ') {
        let Some(sig) = part.strip_prefix("v1,") else {
            continue;
        };
        let Ok(sig) = B64.decode(sig) else { continue };
        // verify_slice compares in constant time.
        if mac(&key, id, ts, body).verify_slice(&sig).is_ok() {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_with_rotation() {
        let old = generate_secret();
        let new = generate_secret();
        let header = sign(&[new.clone(), old.clone()], "msg_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        assert_eq!(
            verify(
                &old,
                "msg_1",
                "1700000000",
                &header,
                b"{}",
                1_700_000_010,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &new,
                "msg_1",
                "1700000000",
                &header,
                b"{}",
                1_700_000_010,
                300
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                &new,
                "msg_1",
                "1700000000",
                &header,
                b"{ }",
                1_700_000_010,
                300
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &new,
                "msg_1",
                "1700000000",
                &header,
                b"{}",
                1_700_001_000,
                300
            ),
            Err(SignatureError::Expired)
        );
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's examples.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let header = sign(
            &[secret.into()],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        )
        .unwrap();
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
