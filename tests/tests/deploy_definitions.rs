//! `deploy/rabbitmq/definitions.json` is the code's topology (issue 18,
//! "Deployment beyond one machine"):
//!
//! - `checked_in_file_is_generated_from_the_code`: the file is exactly
//!   what `salesync_core::amqp::definitions` makes from the queue list and
//!   argument builders `topology::declare` uses (default `RETRY_DELAYS`),
//!   and exactly what the documented command, `console
//!   topology-definitions`, prints.
//! - `a_broker_declared_by_the_code_agrees_with_the_file`: the services'
//!   own `declare` + `declare_retry_queues` on a fresh vhost of the real
//!   broker, read back from the management API (`/api/definitions/{vhost}`,
//!   `/api/queues/{vhost}`), equal the file: names, types, arguments,
//!   bindings, and every queue a quorum queue.
//! - `the_code_declares_cleanly_over_the_loaded_file`: a vhost loaded from
//!   the file (as a cluster booted with `load_definitions` is) accepts the
//!   services' declarations — the broker refuses a redeclaration with other
//!   arguments (`PRECONDITION_FAILED`) — and is unchanged by them.

use salesync_core::amqp::definitions::{DEFAULT_VHOST, definitions_file};
use salesync_core::amqp::{self, topology};
use salesync_core::config::parse_duration_list;
use salesync_e2e::TestVhost;
use salesync_e2e::deploy::definitions::Topology;
use salesync_e2e::deploy::deploy_path;
use salesync_e2e::services::bin_dir;
use salesync_e2e::vhost::encode_path_segment;
use serde_json::Value;

const REGENERATE: &str = "regenerate it: cargo build -p console && target/debug/console topology-definitions > deploy/rabbitmq/definitions.json";

fn checked_in() -> (String, Value) {
    let path = deploy_path("rabbitmq/definitions.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = serde_json::from_str(&text).expect("definitions.json is JSON");
    (text, json)
}

fn default_delays() -> Vec<std::time::Duration> {
    parse_duration_list(topology::DEFAULT_RETRY_DELAYS).expect("default RETRY_DELAYS")
}

#[test]
fn checked_in_file_is_generated_from_the_code() {
    let (text, _) = checked_in();
    let generated = definitions_file(DEFAULT_VHOST, &default_delays());
    assert!(
        text == generated,
        "deploy/rabbitmq/definitions.json is not the code's topology; {REGENERATE}\n{}",
        Topology::of(&serde_json::from_str(&generated).unwrap())
            .differences(&Topology::of(&serde_json::from_str(&text).unwrap()))
            .join("\n")
    );

    let console = bin_dir().join("console");
    let out = std::process::Command::new(&console)
        .arg("topology-definitions")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --workspace --bins)",
                console.display()
            )
        });
    assert!(
        out.status.success(),
        "console topology-definitions failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout) == text,
        "`console topology-definitions` does not print deploy/rabbitmq/definitions.json; {REGENERATE}"
    );
}

/// The services' declarations, on `vhost`, as the services make them.
async fn declare_as_the_services_do(vhost: &TestVhost) -> anyhow::Result<()> {
    let conn = amqp::connect(vhost.amqp_url(), "deploy-definitions").await?;
    let ch = conn.create_channel().await?;
    topology::declare(&ch).await?;
    topology::declare_retry_queues(&ch, &default_delays()).await?;
    conn.close(200, "done".into()).await?;
    Ok(())
}

async fn exported(vhost: &TestVhost) -> Value {
    let path = format!("/api/definitions/{}", encode_path_segment(vhost.name()));
    vhost
        .management()
        .get_json(&path)
        .await
        .expect("export definitions")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_declared_by_the_code_agrees_with_the_file() {
    let (_, file) = checked_in();
    let vhost = TestVhost::create().await.expect("vhost");
    declare_as_the_services_do(&vhost).await.expect("declare");

    let broker = exported(&vhost).await;
    let diff = Topology::of(&file).differences(&Topology::of(&broker));
    assert!(
        diff.is_empty(),
        "the broker, declared by the code, differs from deploy/rabbitmq/definitions.json ({REGENERATE}):\n{}",
        diff.join("\n")
    );

    // The running queues' own type, not only the argument asking for it.
    let path = format!(
        "/api/queues/{}?columns=name,type",
        encode_path_segment(vhost.name())
    );
    let queues = vhost.management().get_json(&path).await.expect("queues");
    let queues = queues.as_array().expect("queue list");
    assert_eq!(queues.len(), file["queues"].as_array().unwrap().len());
    for q in queues {
        assert_eq!(q["type"], "quorum", "{q}");
    }
    vhost.cleanup().await.expect("cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_declares_cleanly_over_the_loaded_file() {
    let (_, file) = checked_in();
    let vhost = TestVhost::create().await.expect("vhost");
    let path = format!("/api/definitions/{}", encode_path_segment(vhost.name()));
    vhost
        .management()
        .post_json(&path, file.clone())
        .await
        .expect("import definitions");
    let loaded = exported(&vhost).await;
    let diff = Topology::of(&file).differences(&Topology::of(&loaded));
    assert!(
        diff.is_empty(),
        "the import left something out:\n{}",
        diff.join("\n")
    );

    if let Err(e) = declare_as_the_services_do(&vhost).await {
        panic!(
            "the services' declarations are refused on a vhost loaded from deploy/rabbitmq/definitions.json ({REGENERATE}): {e}"
        );
    }
    let after = exported(&vhost).await;
    let diff = Topology::of(&loaded).differences(&Topology::of(&after));
    assert!(
        diff.is_empty(),
        "the services declared what the file lacks:\n{}",
        diff.join("\n")
    );
    vhost.cleanup().await.expect("cleanup");
}
