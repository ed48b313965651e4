//! The served OpenAPI document is the contract, and it is true (issue 16):
//!
//! Each API service serves its own document: ingest the data plane's,
//! console the control plane's.
//!
//! - `served_documents_are_self_contained_valid_openapi_3_1`: `GET
//!   /openapi.json` as each serves it is its checked-in copy,
//!   `proto/<service>.openapi.json` (which the service's unit tests show is
//!   current and has no `$ref` outside itself), and an independent validator
//!   (openapi-spec-validator) finds it valid OpenAPI 3.1.
//! - `schemathesis_finds_no_contract_violation`: schemathesis, driven only by
//!   each document against its service, runs every operation with every check (no 5xx, no
//!   schema-valid request refused, no schema-violating request accepted, every
//!   status, header and body as documented, stateful sequences included)
//!   against a running salesync with a seeded tenant, so path ids resolve:
//!   one pass per operation with ids pinned to the seeded resources, one
//!   stateful pass whose ids come from the answers before.
//!
//! Both need the Python tools deploy/setup.sh installs (`.venv-fuzz`); the
//! seed and the number of examples are fixed unless `SALESYNC_FUZZ_SEED` /
//! `SALESYNC_FUZZ_EXAMPLES` say otherwise (docs/contracts.md, "The OpenAPI
//! documents").

use std::time::{Duration, Instant};

use reqwest::Method;
use salesync_core::domain::ids::IntegrationId;
use salesync_core::integration::Conditions;
use salesync_e2e::fuzz::{
    FuzzTools, Pass, RunSettings, Seeded, last_lines, proto_document, run_tool,
};
use salesync_e2e::sales::sale;
use salesync_e2e::services::Replicas;
use salesync_e2e::temp::TempDir;
use salesync_e2e::{
    Behaviour, IntegrationInput, ServiceKind, Stack, StackOptions, Tenant, TestTarget, wait_for,
};
use serde_json::Value;

/// Far above a run's few minutes: only a hung tool hits it.
const SCHEMATHESIS_LIMIT: Duration = Duration::from_secs(20 * 60);
const VALIDATOR_LIMIT: Duration = Duration::from_secs(120);

/// The API services and where each serves its document.
fn api_services(stack: &Stack) -> [(ServiceKind, String); 2] {
    [
        (ServiceKind::Ingest, stack.ingest_url()),
        (ServiceKind::Console, stack.console_url()),
    ]
}

async fn served_document(base: &str) -> (String, Value) {
    let text = reqwest::get(format!("{base}/openapi.json"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("GET /openapi.json")
        .text()
        .await
        .expect("document body");
    let doc = serde_json::from_str(&text).expect("the served document is JSON");
    (text, doc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_documents_are_self_contained_valid_openapi_3_1() {
    let tools = FuzzTools::locate().expect("fuzz tools");
    // The documents need the API services alone; they need their database
    // and broker.
    let replicas = Replicas::default()
        .with(ServiceKind::ConditionFilter, 0)
        .with(ServiceKind::Forwarder, 0)
        .with(ServiceKind::StatusPoller, 0);
    let stack = Stack::start(StackOptions::default().replicas(replicas))
        .await
        .expect("stack");
    let dir = TempDir::new("salesync-openapi").expect("temp dir");
    for (service, base) in api_services(&stack) {
        let (text, doc) = served_document(&base).await;
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1.")),
            "{service}: openapi is {}, not 3.1.x",
            doc["openapi"]
        );
        // The generated copy is what the service's unit tests check
        // (self-contained, every route documented, security as the route
        // table says); the binary serves exactly that.
        assert!(
            doc == proto_document(service).expect("proto copy"),
            "the document {service} serves differs from proto/{service}.openapi.json; rewrite the copy with UPDATE_OPENAPI=1 cargo nextest run -p {service} openapi"
        );

        // The validator reads a file; the document needs nothing beside it.
        let file = dir.path().join(format!("{service}.openapi.json"));
        std::fs::write(&file, &text).expect("write document");
        let run = run_tool(
            &tools.spec_validator(),
            &[file.display().to_string()],
            &[],
            &dir.path().join(format!("validator-{service}.log")),
            VALIDATOR_LIMIT,
        )
        .await
        .expect("openapi-spec-validator");
        assert!(
            run.success,
            "openapi-spec-validator rejects {service}'s document (exit {:?}):\n{}",
            run.code,
            last_lines(&run.output, 60)
        );
    }
}

/// A webhook integration to `target` that takes only sales with `sku`, so
/// the seeded sales cause exactly the deliveries the seeding asks for.
async fn integration(tenant: &Tenant, name: &str, target: &TestTarget, sku: &str) -> IntegrationId {
    let input = IntegrationInput {
        conditions: Conditions {
            skus_any: vec![sku.into()],
            ..Conditions::default()
        },
        ..IntegrationInput::webhook(name, &target.url("/hook"))
    };
    tenant.api.create_integration(&input).await.expect(name).id
}

/// Creates the tenant and the resources the run's path ids point at, and
/// waits for the dead letter.
async fn seed(stack: &Stack, ok: &TestTarget, refusing: &TestTarget) -> Seeded {
    let tenant: Tenant = stack.tenant("fuzz").await.expect("tenant");
    let spare = stack
        .api
        .create_token(stack.admin_token(), tenant.id, "spare", false)
        .await
        .expect("spare token");
    let main = integration(&tenant, "main", ok, "MAIN").await;
    let operator = integration(&tenant, "operator", ok, "OPERATOR").await;
    let dead_end = integration(&tenant, "dead-end", refusing, "DEAD").await;

    let kept = tenant
        .api
        .post_sale(&sale("fuzz-1", "completed", "MAIN"))
        .await
        .expect("sale");
    tenant
        .api
        .post_sale(&sale("fuzz-2", "paid", "DEAD"))
        .await
        .expect("sale to the refusing target");

    // The refusing target answers 400: permanent, dead at the first attempt.
    let path = format!("/v1/dead-letters?integration_id={dead_end}");
    let dead_letter = wait_for(Duration::from_secs(60), Duration::from_millis(200), || {
        let (api, path) = (tenant.api.clone(), path.clone());
        async move {
            let (_, page) = api.raw(Method::GET, &path, None).await.ok()?;
            page["dead_letters"][0]["id"].as_str().map(str::to_string)
        }
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "no dead letter ({e}); forwarder log:\n{}",
            stack.services.log_tail(ServiceKind::Forwarder, 40)
        )
    });

    Seeded {
        admin_token: stack.admin_token().to_string(),
        tenant_token: tenant.token.clone(),
        tenant_id: tenant.id.to_string(),
        spare_token_id: spare.token_id.to_string(),
        sale_id: kept.id.to_string(),
        integration_id: main.to_string(),
        operator_integration_id: operator.to_string(),
        dead_letter_id: dead_letter,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_contract_violation() {
    let tools = FuzzTools::locate().expect("fuzz tools");
    let settings = RunSettings::from_env().expect("fuzz settings");
    let stack = Stack::start(StackOptions::default()).await.expect("stack");
    let ok = TestTarget::start(Behaviour::Ok).await.expect("target");
    let refusing = TestTarget::start(Behaviour::Always(400))
        .await
        .expect("refusing target");
    let seeded = seed(&stack, &ok, &refusing).await;

    let mut dir = TempDir::new("salesync-fuzz").expect("temp dir");
    let mut failed = Vec::new();
    let mut summaries = Vec::new();
    for ((service, base), pass) in api_services(&stack)
        .into_iter()
        .flat_map(|s| Pass::ALL.map(|p| (s.clone(), p)))
    {
        let name = format!("{service}-{}", pass.name());
        let reports = dir.path().join(format!("reports-{name}"));
        let log = dir.path().join(format!("schemathesis-{name}.log"));
        let args = settings.args(pass, &format!("{base}/openapi.json"), &base, &reports);
        let started = Instant::now();
        let run = run_tool(
            &tools.schemathesis(),
            &args,
            &seeded.env(),
            &log,
            SCHEMATHESIS_LIMIT,
        )
        .await
        .expect("schemathesis");
        let took = started.elapsed();
        let summary = format!(
            "== {name} pass (exit {:?}, {took:.0?}); full output {}, reports (JUnit, VCR cassette) {}\n{}",
            run.code,
            log.display(),
            reports.display(),
            last_lines(&run.output, if run.success { 30 } else { 300 })
        );
        if !run.success {
            failed.push(name);
        }
        summaries.push(summary);
    }

    if !failed.is_empty() {
        dir.keep();
        let mut services = stack.services;
        services.keep_logs();
        panic!(
            "schemathesis found contract violations in the {failed:?} pass(es) (seed {}, {} examples).\n\
             Service logs: {}\n\
             Reproduce: SALESYNC_FUZZ_SEED={} cargo nextest run -p salesync-e2e --test contract_fuzz\n\n{}",
            settings.seed,
            settings.max_examples,
            services.logs_dir().display(),
            settings.seed,
            summaries.join("\n\n")
        );
    }
    println!(
        "schemathesis: seed {}, {} examples per operation\n{}",
        settings.seed,
        settings.max_examples,
        summaries.join("\n\n")
    );
}
