//! A revoked token stops working on every ingest process at once: revoking
//! sets `api_tokens.revoked_at`, a trigger (migration 0009) sends the
//! token's hash on channel `token_revoked`, and each process's listener
//! drops it from its token cache. Notices sent while a listener was
//! disconnected are lost, so after every reconnect the whole cache is
//! dropped (the next request of each token asks the database again).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::token_cache::TokenCache;

pub const CHANNEL: &str = "token_revoked";

/// Listens until `shutdown`, reconnecting after any failure.
pub async fn listen(pool: PgPool, cache: Arc<TokenCache>, shutdown: CancellationToken) {
    let mut backoff = crate::amqp::reconnect_backoff();
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = listen_once(&pool, &cache) => outcome,
        };
        // Whatever came in before is still applied; what was sent while we
        // were away is not: forget everything.
        cache.clear();
        let wait = backoff.next().unwrap_or(Duration::from_secs(5));
        tracing::warn!(error = %outcome, retry_in = ?wait, "token revocation listener lost its connection; token cache cleared");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One connection's worth of notices; returns why it ended.
async fn listen_once(pool: &PgPool, cache: &TokenCache) -> String {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        return e.to_string();
    }
    // Tokens cached before the listener was up may have been revoked since.
    cache.clear();
    loop {
        match listener.try_recv().await {
            Ok(Some(notice)) => match hex::decode(notice.payload()) {
                Ok(hash) => cache.remove(&hash),
                Err(_) => cache.clear(),
            },
            Ok(None) => return "connection closed".into(),
            Err(e) => return e.to_string(),
        }
    }
}
