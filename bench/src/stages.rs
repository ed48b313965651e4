//! Where a sale's time goes between ingest and the target, read from the
//! timestamps the services write anyway: when ingest's transaction stored the
//! sale, when condition-filter's transaction decided it, when the forwarder
//! started the HTTP request and how long that took. The end-to-end figures
//! come from the benchmark's own clock; these split them by hop.

use std::time::Duration;

use sqlx::PgPool;

/// Percentiles of one hop, milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct StageLatency {
    pub stage: &'static str,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
}

/// The hops, as SQL expressions in milliseconds over one row per sale:
/// `stored` (ingest's transaction), `decided` (condition-filter's
/// transaction), `sent` (the first HTTP attempt's start) and `http_ms`.
const STAGES: &[(&str, &str)] = &[
    (
        "ingest stored → condition-filter decided (ingest commit, outbox relay, broker, condition-filter reads)",
        "extract(epoch FROM decided - stored) * 1000",
    ),
    (
        "condition-filter decided → forwarder sends (its commit, outbox relay, broker, forwarder reads)",
        "extract(epoch FROM sent - decided) * 1000",
    ),
    ("HTTP request to the target", "http_ms"),
];

/// Percentiles per hop for the sales stored after the warm-up.
pub async fn measure(pool: &PgPool, warmup: Duration) -> sqlx::Result<Vec<StageLatency>> {
    let mut out = Vec::with_capacity(STAGES.len());
    for (stage, expr) in STAGES {
        let sql = format!(
            "WITH start AS (SELECT min(created_at) + make_interval(secs => $1) AS t FROM sales),
                  hops AS (
                    SELECT s.created_at AS stored,
                           (SELECT min(c.created_at) FROM sale_decisions c WHERE c.sale_id = s.id) AS decided,
                           a.started_at AS sent, a.duration_ms AS http_ms
                    FROM sales s
                    JOIN deliveries d ON d.sale_id = s.id
                    JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = 1
                    WHERE s.created_at >= (SELECT t FROM start))
             SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99]::float8[])
                    WITHIN GROUP (ORDER BY ({expr})::float8)
             FROM hops"
        );
        // `expr` is one of the constants above, never input.
        let p: Option<Vec<f64>> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(warmup.as_secs_f64())
            .fetch_one(pool)
            .await?;
        if let Some([p50, p90, p99]) = p.as_deref() {
            out.push(StageLatency {
                stage,
                p50_ms: *p50,
                p90_ms: *p90,
                p99_ms: *p99,
            });
        }
    }
    Ok(out)
}

/// Every sale's hop timestamps (milliseconds since the epoch: stored,
/// decided, sent; then the HTTP duration) as CSV, for looking at *when* slow
/// sales happen rather than how many there are.
pub async fn dump_csv(pool: &PgPool, path: &std::path::Path) -> anyhow::Result<usize> {
    let rows: Vec<(f64, Option<f64>, f64, i32)> = sqlx::query_as(
        "SELECT extract(epoch FROM s.created_at)::float8 * 1000,
                (SELECT extract(epoch FROM min(c.created_at))::float8 * 1000
                 FROM sale_decisions c WHERE c.sale_id = s.id),
                extract(epoch FROM a.started_at)::float8 * 1000, a.duration_ms
         FROM sales s
         JOIN deliveries d ON d.sale_id = s.id
         JOIN delivery_attempts a ON a.delivery_id = d.id AND a.attempt = 1
         ORDER BY s.created_at",
    )
    .fetch_all(pool)
    .await?;
    let mut csv = String::from("stored_ms,decided_ms,sent_ms,http_ms\n");
    for (stored, decided, sent, http) in &rows {
        let decided = decided.map_or(String::new(), |d| format!("{d:.3}"));
        csv.push_str(&format!("{stored:.3},{decided},{sent:.3},{http}\n"));
    }
    std::fs::write(path, csv)?;
    Ok(rows.len())
}
