//! The manifest validators deploy/setup.sh installs, pinned
//! (deploy/manifest-requirements.txt), into `<workspace>/.venv-deploy`
//! (`SALESYNC_DEPLOY_VENV` elsewhere): check-jsonschema with its vendored
//! compose-spec schema, kubernetes-validate with its bundled Kubernetes
//! schemas, and PyYAML to read YAML (the workspace has no YAML crate).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The venv; [`DeployTools::locate`] fails (never skips) when a tool is missing.
#[derive(Clone, Debug)]
pub struct DeployTools {
    venv: PathBuf,
}

/// How a validator run ended.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub output: String,
}

impl DeployTools {
    pub fn locate() -> anyhow::Result<Self> {
        let venv = std::env::var_os("SALESYNC_DEPLOY_VENV")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| super::workspace().join(".venv-deploy"));
        let tools = Self { venv };
        for tool in ["check-jsonschema", "kubernetes-validate", "python"] {
            let path = tools.bin(tool);
            anyhow::ensure!(
                path.is_file(),
                "{} not found: run `bash deploy/setup.sh` (it installs deploy/manifest-requirements.txt into .venv-deploy) or set SALESYNC_DEPLOY_VENV",
                path.display()
            );
        }
        Ok(tools)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.venv.join("bin").join(name)
    }

    /// Every YAML document in `file`, as JSON (empty documents left out).
    pub fn yaml_documents(&self, file: &Path) -> anyhow::Result<Vec<Value>> {
        const TO_JSON: &str = "import json, sys, yaml\n\
            docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
            print(json.dumps(docs))";
        let run = self.run("python", &["-c", TO_JSON, &file.display().to_string()])?;
        anyhow::ensure!(
            run.success,
            "{} is not YAML:\n{}",
            file.display(),
            run.output
        );
        Ok(serde_json::from_str(&run.output)?)
    }

    /// The one YAML document in `file`.
    pub fn yaml(&self, file: &Path) -> anyhow::Result<Value> {
        let mut docs = self.yaml_documents(file)?;
        anyhow::ensure!(
            docs.len() == 1,
            "{}: {} documents, expected 1",
            file.display(),
            docs.len()
        );
        Ok(docs.remove(0))
    }

    /// `file` against the compose-spec schema check-jsonschema vendors.
    pub fn check_compose_schema(&self, file: &Path) -> anyhow::Result<Run> {
        self.run(
            "check-jsonschema",
            &[
                "--builtin-schema",
                "vendor.compose-spec",
                &file.display().to_string(),
            ],
        )
    }

    /// `files` against the bundled Kubernetes schemas, strictly (unknown
    /// fields are errors).
    pub fn kubernetes_validate(&self, files: &[PathBuf]) -> anyhow::Result<Run> {
        let mut args = vec!["--strict".to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run("kubernetes-validate", &args)
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<Run> {
        let out = Command::new(self.bin(tool))
            .args(args)
            .output()
            .map_err(|e| anyhow::anyhow!("{tool}: {e}"))?;
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok(Run {
            success: out.status.success(),
            output,
        })
    }
}
