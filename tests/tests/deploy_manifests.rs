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
use salesync_e2e::deploy::k8s;
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

fn k8s_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(deploy_path("k8s"))
        .expect("deploy/k8s")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn kubernetes_definitions_configmap_is_the_definitions_file() {
    let want = k8s::definitions_configmap(&read("rabbitmq/definitions.json"));
    let path = deploy_path("k8s/rabbitmq-definitions.yaml");
    if std::env::var_os("UPDATE_DEPLOY").is_some() {
        std::fs::write(&path, &want).expect("write the ConfigMap");
    }
    assert!(
        std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()),
        "deploy/k8s/rabbitmq-definitions.yaml is not deploy/rabbitmq/definitions.json; rewrite it: UPDATE_DEPLOY=1 cargo nextest run -p salesync-e2e --test deploy_manifests"
    );
}

#[test]
fn kubernetes_manifests_are_valid_and_consistent() {
    let tools = DeployTools::locate().expect("manifest validators");
    let files = k8s_files();
    assert!(files.len() >= 5, "deploy/k8s has {files:?}");

    let run = tools
        .kubernetes_validate(&files)
        .expect("kubernetes-validate");
    assert!(
        run.success,
        "kubernetes-validate --strict rejects deploy/k8s:\n{}",
        run.output
    );
    // Only the two custom resources may go without a schema.
    for line in run
        .output
        .lines()
        .filter(|l| l.contains("Couldn't find schema"))
    {
        assert!(
            line.contains("kind Cluster with api version postgresql.cnpg.io/v1")
                || line.contains("kind RabbitmqCluster with api version rabbitmq.com/v1beta1"),
            "a resource went unvalidated: {line}"
        );
    }

    let docs: Vec<Value> = files
        .iter()
        .flat_map(|f| tools.yaml_documents(f).expect("k8s YAML"))
        .collect();
    // The ConfigMap's JSON is the definitions file's (the text check is
    // kubernetes_definitions_configmap_is_the_definitions_file).
    let cm = docs
        .iter()
        .find(|d| {
            d["kind"] == "ConfigMap" && d["metadata"]["name"] == "salesync-rabbitmq-definitions"
        })
        .expect("ConfigMap salesync-rabbitmq-definitions");
    let embedded: Value =
        serde_json::from_str(cm["data"]["definitions.json"].as_str().unwrap_or_default())
            .expect("embedded JSON");
    assert_eq!(
        embedded,
        serde_json::from_str::<Value>(&read("rabbitmq/definitions.json")).unwrap()
    );

    let env_names = EnvNames::of_all_services().expect("the services' --help");
    let problems = k8s::problems(&docs, &env_names);
    assert!(problems.is_empty(), "deploy/k8s:\n{}", problems.join("\n"));
}
