//! A delivery attempt as the API shows it: in a sale's detail (ingest) and
//! in a dead letter's (console).

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::DeliveryId;

#[derive(sqlx::FromRow, Serialize, Debug, utoipa::ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptEntry {
    #[serde(skip)]
    pub delivery_id: DeliveryId,
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub outcome: String,
}
