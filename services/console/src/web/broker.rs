//! The pipeline's queues as RabbitMQ's management HTTP API reports them:
//! depth, ready and unacknowledged counts, consumers and rates. A queue has
//! no `message_stats` until it has seen traffic (and its rates drop to 0
//! when traffic stops): both read as zero rates, never as an error.

use std::time::Duration;

use salesync_core::amqp::topology::{Q_DEAD, Q_FORWARD, Q_SALE_EVENTS, Q_STATUS};
use serde::Deserialize;

/// What kind of queue a pipeline queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QueueKind {
    Work,
    Retry,
    DeadLetter,
    Other,
}

impl QueueKind {
    pub fn of(name: &str) -> Self {
        match name {
            Q_SALE_EVENTS | Q_FORWARD | Q_STATUS => QueueKind::Work,
            Q_DEAD => QueueKind::DeadLetter,
            n if n.starts_with("salesync.forward.retry.") => QueueKind::Retry,
            _ => QueueKind::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            QueueKind::Work => "work",
            QueueKind::Retry => "retry tier",
            QueueKind::DeadLetter => "dead letter",
            QueueKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub messages_ready: u64,
    #[serde(default)]
    pub messages_unacknowledged: u64,
    #[serde(default)]
    pub consumers: u64,
    #[serde(default)]
    pub message_stats: Option<MessageStats>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct MessageStats {
    pub publish_details: Option<Rate>,
    pub deliver_get_details: Option<Rate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct Rate {
    #[serde(default)]
    pub rate: f64,
}

impl QueueInfo {
    pub fn kind(&self) -> QueueKind {
        QueueKind::of(&self.name)
    }
    pub fn publish_rate(&self) -> f64 {
        self.stat(|s| s.publish_details)
    }
    pub fn deliver_rate(&self) -> f64 {
        self.stat(|s| s.deliver_get_details)
    }
    fn stat(&self, pick: impl Fn(&MessageStats) -> Option<Rate>) -> f64 {
        self.message_stats
            .as_ref()
            .and_then(pick)
            .map_or(0.0, |r| r.rate)
    }
}

/// The pipeline's queues (`salesync.*`), work queues first, then retry
/// tiers by delay, then the dead letters.
pub fn pipeline_queues(mut all: Vec<QueueInfo>) -> Vec<QueueInfo> {
    all.retain(|q| q.kind() != QueueKind::Other);
    all.sort_by(|a, b| {
        (a.kind(), retry_ms(&a.name), &a.name).cmp(&(b.kind(), retry_ms(&b.name), &b.name))
    });
    all
}

fn retry_ms(name: &str) -> u64 {
    name.strip_prefix("salesync.forward.retry.")
        .and_then(|s| s.strip_suffix("ms"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Where the management API is and which vhost is ours.
#[derive(Debug, Clone)]
pub struct ManagementApi {
    /// e.g. `http://127.0.0.1:15672` (no trailing slash, no credentials).
    pub base: String,
    pub user: String,
    pub password: String,
    pub vhost: String,
}

impl ManagementApi {
    /// From `RABBITMQ_MANAGEMENT_URL` (credentials in it, default
    /// guest/guest) and the vhost of the first node of `AMQP_URL`.
    pub fn new(management_url: &str, amqp_url: &str) -> anyhow::Result<Self> {
        let m = url::Url::parse(management_url)?;
        let user = match m.username() {
            "" => "guest".to_string(),
            u => decode(u),
        };
        let password = m.password().map_or_else(|| "guest".to_string(), decode);
        let mut base = m.clone();
        let _ = base.set_username("");
        let _ = base.set_password(None);
        let first = amqp_url.split(',').next().unwrap_or_default();
        let vhost = url::Url::parse(first)
            .ok()
            .map(|u| decode(u.path().trim_start_matches('/')))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "/".to_string());
        Ok(Self {
            base: base.as_str().trim_end_matches('/').to_string(),
            user,
            password,
            vhost,
        })
    }

    /// Every queue of our vhost.
    pub async fn queues(&self, http: &reqwest::Client) -> anyhow::Result<Vec<QueueInfo>> {
        let vhost: String = url::form_urlencoded::byte_serialize(self.vhost.as_bytes()).collect();
        let answer = http
            .get(format!("{}/api/queues/{vhost}", self.base))
            .basic_auth(&self.user, Some(&self.password))
            .timeout(Duration::from_secs(5))
            .send()
            .await?
            .error_for_status()?;
        Ok(answer.json().await?)
    }
}

/// Percent-decoding of a URL part ('+' stays '+').
fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_without_traffic_have_no_rates() {
        let raw = r#"[
            {"name":"salesync.forward","messages":3,"messages_ready":1,"messages_unacknowledged":2,"consumers":2,
             "message_stats":{"publish_details":{"rate":4.5},"deliver_get_details":{"rate":4.0}}},
            {"name":"salesync.dead","messages":0,"consumers":0},
            {"name":"salesync.forward.retry.30000ms","messages":0},
            {"name":"salesync.forward.retry.1000ms","messages":1},
            {"name":"amq.gen-xyz","messages":9},
            {"name":"salesync.sale-events","message_stats":{}}
        ]"#;
        let queues = pipeline_queues(serde_json::from_str(raw).unwrap());
        let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "salesync.forward",
                "salesync.sale-events",
                "salesync.forward.retry.1000ms",
                "salesync.forward.retry.30000ms",
                "salesync.dead"
            ]
        );
        assert_eq!(queues[0].publish_rate(), 4.5);
        assert_eq!(queues[1].publish_rate(), 0.0);
        assert_eq!(queues[4].deliver_rate(), 0.0);
    }

    #[test]
    fn vhost_and_credentials() {
        let m = ManagementApi::new(
            "http://ops:p%40ss@mq:15672/",
            "amqp://u:p@mq1:5672/salesync%2Dprod,amqp://u:p@mq2:5672/salesync%2Dprod",
        )
        .unwrap();
        assert_eq!(
            (m.base.as_str(), m.user.as_str(), m.password.as_str()),
            ("http://mq:15672", "ops", "p@ss")
        );
        assert_eq!(m.vhost, "salesync-prod");
        let d = ManagementApi::new(
            "http://127.0.0.1:15672",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        )
        .unwrap();
        assert_eq!((d.user.as_str(), d.vhost.as_str()), ("guest", "/"));
        let d = ManagementApi::new("http://127.0.0.1:15672", "amqp://127.0.0.1:5672").unwrap();
        assert_eq!(d.vhost, "/");
    }
}
