//! Throwaway directories and unique names. A `TempDir` is removed on drop —
//! unless the thread is panicking, so a failed test leaves its service logs
//! behind for whoever investigates (the path is printed).

use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;

/// A short random lowercase suffix, unique enough to name databases, vhosts
/// and nodes of concurrently running tests.
pub fn unique_suffix() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect()
}

/// A directory under the system temp dir, deleted on drop when the test passed.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    pub fn new(prefix: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique_suffix()));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path, keep: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the directory after drop (e.g. the demo wants its logs).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if std::thread::panicking() {
            eprintln!("salesync-e2e: kept {} for inspection", self.path.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The last `max_lines` lines of a text file (for failure messages).
pub fn tail(path: &Path, max_lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(max_lines);
            lines[from..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Runs async cleanup from a `Drop`: Drop runs inside the test's runtime,
/// which cannot be blocked on, so a thread with its own small runtime does
/// the work and we wait for it — the resource is gone before the test exits.
pub fn cleanup_blocking<F, Fut>(cleanup: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(cleanup())
    })
    .join()
    .unwrap_or_else(|_| Err(anyhow::anyhow!("cleanup thread panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_lowercase_alphanumeric_and_differ() {
        let a = unique_suffix();
        let b = unique_suffix();
        assert_eq!(a.len(), 10);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn temp_dir_is_removed_on_drop_and_tail_reads_last_lines() {
        let dir = TempDir::new("salesync-e2e-unit").expect("temp dir");
        let file = dir.path().join("log");
        std::fs::write(&file, "a\nb\nc\nd\n").expect("write");
        assert_eq!(tail(&file, 2), "c\nd");
        assert_eq!(tail(&file, 10), "a\nb\nc\nd");
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }
}
