//! The web chat's files (`webui/`), compiled into the binary and served at `/`.
//! Present only with the `webui` feature (the default); the lite build has no page.
//!
//! The page's script is a set of ES modules loaded by the browser as they are (no build step):
//! `app.js` imports the others, so each must be listed here, with a JavaScript content type
//! (browsers refuse module scripts served as anything else). `webui/package.json` and
//! `webui/test/` are for the Node unit tests and are not served.

pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

macro_rules! page_file {
    ($name:literal, $content_type:expr) => {
        (
            concat!("/", $name),
            $content_type,
            include_str!(concat!("../../webui/", $name)),
        )
    };
}

/// Every file of the page: (path, content type, body). `/` serves `/index.html`.
pub const ASSETS: &[(&str, &str, &str)] = &[
    page_file!("index.html", HTML),
    page_file!("style.css", CSS),
    page_file!("app.js", JS),
    page_file!("api.js", JS),
    page_file!("attachments.js", JS),
    page_file!("composer.js", JS),
    page_file!("conversation-view.js", JS),
    page_file!("conversations.js", JS),
    page_file!("dom.js", JS),
    page_file!("format.js", JS),
    page_file!("generation.js", JS),
    page_file!("grounding.js", JS),
    page_file!("markdown-view.js", JS),
    page_file!("markdown.js", JS),
    page_file!("messages.js", JS),
    page_file!("overlay.js", JS),
    page_file!("presets.js", JS),
    page_file!("server.js", JS),
    page_file!("settings.js", JS),
    page_file!("sidebar.js", JS),
    page_file!("state.js", JS),
    page_file!("store.js", JS),
    page_file!("transfer.js", JS),
];

/// The file served at `path`, if any.
pub fn asset(path: &str) -> Option<Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS
        .iter()
        .find(|(served, _, _)| *served == path)
        .map(|&(_, content_type, body)| Asset { content_type, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a served module imports is served too (a missing one would stop the page).
    #[test]
    fn every_imported_module_is_served() {
        for (path, content_type, body) in ASSETS {
            if *content_type != JS {
                continue;
            }
            for line in body.lines() {
                for quote in ['\'', '"'] {
                    let Some(rest) = line.split(&format!(" from {quote}./")).nth(1) else {
                        continue;
                    };
                    let module = rest.split(quote).next().unwrap();
                    assert!(
                        asset(&format!("/{module}")).is_some(),
                        "{path} imports ./{module}, which webui.rs does not serve"
                    );
                }
            }
        }
    }

    /// Every page file in `webui/` is served (a new module needs a line in ASSETS).
    #[test]
    fn every_page_file_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/webui");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if [".js", ".css", ".html"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                assert!(
                    asset(&format!("/{name}")).is_some(),
                    "webui/{name} is not served"
                );
            }
        }
    }

    #[test]
    fn index_and_modules_have_their_content_types() {
        assert_eq!(asset("/").unwrap().content_type, HTML);
        assert!(asset("/")
            .unwrap()
            .body
            .contains("type=\"module\" src=\"app.js\""));
        assert_eq!(asset("/markdown.js").unwrap().content_type, JS);
        assert!(asset("/package.json").is_none());
        assert!(asset("/test/markdown.test.mjs").is_none());
    }
}
