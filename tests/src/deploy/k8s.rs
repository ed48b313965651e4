//! The wiring of `deploy/k8s/*.yaml`, checked without a cluster (the core
//! kinds' schemas are kubernetes-validate's; the two custom resources have
//! no schema here, so their required fields are checked by name):
//! each salesync Deployment runs a real binary with only variables it
//! takes (variables used only inside `$(…)` of another are fine), listens
//! on 0.0.0.0 on the port its container, probes (/healthz, /readyz) and
//! scrape annotation use, has resources, a PodDisruptionBudget and (for the
//! workers) an autoscaler; its URLs name the CNPG cluster's secret, the
//! RabbitmqCluster's service and the collector's Service.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::binaries::EnvNames;
use super::compose::listen_var;
use super::{port_of, url_endpoints};

/// The services that scale on their queues and get an autoscaler.
pub const WORKERS: [&str; 3] = ["condition-filter", "forwarder", "status-poller"];

/// The ConfigMap the topology job imports: deploy/rabbitmq/definitions.json
/// verbatim (deploy/k8s/rabbitmq-definitions.yaml is this text;
/// `UPDATE_DEPLOY=1` rewrites it).
pub fn definitions_configmap(definitions_json: &str) -> String {
    let mut out = String::from(
        "# GENERATED from deploy/rabbitmq/definitions.json by tests/tests/deploy_manifests.rs\n\
         # (UPDATE_DEPLOY=1 cargo nextest run -p salesync-e2e --test deploy_manifests).\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: salesync-rabbitmq-definitions\n  namespace: salesync\ndata:\n  definitions.json: |\n",
    );
    for line in definitions_json.lines() {
        out.push_str("    ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

/// Every inconsistency found, one line each.
pub fn problems(docs: &[Value], env_names: &EnvNames) -> Vec<String> {
    let mut out = Vec::new();
    check_custom_resources(docs, &mut out);
    let deployments: Vec<&Value> = of_kind(docs, "Deployment")
        .into_iter()
        .filter(|d| {
            container(d)["image"]
                .as_str()
                .is_some_and(|i| i.starts_with("salesync:"))
        })
        .collect();
    let names: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
    for kind in crate::services::ServiceKind::ALL {
        if !names.contains(kind.binary()) {
            out.push(format!("no Deployment {}", kind.binary()));
        }
    }
    for d in &deployments {
        check_deployment(docs, d, env_names, &mut out);
    }
    for w in WORKERS {
        if !of_kind(docs, "HorizontalPodAutoscaler").iter().any(|h| {
            h["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                && h["spec"]["scaleTargetRef"]["name"] == w
        }) {
            out.push(format!("no HorizontalPodAutoscaler scales {w}"));
        }
    }
    if !of_kind(docs, "NetworkPolicy")
        .iter()
        .any(|n| n["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/part-of"] == "salesync")
    {
        out.push("no NetworkPolicy selects the salesync pods".into());
    }
    out
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// Required fields of the custom resources (no schema for them here).
fn check_custom_resources(docs: &[Value], out: &mut Vec<String>) {
    let rabbits = of_kind(docs, "RabbitmqCluster");
    if rabbits.len() != 1 {
        out.push(format!(
            "{} RabbitmqCluster resources, expected 1",
            rabbits.len()
        ));
    }
    for r in rabbits {
        if r["apiVersion"] != "rabbitmq.com/v1beta1" || r["spec"]["replicas"] != 3 {
            out.push(format!(
                "RabbitmqCluster {} should be rabbitmq.com/v1beta1 with spec.replicas 3",
                name(r)
            ));
        }
    }
    let pgs = of_kind(docs, "Cluster");
    if pgs.len() != 1 {
        out.push(format!(
            "{} CloudNativePG Cluster resources, expected 1",
            pgs.len()
        ));
    }
    for c in pgs {
        let instances = c["spec"]["instances"].as_u64().unwrap_or(0);
        if c["apiVersion"] != "postgresql.cnpg.io/v1"
            || instances < 2
            || !c["spec"]["storage"]["size"].is_string()
        {
            out.push(format!(
                "Cluster {} should be postgresql.cnpg.io/v1 with spec.instances >= 2 and spec.storage.size",
                name(c)
            ));
        }
    }
}

/// The variable names a container gets, with where each value comes from.
fn container_env(docs: &[Value], c: &Value) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let (kind, r) = if from["configMapRef"].is_object() {
            ("ConfigMap", &from["configMapRef"])
        } else {
            ("Secret", &from["secretRef"])
        };
        for source in of_kind(docs, kind)
            .into_iter()
            .filter(|s| s["metadata"]["name"] == r["name"])
        {
            for field in ["data", "stringData"] {
                for (k, v) in source[field].as_object().into_iter().flatten() {
                    env.insert(k.clone(), v.clone());
                }
            }
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let value = if e["value"].is_null() {
            e["valueFrom"].clone()
        } else {
            e["value"].clone()
        };
        env.insert(e["name"].as_str().unwrap_or_default().to_string(), value);
    }
    env
}

fn check_deployment(docs: &[Value], d: &Value, env_names: &EnvNames, out: &mut Vec<String>) {
    let dname = name(d);
    let c = container(d);
    let binary = c["command"][0].as_str().unwrap_or_default();
    if env_names.get(binary).is_empty() {
        out.push(format!("{dname}: command {binary:?} is no salesync binary"));
        return;
    }
    let env = container_env(docs, c);
    let all_values: String = env.values().map(Value::to_string).collect();
    let given: Vec<String> = env
        .keys()
        .filter(|k| !all_values.contains(&format!("$({k})")))
        .cloned()
        .collect();
    out.extend(
        env_names
            .unknown(binary, &given)
            .into_iter()
            .map(|p| format!("{dname}: {p}")),
    );

    // Listen address, container port, probes, scrape annotation: one port.
    let var = listen_var(binary);
    let addr = env.get(var).and_then(Value::as_str).unwrap_or_default();
    let port = port_of(addr).map(u64::from);
    if !addr.starts_with("0.0.0.0:") {
        out.push(format!(
            "{dname}: {var}={addr:?} is not reachable from outside the pod"
        ));
    }
    let container_ports: Vec<u64> = c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    if port.is_none_or(|p| !container_ports.contains(&p)) {
        out.push(format!(
            "{dname}: container ports {container_ports:?} lack {var}'s {port:?}"
        ));
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        if get["path"] != path || get["port"].as_u64() != port {
            out.push(format!(
                "{dname}: {probe} should GET {path} on {port:?}, is {get}"
            ));
        }
    }
    let annotated = d["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
        .as_str()
        .and_then(|p| p.parse::<u64>().ok());
    if annotated != port {
        out.push(format!(
            "{dname}: prometheus.io/port {annotated:?}, listens on {port:?}"
        ));
    }
    for r in ["requests", "limits"] {
        if !c["resources"][r]["cpu"].is_string() || !c["resources"][r]["memory"].is_string() {
            out.push(format!("{dname}: resources.{r} needs cpu and memory"));
        }
    }
    check_pdb(docs, d, out);
    check_urls(docs, dname, &env, out);
}

fn check_pdb(docs: &[Value], d: &Value, out: &mut Vec<String>) {
    let labels = d["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let covered = of_kind(docs, "PodDisruptionBudget").iter().any(|p| {
        p["spec"]["selector"]["matchLabels"]
            .as_object()
            .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
    });
    if !covered {
        out.push(format!(
            "{}: no PodDisruptionBudget selects its pods",
            name(d)
        ));
    }
}

/// DATABASE_URL from the CNPG cluster's app secret, AMQP_URL at the
/// RabbitmqCluster's Service, the OTLP endpoint at a Service port.
fn check_urls(docs: &[Value], dname: &str, env: &BTreeMap<String, Value>, out: &mut Vec<String>) {
    let db_secrets: Vec<String> = of_kind(docs, "Cluster")
        .iter()
        .map(|c| format!("{}-app", name(c)))
        .collect();
    let db = &env.get("DATABASE_URL").cloned().unwrap_or_default()["secretKeyRef"];
    if !db_secrets.iter().any(|s| db["name"] == s.as_str()) || db["key"] != "uri" {
        out.push(format!(
            "{dname}: DATABASE_URL should come from key uri of {db_secrets:?}, comes from {db}"
        ));
    }
    let rabbits: Vec<&str> = of_kind(docs, "RabbitmqCluster")
        .into_iter()
        .map(name)
        .collect();
    let amqp = env
        .get("AMQP_URL")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let endpoints = url_endpoints(amqp);
    if endpoints.is_empty()
        || !endpoints
            .iter()
            .all(|(h, p)| rabbits.contains(&h.split('.').next().unwrap_or_default()) && *p == 5672)
    {
        out.push(format!(
            "{dname}: AMQP_URL {amqp} is not port 5672 of the RabbitmqCluster {rabbits:?}"
        ));
    }
    let otlp = env
        .get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for (host, port) in url_endpoints(otlp) {
        let served = of_kind(docs, "Service").iter().any(|s| {
            name(s) == host
                && s["spec"]["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["port"] == port)
        });
        if !served {
            out.push(format!(
                "{dname}: OTEL_EXPORTER_OTLP_ENDPOINT {otlp} is no Service port"
            ));
        }
    }
}
