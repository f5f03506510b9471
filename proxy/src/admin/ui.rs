//! The dashboard: static assets from `proxy/ui/`, embedded at build time (nothing is fetched
//! from the internet at run time), served under `/` and `/ui/*` unless `UI_ENABLED=false`.
//! Every response carries a Content-Security-Policy that allows only these same-origin assets;
//! the page builds its DOM with `textContent`, so stored values can never become markup.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::AppState;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../ui/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../ui/app.css")),
];

pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/", get(index)).route("/index.html", get(index)).route("/ui/{name}", get(asset))
}

fn serve(state: &AppState, name: &str) -> Response {
    if !state.config().admin.ui_enabled {
        return (StatusCode::NOT_FOUND, "the dashboard is off (UI_ENABLED=false)").into_response();
    }
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn index(State(state): State<Arc<AppState>>) -> Response {
    serve(&state, "index.html")
}

async fn asset(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    serve(&state, &name)
}
