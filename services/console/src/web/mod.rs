//! The web console: server-rendered pages under `/ui/` for operators and
//! tenant users (`session`), beside the JSON API. Pages read through the
//! same stores and act through the same handlers as the API; a small
//! script (`app.js`) swaps in results without a reload, and every page
//! also works without it.

mod assets;
pub mod broker;
mod catalogue;
mod charts;
mod dead_letters;
mod form;
pub mod health;
mod integrations;
mod login;
mod overview;
mod page;
pub mod session;
pub mod settings;
mod setup;
mod timeline;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::AppState;
pub use settings::WebSettings;

/// Every page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(login::home))
        .route(assets::CSS_PATH, get(assets::css))
        .route(assets::JS_PATH, get(assets::js))
        .route("/ui/login", get(login::show).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route("/ui/overview", get(overview::show))
        .route("/ui/integrations", get(integrations::list))
        .route("/ui/integrations/new", get(setup::new).post(setup::create))
        .route("/ui/integrations/{id}", get(setup::detail))
        .route("/ui/integrations/{id}/settings", post(setup::save_settings))
        .route("/ui/integrations/{id}/pause", post(setup::pause))
        .route("/ui/integrations/{id}/resume", post(setup::resume))
        .route(
            "/ui/integrations/{id}/test-connection",
            post(setup::test_connection),
        )
        .route(
            "/ui/integrations/{id}/imports",
            get(catalogue::imports_page).post(catalogue::save_imports),
        )
        .route("/ui/integrations/{id}/sync", post(catalogue::sync_now))
        .route(
            "/ui/integrations/{id}/mappings",
            get(catalogue::mappings_page).post(catalogue::save_mappings),
        )
        .route(
            "/ui/integrations/{id}/check",
            get(catalogue::check_page).post(catalogue::run_check),
        )
        .route("/ui/sales", get(timeline::find))
        .route("/ui/sales/{id}", get(timeline::show))
        .route("/ui/dead-letters", get(dead_letters::list))
        .route(
            "/ui/dead-letters/replay",
            post(dead_letters::replay_selected),
        )
        .route("/ui/dead-letters/{id}", get(dead_letters::show))
        .route(
            "/ui/dead-letters/{id}/replay",
            post(dead_letters::replay_one),
        )
        .route("/ui/dead-letters/{id}/discard", post(dead_letters::discard))
}
