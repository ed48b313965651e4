//! `console rotate-secrets`: re-encrypts every secret at rest with the active
//! (first) key of `SALESYNC_ENCRYPTION_KEYS`, so the old key can be dropped.
//! The secrets: integrations' `credentials_enc` and `signing_secrets_enc`,
//! tenants' `webhook_secret_enc`, catalogue subscriptions' `secret_enc`, and
//! the secrets providers sign their callbacks to us with
//! (`integrations.callback_secret_enc`).
//!
//! The procedure (README, "Rotating the encryption key"): give every service
//! `new,old`; run this; give every service `new` only. Rows are re-encrypted
//! in batches, each batch locked and written in one transaction, so a
//! concurrent write waits rather than being overwritten with stale data.
//! A secret no key can decrypt is left as it is and reported — the command
//! then fails, so nobody drops a key that is still needed.

use salesync_core::crypto::{CryptoError, SecretBox};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// Rows re-encrypted per transaction.
pub const BATCH: i64 = 200;

/// Decrypts with whichever key made it, encrypts with the active key. The
/// plaintext bytes are carried over unchanged.
pub fn reencrypt(secrets: &SecretBox, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
    Ok(secrets.encrypt(&secrets.decrypt(data)?))
}

/// A secret that could not be re-encrypted.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Failure {
    pub table: &'static str,
    pub column: &'static str,
    pub id: Uuid,
    pub error: String,
}

#[derive(Serialize, Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Secrets now encrypted with the active key, by `table.column`.
    pub credentials: u64,
    pub signing_secrets: u64,
    pub webhook_secrets: u64,
    /// Partners' catalogue subscriptions (`catalogue_subscriptions.secret_enc`).
    pub subscription_secrets: u64,
    /// Providers' callback secrets (`integrations.callback_secret_enc`).
    pub callback_secrets: u64,
    pub failed: Vec<Failure>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Re-encrypts a batch's column values; failures are reported and the value
/// left as it was (`None` in the output means "do not write").
fn reencrypt_column(
    secrets: &SecretBox,
    table: &'static str,
    column: &'static str,
    rows: &[(Uuid, Option<Vec<u8>>)],
    report: &mut Report,
) -> Vec<Option<Vec<u8>>> {
    rows.iter()
        .map(|(id, data)| {
            let data = data.as_deref()?;
            reencrypt(secrets, data)
                .map_err(|e| {
                    report.failed.push(Failure {
                        table,
                        column,
                        id: *id,
                        error: e.to_string(),
                    })
                })
                .ok()
        })
        .collect()
}

/// Re-encrypts every secret at rest with the active key.
pub async fn rotate_all(pool: &PgPool, secrets: &SecretBox) -> sqlx::Result<Report> {
    let mut report = Report::default();
    rotate_integrations(pool, secrets, &mut report).await?;
    report.webhook_secrets =
        rotate_column(pool, secrets, &mut report, "tenants", "webhook_secret_enc").await?;
    report.subscription_secrets = rotate_column(
        pool,
        secrets,
        &mut report,
        "catalogue_subscriptions",
        "secret_enc",
    )
    .await?;
    report.callback_secrets = rotate_column(
        pool,
        secrets,
        &mut report,
        "integrations",
        "callback_secret_enc",
    )
    .await?;
    Ok(report)
}

async fn rotate_integrations(
    pool: &PgPool,
    secrets: &SecretBox,
    report: &mut Report,
) -> sqlx::Result<()> {
    let mut after = Uuid::nil();
    loop {
        let mut tx = pool.begin().await?;
        let rows: Vec<(Uuid, Option<Vec<u8>>, Vec<u8>)> = sqlx::query_as(
            "SELECT id, credentials_enc, signing_secrets_enc FROM integrations
             WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE",
        )
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            tx.commit().await?;
            return Ok(());
        };
        after = last.0;
        let creds: Vec<(Uuid, Option<Vec<u8>>)> = rows.iter().map(|r| (r.0, r.1.clone())).collect();
        let signing: Vec<(Uuid, Option<Vec<u8>>)> =
            rows.iter().map(|r| (r.0, Some(r.2.clone()))).collect();
        let new_creds =
            reencrypt_column(secrets, "integrations", "credentials_enc", &creds, report);
        let new_signing = reencrypt_column(
            secrets,
            "integrations",
            "signing_secrets_enc",
            &signing,
            report,
        );
        report.credentials += new_creds.iter().flatten().count() as u64;
        report.signing_secrets += new_signing.iter().flatten().count() as u64;
        // NULL in the arrays keeps the stored value (absent or undecryptable).
        sqlx::query(
            "UPDATE integrations i SET
                 credentials_enc = COALESCE(u.credentials_enc, i.credentials_enc),
                 signing_secrets_enc = COALESCE(u.signing_secrets_enc, i.signing_secrets_enc)
             FROM UNNEST($1::uuid[], $2::bytea[], $3::bytea[])
                  AS u(id, credentials_enc, signing_secrets_enc)
             WHERE i.id = u.id",
        )
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(new_creds)
        .bind(new_signing)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
}

/// Re-encrypts one secret column of a table keyed by `id`; how many.
/// `table` and `column` are constants of this module, never input.
async fn rotate_column(
    pool: &PgPool,
    secrets: &SecretBox,
    report: &mut Report,
    table: &'static str,
    column: &'static str,
) -> sqlx::Result<u64> {
    let mut after = Uuid::nil();
    let mut done = 0;
    loop {
        let mut tx = pool.begin().await?;
        let rows: Vec<(Uuid, Option<Vec<u8>>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {column} FROM {table}
             WHERE id > $1 AND {column} IS NOT NULL ORDER BY id LIMIT $2 FOR UPDATE"
        )))
        .bind(after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            tx.commit().await?;
            return Ok(done);
        };
        after = last.0;
        let new = reencrypt_column(secrets, table, column, &rows, report);
        done += new.iter().flatten().count() as u64;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} t SET {column} = COALESCE(u.secret, t.{column})
             FROM UNNEST($1::uuid[], $2::bytea[]) AS u(id, secret)
             WHERE t.id = u.id"
        )))
        .bind(rows.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(new)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reencrypted_secrets_need_only_the_new_key() {
        let old_spec = SecretBox::generate_spec("old");
        let new_spec = SecretBox::generate_spec("new");
        let old = SecretBox::from_spec(&old_spec).unwrap();
        let both = SecretBox::from_spec(&format!("{new_spec},{old_spec}")).unwrap();
        let new = SecretBox::from_spec(&new_spec).unwrap();
        let stranger = SecretBox::from_spec(&SecretBox::generate_spec("x")).unwrap();

        let under_old = old.encrypt(b"whsec_abc");
        let under_new = both.encrypt(b"whsec_def");
        // (name, ciphertext, plaintext after re-encryption, or failure)
        type Case<'a> = (&'a str, Vec<u8>, Result<&'a [u8], CryptoError>);
        let cases: [Case; 4] = [
            ("old key", under_old, Ok(b"whsec_abc")),
            ("already the new key", under_new, Ok(b"whsec_def")),
            (
                "unknown key",
                stranger.encrypt(b"s"),
                Err(CryptoError::UnknownKey("x".into())),
            ),
            ("garbage", vec![1, 2, 3], Err(CryptoError::Malformed)),
        ];
        for (name, ct, want) in cases {
            let got = reencrypt(&both, &ct).and_then(|re| new.decrypt(&re));
            assert_eq!(
                got.as_deref().map_err(ToString::to_string),
                want.map_err(|e| e.to_string()),
                "case {name}"
            );
        }
    }

    #[test]
    fn failures_are_reported_and_values_kept() {
        let k = SecretBox::from_spec(&SecretBox::generate_spec("k")).unwrap();
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let rows = vec![(a, Some(k.encrypt(b"1"))), (b, None), (c, Some(vec![0]))];
        let mut report = Report::default();
        let out = reencrypt_column(&k, "integrations", "credentials_enc", &rows, &mut report);
        assert!(out[0].is_some());
        assert_eq!((out[1].is_none(), out[2].is_none()), (true, true));
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].id, c);
        assert!(!report.ok());
    }
}
