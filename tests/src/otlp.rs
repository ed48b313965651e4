//! `OtlpReceiver`: a stand-in OpenTelemetry collector on 127.0.0.1 that takes
//! OTLP/HTTP trace exports (`POST /v1/traces`, protobuf), the way a real
//! collector does, and keeps every span it received for the test to inspect.
//! Set as `OTEL_EXPORTER_OTLP_ENDPOINT` of the services (`endpoint`).
//!
//! `Collector::Hang` plays a collector that accepts the connection and never
//! answers: the worst case for an exporter, worse than one that is down.
//!
//! Decoding (`decode`) is pure and unit-tested below; the server is the I/O
//! around it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// How the stand-in collector answers an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collector {
    /// Decodes and keeps the spans, answers 200.
    Accept,
    /// Counts the request, then never answers.
    Hang,
}

/// One span as the collector received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSpan {
    /// The `service.name` resource attribute of the process that sent it.
    pub service: String,
    /// 32 lowercase hex digits, as in a `traceparent` header.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// Attributes with their values as text.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Default)]
struct Inner {
    spans: Mutex<Vec<ReceivedSpan>>,
    requests: AtomicU64,
    undecodable: AtomicU64,
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts a collector on a free port of 127.0.0.1.
    pub async fn start(behaviour: Collector) -> anyhow::Result<Self> {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route(
                "/v1/traces",
                post(move |state: State<Arc<Inner>>, body: Bytes| export(state, body, behaviour)),
            )
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            inner,
            server,
        })
    }

    /// The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        lock(&self.inner.spans).clone()
    }

    /// The spans `service` sent.
    pub fn spans_of(&self, service: &str) -> Vec<ReceivedSpan> {
        self.spans()
            .into_iter()
            .filter(|s| s.service == service)
            .collect()
    }

    /// Export requests received, answered or not.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Export requests whose body was not an `ExportTraceServiceRequest`.
    pub fn undecodable(&self) -> u64 {
        self.inner.undecodable.load(Ordering::Relaxed)
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn export(State(inner): State<Arc<Inner>>, body: Bytes, behaviour: Collector) -> Response {
    inner.requests.fetch_add(1, Ordering::Relaxed);
    if behaviour == Collector::Hang {
        std::future::pending::<()>().await;
    }
    match decode(&body) {
        Ok(spans) => {
            lock(&inner.spans).extend(spans);
            // An empty ExportTraceServiceResponse: full success.
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::new(),
            )
                .into_response()
        }
        Err(e) => {
            inner.undecodable.fetch_add(1, Ordering::Relaxed);
            (StatusCode::BAD_REQUEST, e.to_string()).into_response()
        }
    }
}

/// The spans of one OTLP/HTTP protobuf export request.
pub fn decode(body: &[u8]) -> Result<Vec<ReceivedSpan>, prost::DecodeError> {
    let request = ExportTraceServiceRequest::decode(body)?;
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .as_ref()
            .and_then(|r| attributes(&r.attributes).remove("service.name"))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(ReceivedSpan {
                service: service.clone(),
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                name: span.name,
                attributes: attributes(&span.attributes),
            });
        }
    }
    Ok(spans)
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value.as_ref().map(text).unwrap_or_default(),
            )
        })
        .collect()
}

fn text(v: &AnyValue) -> String {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// The trace id of a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    (trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_service_ids_and_attributes() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv(
                        "service.name",
                        any_value::Value::StringValue("forwarder".into()),
                    )],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01; 8],
                        name: "deliver".into(),
                        attributes: vec![
                            kv("sale_id", any_value::Value::StringValue("s-1".into())),
                            kv("attempt", any_value::Value::IntValue(2)),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let spans = decode(&request.encode_to_vec()).expect("decodes");
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.service, "forwarder");
        assert_eq!(s.trace_id, "ab".repeat(16));
        assert_eq!(s.span_id, "01".repeat(8));
        assert_eq!(s.parent_span_id, "");
        assert_eq!(s.name, "deliver");
        assert_eq!(s.attributes["sale_id"], "s-1");
        assert_eq!(s.attributes["attempt"], "2");
    }

    #[test]
    fn garbage_is_refused() {
        assert!(decode(b"\xff\xff\xff not protobuf").is_err());
    }

    #[test]
    fn trace_id_of_traceparent() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_id_of(&format!("00-{id}-00f067aa0ba902b7-01")),
            Some(id)
        );
        assert_eq!(trace_id_of("00-short-00f067aa0ba902b7-01"), None);
        assert_eq!(trace_id_of(""), None);
    }
}
