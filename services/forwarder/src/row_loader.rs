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
        // Askers by key: a row (with its body) is moved to its one asker,
        // copied only if the same delivery was asked for twice.
        let mut askers: HashMap<Key, Vec<Reply>> = HashMap::new();
        for (key, reply) in waiting {
            askers.entry(key).or_default().push(reply);
        }
        let keys: Vec<Key> = askers.keys().copied().collect();
        // An asker may have gone (shutdown): its send fails, nothing to do.
        match db
            .run(async |conn| store::load_deliveries(conn, &keys).await)
            .await
        {
            Ok(rows) => {
                for row in rows {
                    let Some(mut replies) = askers.remove(&(row.id, row.tenant_id)) else {
                        continue;
                    };
                    let last = replies.pop();
                    for reply in replies {
                        let _ = reply.send(Ok(Some(row.clone())));
                    }
                    if let Some(reply) = last {
                        let _ = reply.send(Ok(Some(row)));
                    }
                }
                for reply in askers.into_values().flatten() {
                    let _ = reply.send(Ok(None));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for reply in askers.into_values().flatten() {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
