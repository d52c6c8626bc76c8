//! The web chat's files (`webui/`), compiled into the binary and served at `/`.
//! Present only with the `webui` feature (the default); the lite build has no page.
//!
//! The page's script is a set of ES modules loaded by the browser as they are (no build step):
//! `app.js` imports the others, so each must be listed here, with a JavaScript content type
//! (browsers refuse module scripts served as anything else). `webui/vendor/` holds KaTeX and
//! highlight.js as published on npm (scripts/vendor_webui.sh), which the page loads only when an
//! answer has a formula or a code block. `webui/package.json` and `webui/test/` are for the Node
//! unit tests and are not served.

pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const WOFF2: &str = "font/woff2";

macro_rules! page_file {
    ($name:expr, $content_type:expr) => {
        (
            concat!("/", $name),
            $content_type,
            include_bytes!(concat!("../../webui/", $name)),
        )
    };
}

macro_rules! katex_font {
    ($name:literal) => {
        page_file!(
            concat!("vendor/katex-0.19.1/fonts/KaTeX_", $name, ".woff2"),
            WOFF2
        )
    };
}

/// Every file of the page: (path, content type, body). `/` serves `/index.html`.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
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
    page_file!("rich-text.js", JS),
    page_file!("server.js", JS),
    page_file!("settings.js", JS),
    page_file!("sidebar.js", JS),
    page_file!("state.js", JS),
    page_file!("store.js", JS),
    page_file!("transfer.js", JS),
    page_file!("vendor/katex-0.19.1/katex.min.js", JS),
    page_file!("vendor/katex-0.19.1/katex.min.css", CSS),
    katex_font!("AMS-Regular"),
    katex_font!("Caligraphic-Bold"),
    katex_font!("Caligraphic-Regular"),
    katex_font!("Fraktur-Bold"),
    katex_font!("Fraktur-Regular"),
    katex_font!("Main-Bold"),
    katex_font!("Main-BoldItalic"),
    katex_font!("Main-Italic"),
    katex_font!("Main-Regular"),
    katex_font!("Math-BoldItalic"),
    katex_font!("Math-Italic"),
    katex_font!("SansSerif-Bold"),
    katex_font!("SansSerif-Italic"),
    katex_font!("SansSerif-Regular"),
    katex_font!("Script-Regular"),
    katex_font!("Size1-Regular"),
    katex_font!("Size2-Regular"),
    katex_font!("Size3-Regular"),
    katex_font!("Size4-Regular"),
    katex_font!("Typewriter-Regular"),
    page_file!("vendor/highlight-11.12.0/highlight.min.js", JS),
    page_file!("vendor/highlight-11.12.0/github.min.css", CSS),
    page_file!("vendor/highlight-11.12.0/github-dark.min.css", CSS),
];

/// Whether `path` is one of the vendored libraries' files (versioned paths: cacheable for good).
pub fn is_vendored(path: &str) -> bool {
    path.starts_with("/vendor/")
}

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

    fn text(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).unwrap().body).unwrap()
    }

    /// rich-text.js loads the vendored libraries from the directories served here.
    #[test]
    fn the_page_loads_the_served_library_versions() {
        let loader = text("/rich-text.js");
        for (path, _, _) in ASSETS.iter().filter(|(path, _, _)| is_vendored(path)) {
            let library = path.split('/').nth(2).unwrap();
            assert!(
                loader.contains(&format!("'./vendor/{library}/'")),
                "rich-text.js does not load {library}"
            );
        }
    }

    /// Every module a served module imports is served too (a missing one would stop the page).
    #[test]
    fn every_imported_module_is_served() {
        for (path, content_type, _) in ASSETS {
            if *content_type != JS || is_vendored(path) {
                continue;
            }
            for line in text(path).lines() {
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

    /// Every page file in `webui/` and every vendored file but the licences is served (a new
    /// module or a new library version needs its lines in ASSETS).
    #[test]
    fn every_page_file_is_served() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("test") {
                        files(&path, out);
                    }
                } else {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/webui"));
        let mut all = Vec::new();
        files(root, &mut all);
        for path in all {
            let name = path.strip_prefix(root).unwrap().to_str().unwrap();
            let page_file = [".js", ".css", ".html", ".woff2"]
                .iter()
                .any(|ext| name.ends_with(ext));
            if page_file {
                assert!(
                    asset(&format!("/{name}")).is_some(),
                    "webui/{name} is not served"
                );
            } else {
                assert!(
                    ["package.json"].contains(&name) || name.ends_with("/LICENSE"),
                    "webui/{name}: neither served nor known"
                );
            }
        }
    }

    #[test]
    fn index_and_modules_have_their_content_types() {
        assert_eq!(asset("/").unwrap().content_type, HTML);
        assert!(text("/").contains("type=\"module\" src=\"app.js\""));
        assert_eq!(asset("/markdown.js").unwrap().content_type, JS);
        assert!(asset("/package.json").is_none());
        assert!(asset("/test/markdown.test.mjs").is_none());
    }
}
