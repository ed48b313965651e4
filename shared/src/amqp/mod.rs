//! RabbitMQ: the topology every service declares, a publisher that waits for
//! broker confirms (pipelined, never one at a time), and a batch consumer loop
//! with manual acks that reconnects on its own.

pub mod acks;
pub mod bundle;
pub mod consumer;
pub mod publisher;
pub mod topology;

use std::collections::BTreeMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use tokio_util::sync::CancellationToken;

/// The largest AMQP frame we ask for unless the URL sets `frame_max`. lapin
/// keeps 32 frames of send and of receive buffer per connection, zero-filled:
/// at RabbitMQ's default of 128 KiB that is 8 MiB of resident memory per
/// connection, most of a service's idle footprint. Sales are a few KiB; a
/// larger message is simply split into several frames.
pub const DEFAULT_FRAME_MAX: u32 = 16 * 1024;

/// Opens one connection, naming it so the management UI shows who it is.
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let uri = connection_uri(url).map_err(|e| lapin::Error::from(std::io::Error::other(e)))?;
    Connection::connect_uri(
        uri,
        ConnectionProperties::default().with_connection_name(name.to_string().into()),
    )
    .await
}

/// Parses an AMQP URL, asking for [`DEFAULT_FRAME_MAX`] unless it says otherwise.
fn connection_uri(url: &str) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = url.parse()?;
    uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    Ok(uri)
}

/// Connects, retrying with capped exponential backoff until it works or
/// `shutdown` fires (then `None`).
pub async fn connect_with_retry(
    url: &str,
    name: &str,
    shutdown: &CancellationToken,
) -> Option<Connection> {
    let mut delays = reconnect_backoff();
    loop {
        match connect(url, name).await {
            Ok(c) => return Some(c),
            Err(e) => {
                let wait = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?wait, "RabbitMQ not reachable");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Endless jittered backoff between 100 ms and 5 s for reconnect loops.
pub fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// String-valued AMQP headers (trace context, dead-letter reason …) as a map.
pub fn headers_to_map(table: Option<&FieldTable>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Some(t) = table {
        for (k, v) in t {
            let s = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.to_string(),
                AMQPValue::LongLongInt(n) => n.to_string(),
                AMQPValue::LongInt(n) => n.to_string(),
                _ => continue,
            };
            map.insert(k.to_string(), s);
        }
    }
    map
}

pub fn map_to_headers(map: &BTreeMap<String, String>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(k.clone().into(), AMQPValue::LongString(v.clone().into()));
    }
    t
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_max_defaults_small_but_the_url_wins() {
        let uri = super::connection_uri("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(uri.query.frame_max, Some(super::DEFAULT_FRAME_MAX));
        assert_eq!(uri.vhost, "/");
        let uri = super::connection_uri("amqp://127.0.0.1/v?frame_max=131072").unwrap();
        assert_eq!(uri.query.frame_max, Some(131072));
        assert!(super::connection_uri("not a url").is_err());
    }
}
