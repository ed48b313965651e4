//! The batch consumer loop with bundles on a real broker (its own vhost): a
//! handler sees every part of every bundle exactly once, and its batches
//! stay as small as the prefetch says — counted in messages, not bundles —
//! so bundling cannot make one transaction hundreds of times larger.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use salesync_core::amqp::consumer::{self, BatchHandler, ConsumerConfig, Message, Outcome};
use salesync_core::amqp::publisher::{OutgoingMessage, Publisher};
use salesync_core::amqp::{self, bundle, topology};
use salesync_core::metrics::Metrics;
use salesync_core::ops::Readiness;
use salesync_e2e::TestVhost;
use tokio_util::sync::CancellationToken;

const PREFETCH: u16 = 32;
const BUNDLES: usize = 30;
const PARTS: usize = 20;

/// Records each batch's message ids.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Vec<String>>>,
}

impl BatchHandler for Recorder {
    async fn handle(&self, batch: &[Message], _: &Publisher) -> anyhow::Result<Vec<Outcome>> {
        let ids = batch
            .iter()
            .map(|m| m.message_id.clone().unwrap_or_default())
            .collect();
        self.batches.lock().expect("lock").push(ids);
        Ok(vec![Outcome::Ack; batch.len()])
    }
}

fn event(n: usize) -> OutgoingMessage {
    OutgoingMessage::new(
        "sale.ingested",
        format!("m{n:04}"),
        "sale.event",
        BTreeMap::new(),
        format!("{{\"n\":{n}}}").into_bytes(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_are_opened_and_batches_stay_within_the_prefetch() {
    let vhost = TestVhost::create().await.expect("vhost");
    let conn = amqp::connect(vhost.amqp_url(), "batch-consumer-test")
        .await
        .expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    topology::declare(&ch).await.expect("topology");
    // Everything is queued before the consumer starts, so it finds a full
    // prefetch window of bundles at once.
    let messages: Vec<OutgoingMessage> = (0..BUNDLES * PARTS).map(event).collect();
    let mut outgoing = Vec::new();
    for run in messages.chunks(PARTS) {
        outgoing.extend(bundle::bundle(run.to_vec(), |_| true));
    }
    assert_eq!(outgoing.len(), BUNDLES);
    let publisher = Publisher::open(&conn).await.expect("publisher");
    publisher.publish_all(&outgoing).await.expect("publish");

    let recorder = Arc::new(Recorder::default());
    let shutdown = CancellationToken::new();
    let readiness = Readiness::default();
    let task = tokio::spawn(consumer::run(
        ConsumerConfig {
            amqp_url: vhost.amqp_url().to_string(),
            queue: topology::Q_SALE_EVENTS,
            prefetch: PREFETCH,
            connection_name: "batch-consumer-test".into(),
            retry_delays: Vec::new(),
        },
        recorder.clone(),
        readiness.part("consumer"),
        Metrics::new("batch-consumer-test"),
        shutdown.clone(),
    ));
    let handled = || recorder.batches.lock().expect("lock").concat();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while handled().len() < messages.len() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.expect("consumer stops");

    let mut got = handled();
    got.sort();
    let want: Vec<String> = messages.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(got, want, "every part handled exactly once");
    let sizes: Vec<usize> = recorder
        .batches
        .lock()
        .expect("lock")
        .iter()
        .map(Vec::len)
        .collect();
    let most = PREFETCH as usize + PARTS - 1;
    assert!(
        sizes.iter().all(|&n| n <= most),
        "a batch above {most} messages: {sizes:?}"
    );
    // All acked: nothing left for a redelivery.
    let q = ch
        .queue_declare(
            topology::Q_SALE_EVENTS.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("queue");
    assert_eq!(q.message_count(), 0);
    let _ = conn.close(200, "bye".into()).await;
    vhost.cleanup().await.expect("vhost cleanup");
}
