//! `Broker`: what a test does on the AMQP side of a vhost — capture every
//! message the services publish (a private queue bound to `#`), inject a
//! copy of a message (to prove redeliveries change nothing), count and read
//! queues (the dead-letter queue). Uses the shared topology and publisher so
//! the test speaks exactly the services' protocol.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{bundle, connect, headers_to_map, topology};
use salesync_core::messages::EXCHANGE;
use serde_json::Value;

use crate::temp::unique_suffix;

/// One message as it was on the wire — or as a part of a bundle
/// (`amqp::bundle`), which consumers see exactly like a message of its own.
#[derive(Clone, Debug)]
pub struct Captured {
    pub routing_key: String,
    pub message_id: Option<String>,
    /// The AMQP `type` property (a part's own type).
    pub message_type: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The id of the bundle this message travelled in, if it did.
    pub bundle_id: Option<String>,
}

impl Captured {
    /// The messages of a delivery: itself, or a bundle's parts in order (a
    /// bundle that does not open is kept whole).
    fn from_delivery(d: &lapin::message::Delivery) -> Vec<Self> {
        let whole = Self {
            routing_key: d.routing_key.to_string(),
            message_id: d.properties.message_id().as_ref().map(|m| m.to_string()),
            message_type: d.properties.kind().as_ref().map(|m| m.to_string()),
            headers: headers_to_map(d.properties.headers().as_ref()),
            body: d.data.clone(),
            bundle_id: None,
        };
        if whole.message_type.as_deref() != Some(bundle::BUNDLE_TYPE) {
            return vec![whole];
        }
        match bundle::unbundle(&whole.body) {
            Ok(parts) => parts
                .into_iter()
                .map(|p| Self {
                    routing_key: whole.routing_key.clone(),
                    message_id: Some(p.message_id),
                    message_type: Some(p.message_type),
                    headers: p.headers,
                    body: p.body,
                    bundle_id: whole.message_id.clone(),
                })
                .collect(),
            Err(_) => vec![whole],
        }
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The envelope's `type` field.
    pub fn envelope_type(&self) -> Option<String> {
        self.json()
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// The message as an `OutgoingMessage`, to publish an identical copy.
    pub fn to_outgoing(&self) -> OutgoingMessage {
        OutgoingMessage::new(
            &self.routing_key,
            self.message_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            self.message_type.as_deref().unwrap_or_default(),
            self.headers.clone(),
            self.body.clone(),
        )
    }
}

pub struct Broker {
    conn: Connection,
    publisher: Publisher,
}

/// Messages collected by a capture queue, in arrival order.
pub struct Capture {
    messages: Arc<Mutex<Vec<Captured>>>,
    task: tokio::task::JoinHandle<()>,
    _channel: Channel,
}

impl Capture {
    pub fn messages(&self) -> Vec<Captured> {
        self.lock().clone()
    }

    /// Captured messages with this routing key.
    pub fn with_key(&self, routing_key: &str) -> Vec<Captured> {
        self.lock()
            .iter()
            .filter(|m| m.routing_key == routing_key)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Captured>> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Broker {
    /// Connects and declares the salesync topology (idempotent), so captures
    /// can bind before any service has started.
    pub async fn connect(amqp_url: &str) -> anyhow::Result<Self> {
        let conn = connect(amqp_url, "salesync-e2e").await?;
        let ch = conn.create_channel().await?;
        topology::declare(&ch).await?;
        let publisher = Publisher::open(&conn).await?;
        Ok(Self { conn, publisher })
    }

    /// Binds a private, auto-deleted queue to `salesync` with `pattern`
    /// (e.g. `#`) and collects everything routed to it from now on.
    pub async fn capture(&self, pattern: &str) -> anyhow::Result<Capture> {
        let ch = self.conn.create_channel().await?;
        let queue = format!("sstest.capture.{}", unique_suffix());
        ch.queue_declare(
            queue.clone().into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
        ch.queue_bind(
            queue.clone().into(),
            EXCHANGE.into(),
            pattern.to_string().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        let mut consumer = ch
            .basic_consume(
                queue.clone().into(),
                format!("{queue}-consumer").into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(Captured::from_delivery(&d));
            }
        });
        Ok(Capture {
            messages,
            task,
            _channel: ch,
        })
    }

    /// Publishes messages with confirms (e.g. a copy of a captured one).
    pub async fn publish(&self, messages: &[OutgoingMessage]) -> anyhow::Result<()> {
        self.publisher.publish_all(messages).await?;
        Ok(())
    }

    /// Ready messages in `queue` (0 if it does not exist).
    pub async fn queue_depth(&self, queue: &str) -> anyhow::Result<u32> {
        // A passive declare of a missing queue closes its channel: use a fresh one.
        let ch = self.conn.create_channel().await?;
        let r = ch
            .queue_declare(
                queue.to_string().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let depth = r.map(|q| q.message_count()).unwrap_or(0);
        let _ = ch.close(200, "bye".into()).await;
        Ok(depth)
    }

    /// Takes (and acks) every message currently in `queue`.
    pub async fn drain(&self, queue: &str) -> anyhow::Result<Vec<Captured>> {
        let ch = self.conn.create_channel().await?;
        let mut out = Vec::new();
        while let Some(m) = ch
            .basic_get(queue.to_string().into(), BasicGetOptions::default())
            .await?
        {
            out.extend(Captured::from_delivery(&m.delivery));
            m.delivery.ack(BasicAckOptions::default()).await?;
        }
        let _ = ch.close(200, "bye".into()).await;
        Ok(out)
    }

    pub async fn close(self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}
