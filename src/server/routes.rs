//! Routing: method + path → handler, with the API-key check, the body-size limit and the
//! "still loading" answer in front of the handlers that need them. Works on `Incoming`,
//! a plain view of a request, so it is tested without sockets.
use std::io::Read;
use std::time::Instant;

use super::anthropic;
use super::completion::chat_completion;
use super::errors::ApiError;
use super::ollama;
use super::reply::Reply;
use super::request::{parse_chat_request, RequestContext};
use super::response::{health_json, models_json, ModelInfo};
use super::state::{AppState, LoadedModel};
use super::text_completion::text_completion;
use super::tokenize;

/// The parts of an HTTP request the routes look at.
pub struct Incoming<'a> {
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    pub authorization: Option<&'a str>,
    /// The `x-api-key` header (Anthropic clients send their key there).
    pub x_api_key: Option<&'a str>,
    pub content_length: Option<usize>,
    pub body: &'a mut dyn Read,
}

/// The web page and its ES modules: the files of `webui.rs` (a test keeps the lists equal), listed
/// here too so the lite build answers them as the page's paths (with a 404).
const PAGE_PATHS: &[&str] = &[
    "/",
    "/index.html",
    "/style.css",
    "/app.js",
    "/api.js",
    "/attachments.js",
    "/composer.js",
    "/conversation-view.js",
    "/conversations.js",
    "/dom.js",
    "/format.js",
    "/generation.js",
    "/grounding.js",
    "/markdown-view.js",
    "/markdown.js",
    "/messages.js",
    "/overlay.js",
    "/presets.js",
    "/server.js",
    "/settings.js",
    "/sidebar.js",
    "/rich-text.js",
    "/state.js",
    "/store.js",
    "/transfer.js",
];

/// The metrics label of a path: a fixed set, so clients cannot grow the label space.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" | "/chat/completions" => "/v1/chat/completions",
        "/v1/models" | "/models" => "/v1/models",
        "/v1/messages" => "/v1/messages",
        "/v1/completions" | "/completions" => "/v1/completions",
        "/tokenize" | "/detokenize" => "/tokenize",
        "/api/chat" | "/api/generate" | "/api/tags" | "/api/show" | "/api/ps" | "/api/version" => {
            "/api"
        }
        "/health" | "/v1/health" => "/health",
        "/metrics" => "/metrics",
        path if PAGE_PATHS.contains(&path) || path.starts_with("/vendor/") => "/",
        _ => "other",
    }
}

pub fn handle(state: &AppState, incoming: Incoming, received: Instant) -> Reply {
    let route = route_label(incoming.path);
    respond(state, incoming, received).unwrap_or_else(|error| match route {
        "/v1/messages" => anthropic::error_reply(error),
        "/api" => ollama::error_reply(error),
        _ => Reply::from(error),
    })
}

fn respond(state: &AppState, mut incoming: Incoming, received: Instant) -> Result<Reply, ApiError> {
    let (method, path) = (incoming.method, incoming.path);
    let (authorization, x_api_key) = (incoming.authorization, incoming.x_api_key);
    if method == "OPTIONS" {
        // A CORS pre-flight: the transport adds what `CorsPolicy` grants.
        return Ok(Reply::empty(204));
    }
    let expect = |wanted: &str| {
        if method == wanted {
            Ok(())
        } else {
            Err(ApiError::method_not_allowed(method, path))
        }
    };
    let authorize = || authorize(state, authorization, x_api_key);
    let route = route_label(path);
    if state.is_draining()
        && matches!(
            route,
            "/health" | "/v1/chat/completions" | "/v1/completions" | "/v1/messages" | "/api"
        )
    {
        return Err(ApiError::shutting_down());
    }
    match route {
        "/health" => {
            expect("GET")?;
            let model = loaded(state)?;
            Ok(Reply::json(200, &health_json(&model_info(state, model))))
        }
        "/metrics" => {
            expect("GET")?;
            authorize()?;
            Ok(Reply::bytes(
                200,
                "text/plain; version=0.0.4",
                state.metrics.render(&state.gauges()),
            ))
        }
        "/v1/models" => {
            expect("GET")?;
            authorize()?;
            let model = loaded(state)?;
            let body = models_json(
                &state.config.model_id,
                state.started,
                &model_info(state, model),
            );
            Ok(Reply::json(200, &body))
        }
        "/v1/chat/completions" => {
            expect("POST")?;
            authorize()?;
            let model = loaded(state)?;
            let body = read_body(&mut incoming, state.config.limits.max_body_bytes)?;
            let request = parse_chat_request(&body, RequestContext::of(state, model))?;
            chat_completion(state, model, request, received)
        }
        "/api" => ollama_api(state, &mut incoming, received),
        "/v1/completions" => {
            expect("POST")?;
            authorize()?;
            let model = loaded(state)?;
            let body = read_body(&mut incoming, state.config.limits.max_body_bytes)?;
            text_completion(state, model, &body, received)
        }
        "/tokenize" => {
            expect("POST")?;
            authorize()?;
            let model = loaded(state)?;
            let body = read_body(&mut incoming, state.config.limits.max_body_bytes)?;
            if path == "/tokenize" {
                tokenize::tokenize(state, model, &body)
            } else {
                tokenize::detokenize(model, &body)
            }
        }
        "/v1/messages" => {
            expect("POST")?;
            authorize()?;
            let model = loaded(state)?;
            let body = read_body(&mut incoming, state.config.limits.max_body_bytes)?;
            anthropic::messages(state, model, &body, received)
        }
        "/" => web_page(state, method, path),
        _ => Err(ApiError::not_found(path)),
    }
}

/// Ollama's endpoints (`route_label` gives them one label).
fn ollama_api(
    state: &AppState,
    incoming: &mut Incoming,
    received: Instant,
) -> Result<Reply, ApiError> {
    let (method, path) = (incoming.method, incoming.path);
    let wanted = match path {
        "/api/tags" | "/api/ps" | "/api/version" => "GET",
        _ => "POST",
    };
    if method != wanted {
        return Err(ApiError::method_not_allowed(method, path));
    }
    if path == "/api/version" {
        return Ok(ollama::version());
    }
    authorize(state, incoming.authorization, incoming.x_api_key)?;
    let model = loaded(state)?;
    match path {
        "/api/tags" => Ok(ollama::tags(state, model)),
        "/api/ps" => Ok(ollama::running(state, model)),
        "/api/show" => Ok(ollama::show(state, model)),
        _ => {
            let endpoint = if path == "/api/chat" {
                ollama::Endpoint::Chat
            } else {
                ollama::Endpoint::Generate
            };
            let body = read_body(incoming, state.config.limits.max_body_bytes)?;
            ollama::generate(state, model, endpoint, &body, received)
        }
    }
}

fn model_info(state: &AppState, model: &LoadedModel) -> ModelInfo {
    let image = &model.image_config;
    let merge = image.patch_size * image.merge_size;
    ModelInfo {
        context_length: state.config.context_length,
        profile: model.bundle.weight_profile(),
        image_min_pixels: image.min_pixels,
        image_budget_pixels: image.max_pixels,
        pixels_per_image_token: merge * merge,
        max_image_pixels: state.config.limits.max_image_pixels,
        max_images: state.config.limits.max_images,
    }
}

/// 401 unless the request carries one of the server's keys (Bearer or `x-api-key`).
fn authorize(
    state: &AppState,
    authorization: Option<&str>,
    x_api_key: Option<&str>,
) -> Result<(), ApiError> {
    if state.config.api_keys.authorizes(authorization, x_api_key) {
        Ok(())
    } else {
        Err(ApiError::unauthorized())
    }
}

fn loaded(state: &AppState) -> Result<&LoadedModel, ApiError> {
    state.model().ok_or_else(ApiError::loading)
}

/// The body, refused (413) past `limit` bytes — by its declared length when there is one.
fn read_body(incoming: &mut Incoming, limit: usize) -> Result<Vec<u8>, ApiError> {
    if incoming.content_length.is_some_and(|n| n > limit) {
        return Err(ApiError::body_too_large(limit));
    }
    let mut body = Vec::new();
    (&mut *incoming.body)
        .take(limit as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                ApiError::request_timeout()
            }
            _ => ApiError::invalid(
                "unreadable_body",
                format!("cannot read the request body: {e}"),
            ),
        })?;
    if body.len() > limit {
        return Err(ApiError::body_too_large(limit));
    }
    Ok(body)
}

#[cfg(feature = "webui")]
fn web_page(state: &AppState, method: &str, path: &str) -> Result<Reply, ApiError> {
    let asset = super::webui::asset(path)
        .filter(|_| state.config.webui)
        .ok_or_else(|| ApiError::not_found(path))?;
    if method != "GET" {
        return Err(ApiError::method_not_allowed(method, path));
    }
    let reply = Reply::bytes(200, asset.content_type, asset.body);
    // Vendored files have the library's version in their path: a new version is a new path.
    Ok(if super::webui::is_vendored(path) {
        reply.with_header("Cache-Control", "public, max-age=31536000, immutable")
    } else {
        reply
    })
}

#[cfg(not(feature = "webui"))]
fn web_page(_state: &AppState, _method: &str, path: &str) -> Result<Reply, ApiError> {
    Err(ApiError::not_found(path))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::server::{Limits, ServerConfig};

    fn loading_state(api_key: Option<&str>) -> AppState {
        AppState::new(ServerConfig {
            model_path: PathBuf::from("model.gguf"),
            mmproj_path: None,
            model_id: "model".into(),
            host: "127.0.0.1".into(),
            port: 0,
            tls: None,
            context_length: 64,
            api_keys: std::sync::Arc::new(match api_key {
                Some(key) => crate::server::ApiKeys::new(vec![key.to_owned()], None).unwrap(),
                None => crate::server::ApiKeys::open(),
            }),
            cors: crate::server::CorsPolicy::AnyOrigin,
            parallel: 1,
            max_queue: 1,
            webui: true,
            limits: Limits {
                max_body_bytes: 16,
                max_images: 1,
                max_image_pixels: 1000,
                image_min_tokens: None,
                image_max_tokens: None,
                allow_image_urls: false,
                image_url_policy: Default::default(),
                max_image_download_bytes: 1000,
                image_download_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(1),
            },
            shutdown_grace: Duration::from_secs(1),
            log: crate::server::RequestLog::from_settings(Some("off"), None, false).unwrap(),
        })
    }

    fn call(state: &AppState, method: &str, path: &str, key: Option<&str>) -> Reply {
        let header = key.map(|k| format!("Bearer {k}"));
        handle(
            state,
            Incoming {
                method,
                path,
                authorization: header.as_deref(),
                x_api_key: None,
                content_length: None,
                body: &mut std::io::empty(),
            },
            Instant::now(),
        )
    }

    fn body_text(reply: &Reply) -> String {
        match &reply.body {
            crate::server::reply::Body::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            crate::server::reply::Body::EventStream(_) => panic!("unexpected stream"),
        }
    }

    #[test]
    fn health_and_api_answer_503_while_the_model_loads() {
        let state = loading_state(None);
        let health = call(&state, "GET", "/health", None);
        assert_eq!(health.status, 503);
        assert!(body_text(&health).contains("\"code\":\"model_loading\""));
        assert!(health
            .headers
            .iter()
            .any(|(name, _)| *name == "Retry-After"));
        assert_eq!(
            call(&state, "POST", "/v1/chat/completions", None).status,
            503
        );
        assert_eq!(call(&state, "GET", "/v1/models", None).status, 503);
        let metrics = call(&state, "GET", "/metrics", None);
        assert_eq!(metrics.status, 200);
        assert!(body_text(&metrics).contains("glimpse_model_loaded 0"));
    }

    #[test]
    fn the_api_key_guards_everything_but_health() {
        let state = loading_state(Some("k"));
        for (method, path) in [
            ("GET", "/v1/models"),
            ("GET", "/metrics"),
            ("POST", "/v1/chat/completions"),
        ] {
            let refused = call(&state, method, path, None);
            assert_eq!(refused.status, 401, "{path}");
            assert!(body_text(&refused).contains("\"type\":\"authentication_error\""));
            assert_eq!(
                call(&state, method, path, Some("wrong")).status,
                401,
                "{path}"
            );
            assert_ne!(call(&state, method, path, Some("k")).status, 401, "{path}");
        }
        assert_eq!(call(&state, "GET", "/health", None).status, 503);
    }

    #[test]
    fn a_draining_server_refuses_generations_and_fails_health_checks() {
        let state = loading_state(None);
        state.start_draining();
        for (method, path) in [("GET", "/health"), ("POST", "/v1/chat/completions")] {
            let refused = call(&state, method, path, None);
            assert_eq!(refused.status, 503, "{path}");
            assert!(body_text(&refused).contains("\"code\":\"shutting_down\""));
        }
        assert_eq!(call(&state, "GET", "/metrics", None).status, 200);
    }

    #[test]
    fn unknown_paths_wrong_methods_and_preflight() {
        let state = loading_state(None);
        assert_eq!(call(&state, "GET", "/v2/anything", None).status, 404);
        assert_eq!(
            call(&state, "GET", "/v1/chat/completions", None).status,
            405
        );
        assert_eq!(call(&state, "POST", "/health", None).status, 405);
        let preflight = call(&state, "OPTIONS", "/v1/chat/completions", None);
        assert_eq!(preflight.status, 204);
    }

    #[test]
    fn web_page_follows_the_feature_and_the_flag() {
        let mut state = loading_state(None);
        let expected = if cfg!(feature = "webui") { 200 } else { 404 };
        let page = call(&state, "GET", "/", None);
        assert_eq!(page.status, expected);
        if cfg!(feature = "webui") {
            assert!(page.content_type.starts_with("text/html"));
            assert_eq!(call(&state, "GET", "/app.js", None).status, 200);
            // The ES modules app.js imports, served as JavaScript (browsers require it).
            for module in ["/markdown.js", "/grounding.js", "/overlay.js", "/api.js"] {
                let reply = call(&state, "GET", module, None);
                assert_eq!(reply.status, 200, "{module}");
                assert_eq!(
                    reply.content_type, "text/javascript; charset=utf-8",
                    "{module}"
                );
            }
            assert_eq!(call(&state, "GET", "/package.json", None).status, 404);
            let font = call(
                &state,
                "GET",
                "/vendor/katex-0.19.1/fonts/KaTeX_Main-Regular.woff2",
                None,
            );
            assert_eq!((font.status, font.content_type), (200, "font/woff2"));
            assert_eq!(route_label("/vendor/katex-0.19.1/katex.min.js"), "/");
            assert_eq!(
                call(&state, "GET", "/vendor/katex-0.19.1/LICENSE", None).status,
                404
            );
        }
        state.config.webui = false;
        assert_eq!(call(&state, "GET", "/", None).status, 404);
        assert_eq!(call(&state, "GET", "/markdown.js", None).status, 404);
    }

    #[cfg(feature = "webui")]
    #[test]
    fn page_paths_are_the_served_files() {
        for (path, _, _) in super::super::webui::ASSETS {
            assert_eq!(route_label(path), "/", "{path} is missing in PAGE_PATHS");
        }
        for path in PAGE_PATHS {
            assert!(
                super::super::webui::asset(path).is_some(),
                "{path} is in PAGE_PATHS but not served"
            );
        }
    }

    #[test]
    fn body_over_the_limit_is_413_with_or_without_a_declared_length() {
        let mut declared = std::io::empty();
        let mut incoming = Incoming {
            method: "POST",
            path: "/v1/chat/completions",
            authorization: None,
            x_api_key: None,
            content_length: Some(17),
            body: &mut declared,
        };
        assert_eq!(read_body(&mut incoming, 16).unwrap_err().status, 413);
        let mut undeclared = std::io::Cursor::new(vec![b'x'; 17]);
        incoming.content_length = None;
        incoming.body = &mut undeclared;
        assert_eq!(read_body(&mut incoming, 16).unwrap_err().status, 413);
        let mut fits = std::io::Cursor::new(vec![b'x'; 16]);
        incoming.body = &mut fits;
        assert_eq!(read_body(&mut incoming, 16).unwrap().len(), 16);
    }
}
