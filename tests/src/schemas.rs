//! The JSON Schemas of the queue messages (`proto/schemas/<type>.v1.json`),
//! compiled with `sale-input.v1.json` registered so their `$ref` to the sale
//! resolves offline. Used by the contract tests to check real messages.

use std::path::{Path, PathBuf};

use jsonschema::{Registry, Validator};
use serde_json::Value;

/// `$id` base of every salesync schema; relative `$ref`s resolve against it.
pub const SCHEMA_BASE: &str = "https://salesync.dev/schemas/";

/// Envelope `type` (for a bundle: its AMQP `type`) → schema file.
pub const MESSAGE_SCHEMAS: [(&str, &str); 4] = [
    ("sale.event", "sale-event.v1.json"),
    ("sale.forward", "sale-forward.v1.json"),
    ("sale.status", "sale-status.v1.json"),
    ("salesync.bundle", "bundle.v1.json"),
];

/// Files other schemas `$ref` (registered, not validated against directly).
const SHARED_SCHEMAS: [&str; 1] = ["sale-input.v1.json"];

/// `<workspace>/proto/schemas`.
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("proto")
        .join("schemas")
}

pub fn read_schema(dir: &Path, file: &str) -> anyhow::Result<Value> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", path.display()))
}

/// One compiled validator per message type.
pub struct MessageSchemas {
    validators: Vec<(&'static str, Validator)>,
}

impl MessageSchemas {
    /// Compiles every message schema in `dir` (formats are asserted: a
    /// `uuid` or `date-time` that is not one is a contract violation).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut shared = Vec::new();
        for file in SHARED_SCHEMAS {
            shared.push((format!("{SCHEMA_BASE}{file}"), read_schema(dir, file)?));
        }
        let registry = Registry::new()
            .extend(shared)
            .and_then(|b| b.prepare())
            .map_err(|e| anyhow::anyhow!("schema registry: {e}"))?;
        let mut validators = Vec::new();
        for (kind, file) in MESSAGE_SCHEMAS {
            let schema = read_schema(dir, file)?;
            let validator = jsonschema::options()
                .with_registry(&registry)
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| anyhow::anyhow!("{file} does not compile: {e}"))?;
            validators.push((kind, validator));
        }
        Ok(Self { validators })
    }

    /// The schemas shipped in this repository.
    pub fn load_default() -> anyhow::Result<Self> {
        Self::load(&schemas_dir())
    }

    /// Validates an envelope against the schema its `type` names. `Err`
    /// lists every problem (`path: message`).
    pub fn validate(&self, envelope: &Value) -> Result<(), Vec<String>> {
        let Some(kind) = envelope.get("type").and_then(Value::as_str) else {
            return Err(vec!["envelope has no string `type`".into()]);
        };
        self.validate_as(kind, envelope)
    }

    /// Validates `value` against the schema of message type `kind`.
    pub fn validate_as(&self, kind: &str, value: &Value) -> Result<(), Vec<String>> {
        let Some((_, validator)) = self.validators.iter().find(|(k, _)| *k == kind) else {
            return Err(vec![format!("no schema for message type '{kind}'")]);
        };
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
