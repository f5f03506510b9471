//! The route table, with CORS on every response (reference-proxy.md §2).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{images, models, ollama, routes, status, AppState};

async fn cors(req: Request, next: Next) -> Response {
    let mut resp =
        if req.method() == Method::OPTIONS { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    h.insert("access-control-allow-methods", HeaderValue::from_static("GET, POST, OPTIONS"));
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "Content-Type, Authorization, x-api-key, x-goog-api-key, Model-Provider, X-Requested-With, Accept, Origin, anthropic-version, anthropic-beta",
        ),
    );
    resp
}

/// Routes served by this build.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/provider_health", get(status::provider_health))
        .route("/metrics", get(status::metrics))
        .route("/api/storage/status", get(status::storage_status))
        .route("/api/redis/status", get(status::redis_status))
        .route("/api/usage", get(status::usage))
        .route("/api/usage/{provider}", get(status::usage_type))
        .route("/v1/models", get(models::v1_list))
        .route("/v1beta/models", get(models::gemini))
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/responses", post(routes::responses))
        .route("/v1/messages", post(routes::messages))
        .route("/v1/messages/count_tokens", post(routes::count_tokens_handler))
        .route("/v1beta/models/{method}", post(routes::gemini_generate))
        // The current google-genai SDKs call `/v1/models/{model}:generateContent` too.
        .route("/v1/models/{method}", post(routes::gemini_generate))
        .route("/v1/images/generations", post(images::generations))
        .route("/v1/images/edits", post(images::edits))
        .route("/{provider}/v1/images/generations", post(images::generations_p))
        .route("/{provider}/v1/images/edits", post(images::edits_p))
        .route("/{provider}/v1/models", get(models::v1_list_p))
        .route("/{provider}/v1beta/models", get(models::gemini_p))
        .route("/{provider}/v1/chat/completions", post(routes::chat_p))
        .route("/{provider}/v1/responses", post(routes::responses_p))
        .route("/{provider}/v1/messages", post(routes::messages_p))
        .route("/{provider}/v1/messages/count_tokens", post(routes::count_tokens_handler))
        .route("/{provider}/v1beta/models/{method}", post(routes::gemini_generate_p))
        .route("/{provider}/v1/models/{method}", post(routes::gemini_generate_p))
        .route("/ollama/api/version", get(ollama::version))
        .route("/ollama/api/tags", get(ollama::tags))
        .route("/ollama/api/show", post(ollama::show))
        .route("/ollama/api/chat", post(ollama::chat))
        .route("/ollama/api/generate", post(ollama::generate))
        .merge(crate::admin::router())
        .fallback(routes::not_found)
        .layer(middleware::from_fn(cors))
        .with_state(state)
}
