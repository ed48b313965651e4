//! Loads delivery rows for messages handled one by one, but in as few
//! queries as the load allows: each message asks for its row, a single task
//! collects every request that is waiting and answers them with one query
//! (`store::load_deliveries`). Under load the requests pile up behind the
//! running query, so the batch grows with the traffic; when idle a request
//! costs one short query.

use std::collections::HashMap;

use salesync_core::db::HeldConnection;
use salesync_core::domain::ids::{DeliveryId, TenantId};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::store::{self, DeliveryRow};

type Key = (DeliveryId, TenantId);
type Reply = oneshot::Sender<Result<Option<DeliveryRow>, String>>;

/// Most rows asked for in one query.
const MAX_KEYS: usize = 500;

#[derive(Clone)]
pub struct RowLoader {
    requests: mpsc::UnboundedSender<(Key, Reply)>,
}

impl RowLoader {
    /// Starts the loading task; it ends when the last `RowLoader` is dropped.
    pub fn spawn(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(HeldConnection::new(pool), rx));
        Self { requests: tx }
    }

    /// The delivery `id`, only within `tenant` (see `store::load_deliveries`);
    /// `Ok(None)` if there is none. `Err` is transient (database unreachable).
    pub async fn load(
        &self,
        id: DeliveryId,
        tenant: TenantId,
    ) -> anyhow::Result<Option<DeliveryRow>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(((id, tenant), reply))
            .map_err(|_| anyhow::anyhow!("the row loader has stopped"))?;
        answer
            .await
            .map_err(|_| anyhow::anyhow!("the row loader has stopped"))?
            .map_err(|e| anyhow::anyhow!("loading delivery {id}: {e}"))
    }
}

async fn serve(mut db: HeldConnection, mut rx: mpsc::UnboundedReceiver<(Key, Reply)>) {
    while let Some(first) = rx.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_KEYS {
            match rx.try_recv() {
                Ok(r) => waiting.push(r),
                Err(_) => break,
            }
        }
        let keys: Vec<Key> = waiting.iter().map(|(k, _)| *k).collect();
        match db
            .run(async |conn| store::load_deliveries(conn, &keys).await)
            .await
        {
            Ok(rows) => {
                let by_key: HashMap<Key, DeliveryRow> =
                    rows.into_iter().map(|r| ((r.id, r.tenant_id), r)).collect();
                for (key, reply) in waiting {
                    // The asker may have gone (shutdown); nothing to do then.
                    let _ = reply.send(Ok(by_key.get(&key).cloned()));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for (_, reply) in waiting {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
