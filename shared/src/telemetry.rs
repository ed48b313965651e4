//! Structured logs and traces. Every service installs the same subscriber; the
//! W3C trace context travels in AMQP headers (and the outbox) so one trace
//! follows a sale through ingest, condition-filter and forwarder to its target.
//!
//! Export (when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) keeps off the hot path:
//! a finished span is handed to the SDK's batch processor with a non-blocking
//! send into a bounded queue (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048) and
//! dropped when the queue is full. The processor's own OS thread sends the
//! batches over OTLP/HTTP with the *blocking* reqwest client (the async one
//! needs a Tokio reactor that thread does not have), so a collector that is
//! slow, down or hanging holds up only that thread, never a request or a
//! consumer, and no export work runs on the services' runtime.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The longest a stopping service waits for its last spans to be sent. A
/// collector that does not answer would otherwise hold the exit for the
/// exporter's whole timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s).
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Keeps the tracer provider alive; flushes pending spans when dropped, so
/// each `main` holds it until its graceful shutdown is over.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Blocks this thread (the end of `main`) until the processor's thread
        // has exported what is queued, or `SHUTDOWN_FLUSH` passed.
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_FLUSH) {
            tracing::warn!(error = %e, "pending spans not exported at shutdown");
        }
    }
}

/// Where OTLP/HTTP traces go for an `OTEL_EXPORTER_OTLP_ENDPOINT` (the base
/// URL of a collector); `None` when unset or empty (no export).
pub fn traces_url(endpoint: Option<&str>) -> Option<String> {
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty())?;
    Some(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
}

/// Installs logging and tracing for `service`. Spans always get trace ids (so
/// context propagates); they are exported only when an OTLP endpoint is set.
pub fn init(
    service: &'static str,
    otlp_endpoint: Option<&str>,
    log_format: &str,
) -> anyhow::Result<TelemetryGuard> {
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(url) = traces_url(otlp_endpoint) {
        use opentelemetry_otlp::WithExportConfig;
        // With only `reqwest-blocking-client` enabled this is the blocking
        // client (built on a thread of its own, so building it here, inside
        // the runtime, is allowed).
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url)
            .build()?;
        // The OS-thread batch processor; queue, batch size and delay come
        // from the standard OTEL_BSP_* variables.
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    let otel_layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // RUST_LOG filters the log output only: spans must exist at every level so
    // the trace context keeps travelling even when logs are quiet.
    let fmt_layer = if log_format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(true)
            .with_filter(filter)
            .boxed()
    };
    // Spans for tracing, at info and above, independent of the log level.
    let otel_layer = otel_layer.with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The current span's W3C trace context (`traceparent`, `tracestate`) as headers.
pub fn current_trace_headers() -> BTreeMap<String, String> {
    let mut headers = Headers(BTreeMap::new());
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut headers);
    headers.0
}

/// Makes `span` a child of the trace described by `headers`, if they carry one.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &BTreeMap<String, String>) {
    if headers.contains_key("traceparent") {
        let cx = TraceContextPropagator::new().extract(&HeadersRef(headers));
        let _ = span.set_parent(cx);
    }
}

struct Headers(BTreeMap<String, String>);
struct HeadersRef<'a>(&'a BTreeMap<String, String>);

impl opentelemetry::propagation::Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_string(), value);
    }
}

impl opentelemetry::propagation::Extractor for HeadersRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn traces_url_appends_the_signal_path_once() {
        for (endpoint, want) in [
            (None, None),
            (Some(""), None),
            (Some("  "), None),
            (Some("http://c:4318"), Some("http://c:4318/v1/traces")),
            (Some("http://c:4318/"), Some("http://c:4318/v1/traces")),
            (Some("http://c/otlp/"), Some("http://c/otlp/v1/traces")),
        ] {
            assert_eq!(traces_url(endpoint).as_deref(), want, "{endpoint:?}");
        }
    }
}
