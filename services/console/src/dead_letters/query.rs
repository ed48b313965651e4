//! What a dead-letter request asks for, checked without I/O: the filter
//! (integration, time range on `dead_at`, discarded or not), the page size,
//! the opaque cursor, a bulk replay's filter, a discard's reason. Both the
//! API (query string / JSON body) and the CLI (flags) come through here, so
//! they accept and refuse exactly the same things.

use chrono::{DateTime, Utc};
use salesync_core::domain::{DeliveryId, FieldError, IntegrationId};
use serde::Deserialize;

use super::rules::TargetChoice;
use salesync_core::api::field_checks;

/// Page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
pub const MAX_LIMIT: u32 = 500;
/// Longest discard reason.
pub const MAX_REASON_CHARS: usize = 1000;
/// Most dead letters one bulk replay request replays (and the default
/// `limit`): the rest is reported as `remaining`, for the next request.
/// Keeps one request's work (and a mistaken filter's blast radius) bounded.
pub const MAX_BULK_REPLAY: u32 = 1000;

/// Which dead letters: all filters optional and combined with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub integration_id: Option<IntegrationId>,
    /// `dead_at >= from`
    pub from: Option<DateTime<Utc>>,
    /// `dead_at < to`
    pub to: Option<DateTime<Utc>>,
    /// Discarded dead letters are hidden unless asked for.
    pub include_discarded: bool,
    /// Only those whose reason contains this text (case-insensitive).
    pub reason: Option<String>,
}

/// Where the previous page ended (the last row's `dead_at` and id; the list
/// is newest first, ties broken by id).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cursor {
    pub dead_at: DateTime<Utc>,
    pub id: DeliveryId,
}

impl Cursor {
    /// `<microseconds since epoch>_<delivery id>`: opaque to callers, exact
    /// to PostgreSQL's timestamp precision.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.dead_at.timestamp_micros(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (micros, id) = s.split_once('_')?;
        Some(Self {
            dead_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Filter,
    pub limit: u32,
    pub after: Option<Cursor>,
}

/// The list's parameters as given (query string or CLI flags), unchecked.
#[derive(Deserialize, Debug, Default, Clone, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this integration's (404 if it is not the tenant's).
    #[param(value_type = Option<uuid::Uuid>)]
    pub integration_id: Option<String>,
    /// Died at or after (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub from: Option<String>,
    /// Died before (RFC 3339).
    #[param(value_type = Option<chrono::DateTime<chrono::Utc>>)]
    pub to: Option<String>,
    /// Page size (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(
        pattern = "^[0-9]{1,16}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    )]
    pub cursor: Option<String>,
    /// Also list discarded ones (default false).
    #[param(value_type = Option<bool>)]
    pub include_discarded: Option<String>,
    /// Only those whose reason contains this text (case-insensitive).
    #[param(max_length = 200)]
    pub reason: Option<String>,
}

/// `POST /v1/dead-letters/replay` (and `dlq replay --integration/--from/--to`).
#[derive(Deserialize, Debug, Default, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkReplayRequest)]
pub struct BulkReplayParams {
    /// Only this integration's (404 if it is not the tenant's).
    #[serde(default, deserialize_with = "salesync_core::api::json::not_null")]
    #[schema(value_type = uuid::Uuid)]
    pub integration_id: Option<String>,
    /// Died at or after.
    #[serde(default, deserialize_with = "salesync_core::api::json::not_null")]
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub from: Option<String>,
    /// Died before.
    #[serde(default, deserialize_with = "salesync_core::api::json::not_null")]
    #[schema(value_type = chrono::DateTime<chrono::Utc>)]
    pub to: Option<String>,
    /// `current` (default): where the integration points now; `recorded`:
    /// the URL stored with each delivery.
    #[serde(default)]
    #[schema(value_type = Option<TargetChoice>)]
    pub target: Option<String>,
    /// Count and sample only; change nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// At most this many replayed (1..=`MAX_BULK_REPLAY`, default the max).
    #[serde(
        default,
        deserialize_with = "salesync_core::domain::whole::optional_whole"
    )]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// `POST /v1/dead-letters/{id}/replay`'s optional body (and `dlq replay <id>`).
#[derive(Deserialize, Debug, Default, Clone, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ReplayRequest)]
pub struct ReplayParams {
    /// `current` (default): where the integration points now; `recorded`:
    /// the URL stored with the delivery.
    #[serde(default)]
    #[schema(value_type = Option<TargetChoice>)]
    pub target: Option<String>,
}

/// A bulk replay as checked.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkReplay {
    pub filter: Filter,
    pub target: TargetChoice,
    pub dry_run: bool,
    pub limit: u32,
}

/// Collects field errors so a request hears about every problem at once.
#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn check<T>(&mut self, field: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|p| self.0.push(FieldError::new(field, p))).ok()
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 timestamp, e.g. 2025-03-01T00:00:00Z".to_string())
}

fn parse_integration(s: &str) -> Result<IntegrationId, String> {
    s.trim()
        .parse()
        .map_err(|_| "must be an integration id (UUID)".to_string())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

fn parse_target(s: &str) -> Result<TargetChoice, String> {
    TargetChoice::parse(s.trim()).ok_or_else(|| "must be current or recorded".to_string())
}

fn parse_bulk_limit(n: i64) -> Result<u32, String> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_BULK_REPLAY).contains(n))
        .ok_or_else(|| format!("must be a whole number from 1 to {MAX_BULK_REPLAY}"))
}

fn parse_limit(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| format!("must be a whole number from 1 to {MAX_LIMIT}"))
}

/// The shared part of both filters: integration and time range.
fn range_filter(
    p: &mut Problems,
    integration_id: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Filter {
    let integration_id =
        integration_id.and_then(|s| p.check("integration_id", parse_integration(s)));
    let from = from.and_then(|s| p.check("from", parse_time(s)));
    // `to` at or before `from` is an empty range, answered with nothing:
    // a well-formed question (the document allows it) is not refused.
    let to = to.and_then(|s| p.check("to", parse_time(s)));
    Filter {
        integration_id,
        from,
        to,
        include_discarded: false,
        reason: None,
    }
}

/// Longest reason text a list filters on.
const MAX_REASON_FILTER_CHARS: usize = 200;

fn reason_part(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_REASON_FILTER_CHARS {
        Err(format!("at most {MAX_REASON_FILTER_CHARS} characters"))
    } else {
        Ok(s.to_string())
    }
}

/// Checks the list parameters.
pub fn list_query(params: &ListParams) -> Result<ListQuery, Vec<FieldError>> {
    let mut p = Problems::default();
    let mut filter = range_filter(
        &mut p,
        params.integration_id.as_deref(),
        params.from.as_deref(),
        params.to.as_deref(),
    );
    filter.reason = params
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|s| p.check("reason", reason_part(s)));
    filter.include_discarded = params
        .include_discarded
        .as_deref()
        .and_then(|s| p.check("include_discarded", parse_bool(s)))
        .unwrap_or(false);
    let limit = params
        .limit
        .as_deref()
        .and_then(|s| p.check("limit", parse_limit(s)))
        .unwrap_or(DEFAULT_LIMIT);
    let after = params.cursor.as_deref().and_then(|s| {
        p.check(
            "cursor",
            Cursor::decode(s.trim()).ok_or_else(|| "not a cursor from a previous page".to_string()),
        )
    });
    p.finish(ListQuery {
        filter,
        limit,
        after,
    })
}

/// `target`, when given, checked (else the default, `current`).
fn target_choice(p: &mut Problems, target: Option<&str>) -> TargetChoice {
    target
        .and_then(|s| p.check("target", parse_target(s)))
        .unwrap_or_default()
}

/// Checks a single replay's options: where it goes.
pub fn replay_options(params: &ReplayParams) -> Result<TargetChoice, Vec<FieldError>> {
    let mut p = Problems::default();
    let target = target_choice(&mut p, params.target.as_deref());
    p.finish(target)
}

/// Checks a bulk replay: its filter (`bulk_filter`), target, dry run, limit.
pub fn bulk_replay(params: &BulkReplayParams) -> Result<BulkReplay, Vec<FieldError>> {
    let mut p = Problems::default();
    let filter = bulk_filter(params)
        .map_err(|fields| p.0.extend(fields))
        .unwrap_or_default();
    let target = target_choice(&mut p, params.target.as_deref());
    let limit = params
        .limit
        .and_then(|n| p.check("limit", parse_bulk_limit(n)))
        .unwrap_or(MAX_BULK_REPLAY);
    p.finish(BulkReplay {
        filter,
        target,
        dry_run: params.dry_run.unwrap_or(false),
        limit,
    })
}

/// Checks a bulk replay's filter. At least one of integration and time
/// bound is required: "replay every dead letter ever" is too easy a mistake.
/// Discarded dead letters are never replayed in bulk (replay them one by one).
pub fn bulk_filter(params: &BulkReplayParams) -> Result<Filter, Vec<FieldError>> {
    let mut p = Problems::default();
    if params.integration_id.is_none() && params.from.is_none() && params.to.is_none() {
        p.0.push(FieldError::new(
            "$",
            "give at least one of integration_id, from, to",
        ));
    }
    let filter = range_filter(
        &mut p,
        params.integration_id.as_deref(),
        params.from.as_deref(),
        params.to.as_deref(),
    );
    p.finish(filter)
}

/// Checks a discard reason; returns it trimmed.
pub fn discard_reason(reason: &str) -> Result<String, Vec<FieldError>> {
    field_checks::check_reason(reason, MAX_REASON_CHARS, "it is discarded")
        .map_err(|p| vec![FieldError::new("reason", p)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        ListParams {
            integration_id: get("integration_id"),
            from: get("from"),
            to: get("to"),
            limit: get("limit"),
            cursor: get("cursor"),
            include_discarded: get("include_discarded"),
            reason: get("reason"),
        }
    }

    fn fields(r: Result<ListQuery, Vec<FieldError>>) -> Vec<String> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|f| f.field)
            .collect()
    }

    #[test]
    fn list_parameters() {
        let id = IntegrationId::new().to_string();
        let cursor = Cursor {
            dead_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: DeliveryId::new(),
        }
        .encode();
        let long_reason = "x".repeat(201);
        // (name, params, fields in error — empty means accepted)
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![]),
            (
                "everything",
                vec![
                    ("integration_id", &id),
                    ("from", "2025-01-01T00:00:00Z"),
                    ("to", "2025-02-01T00:00:00+01:00"),
                    ("limit", "500"),
                    ("cursor", &cursor),
                    ("include_discarded", "true"),
                    ("reason", "HTTP 400"),
                ],
                vec![],
            ),
            (
                "reason too long",
                vec![("reason", &long_reason)],
                vec!["reason"],
            ),
            (
                "bad integration",
                vec![("integration_id", "x")],
                vec!["integration_id"],
            ),
            ("bad time", vec![("from", "yesterday")], vec!["from"]),
            ("date without time", vec![("to", "2025-01-01")], vec!["to"]),
            (
                "empty range",
                vec![
                    ("from", "2025-01-02T00:00:00Z"),
                    ("to", "2025-01-01T00:00:00Z"),
                ],
                vec![],
            ),
            (
                "equal bounds",
                vec![
                    ("from", "2025-01-01T00:00:00Z"),
                    ("to", "2025-01-01T00:00:00Z"),
                ],
                vec![],
            ),
            ("limit zero", vec![("limit", "0")], vec!["limit"]),
            ("limit too big", vec![("limit", "501")], vec!["limit"]),
            ("limit negative", vec![("limit", "-1")], vec!["limit"]),
            ("limit not a number", vec![("limit", "ten")], vec!["limit"]),
            ("bad cursor", vec![("cursor", "abc")], vec!["cursor"]),
            (
                "cursor with bad id",
                vec![("cursor", "123_nope")],
                vec!["cursor"],
            ),
            (
                "bad flag",
                vec![("include_discarded", "yes")],
                vec!["include_discarded"],
            ),
            (
                "all problems at once",
                vec![("limit", "0"), ("from", "x"), ("cursor", "y")],
                vec!["from", "limit", "cursor"],
            ),
        ];
        for (name, pairs, want) in cases {
            let got = fields(list_query(&params(&pairs)));
            assert_eq!(got, want, "case {name}");
        }
        let q = list_query(&params(&[])).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        assert!(!q.filter.include_discarded);
        assert!(q.after.is_none());
    }

    #[test]
    fn cursors_round_trip_to_the_microsecond() {
        let c = Cursor {
            dead_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: DeliveryId::new(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "_",
            "1_",
            "_x",
            "x_y",
            "99999999999999999999_00000000-0000-0000-0000-000000000000",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn bulk_replay_needs_a_filter() {
        let id = IntegrationId::new().to_string();
        let p = |i: Option<&str>, f: Option<&str>, t: Option<&str>| BulkReplayParams {
            integration_id: i.map(str::to_string),
            from: f.map(str::to_string),
            to: t.map(str::to_string),
            ..BulkReplayParams::default()
        };
        // (name, params, accepted)
        let cases = [
            ("no filter", p(None, None, None), false),
            ("integration", p(Some(&id), None, None), true),
            (
                "from only",
                p(None, Some("2025-01-01T00:00:00Z"), None),
                true,
            ),
            ("to only", p(None, None, Some("2025-01-01T00:00:00Z")), true),
            ("bad integration", p(Some("nope"), None, None), false),
            // An inverted range is empty, not an error.
            (
                "inverted range",
                p(
                    None,
                    Some("2025-01-02T00:00:00Z"),
                    Some("2025-01-01T00:00:00Z"),
                ),
                true,
            ),
        ];
        for (name, params, ok) in cases {
            let got = bulk_filter(&params);
            assert_eq!(got.is_ok(), ok, "case {name}: {got:?}");
            if let Ok(f) = got {
                assert!(!f.include_discarded, "bulk never replays discarded ones");
            }
        }
    }

    #[test]
    fn bulk_replay_options() {
        let base = BulkReplayParams {
            to: Some("2025-01-01T00:00:00Z".into()),
            ..BulkReplayParams::default()
        };
        let with = |f: &dyn Fn(&mut BulkReplayParams)| {
            let mut p = base.clone();
            f(&mut p);
            p
        };
        let got = bulk_replay(&base).expect("defaults");
        assert_eq!(
            (got.target, got.dry_run, got.limit),
            (TargetChoice::Current, false, MAX_BULK_REPLAY)
        );
        let got = bulk_replay(&with(&|p| {
            p.target = Some("recorded".into());
            p.dry_run = Some(true);
            p.limit = Some(3);
        }))
        .expect("all set");
        assert_eq!(
            (got.target, got.dry_run, got.limit),
            (TargetChoice::Recorded, true, 3)
        );
        // (name, params, fields in error)
        let cases = [
            ("limit 0", with(&|p| p.limit = Some(0)), vec!["limit"]),
            (
                "limit negative",
                with(&|p| p.limit = Some(-1)),
                vec!["limit"],
            ),
            (
                "limit over the cap",
                with(&|p| p.limit = Some(i64::from(MAX_BULK_REPLAY) + 1)),
                vec!["limit"],
            ),
            (
                "unknown target",
                with(&|p| p.target = Some("old".into())),
                vec!["target"],
            ),
            (
                "no filter and a bad limit",
                BulkReplayParams {
                    limit: Some(0),
                    ..BulkReplayParams::default()
                },
                vec!["$", "limit"],
            ),
        ];
        for (name, params, want) in cases {
            let got: Vec<String> = bulk_replay(&params)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.field)
                .collect();
            assert_eq!(got, want, "{name}");
        }
        let one = |t: Option<&str>| {
            replay_options(&ReplayParams {
                target: t.map(str::to_string),
            })
        };
        assert_eq!(one(None), Ok(TargetChoice::Current));
        assert_eq!(one(Some("recorded")), Ok(TargetChoice::Recorded));
        assert!(one(Some("x")).is_err());
    }

    #[test]
    fn discard_reasons() {
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        // (reason, accepted as)
        let cases = [
            ("duplicate of order 17", Some("duplicate of order 17")),
            ("  padded  ", Some("padded")),
            ("", None),
            ("   ", None),
            ("a\0b", None),
            (long.as_str(), None),
        ];
        for (reason, want) in cases {
            assert_eq!(discard_reason(reason).ok().as_deref(), want, "{reason:?}");
        }
    }
}
