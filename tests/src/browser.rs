//! A real browser for the console's tests: Debian's headless Chromium
//! driven through chromedriver (WebDriver) with fantoccini. Each `Browser`
//! has its own chromedriver on a free port, killed on drop. Screenshots go
//! to `target/test-artifacts/<test>/`, and every page can be checked at a
//! phone's width (390 px) for horizontal overflow.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::ports::free_port;

/// The browser's time zone: not UTC, so pages that show times in the
/// viewer's zone can be told from pages that show UTC.
pub const TIME_ZONE: &str = "Europe/Amsterdam";

/// Desktop and phone widths every page is looked at.
pub const DESKTOP: (u32, u32) = (1280, 900);
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    pub client: Client,
    driver: Child,
    artifacts: PathBuf,
    shots: usize,
}

/// Where a test's screenshots go: `target/test-artifacts/<name>/`.
pub fn artifacts_dir(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("test-artifacts").join(name)
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; screenshots
    /// under `artifacts_dir(test)`.
    pub async fn start(test: &str) -> anyhow::Result<Self> {
        let port = free_port()?;
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TZ", TIME_ZONE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Chromium is chromedriver's child and
            // would outlive a killed chromedriver; the group dies together.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start chromedriver (deploy/setup.sh installs chromium-driver)")?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--lang=en-US",
                format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
            ]}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    let artifacts = artifacts_dir(test);
                    // Only this run's screenshots: none left from an earlier one.
                    let _ = std::fs::remove_dir_all(&artifacts);
                    std::fs::create_dir_all(&artifacts)?;
                    return Ok(Self {
                        client,
                        driver,
                        artifacts,
                        shots: 0,
                    });
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("chromedriver did not take a session: {last:?}")
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client.goto(url).await?;
        Ok(())
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let found = self
            .client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css(css))
            .await;
        match found {
            Ok(e) => Ok(e),
            Err(e) => anyhow::bail!("no element `{css}` on {} ({e})", self.url().await),
        }
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    /// The visible text of `css` (the first match).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self.find(css).await?.text().await?)
    }

    /// Waits until `css`'s text contains `needle` (pages update in place).
    pub async fn wait_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let start = std::time::Instant::now();
        loop {
            let now = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now.contains(needle) {
                return Ok(now);
            }
            if start.elapsed() > timeout {
                anyhow::bail!(
                    "`{css}` never said `{needle}` on {} (it says: {now:?})",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) -> anyhow::Result<()> {
        let e = self.find(css).await?;
        e.clear().await?;
        e.send_keys(value).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await?;
        Ok(())
    }

    /// Picks the option with this value in a `<select>`.
    pub async fn select(&self, css: &str, value: &str) -> anyhow::Result<()> {
        self.find(css).await?.select_by_value(value).await?;
        Ok(())
    }

    /// Signs in on the console at `base` with `token`.
    pub async fn sign_in(&self, base: &str, token: &str) -> anyhow::Result<()> {
        self.goto(&format!("{base}/ui/login")).await?;
        self.fill("#token", token).await?;
        self.click("form[action='/ui/login'] button[type=submit]")
            .await?;
        self.find("header.top .who").await?;
        Ok(())
    }

    pub async fn sign_out(&self) -> anyhow::Result<()> {
        self.click("form[action='/ui/logout'] button").await?;
        self.find("#token").await?;
        Ok(())
    }

    /// Whether the page is wider than the window (something overflows).
    async fn overflow(&self) -> anyhow::Result<Value> {
        Ok(self
            .client
            .execute(
                "const d = document.documentElement; \
                 const wide = [...document.querySelectorAll('body *')] \
                   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap, pre')) \
                   .slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className); \
                 return {scroll: d.scrollWidth, inner: window.innerWidth, wide: wide, \
                         text: document.body.innerText.trim().length};",
                vec![],
            )
            .await?)
    }

    /// Screenshots the page at desktop and phone width (`NN-name-1280.png`,
    /// `NN-name-390.png`); fails when the page shows no text or overflows
    /// at 390 px.
    pub async fn snapshot(&mut self, name: &str) -> anyhow::Result<()> {
        self.shots += 1;
        for (w, h) in [DESKTOP, PHONE] {
            self.client.set_window_size(w, h).await?;
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.client.screenshot().await?;
            let file = self
                .artifacts
                .join(format!("{:02}-{name}-{w}.png", self.shots));
            std::fs::write(&file, png)?;
            let o = self.overflow().await?;
            anyhow::ensure!(
                o["text"].as_u64().unwrap_or(0) > 0,
                "{name}: the page shows no text"
            );
            if w == PHONE.0 {
                anyhow::ensure!(
                    o["scroll"].as_u64() <= o["inner"].as_u64()
                        && o["wide"].as_array().is_some_and(Vec::is_empty),
                    "{name} overflows at {w} px: {o}"
                );
            }
        }
        self.client.set_window_size(DESKTOP.0, DESKTOP.1).await?;
        Ok(())
    }

    pub async fn close(self) -> anyhow::Result<()> {
        self.client.clone().close().await?;
        Ok(())
    }
}

impl Drop for Browser {
    /// Kills chromedriver and the browsers it started (a failed test never
    /// reaches `close`).
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}
