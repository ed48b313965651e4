//! The `salesync.status` consumer: statuses that targets reported back
//! (via status-poller) are applied to the source sales. One transaction per
//! batch: lock the sales, plan (`status_plan`), write history, statuses,
//! status-webhook deliveries and their forwarder commands (outbox), commit —
//! and only then does the shared consumer loop ack.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use salesync_core::amqp::consumer::{BatchHandler, Message, Outcome};
use salesync_core::amqp::publisher::Publisher;
use salesync_core::domain::{DeliveryId, SaleId, TenantId};
use salesync_core::messages::{Envelope, StatusUpdate};
use salesync_core::outbox::{self, OutboxMessage};
use salesync_core::telemetry;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::events::{status_webhook_body, status_webhook_command};
use crate::status_plan::{self, Incoming, SaleState, Verdict};
use crate::store;
use salesync_core::tenant_webhook::NewWebhookDelivery;

pub struct StatusConsumer {
    pub pool: PgPool,
    /// Wakes the outbox relay after a commit that queued webhooks.
    pub wake: Arc<Notify>,
}

/// Decodes one message; an undecodable one is poison.
fn decode(m: &Message) -> Result<Incoming, String> {
    Envelope::<StatusUpdate>::decode(&m.data)
        .map(|e| Incoming {
            tenant_id: e.tenant_id,
            sale_id: e.sale_id,
            update: e.payload,
        })
        .map_err(|e| format!("poison: {e}"))
}

impl BatchHandler for StatusConsumer {
    async fn handle(
        &self,
        batch: &[Message],
        _publisher: &Publisher,
    ) -> anyhow::Result<Vec<Outcome>> {
        let spans: Vec<tracing::Span> = batch
            .iter()
            .map(|m| {
                let span = tracing::info_span!("status_update", sale_id = tracing::field::Empty);
                telemetry::set_parent_from_headers(&span, &m.headers);
                span
            })
            .collect();
        let items: Vec<Result<Incoming, String>> = batch.iter().map(decode).collect();
        for (span, item) in spans.iter().zip(&items) {
            if let Ok(i) = item {
                span.record("sale_id", tracing::field::display(i.sale_id));
            }
        }
        let sale_ids: Vec<SaleId> = items
            .iter()
            .filter_map(|i| i.as_ref().ok().map(|i| i.sale_id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();

        let mut tx = self.pool.begin().await?;
        let sales: HashMap<SaleId, SaleState> = store::status::lock_sales(&mut tx, &sale_ids)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.id,
                    SaleState {
                        tenant_id: r.tenant_id,
                        external_id: r.external_id,
                        status: r.status,
                    },
                )
            })
            .collect();
        let pairs: Vec<(SaleId, String)> = items
            .iter()
            .filter_map(|i| i.as_ref().ok())
            .map(|i| {
                let key = status_plan::dedupe_key(i.update.integration_id, &i.update.target_status);
                (i.sale_id, key)
            })
            .collect();
        let existing: HashSet<(SaleId, String)> = store::status::existing_keys(&mut tx, &pairs)
            .await?
            .into_iter()
            .collect();

        let plan = status_plan::plan(&items, &sales, &existing);
        let inserted = store::status::insert_history(&mut tx, &plan.history).await?;
        store::status::set_statuses(&mut tx, &plan.new_status).await?;

        // Status webhooks for the changes whose history row is new.
        let history_ids: HashMap<(SaleId, String), i64> = inserted
            .into_iter()
            .map(|(id, sale, key)| ((sale, key), id))
            .collect();
        let tenants: Vec<TenantId> = plan
            .applied
            .iter()
            .map(|a| a.tenant_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let urls = store::status::webhook_urls(&mut tx, &tenants).await?;
        let mut deliveries = Vec::new();
        let mut pending = Vec::new();
        // One instant stamps the stored bodies and the commands' acceptance.
        let now = chrono::Utc::now();
        for a in &plan.applied {
            let (Some(url), Some(history_id)) = (
                urls.get(&a.tenant_id),
                history_ids.get(&(a.notice.sale_id, a.dedupe_key.clone())),
            ) else {
                continue;
            };
            let id = DeliveryId::new();
            deliveries.push(NewWebhookDelivery {
                id,
                tenant_id: a.tenant_id,
                sale_id: a.notice.sale_id,
                dedupe_key: format!("status:{history_id}"),
                target_url: url.clone(),
                body: status_webhook_body(&a.notice, now),
            });
            pending.push((id, url.clone(), a));
        }
        let created: HashSet<DeliveryId> =
            salesync_core::tenant_webhook::insert_webhook_deliveries(&mut tx, &deliveries)
                .await?
                .into_iter()
                .collect();
        let mut messages: Vec<OutboxMessage> = Vec::new();
        for (id, url, a) in pending {
            if !created.contains(&id) {
                continue;
            }
            // Built inside the message's span so the trace reaches the forwarder.
            let span = spans
                .get(a.item)
                .cloned()
                .unwrap_or_else(tracing::Span::current);
            messages.push(
                span.in_scope(|| status_webhook_command(a.tenant_id, id, &url, &a.notice, now)),
            );
        }
        outbox::enqueue(&mut tx, &messages).await?;
        tx.commit().await?;
        if !messages.is_empty() {
            self.wake.notify_one();
        }

        Ok(plan
            .verdicts
            .into_iter()
            .zip(&spans)
            .map(|(verdict, span)| {
                let _enter = span.enter();
                match verdict {
                    Verdict::Dead(reason) => Outcome::Dead(reason),
                    v => {
                        tracing::debug!(verdict = ?v, "status update handled");
                        Outcome::Ack
                    }
                }
            })
            .collect())
    }
}
