//! How each integration is doing over the last hour or day: delivery
//! success rate, p50/p99 delivery latency (accepted by salesync → delivered),
//! retries and dead letters, circuit or pause state, last success. Read
//! from the deliveries and their attempts; "sick" is a pure judgement.

use chrono::{DateTime, TimeDelta, Utc};
use salesync_core::domain::{IntegrationId, TenantId};
use salesync_core::egress::target_key;
use sqlx::PgPool;
use uuid::Uuid;

/// The span the figures cover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("day") => Window::Day,
            _ => Window::Hour,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
    pub fn span(self) -> TimeDelta {
        match self {
            Window::Hour => TimeDelta::hours(1),
            Window::Day => TimeDelta::days(1),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IntegrationHealth {
    pub id: IntegrationId,
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub name: String,
    pub target_kind: String,
    pub target_url: String,
    pub enabled: bool,
    pub paused_at: Option<DateTime<Utc>>,
    pub pause_reason: Option<String>,
    /// `open` or `probing` while the target's circuit is not closed.
    #[sqlx(skip)]
    pub breaker: Option<String>,
    pub attempts: i64,
    pub succeeded: i64,
    pub retries: i64,
    pub dead_letters: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub last_success: Option<DateTime<Utc>>,
}

impl IntegrationHealth {
    /// Share of attempts that delivered, `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.succeeded as f64 / self.attempts as f64)
    }

    /// Why it needs a look, if it does: paused, circuit open, dead letters,
    /// or most attempts failing.
    pub fn sick(&self) -> Option<String> {
        if self.paused_at.is_some() {
            return Some("paused".into());
        }
        if let Some(b) = &self.breaker {
            return Some(format!("circuit {b}"));
        }
        if self.dead_letters > 0 {
            return Some(format!("{} dead letters", self.dead_letters));
        }
        match self.success_rate() {
            Some(r) if r < 0.9 && self.attempts >= 5 => {
                Some(format!("{:.0} % of attempts failing", (1.0 - r) * 100.0))
            }
            _ => None,
        }
    }
}

/// The orders the table can be sorted in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SortBy {
    /// Sick ones first, then by name (the default).
    Health,
    Name,
    Tenant,
    SuccessRate,
    P99,
    DeadLetters,
    LastSuccess,
}

impl SortBy {
    pub const ALL: [(SortBy, &'static str); 7] = [
        (SortBy::Health, "health"),
        (SortBy::Name, "name"),
        (SortBy::Tenant, "tenant"),
        (SortBy::SuccessRate, "success"),
        (SortBy::P99, "p99"),
        (SortBy::DeadLetters, "dead"),
        (SortBy::LastSuccess, "last_success"),
    ];

    pub fn parse(s: Option<&str>) -> Self {
        Self::ALL
            .iter()
            .find(|(_, n)| Some(*n) == s)
            .map_or(SortBy::Health, |(k, _)| *k)
    }

    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("health", |(_, n)| n)
    }
}

/// Sorts in place; `descending` reverses the natural order.
pub fn sort(rows: &mut [IntegrationHealth], by: SortBy, descending: bool) {
    let name = |r: &IntegrationHealth| (r.name.to_lowercase(), r.id.to_string());
    rows.sort_by(|a, b| {
        let o = match by {
            SortBy::Health => (a.sick().is_none(), name(a)).cmp(&(b.sick().is_none(), name(b))),
            SortBy::Name => name(a).cmp(&name(b)),
            SortBy::Tenant => (a.tenant_name.to_lowercase(), name(a))
                .cmp(&(b.tenant_name.to_lowercase(), name(b))),
            SortBy::SuccessRate => a
                .success_rate()
                .unwrap_or(2.0)
                .total_cmp(&b.success_rate().unwrap_or(2.0)),
            SortBy::P99 => b
                .p99_ms
                .unwrap_or(-1.0)
                .total_cmp(&a.p99_ms.unwrap_or(-1.0)),
            SortBy::DeadLetters => b.dead_letters.cmp(&a.dead_letters),
            SortBy::LastSuccess => a.last_success.cmp(&b.last_success),
        };
        if descending { o.reverse() } else { o }
    });
}

/// Every integration the viewer may see (`tenants`: `None` for all).
pub async fn load(
    pool: &PgPool,
    tenants: Option<&[Uuid]>,
    only: Option<IntegrationId>,
    window: Window,
) -> sqlx::Result<Vec<IntegrationHealth>> {
    let mut rows: Vec<IntegrationHealth> = sqlx::query_as(
        "SELECT i.id, i.tenant_id, t.name AS tenant_name, i.name, i.target_kind, i.target_url,
                i.enabled, i.paused_at, i.pause_reason,
                coalesce(a.attempts, 0) AS attempts, coalesce(a.succeeded, 0) AS succeeded,
                coalesce(a.retries, 0) AS retries,
                (SELECT count(*) FROM deliveries d
                  WHERE d.integration_id = i.id AND d.dead_at >= now() - $3) AS dead_letters,
                l.p50_ms, l.p99_ms,
                (SELECT max(d.delivered_at) FROM deliveries d
                  WHERE d.integration_id = i.id AND d.state = 'delivered') AS last_success
         FROM integrations i JOIN tenants t ON t.id = i.tenant_id
         LEFT JOIN LATERAL (
             SELECT count(*) AS attempts,
                    count(*) FILTER (WHERE x.outcome = 'delivered') AS succeeded,
                    count(*) FILTER (WHERE x.outcome = 'retry') AS retries
             FROM deliveries d JOIN delivery_attempts x ON x.delivery_id = d.id
             WHERE d.integration_id = i.id AND x.started_at >= now() - $3
         ) a ON true
         LEFT JOIN LATERAL (
             SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50_ms,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99_ms
             FROM (SELECT extract(epoch FROM d.delivered_at - d.created_at) * 1000 AS ms
                   FROM deliveries d
                   WHERE d.integration_id = i.id AND d.delivered_at >= now() - $3) s
         ) l ON true
         WHERE i.deleted_at IS NULL
           AND ($1::uuid[] IS NULL OR i.tenant_id = ANY($1))
           AND ($2::uuid IS NULL OR i.id = $2)",
    )
    .bind(tenants)
    .bind(only)
    .bind(window.span())
    .fetch_all(pool)
    .await?;
    // Circuits are kept per target (scheme, host, port), not per integration.
    let breakers: Vec<(String, String)> = sqlx::query_as(
        "SELECT target_key, state FROM target_breakers WHERE state = 'probing' OR until > now()",
    )
    .fetch_all(pool)
    .await?;
    for r in &mut rows {
        let key = target_key(&r.target_url);
        r.breaker = breakers
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, state)| state.clone());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, attempts: i64, succeeded: i64) -> IntegrationHealth {
        IntegrationHealth {
            id: IntegrationId::new(),
            tenant_id: TenantId::new(),
            tenant_name: "T".into(),
            name: name.into(),
            target_kind: "webhook".into(),
            target_url: "https://example.com/".into(),
            enabled: true,
            paused_at: None,
            pause_reason: None,
            breaker: None,
            attempts,
            succeeded,
            retries: attempts - succeeded,
            dead_letters: 0,
            p50_ms: None,
            p99_ms: None,
            last_success: None,
        }
    }

    #[test]
    fn sick_integrations_stand_out_and_sort_first() {
        let healthy = row("a-healthy", 100, 100);
        let failing = row("b-failing", 10, 2);
        let mut paused = row("c-paused", 0, 0);
        paused.paused_at = Some(Utc::now());
        let mut open = row("d-open", 50, 50);
        open.breaker = Some("open".into());
        let mut dead = row("e-dead", 3, 3);
        dead.dead_letters = 2;
        let few = row("f-few-failures", 2, 0);
        assert_eq!(healthy.sick(), None);
        assert_eq!(failing.sick().as_deref(), Some("80 % of attempts failing"));
        assert_eq!(paused.sick().as_deref(), Some("paused"));
        assert_eq!(open.sick().as_deref(), Some("circuit open"));
        assert_eq!(dead.sick().as_deref(), Some("2 dead letters"));
        assert_eq!(few.sick(), None, "two failures are not yet a pattern");
        let mut rows = vec![healthy, few, failing, paused, open, dead];
        sort(&mut rows, SortBy::Health, false);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "b-failing",
                "c-paused",
                "d-open",
                "e-dead",
                "a-healthy",
                "f-few-failures"
            ]
        );
        sort(&mut rows, SortBy::SuccessRate, false);
        assert_eq!(rows[0].name, "f-few-failures");
        sort(&mut rows, SortBy::Name, true);
        assert_eq!(rows[0].name, "f-few-failures");
        assert_eq!(SortBy::parse(Some("p99")), SortBy::P99);
        assert_eq!(SortBy::parse(Some("nonsense")), SortBy::Health);
    }
}
