//! The contract fuzz run (tests/tests/contract_fuzz.rs): schemathesis drives
//! every operation of the OpenAPI document each API service serves (ingest,
//! console), and an independent validator checks each document itself.
//! Both are Python tools that
//! deploy/setup.sh installs, pinned, into `<workspace>/.venv-fuzz`
//! (`SALESYNC_FUZZ_VENV` elsewhere). The pure parts — where things are, the
//! command line, the variables the config files read — are here apart from
//! running them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use crate::services::ServiceKind;

/// The seed when `SALESYNC_FUZZ_SEED` is unset: a fixed one, so every run
/// sends the same requests (issue 16).
pub const DEFAULT_SEED: u64 = 16;
/// Test cases per operation and phase when `SALESYNC_FUZZ_EXAMPLES` is unset.
pub const DEFAULT_MAX_EXAMPLES: u32 = 25;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// One schemathesis invocation of the run. The two differ in where path ids
/// come from, so each has its own config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Examples, coverage and fuzzing, one operation at a time: path ids are
    /// pinned to the seeded resources, so requests get past 404 to the real
    /// work.
    Pinned,
    /// Sequences of operations linked by the ids their answers carry. Nothing
    /// is pinned: a pinned id would override the linked one, and a sequence
    /// that deletes a seeded resource would leave the pinned operations to
    /// 404 on what the sequence "just created".
    Stateful,
}

impl Pass {
    pub const ALL: [Pass; 2] = [Pass::Pinned, Pass::Stateful];

    pub fn name(self) -> &'static str {
        match self {
            Pass::Pinned => "pinned",
            Pass::Stateful => "stateful",
        }
    }

    /// The schemathesis configuration of the pass (auth per security scheme;
    /// for `Pinned`, the path ids of the seeded resources).
    pub fn config_file(self) -> PathBuf {
        workspace().join(match self {
            Pass::Pinned => "tests/fuzz/schemathesis.toml",
            Pass::Stateful => "tests/fuzz/stateful.toml",
        })
    }

    fn phases(self) -> &'static str {
        match self {
            Pass::Pinned => "examples,coverage,fuzzing",
            Pass::Stateful => "stateful",
        }
    }
}

/// The venv holding schemathesis and openapi-spec-validator.
#[derive(Clone, Debug)]
pub struct FuzzTools {
    venv: PathBuf,
}

impl FuzzTools {
    /// `SALESYNC_FUZZ_VENV`, else `<workspace>/.venv-fuzz`; an error saying
    /// how to make it when a tool is missing.
    pub fn locate() -> anyhow::Result<Self> {
        let venv = std::env::var_os("SALESYNC_FUZZ_VENV")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join(".venv-fuzz"));
        let tools = Self { venv };
        for tool in [tools.schemathesis(), tools.spec_validator()] {
            if !tool.is_file() {
                anyhow::bail!(
                    "{} not found: run `bash deploy/setup.sh` (it installs deploy/fuzz-requirements.txt into .venv-fuzz) or set SALESYNC_FUZZ_VENV",
                    tool.display()
                );
            }
        }
        Ok(tools)
    }

    pub fn schemathesis(&self) -> PathBuf {
        self.venv.join("bin/schemathesis")
    }

    pub fn spec_validator(&self) -> PathBuf {
        self.venv.join("bin/openapi-spec-validator")
    }
}

/// How much fuzzing, and which: `SALESYNC_FUZZ_SEED` and
/// `SALESYNC_FUZZ_EXAMPLES` override the defaults (a bad value is an error,
/// not a silent default: the run would not be the one asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSettings {
    pub seed: u64,
    pub max_examples: u32,
}

impl RunSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::parse(
            std::env::var("SALESYNC_FUZZ_SEED").ok().as_deref(),
            std::env::var("SALESYNC_FUZZ_EXAMPLES").ok().as_deref(),
        )
    }

    /// Pure part of `from_env`.
    pub fn parse(seed: Option<&str>, examples: Option<&str>) -> anyhow::Result<Self> {
        let seed = match seed.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => s
                .parse()
                .map_err(|e| anyhow::anyhow!("SALESYNC_FUZZ_SEED={s:?}: {e}"))?,
            None => DEFAULT_SEED,
        };
        let max_examples = match examples.map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => match s.parse() {
                Ok(n) if n >= 1 => n,
                _ => anyhow::bail!("SALESYNC_FUZZ_EXAMPLES={s:?}: must be a whole number ≥ 1"),
            },
            None => DEFAULT_MAX_EXAMPLES,
        };
        Ok(Self { seed, max_examples })
    }

    /// `schemathesis` arguments for `pass`: every check, the pass's phases,
    /// one worker so the seed alone decides the order of requests.
    pub fn args(
        &self,
        pass: Pass,
        schema_url: &str,
        base_url: &str,
        reports: &Path,
    ) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--config-file".into(),
            pass.config_file().display().to_string(),
        ];
        args.extend(
            [
                "run",
                schema_url,
                "--url",
                base_url,
                "--checks",
                "all",
                "--phases",
                pass.phases(),
                "--workers",
                "1",
                "--no-color",
                "--report",
                "junit,vcr",
                "--report-dir",
            ]
            .map(String::from),
        );
        args.push(reports.display().to_string());
        args.extend([
            "--seed".into(),
            self.seed.to_string(),
            "--max-examples".into(),
            self.max_examples.to_string(),
        ]);
        args
    }
}

/// The resources the run's requests point at, created before it starts.
#[derive(Clone, Debug)]
pub struct Seeded {
    pub admin_token: String,
    pub tenant_token: String,
    pub tenant_id: String,
    /// A second token of the tenant, for the revocation operation to revoke.
    pub spare_token_id: String,
    pub sale_id: String,
    pub integration_id: String,
    /// An integration the operator's pause and resume act on.
    pub operator_integration_id: String,
    pub dead_letter_id: String,
}

impl Seeded {
    /// The variables tests/fuzz/schemathesis.toml reads.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SALESYNC_FUZZ_ADMIN_TOKEN", self.admin_token.clone()),
            ("SALESYNC_FUZZ_TENANT_TOKEN", self.tenant_token.clone()),
            ("SALESYNC_FUZZ_TENANT_ID", self.tenant_id.clone()),
            ("SALESYNC_FUZZ_SPARE_TOKEN_ID", self.spare_token_id.clone()),
            ("SALESYNC_FUZZ_SALE_ID", self.sale_id.clone()),
            ("SALESYNC_FUZZ_INTEGRATION_ID", self.integration_id.clone()),
            (
                "SALESYNC_FUZZ_OPERATOR_INTEGRATION_ID",
                self.operator_integration_id.clone(),
            ),
            ("SALESYNC_FUZZ_DEAD_LETTER_ID", self.dead_letter_id.clone()),
        ]
    }
}

/// What a tool run printed (stdout and stderr interleaved, as a person sees
/// it) and whether it succeeded.
#[derive(Debug)]
pub struct ToolRun {
    pub success: bool,
    pub code: Option<i32>,
    pub output: String,
}

/// Runs `program` with `args` and `env`, its output to `log` (kept for the
/// reader), killing it after `limit`.
pub async fn run_tool(
    program: &Path,
    args: &[String],
    env: &[(&'static str, String)],
    log: &Path,
    limit: Duration,
) -> anyhow::Result<ToolRun> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        // Plain text for the log; no prompts.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", program.display()))?;
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            let _ = child.kill().await;
            anyhow::bail!(
                "{} still running after {limit:?}; killed (output in {})",
                program.display(),
                log.display()
            );
        }
    };
    Ok(ToolRun {
        success: status.success(),
        code: status.code(),
        output: String::from_utf8_lossy(&std::fs::read(log)?).into_owned(),
    })
}

/// The generated copy of `service`'s OpenAPI document in `proto/` (the
/// service's unit tests keep it current and check it is self-contained).
pub fn proto_document(service: ServiceKind) -> anyhow::Result<Value> {
    let path = workspace().join(format!("proto/{}.openapi.json", service.binary()));
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The last `n` lines of `text` (a failure message shows the end of a long
/// report, where the failures are summed up).
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_override() {
        assert_eq!(
            RunSettings::parse(None, None).unwrap(),
            RunSettings {
                seed: DEFAULT_SEED,
                max_examples: DEFAULT_MAX_EXAMPLES
            }
        );
        assert_eq!(
            RunSettings::parse(Some(" 42 "), Some("3")).unwrap(),
            RunSettings {
                seed: 42,
                max_examples: 3
            }
        );
        assert_eq!(
            RunSettings::parse(Some(""), None).unwrap().seed,
            DEFAULT_SEED
        );
        for (seed, examples) in [(Some("x"), None), (None, Some("0")), (None, Some("-1"))] {
            assert!(
                RunSettings::parse(seed, examples).is_err(),
                "{seed:?} {examples:?}"
            );
        }
    }

    #[test]
    fn args_carry_seed_examples_checks_and_the_pass() {
        let s = RunSettings {
            seed: 7,
            max_examples: 9,
        };
        for (pass, phases) in [
            (Pass::Pinned, "--phases examples,coverage,fuzzing "),
            (Pass::Stateful, "--phases stateful "),
        ] {
            let args = s.args(pass, "http://h/openapi.json", "http://h", Path::new("/r"));
            let joined = args.join(" ");
            let head = format!(
                "--config-file {} run http://h/openapi.json --url http://h",
                pass.config_file().display()
            );
            assert!(joined.starts_with(&head), "{joined}");
            for want in [
                "--checks all",
                "--seed 7",
                "--max-examples 9",
                "--report-dir /r",
                phases,
            ] {
                assert!(joined.contains(want), "{want} missing from {joined}");
            }
        }
    }

    /// The `${NAME}`s a config file reads.
    fn variables_read(pass: Pass) -> Vec<String> {
        let config = std::fs::read_to_string(pass.config_file()).expect("config file");
        let mut read: Vec<String> = config
            .match_indices("${")
            .filter_map(|(i, _)| config[i + 2..].split('}').next())
            .map(str::to_string)
            .collect();
        read.sort();
        read.dedup();
        read
    }

    #[test]
    fn every_variable_the_configs_read_is_set_and_only_the_pinned_pass_pins_ids() {
        let seeded = Seeded {
            admin_token: "a".into(),
            tenant_token: "t".into(),
            tenant_id: "1".into(),
            spare_token_id: "2".into(),
            sale_id: "3".into(),
            integration_id: "4".into(),
            operator_integration_id: "6".into(),
            dead_letter_id: "7".into(),
        };
        let mut set: Vec<String> = seeded.env().iter().map(|(k, _)| k.to_string()).collect();
        set.sort();
        assert_eq!(variables_read(Pass::Pinned), set);
        assert_eq!(
            variables_read(Pass::Stateful),
            ["SALESYNC_FUZZ_ADMIN_TOKEN", "SALESYNC_FUZZ_TENANT_TOKEN"]
        );
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
    }
}
