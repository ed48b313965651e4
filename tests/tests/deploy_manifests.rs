//! The deployment manifests are valid and wired together (issue 18,
//! "Deployment beyond one machine"), checked offline — there is no Docker
//! engine or Kubernetes cluster here:
//!
//! - `compose_file_is_valid_and_consistent`: deploy/compose.yaml against
//!   the compose-spec schema (check-jsonschema's vendored copy), and its
//!   wiring: every salesync service runs a real binary with only variables
//!   its `--help` lists, DATABASE_URL / AMQP_URL / the OTLP endpoint name
//!   services and ports of the file (AMQP_URL all three RabbitMQ nodes, as
//!   a user the nodes are loaded with), API_LISTEN / OPS_LISTEN match the
//!   health checks, published ports and Prometheus scrape targets, every
//!   referenced file exists, every depends_on is a service.
//! - `kubernetes_manifests_are_valid_and_consistent`: deploy/k8s/*.yaml
//!   against the bundled Kubernetes schemas (kubernetes-validate, strict),
//!   the custom resources' required fields, and the same wiring checks.
//!
//! Needs `cargo build --workspace --bins` (the binaries' --help) and the
//! validators deploy/setup.sh installs into .venv-deploy.

use salesync_core::amqp::topology::DEFAULT_RETRY_DELAYS;
use salesync_e2e::deploy::binaries::EnvNames;
use salesync_e2e::deploy::compose::{self, ComposeInputs};
use salesync_e2e::deploy::tools::DeployTools;
use salesync_e2e::deploy::{deploy_path, url_endpoints};
use serde_json::Value;

fn read(rel: &str) -> String {
    let path = deploy_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The users the compose RabbitMQ nodes are loaded with.
fn compose_rabbitmq_users() -> Vec<String> {
    let users: Value =
        serde_json::from_str(&read("compose/rabbitmq-users.json")).expect("users JSON");
    users["users"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn compose_file_is_valid_and_consistent() {
    let tools = DeployTools::locate().expect("manifest validators");
    let file = deploy_path("compose.yaml");

    let schema = tools.check_compose_schema(&file).expect("check-jsonschema");
    assert!(
        schema.success,
        "deploy/compose.yaml breaks the compose-spec schema:\n{}",
        schema.output
    );

    let compose_doc = tools.yaml(&file).expect("compose YAML");
    let env_names = EnvNames::of_all_services().expect("the services' --help");
    let problems = compose::problems(&ComposeInputs {
        compose: &compose_doc,
        base: &deploy_path(""),
        env_names: &env_names,
        rabbitmq_conf: &read("compose/rabbitmq.conf"),
        otel_config: &tools
            .yaml(&deploy_path("compose/otel-collector.yaml"))
            .expect("collector YAML"),
        prometheus: &tools
            .yaml(&deploy_path("compose/prometheus.yml"))
            .expect("prometheus YAML"),
        default_retry_delays: DEFAULT_RETRY_DELAYS,
    });
    assert!(
        problems.is_empty(),
        "deploy/compose.yaml:\n{}",
        problems.join("\n")
    );

    // The services log in to RabbitMQ as a user the nodes are loaded with
    // (a node that loads definitions creates no default user).
    let users = compose_rabbitmq_users();
    for (name, svc) in compose_doc["services"].as_object().unwrap() {
        let Some(url) = svc["environment"]["AMQP_URL"].as_str() else {
            continue;
        };
        for node in url.split(',') {
            let user = node
                .split("://")
                .nth(1)
                .and_then(|r| r.split(':').next())
                .unwrap_or_default();
            assert!(
                users.iter().any(|u| u == user),
                "{name}: AMQP_URL user {user} is not in compose/rabbitmq-users.json"
            );
        }
        assert_eq!(
            url_endpoints(url).len(),
            3,
            "{name}: AMQP_URL should list the three nodes"
        );
    }
}
