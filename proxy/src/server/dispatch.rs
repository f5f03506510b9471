//! One client call from parsed request to response: provider choice, the fallback plan, account
//! selection, conversion, the upstream call, failover, and the relayed answer.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use poolgate_store::Account;
use serde_json::Value;

use super::config::GatewayConfig;
use super::errors::ApiError;
use super::relay::{error_chain, stream_response, unary_response, StreamPlan, Tracked, Verdict};
use super::routing::{self, Target};
use super::AppState;
use crate::client_keys::{Caller, Charge};
use crate::convert::images::ImageCall;
use crate::convert::{
    convert_error, convert_request_with, convert_response, parse_body, upstream_message, Backend, Protocol,
    RequestOverrides,
};
use crate::oauth::TokenError;
use crate::pool::outcome::{self, Failure, Policy};
use crate::pool::slots::{self, SlotError};
use crate::pool::Pick;
use crate::providers::{AdaptError, FailureKind, Prepared, Provider, ProviderError, UpstreamCall};

/// Largest upstream error body read (the message is all that is kept).
const ERROR_BODY_LIMIT: usize = 64 << 10;

/// A parsed client request.
pub struct ClientCall {
    pub protocol: Protocol,
    /// Metric label.
    pub route: &'static str,
    pub headers: HeaderMap,
    /// Path below any `/{providerType}` prefix, with the query.
    pub path_and_query: String,
    pub path_provider: Option<String>,
    pub raw: Bytes,
    pub body: Value,
    /// As the client named it (`type:` prefix included).
    pub model: String,
    pub stream: bool,
    pub request_id: String,
    pub started: Instant,
    /// The main key or a client key.
    pub caller: Caller,
    /// Set once a client key is admitted.
    pub charge: Option<Charge>,
    /// An Images API call: `body` holds its chat form for providers without an images API.
    pub images: Option<Arc<ImageCall>>,
}

/// How one pool of the plan ended without an answer.
enum PoolEnd {
    Empty,
    Unsupported,
    NoneUsable,
    Full,
    Exhausted,
}

/// An answer that settles the call.
enum Settled {
    /// From the upstream (counted against a client key).
    Answer(Response),
    /// Refused before any upstream saw it (a client key's request is refunded).
    Rejected(Response),
}

/// Serves `call`; always answers (errors in the client's shape).
pub async fn dispatch(state: Arc<AppState>, mut call: ClientCall) -> Response {
    let cfg = state.config();
    // Pool types are only needed to read a `type:model` name.
    let known =
        if call.model.contains(':') { state.store.list_pool_types().await.unwrap_or_default() } else { Vec::new() };
    let chosen =
        routing::choose(&cfg, &state.providers, &call.headers, call.path_provider.as_deref(), &call.model, &known);
    let (pool, model) = match chosen {
        Ok(c) => c,
        Err(e) => return finish(&state, &call, "none", e.into_response_for(call.protocol)),
    };
    let per_key = cfg.client_key_metrics_per_key;
    let admitted = state
        .client_keys
        .admit(&state.store, &call.caller, &model, &pool, cfg.client_keys_offline_allow, per_key)
        .await;
    if matches!(call.caller, crate::client_keys::Caller::Key(_)) {
        state.metrics.client_key_admission(&admitted);
    }
    match admitted {
        Ok(charge) => call.charge = charge,
        Err(refusal) => {
            let mut resp = refusal.error.into_response_for(call.protocol);
            if let Some(limits) = refusal.limits {
                crate::client_keys::set_headers(resp.headers_mut(), &limits);
            }
            return finish(&state, &call, &pool, resp);
        }
    }
    let plan = routing::plan(&cfg, &pool, &model);
    let mut last: Option<(String, Failure)> = None;
    let mut ends = Vec::new();
    for target in &plan {
        if past_deadline(&cfg, &call) {
            break;
        }
        match serve_pool(&state, &cfg, &call, target, &mut last).await {
            Ok(Settled::Answer(resp)) => return finish(&state, &call, &target.pool, resp),
            Ok(Settled::Rejected(resp)) => {
                refund(&state, &call);
                return finish(&state, &call, &target.pool, resp);
            }
            Err(end) => ends.push(end),
        }
    }
    refund(&state, &call);
    if past_deadline(&cfg, &call) && last.is_none() {
        let message = format!("Request deadline of {} ms reached", cfg.request_deadline.as_millis());
        last = Some((pool.clone(), Failure::Timeout { message }));
        ends.push(PoolEnd::Exhausted);
    }
    let err = final_error(&plan, &ends, last, &model);
    tracing::warn!(status = err.status, message = %err.message, "request failed");
    finish(&state, &call, &pool, err.into_response_for(call.protocol))
}

/// `REQUEST_DEADLINE_MS` has passed for `call`.
fn past_deadline(cfg: &GatewayConfig, call: &ClientCall) -> bool {
    call.started.elapsed() >= cfg.request_deadline
}

/// When `call` must have its answer (a stream: its start).
fn call_deadline(cfg: &GatewayConfig, call: &ClientCall) -> tokio::time::Instant {
    tokio::time::Instant::from_std(call.started + cfg.request_deadline)
}

/// Gives a client key's request back: it got no upstream answer.
fn refund(state: &AppState, call: &ClientCall) {
    if let Some(charge) = &call.charge {
        crate::client_keys::refund(&state.tasks, &state.store, charge);
    }
}

fn finish(state: &AppState, call: &ClientCall, pool: &str, mut resp: Response) -> Response {
    if let Some(charge) = &call.charge {
        crate::client_keys::set_headers(resp.headers_mut(), &charge.limits);
    }
    let status = resp.status().as_u16();
    state.metrics.request(call.route, pool, status);
    if crate::telemetry::enabled() {
        let span = tracing::Span::current();
        span.record("http.response.status_code", status);
        span.record("gen_ai.request.model", call.model.as_str());
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    }
    if status >= 400 {
        state.metrics.duration(call.route, call.started.elapsed());
    }
    if let Ok(v) = call.request_id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn final_error(plan: &[Target], ends: &[PoolEnd], last: Option<(String, Failure)>, model: &str) -> ApiError {
    let pools: Vec<&str> = plan.iter().map(|t| t.pool.as_str()).collect();
    let pools = pools.join(", ");
    if let Some((pool, f)) = last {
        if ends.iter().all(|e| matches!(e, PoolEnd::Exhausted | PoolEnd::NoneUsable)) {
            let (status, retry_after) = match &f {
                Failure::Timeout { .. } => (504, None),
                Failure::RateLimited { retry_after, .. } => (429, retry_after.map(|d| d.as_secs().max(1))),
                Failure::Auth { .. } | Failure::Quota { .. } => (503, None),
                Failure::Server { .. } | Failure::Network { .. } => (502, None),
            };
            let message = format!(
                "All accounts failed for model {model} (pools: {pools}); last error from {pool}: {}",
                f.message()
            );
            return ApiError { status, message, retry_after };
        }
    }
    if ends.iter().any(|e| matches!(e, PoolEnd::Full)) {
        return ApiError::new(429, format!("Account concurrency limit and queue reached (pools: {pools})"));
    }
    if ends.iter().any(|e| matches!(e, PoolEnd::NoneUsable | PoolEnd::Exhausted)) {
        let mut e = ApiError::new(503, format!("No healthy account in pool {pools} for model {model}"));
        e.retry_after = Some(1);
        return e;
    }
    if ends.iter().all(|e| matches!(e, PoolEnd::Empty)) {
        return ApiError::new(503, format!("No healthy account: no accounts are configured in pool {pools}"));
    }
    ApiError::new(404, format!("Model {model} is not served by provider {pools}"))
}

fn policy(cfg: &GatewayConfig) -> Policy {
    Policy {
        threshold: cfg.error_threshold(),
        cooldown: cfg.rate_limit_cooldown,
        cooldown_max: cfg.rate_limit_cooldown_max,
    }
}

/// The upstream body and model for `target`, or the client's error.
fn upstream_body(call: &ClientCall, backend: Backend, target: &Target) -> Result<(Bytes, String), ApiError> {
    match backend {
        Backend::PassThrough => {
            let original = call.body.get("model").and_then(Value::as_str);
            if call.protocol == Protocol::Gemini || original == Some(target.model.as_str()) || original.is_none() {
                return Ok((call.raw.clone(), target.model.clone()));
            }
            let mut body = call.body.clone();
            body["model"] = Value::String(target.model.clone());
            Ok((Bytes::from(body.to_string()), target.model.clone()))
        }
        // Same protocol and the model the client named: the client's bytes go up as they came
        // (no copy of the parsed body, no serialisation).
        Backend::Protocol(p) if p == call.protocol && p != Protocol::Gemini && sends_as_is(call, &target.model) => {
            Ok((call.raw.clone(), target.model.clone()))
        }
        Backend::Protocol(p) => {
            let overrides = RequestOverrides { model: Some(target.model.clone()), stream: Some(call.stream) };
            let up = convert_request_with(call.protocol, p, &call.body, &overrides)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            let bytes = serde_json::to_vec(&up.body).map_err(|e| ApiError::new(500, e.to_string()))?;
            Ok((Bytes::from(bytes), up.model))
        }
    }
}

/// The body of an Images API call to a provider with an images API: the client's own for
/// pass-through, else the generation JSON with the upstream model (edits are built as a form
/// by the provider).
fn images_body(call: &ClientCall, img: &ImageCall, backend: Backend, target: &Target) -> (Bytes, String) {
    match (backend, img.is_edit()) {
        (Backend::PassThrough, _) => (call.raw.clone(), target.model.clone()),
        (_, true) => (Bytes::new(), target.model.clone()),
        (_, false) => (Bytes::from(img.generation_body(&target.model).to_string()), target.model.clone()),
    }
}

/// Whether the client's body already says what the upstream must get: the upstream model as
/// its `model`, no `models/` prefix to strip.
fn sends_as_is(call: &ClientCall, model: &str) -> bool {
    call.body.get("model").and_then(Value::as_str) == Some(model)
        && crate::convert::model::strip_models_prefix(model) == model
}

async fn serve_pool(
    state: &Arc<AppState>,
    cfg: &GatewayConfig,
    call: &ClientCall,
    target: &Target,
    last: &mut Option<(String, Failure)>,
) -> Result<Settled, PoolEnd> {
    let Some(provider) = state.providers.get(&target.pool).cloned() else {
        tracing::debug!(pool = %target.pool, "fallback type not served by this build");
        return Err(PoolEnd::Empty);
    };
    let backend = provider.backend();
    let images = call.images.as_deref().filter(|_| provider.images_api());
    let upstream = match images {
        Some(img) => Ok(images_body(call, img, backend, target)),
        None => upstream_body(call, backend, target),
    };
    let (body, up_model) = match upstream {
        Ok(b) => b,
        Err(e) => return Ok(Settled::Rejected(e.into_response_for(call.protocol))),
    };
    let policy = policy(cfg);
    let mut tried: HashSet<String> = HashSet::new();
    let mut attempts = 0u32;
    let mut same_account_retries = 0u32;
    let mut last_here: Option<Failure> = None;
    let mut saw_full = false;
    loop {
        let accounts = match state.store.get_pool(&target.pool).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(pool = %target.pool, error = %e, "cannot read the pool");
                return Err(PoolEnd::NoneUsable);
            }
        };
        let now_ms = poolgate_store::time::epoch_ms();
        let idx = match state.selector.pick(&target.pool, &accounts, &target.model, &tried, now_ms) {
            Pick::Account(i) => i,
            Pick::NoneSupports if accounts.is_empty() => return Err(PoolEnd::Empty),
            Pick::NoneSupports => return Err(PoolEnd::Unsupported),
            Pick::NoneUsable => {
                // A timeout is not retried on the account that just spent it.
                let transient =
                    last_here.as_ref().is_some_and(|f| f.transient() && !matches!(f, Failure::Timeout { .. }));
                let delay = cfg.request_base_delay.saturating_mul(1 << same_account_retries.min(16));
                let in_time = tokio::time::Instant::now() + delay < call_deadline(cfg, call);
                if transient
                    && in_time
                    && same_account_retries < cfg.request_max_retries
                    && attempts <= cfg.credential_switch_max_retries
                {
                    same_account_retries += 1;
                    tokio::time::sleep(delay).await;
                    tried.clear();
                    continue;
                }
                return Err(if last_here.is_some() {
                    PoolEnd::Exhausted
                } else if saw_full {
                    PoolEnd::Full
                } else {
                    PoolEnd::NoneUsable
                });
            }
        };
        if past_deadline(cfg, call) {
            let message = format!("Request deadline of {} ms reached", cfg.request_deadline.as_millis());
            *last = Some((target.pool.clone(), Failure::Timeout { message }));
            return Err(PoolEnd::Exhausted);
        }
        let account = accounts[idx].clone();
        drop(accounts);
        let label = account_label(&account);
        tried.insert(account.uuid().to_string());
        let inflight = state.selector.enter(&target.pool, account.uuid());
        let slot = match slots::limits(&account) {
            None => None,
            Some(limits) => {
                let holder = format!("{}:{}", call.request_id, attempts);
                match slots::acquire(&state.store, &target.pool, &account, limits, holder, cfg.queue_timeout).await {
                    Ok(g) => Some(g),
                    Err(SlotError::Full | SlotError::QueueTimeout) => {
                        saw_full = true;
                        continue;
                    }
                    Err(SlotError::Store(e)) => {
                        tracing::warn!(pool = %target.pool, error = %e, "concurrency slot unavailable; skipping the account");
                        saw_full = true;
                        continue;
                    }
                }
            }
        };
        attempts += 1;
        let up = UpstreamCall {
            body: body.clone(),
            model: &up_model,
            stream: call.stream,
            path_and_query: &call.path_and_query,
            client_headers: &call.headers,
            pool: &target.pool,
            images,
        };
        let tracked = Tracked {
            state: state.clone(),
            pool: target.pool.clone(),
            account,
            route: call.route,
            started: call.started,
            policy,
            verdict: Verdict::Success,
            first_byte: false,
            charge: None,
            tokens: (0, 0),
            model: routing_model(call),
            _inflight: inflight,
            _slot: slot,
        };
        let span = attempt_span(&target.pool, &up_model, &label);
        let tried_once = attempt(state, cfg, provider.as_ref(), &up, call, tracked);
        match tracing::Instrument::instrument(tried_once, span.clone()).await {
            Attempt::Answer(resp) => return Ok(Settled::Answer(resp)),
            Attempt::Failed(f) => {
                span.record("error.type", f.kind());
                span.record("otel.status_code", "ERROR");
                tracing::warn!(pool = %target.pool, account = %label, kind = f.kind(), error = %f.message(), "upstream attempt failed");
                *last = Some((format!("{} account {label}", target.pool), f.clone()));
                last_here = Some(f);
                if attempts > cfg.credential_switch_max_retries + same_account_retries {
                    return Err(PoolEnd::Exhausted);
                }
            }
        }
    }
}

/// The client span of one upstream attempt, with the GenAI attributes (none without traces).
fn attempt_span(pool: &str, model: &str, account: &str) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::Span::none();
    }
    let system = crate::telemetry::gen_ai_system(pool);
    tracing::info_span!(
        "upstream",
        otel.name = %format!("chat {model}"),
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.system = system,
        gen_ai.provider.name = system,
        gen_ai.request.model = %model,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        poolgate.pool = %pool,
        poolgate.account = %account,
    )
}

/// How errors name an account to clients and logs: its custom name, else its uuid's first 8
/// characters (never its URL, which may carry a key).
fn account_label(account: &Account) -> String {
    match account.custom_name() {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => account.uuid().chars().take(8).collect(),
    }
}

enum Attempt {
    Answer(Response),
    Failed(Failure),
}

/// Masks the account's credentials (and the OAuth token sent) in an upstream message.
fn redact(message: String, account: &Account, access: Option<&str>) -> String {
    let mut out = message;
    if let Some(a) = access.filter(|a| a.len() >= 6) {
        out = out.replace(a, "***");
    }
    for (k, v) in account.as_map() {
        if k.ends_with("API_KEY") {
            if let Some(secret) = v.as_str().filter(|s| s.len() >= 6) {
                out = out.replace(secret, "***");
            }
        }
    }
    out
}

/// One upstream call on one account. Failures are recorded (through `tracked`'s drop) and
/// returned for failover; a successful answer is returned ready for the client. An OAuth
/// token the upstream refuses is refreshed (fleet-wide single flight) and the call retried
/// once on the same account.
async fn attempt(
    state: &Arc<AppState>,
    cfg: &GatewayConfig,
    provider: &dyn Provider,
    up: &UpstreamCall<'_>,
    call: &ClientCall,
    mut tracked: Tracked,
) -> Attempt {
    let ctx = state.provider_ctx(up.pool, &tracked.account);
    let fail = |mut tracked: Tracked, f: Failure| {
        tracked.verdict = Verdict::Failed(f.clone());
        drop(tracked);
        Attempt::Failed(f)
    };
    let mut refreshed = false;
    loop {
        let prepared = match provider.request(&ctx, &tracked.account, up).await {
            Ok(r) => r,
            Err(e) => return fail(tracked, provider_failure(e)),
        };
        let Prepared { builder, access, mut adapter } = prepared;
        let builder = crate::telemetry::propagate(builder);
        let own = tokio::time::Instant::now() + cfg.upstream_timeout;
        let deadline = own.min(call_deadline(cfg, call));
        let resp = match tokio::time::timeout_at(deadline, builder.send()).await {
            Err(_) => {
                let message = if deadline < own {
                    format!("request deadline of {} ms reached", cfg.request_deadline.as_millis())
                } else {
                    format!("upstream did not answer within {} ms", cfg.upstream_timeout.as_millis())
                };
                return fail(tracked, Failure::Timeout { message });
            }
            Ok(Err(e)) => return fail(tracked, transport_failure(up.pool, e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        crate::telemetry::record_status(status.as_u16());
        if !status.is_success() {
            let retry_after =
                resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(outcome::parse_retry_after);
            let body = match tokio::time::timeout_at(deadline, read_limited(resp, ERROR_BODY_LIMIT)).await {
                Ok(b) => b,
                Err(_) => Bytes::new(),
            };
            let code = status.as_u16();
            let message = redact(
                upstream_message(&body).unwrap_or_else(|| format!("upstream returned HTTP {code}")),
                &tracked.account,
                access.as_deref(),
            );
            return match provider.classify(code, &body) {
                FailureKind::Client => {
                    // The request's fault: answered as the upstream said, the account untouched.
                    tracked.verdict = Verdict::Neutral;
                    tracked.charge = call.charge.clone();
                    drop(tracked);
                    let resp = if provider.backend() == Backend::PassThrough {
                        unary_response(status, None, body)
                    } else {
                        let (s, b) = convert_error(call.protocol, code, message.as_bytes());
                        json_error_value(s, b)
                    };
                    Attempt::Answer(resp)
                }
                FailureKind::Expired => {
                    let (Some(grant), Some(refused), false) = (provider.grant(), access.as_deref(), refreshed) else {
                        return fail(tracked, Failure::Auth { status: code, message });
                    };
                    match ctx.token(up.pool, &tracked.account, grant, Some(refused)).await {
                        Ok(_) => {
                            refreshed = true;
                            continue;
                        }
                        Err(e) => fail(tracked, Failure::Auth { status: code, message: format!("{message}; {e}") }),
                    }
                }
                FailureKind::Auth => fail(tracked, Failure::Auth { status: code, message }),
                FailureKind::QuotaUntilNextMonth => {
                    let recover_at = outcome::first_of_next_month(chrono::Utc::now());
                    fail(tracked, Failure::Quota { message, recover_at })
                }
                FailureKind::RateLimited => fail(tracked, Failure::RateLimited { message, retry_after }),
                FailureKind::Server => fail(tracked, Failure::Server { status: code, message }),
            };
        }
        if call.stream {
            tracked.charge = call.charge.clone();
            let backend = provider.backend();
            let client_model = routing_model(call);
            let plan = StreamPlan {
                backend,
                client: call.protocol,
                client_model: &client_model,
                idle: cfg.stream_idle_timeout,
                request_id: &call.request_id,
            };
            return Attempt::Answer(stream_response(resp, plan, tracked, adapter));
        }
        let content_type = resp.headers().get("content-type").cloned();
        let bytes = match tokio::time::timeout_at(deadline, resp.bytes()).await {
            Err(_) => {
                return fail(tracked, Failure::Timeout { message: "upstream body did not arrive in time".into() })
            }
            Ok(Err(e)) => return fail(tracked, transport_failure(up.pool, e)),
            Ok(Ok(b)) => b,
        };
        let bytes = match adapter.as_mut().map(|a| a.unary(&bytes)) {
            None => bytes,
            Some(Ok(b)) => b,
            Some(Err(e)) => return fail(tracked, adapt_failure(e)),
        };
        let backend = provider.backend();
        if up.images.is_some() {
            if let Err(f) = check_images_answer(&bytes) {
                return fail(tracked, f);
            }
            tracked.charge = call.charge.clone();
            tracked.first_chunk();
            tracked.commit().await;
            drop(tracked);
            let mut out = unary_response(status, content_type, bytes);
            out.extensions_mut().insert(crate::convert::images::NativeAnswer);
            return Attempt::Answer(out);
        }
        let relayed = match backend {
            Backend::PassThrough => true,
            Backend::Protocol(p) => p == call.protocol,
        };
        if relayed {
            if let Err(message) = crate::convert::validate::validate_answer(call.protocol, &bytes) {
                return fail(tracked, Failure::Server { status: 502, message });
            }
        }
        let (status, content_type, client_bytes) = match backend {
            Backend::PassThrough => (status, content_type, bytes),
            Backend::Protocol(p) if p == call.protocol => (StatusCode::OK, None, bytes),
            Backend::Protocol(p) => {
                let converted = parse_body(&bytes).and_then(|v| convert_response(p, call.protocol, &v));
                match converted {
                    Ok(v) => (StatusCode::OK, None, Bytes::from(v.to_string())),
                    Err(e) => {
                        let message = format!("upstream answer could not be converted: {e}");
                        return fail(tracked, Failure::Server { status: 502, message });
                    }
                }
            }
        };
        if call.charge.is_some() || crate::telemetry::enabled() {
            tracked.charge = call.charge.clone();
            tracked.tokens = crate::client_keys::answer_tokens(call.protocol, &client_bytes);
            crate::telemetry::record_tokens(&tracing::Span::current(), tracked.tokens);
        }
        cfg.prompt_log.answer(&call.request_id, call.protocol, &client_bytes);
        let out = unary_response(status, content_type, client_bytes);
        tracked.first_chunk();
        tracked.commit().await;
        drop(tracked);
        return Attempt::Answer(out);
    }
}

/// An images API's answer is relayed as it came, once it is seen to be one.
fn check_images_answer(bytes: &[u8]) -> Result<(), Failure> {
    let valid = parse_body(bytes).ok().is_some_and(|v| crate::convert::images::native_items(&v).is_some());
    if valid {
        return Ok(());
    }
    let message = "upstream answer is not an images API answer (no `data` list)".to_string();
    Err(Failure::Server { status: 502, message })
}

/// A transport failure, described for the client and the account without the URL or the HTTP
/// library's internals (those go to the log, the URL's query string removed).
fn transport_failure(pool: &str, e: reqwest::Error) -> Failure {
    let timeout = e.is_timeout();
    let message = if timeout {
        "upstream timed out"
    } else if e.is_connect() {
        "could not connect to the upstream"
    } else if e.is_body() || e.is_decode() {
        "upstream connection failed while sending the answer"
    } else {
        "upstream connection failed"
    };
    tracing::warn!(%pool, error = %error_chain(&e.without_url()), "upstream transport error");
    if timeout {
        Failure::Timeout { message: message.into() }
    } else {
        Failure::Network { message: message.into() }
    }
}

/// How a provider that could not build its request affects the account.
fn provider_failure(e: ProviderError) -> Failure {
    let message = e.to_string();
    match e {
        ProviderError::Token(TokenError::Unavailable(_)) => Failure::Server { status: 503, message },
        ProviderError::Upstream(_) => Failure::Server { status: 502, message },
        _ => Failure::Auth { status: 0, message },
    }
}

/// An answer the provider's adapter refused (Kiro exception frames, Codex `error` events).
pub fn adapt_failure(e: AdaptError) -> Failure {
    match e.status {
        429 => Failure::RateLimited { message: e.message, retry_after: None },
        401 | 403 => Failure::Auth { status: e.status, message: e.message },
        s => Failure::Server { status: s, message: e.message },
    }
}

fn json_error_value(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    axum::response::IntoResponse::into_response((code, axum::Json(body)))
}

/// The model name shown to the client in converted streams (without a `type:` prefix).
fn routing_model(call: &ClientCall) -> String {
    match call.model.split_once(':') {
        Some((_, m)) if !m.is_empty() => m.to_string(),
        _ => call.model.clone(),
    }
}

async fn read_limited(resp: reqwest::Response, limit: usize) -> Bytes {
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= limit {
            break;
        }
    }
    Bytes::from(out)
}
