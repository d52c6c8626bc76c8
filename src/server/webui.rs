//! The web chat's files (`webui/`), compiled into the binary and served at `/`.
//! Present only with the `webui` feature (the default); the lite build has no page.

pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The file served at `path`, if any.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        "/" | "/index.html" => (
            "text/html; charset=utf-8",
            include_str!("../../webui/index.html"),
        ),
        "/app.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../webui/app.js"),
        ),
        "/style.css" => (
            "text/css; charset=utf-8",
            include_str!("../../webui/style.css"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}
