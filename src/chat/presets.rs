//! Task prompts shared by the CLI and the web page (whose copies a test keeps equal):
//! grounding ("locate objects" as `bbox_2d` / `point_2d` JSON on the 0–1000 scale) and
//! document-to-Markdown OCR, plus `strip_markdown_fence` for saving a Markdown answer.

/// Asks for grounding JSON, the format Qwen3-VL was trained to write.
pub const LOCATE_PROMPT: &str = "Locate the objects the user asks about. Answer with a JSON list in a ```json code block, one entry per instance: {\"bbox_2d\": [x1, y1, x2, y2], \"label\": \"name\"}, with coordinates on a 0-1000 scale relative to the image width and height; use {\"point_2d\": [x, y], \"label\": \"name\"} when asked to point at things.";

/// Asks for the document in the image as Markdown, tables kept.
pub const MARKDOWN_PROMPT: &str = "Convert the document in the image to Markdown. Keep the reading order, headings, paragraphs, lists and tables (as Markdown tables), and transcribe all text exactly. Output only the Markdown, with no comments.";

/// `answer` without the ```markdown (or ```md, or bare ```) fence the model may wrap a
/// whole Markdown document in; other answers are returned trimmed.
pub fn strip_markdown_fence(answer: &str) -> &str {
    let trimmed = answer.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let Some((info, body)) = rest.split_once('\n') else {
        return trimmed;
    };
    let info = info.trim();
    if !matches!(info, "" | "markdown" | "md") {
        return trimmed;
    }
    match body.trim_end().strip_suffix("```") {
        Some(inner) if !inner.contains("\n```\n") => inner.trim_end_matches('\n'),
        _ => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_web_page_uses_the_same_prompts() {
        let page = include_str!("../../webui/presets.js");
        for prompt in [LOCATE_PROMPT, MARKDOWN_PROMPT] {
            let quoted = serde_json::to_string(prompt).unwrap();
            assert!(page.contains(&quoted), "webui/presets.js lacks {quoted}");
        }
    }

    #[test]
    fn fences_around_the_whole_document_are_removed() {
        assert_eq!(
            strip_markdown_fence("```markdown\n# T\n\n| a |\n|---|\n```\n"),
            "# T\n\n| a |\n|---|"
        );
        assert_eq!(strip_markdown_fence("```md\nx\n```"), "x");
        assert_eq!(strip_markdown_fence("  # Plain\n"), "# Plain");
        // A code block inside the document, or a fenced block of another language, stays.
        let inner = "```markdown\nText\n```\ncode\n```\nmore\n```";
        assert_eq!(strip_markdown_fence(inner), inner);
        assert_eq!(strip_markdown_fence("```json\n[]\n```"), "```json\n[]\n```");
    }
}
