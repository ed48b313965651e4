//! A test target on 127.0.0.1: records every request (headers and JSON
//! body) and answers with scripted status codes — 200 once the script is
//! used up.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// The body as sent (what `webhook-signature` signs).
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    script: VecDeque<u16>,
    received: Vec<Received>,
}

pub struct Target {
    /// The URL to deliver to (`http://127.0.0.1:<port>/hook`).
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

async fn hook(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut s = shared.lock().expect("target lock");
    s.received.push(Received {
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    let code = s.script.pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap_or(StatusCode::OK)
}

impl Target {
    pub async fn start() -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind target");
        let addr = listener.local_addr().expect("target address");
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}/hook"),
            shared,
            server,
        }
    }

    /// The next answers, in order (then 200).
    pub fn answer(&self, codes: &[u16]) {
        self.shared
            .lock()
            .expect("target lock")
            .script
            .extend(codes.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("target lock").received.clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.server.abort();
    }
}
