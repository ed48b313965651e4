//! The wiring of `deploy/compose.yaml`, checked without a Docker engine:
//! each salesync service runs a real binary with only variables that binary
//! takes, its URLs name services and ports the file defines, its listen
//! port is the one its health check, published port and Prometheus scrape
//! target use, every referenced file exists and every `depends_on` names a
//! service. Pure: the caller reads the files ([`ComposeInputs`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::binaries::EnvNames;
use super::{port_of, url_endpoints};

/// The compose file and what it points at, read.
pub struct ComposeInputs<'a> {
    /// deploy/compose.yaml as JSON (merge keys resolved).
    pub compose: &'a Value,
    /// The directory relative paths in it are resolved against.
    pub base: &'a Path,
    pub env_names: &'a EnvNames,
    /// The RabbitMQ nodes' rabbitmq.conf (their ports).
    pub rabbitmq_conf: &'a str,
    /// The collector's config (its receiver endpoints).
    pub otel_config: &'a Value,
    /// Prometheus' scrape config.
    pub prometheus: &'a Value,
    /// The forwarder's default RETRY_DELAYS, which the definitions' delay
    /// queues are made for.
    pub default_retry_delays: &'a str,
}

/// Every inconsistency found, one line each.
pub fn problems(input: &ComposeInputs) -> Vec<String> {
    let mut out = Vec::new();
    let services = input.compose["services"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let listening = listening_ports(input, &services);

    for (name, svc) in &services {
        for dep in depends_on(svc) {
            if !services.contains_key(&dep) {
                out.push(format!("{name}: depends_on {dep}, which is no service"));
            }
        }
        if let Some(binary) = salesync_binary(svc) {
            check_salesync_service(input, name, svc, &binary, &services, &listening, &mut out);
        }
    }
    check_files(input, &mut out);
    check_scrape_targets(input, &services, &listening, &mut out);
    out
}

/// The binary a salesync service runs (`command[0]`), when its image is
/// salesync's.
fn salesync_binary(svc: &Value) -> Option<String> {
    let image = svc["image"].as_str()?;
    if !image.starts_with("salesync:") && !image.starts_with("salesync/") {
        return None;
    }
    Some(svc["command"][0].as_str().unwrap_or_default().to_string())
}

fn env(svc: &Value) -> BTreeMap<String, String> {
    svc["environment"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn depends_on(svc: &Value) -> Vec<String> {
    match &svc["depends_on"] {
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Value::Object(m) => m.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The address a salesync service listens on: API_LISTEN for the API
/// services, OPS_LISTEN for the workers.
pub fn listen_var(binary: &str) -> &'static str {
    match binary {
        "ingest" | "console" => "API_LISTEN",
        _ => "OPS_LISTEN",
    }
}

/// service → ports something listens on inside it.
fn listening_ports(
    input: &ComposeInputs,
    services: &serde_json::Map<String, Value>,
) -> BTreeMap<String, BTreeSet<u16>> {
    let conf_port = |key: &str| -> Option<u16> {
        input.rabbitmq_conf.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().parse().ok()).flatten()
        })
    };
    let mut out = BTreeMap::new();
    for (name, svc) in services {
        let image = svc["image"].as_str().unwrap_or_default();
        let ports: BTreeSet<u16> = if let Some(binary) = salesync_binary(svc) {
            env(svc)
                .get(listen_var(&binary))
                .and_then(|a| port_of(a))
                .into_iter()
                .collect()
        } else if image.starts_with("postgres:") {
            [5432].into()
        } else if image.starts_with("rabbitmq:") {
            [
                "listeners.tcp.default",
                "management.tcp.port",
                "prometheus.tcp.port",
            ]
            .iter()
            .filter_map(|k| conf_port(k))
            .collect()
        } else if image.contains("opentelemetry-collector") {
            let protocols = &input.otel_config["receivers"]["otlp"]["protocols"];
            ["http", "grpc"]
                .iter()
                .filter_map(|p| protocols[*p]["endpoint"].as_str().and_then(port_of))
                .collect()
        } else if image.starts_with("prom/prometheus") {
            [9090].into()
        } else if image.starts_with("grafana/") {
            [3000].into()
        } else {
            BTreeSet::new()
        };
        out.insert(name.clone(), ports);
    }
    out
}

fn check_salesync_service(
    input: &ComposeInputs,
    name: &str,
    svc: &Value,
    binary: &str,
    services: &serde_json::Map<String, Value>,
    listening: &BTreeMap<String, BTreeSet<u16>>,
    out: &mut Vec<String>,
) {
    if input.env_names.get(binary).is_empty() {
        out.push(format!("{name}: command {binary:?} is no salesync binary"));
        return;
    }
    let env = env(svc);
    out.extend(
        input
            .env_names
            .unknown(binary, env.keys())
            .into_iter()
            .map(|p| format!("{name}: {p}")),
    );

    let points_at = |var: &str, image_prefix: &str, out: &mut Vec<String>| {
        let Some(url) = env.get(var) else {
            out.push(format!("{name}: {var} unset"));
            return Vec::new();
        };
        let endpoints = url_endpoints(url);
        if endpoints.is_empty() {
            out.push(format!("{name}: {var}={url} names no host"));
        }
        for (host, port) in &endpoints {
            let image = services
                .get(host)
                .and_then(|s| s["image"].as_str())
                .unwrap_or_default();
            if !image.starts_with(image_prefix) {
                out.push(format!(
                    "{name}: {var} points at {host}, which is no {image_prefix} service"
                ));
            } else if !listening.get(host).is_some_and(|p| p.contains(port)) {
                out.push(format!(
                    "{name}: {var} uses port {port} of {host}, which listens on {:?}",
                    listening.get(host)
                ));
            }
        }
        endpoints
    };
    points_at("DATABASE_URL", "postgres:", out);
    let nodes = points_at("AMQP_URL", "rabbitmq:", out);
    let all_nodes: BTreeSet<&String> = services
        .iter()
        .filter(|(_, s)| {
            s["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("rabbitmq:"))
        })
        .map(|(n, _)| n)
        .collect();
    let listed: BTreeSet<&String> = nodes.iter().map(|(h, _)| h).collect();
    if listed != all_nodes {
        out.push(format!(
            "{name}: AMQP_URL lists {listed:?}, the cluster is {all_nodes:?}"
        ));
    }
    if env.contains_key("OTEL_EXPORTER_OTLP_ENDPOINT") {
        points_at("OTEL_EXPORTER_OTLP_ENDPOINT", "otel/", out);
    }
    if let Some(d) = env
        .get("RETRY_DELAYS")
        .filter(|d| binary == "forwarder" && *d != input.default_retry_delays)
    {
        out.push(format!(
            "{name}: RETRY_DELAYS={d} but deploy/rabbitmq/definitions.json holds the delay queues of {}",
            input.default_retry_delays
        ));
    }
    check_listen(name, svc, &env, binary, out);
}

/// The listen address is reachable from other containers, and the health
/// check and published port use it.
fn check_listen(
    name: &str,
    svc: &Value,
    env: &BTreeMap<String, String>,
    binary: &str,
    out: &mut Vec<String>,
) {
    let var = listen_var(binary);
    let Some(addr) = env.get(var) else {
        out.push(format!(
            "{name}: {var} unset (the default listens on 127.0.0.1 only)"
        ));
        return;
    };
    if !addr.starts_with("0.0.0.0:") && !addr.starts_with("[::]:") {
        out.push(format!(
            "{name}: {var}={addr} is unreachable from other containers"
        ));
    }
    let port = port_of(addr);
    let check = svc["healthcheck"]["test"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let probe_url = check.split_whitespace().find(|w| w.starts_with("http://"));
    match probe_url {
        None => out.push(format!("{name}: no HTTP health check")),
        Some(u) => {
            let ok_path = u.ends_with("/readyz") || u.ends_with("/healthz");
            if url_endpoints(u).first().map(|(_, p)| *p) != port || !ok_path {
                out.push(format!(
                    "{name}: health check {u} is not /readyz or /healthz on {var}'s port {port:?}"
                ));
            }
        }
    }
    for published in svc["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let container = published
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        if container != port {
            out.push(format!(
                "{name}: publishes {published}, but listens on {port:?}"
            ));
        }
    }
}

fn check_files(input: &ComposeInputs, out: &mut Vec<String>) {
    let mut files: Vec<String> = input.compose["configs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, c)| c["file"].as_str().map(String::from))
        .collect();
    for svc in input.compose["services"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, s)| s)
    {
        for v in svc["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if v.starts_with('.') || v.starts_with('/') {
                files.push(v.split(':').next().unwrap_or_default().to_string());
            }
        }
        if let Some(df) = svc["build"]["dockerfile"].as_str() {
            let ctx = svc["build"]["context"].as_str().unwrap_or(".");
            files.push(format!("{ctx}/{df}"));
        }
    }
    for f in files {
        if !input.base.join(&f).exists() {
            out.push(format!(
                "{f} (referenced by the compose file) does not exist"
            ));
        }
    }
}

/// The `salesync` job scrapes exactly the five services, each on its
/// listen port; the RabbitMQ jobs scrape nodes of the cluster on their
/// Prometheus port.
fn check_scrape_targets(
    input: &ComposeInputs,
    services: &serde_json::Map<String, Value>,
    listening: &BTreeMap<String, BTreeSet<u16>>,
    out: &mut Vec<String>,
) {
    let expected: BTreeSet<String> = services
        .iter()
        .filter_map(|(name, svc)| {
            let binary = salesync_binary(svc)?;
            let port = port_of(env(svc).get(listen_var(&binary))?)?;
            Some(format!("{name}:{port}"))
        })
        .collect();
    for job in input.prometheus["scrape_configs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let targets: BTreeSet<String> = job["static_configs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(String::from))
            .collect();
        let job_name = job["job_name"].as_str().unwrap_or_default();
        if job_name == "salesync" && targets != expected {
            out.push(format!(
                "prometheus job salesync scrapes {targets:?}, the services listen on {expected:?}"
            ));
        }
        for t in &targets {
            let (host, port) = t.rsplit_once(':').unwrap_or((t, ""));
            let port = port.parse::<u16>().unwrap_or(0);
            if !listening.get(host).is_some_and(|p| p.contains(&port)) {
                out.push(format!(
                    "prometheus job {job_name}: target {t} is no service port of the compose file"
                ));
            }
        }
    }
}
