//! The environment variables each service binary really reads, from its
//! own `--help` (clap prints `[env: NAME=…]` for every setting), so a
//! manifest's misspelt variable — silently ignored by the service — fails
//! a test instead.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use crate::services::{ServiceKind, bin_dir};

/// Read by the services outside clap (tracing's filter); `--help` names it
/// in prose, which [`EnvNames::of`] checks.
const OUTSIDE_CLAP: &[&str] = &["RUST_LOG"];

/// Binary name → the variables it takes.
#[derive(Debug, Clone)]
pub struct EnvNames(pub BTreeMap<&'static str, BTreeSet<String>>);

impl EnvNames {
    /// Runs `<bin> --help` for all five services (built by `cargo build
    /// --workspace --bins`).
    pub fn of_all_services() -> anyhow::Result<Self> {
        let mut all = BTreeMap::new();
        for kind in ServiceKind::ALL {
            let bin = bin_dir().join(kind.binary());
            let out = Command::new(&bin).arg("--help").output().map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e}; build the services first (cargo build --workspace --bins)",
                    bin.display()
                )
            })?;
            anyhow::ensure!(out.status.success(), "{} --help failed", bin.display());
            all.insert(
                kind.binary(),
                Self::of(&String::from_utf8_lossy(&out.stdout)),
            );
        }
        Ok(Self(all))
    }

    /// The names in one `--help` text.
    pub fn of(help: &str) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = help
            .split("[env: ")
            .skip(1)
            .filter_map(|rest| {
                let end = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))?;
                Some(rest[..end].to_string())
            })
            .collect();
        names.extend(
            OUTSIDE_CLAP
                .iter()
                .filter(|n| help.contains(*n))
                .map(|n| n.to_string()),
        );
        names
    }

    /// The names `binary` takes (empty for an unknown binary).
    pub fn get(&self, binary: &str) -> BTreeSet<String> {
        self.0.get(binary).cloned().unwrap_or_default()
    }

    /// `given` names `binary` does not take, one line each.
    pub fn unknown<'a>(
        &self,
        binary: &str,
        given: impl IntoIterator<Item = &'a String>,
    ) -> Vec<String> {
        let known = self.get(binary);
        given
            .into_iter()
            .filter(|n| !known.contains(*n))
            .map(|n| format!("{binary} takes no {n} (its --help lists {known:?})"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_env_markers_and_known_prose() {
        let help = "  --ops-listen <OPS_LISTEN>  Address [env: OPS_LISTEN=] [default: 127.0.0.1:9090]\n\
                    --log-format <LOG_FORMAT>  Verbosity comes from RUST_LOG. [env: LOG_FORMAT=]\n";
        let names = EnvNames::of(help);
        assert_eq!(
            names,
            ["LOG_FORMAT", "OPS_LISTEN", "RUST_LOG"]
                .map(String::from)
                .into()
        );
    }
}
