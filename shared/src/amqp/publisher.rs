//! Publishing with publisher confirms. A batch is sent in one go and its
//! confirms awaited together (pipelined), so durability costs one round trip
//! per batch rather than per message.

use std::collections::BTreeMap;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection, PublisherConfirm};

use super::map_to_headers;
use crate::messages::EXCHANGE;

/// One message to publish. `exchange` empty means the default exchange
/// (routing key = queue name), which the retry delay queues use.
#[derive(Debug, Clone)]
pub struct OutgoingMessage {
    pub exchange: String,
    pub routing_key: String,
    pub message_id: String,
    pub message_type: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// Per-message TTL in ms (retry jitter inside a delay queue).
    pub expiration_ms: Option<u64>,
}

impl OutgoingMessage {
    /// A message to the salesync exchange.
    pub fn new(
        routing_key: &str,
        message_id: String,
        message_type: &str,
        headers: BTreeMap<String, String>,
        body: Vec<u8>,
    ) -> Self {
        Self {
            exchange: EXCHANGE.into(),
            routing_key: routing_key.into(),
            message_id,
            message_type: message_type.into(),
            headers,
            body,
            expiration_ms: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker refused (nack) message {0}")]
    Nacked(String),
    #[error("message {0} was unroutable ({1})")]
    Unroutable(String, String),
}

#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// Opens a channel in confirm mode.
    pub async fn open(conn: &Connection) -> lapin::Result<Self> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes every message persistently and returns once the broker has
    /// confirmed all of them. Any nack or unroutable message fails the batch;
    /// the caller retries it whole (consumers dedupe by message id).
    pub async fn publish_all(&self, messages: &[OutgoingMessage]) -> Result<(), PublishError> {
        self.send_all(messages).await?.confirmed().await
    }

    /// Sends every message persistently without waiting for the broker: the
    /// returned [`Confirms`] resolve once it has them all. Messages sent
    /// later on this publisher reach the queues after these.
    pub async fn send_all(&self, messages: &[OutgoingMessage]) -> Result<Confirms, PublishError> {
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let mut props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(m.message_id.clone().into())
                .with_type(m.message_type.clone().into())
                .with_headers(map_to_headers(&m.headers));
            if let Some(ms) = m.expiration_ms {
                props = props.with_expiration(ms.to_string().into());
            }
            let confirm = self
                .channel
                .basic_publish(
                    m.exchange.clone().into(),
                    m.routing_key.clone().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &m.body,
                    props,
                )
                .await?;
            pending.push((m.message_id.clone(), confirm));
        }
        Ok(Confirms { pending })
    }
}

/// The broker's answers to messages sent with [`Publisher::send_all`].
pub struct Confirms {
    pending: Vec<(String, PublisherConfirm)>,
}

impl Confirms {
    /// Resolves once every message is confirmed; any nack or unroutable
    /// message fails the whole batch.
    pub async fn confirmed(self) -> Result<(), PublishError> {
        for (message_id, confirm) in self.pending {
            let confirmation = confirm.await?;
            if confirmation.is_nack() {
                return Err(PublishError::Nacked(message_id));
            }
            if let Some(returned) = confirmation.take_message() {
                return Err(PublishError::Unroutable(
                    message_id,
                    returned.reply_text.to_string(),
                ));
            }
        }
        Ok(())
    }
}
