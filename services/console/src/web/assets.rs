//! The console's only static files: one style sheet and one small script,
//! compiled into the binary (no CDN, no build step, works offline).

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

pub const CSS_PATH: &str = "/ui/assets/app.css";
pub const JS_PATH: &str = "/ui/assets/app.js";

pub async fn css() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("app.css"),
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("app.js"),
    )
}
