//! Prompt building: chat template → text → token ids. Each image's single `<|image_pad|>` is
//! expanded into as many pads as the image has merged patches (`t*h*w/4`). Each video's
//! `<|video_pad|>` first becomes, in the text, one `<T seconds><|vision_start|><|video_pad|>
//! <|vision_end|>` per temporal patch (as transformers 5.24's `Qwen3VLProcessor` writes it, the
//! template's own start/end tokens staying around them), and each of those pads is then
//! expanded like an image's. transformers expands the pads on the text before tokenizing;
//! doing it on the ids gives the same result because a pad is a special token that the
//! tokenizer always matches on its own.

use std::ops::Range;

use anyhow::{bail, Result};

use super::message::Message;
use super::special_tokens::SpecialTokens;
use super::template::{ChatTemplate, TemplateArgs};
use super::tokenizer::Tokenizer;

const VIDEO_PAD: &str = "<|video_pad|>";
const VISION_START: &str = "<|vision_start|>";
const VISION_END: &str = "<|vision_end|>";

/// Token ids ready for prefill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    /// The positions of the pad tokens of each image and of each temporal patch of a video,
    /// in prompt order (the order the vision encoder's outputs are placed in).
    pub vision_spans: Vec<Range<usize>>,
}

/// What one image or video of the prompt occupies, in prompt order.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaTokens {
    /// An image: its merged patch count.
    Image(usize),
    /// A video: the merged patch count of one temporal patch, and each temporal patch's time
    /// in seconds.
    Video {
        tokens_per_patch: usize,
        timestamps: Vec<f64>,
    },
}

/// Renders `messages` with the generation prompt, tokenizes, and expands the placeholders of
/// `media` (in prompt order, see `media_in_prompt_order`); their number must match the
/// placeholders the template emitted.
pub fn build_prompt(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[Message],
    media: &[MediaTokens],
    special: &SpecialTokens,
) -> Result<Prompt> {
    build_prompt_with_answer_prefix(
        template,
        tokenizer,
        messages,
        TemplateArgs::default(),
        media,
        special,
        "",
    )
}

/// `build_prompt` with more template arguments (tools offered, keyword arguments) and the
/// answer already begun: `answer_prefix` follows the generation prompt, so the model
/// continues it (e.g. "```json\n[" to get grounding JSON).
pub fn build_prompt_with_answer_prefix(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[Message],
    args: TemplateArgs,
    media: &[MediaTokens],
    special: &SpecialTokens,
    answer_prefix: &str,
) -> Result<Prompt> {
    let text = template.render_with(messages, args, true)? + answer_prefix;
    let text = expand_video_text(&text, media)?;
    let ids = tokenizer.encode(&text)?;
    expand_pads(&ids, media, special)
}

/// Python's `f"{seconds:.1f}"`: the value correctly rounded to one decimal, ties to even (Rust's
/// formatting rounds the exact binary value the same way).
fn timestamp_text(seconds: f64) -> String {
    format!("<{seconds:.1} seconds>")
}

/// Replaces the k-th `<|video_pad|>` of `text` by one timestamped, delimited pad per temporal
/// patch of the k-th video of `media`.
fn expand_video_text(text: &str, media: &[MediaTokens]) -> Result<String> {
    let mut videos = media.iter().filter_map(|m| match m {
        MediaTokens::Video { timestamps, .. } => Some(timestamps),
        MediaTokens::Image(_) => None,
    });
    let placeholders = text.matches(VIDEO_PAD).count();
    let given = videos.clone().count();
    if placeholders != given {
        bail!(
            "the prompt has {placeholders} video placeholders but {given} videos were given \
             (videos are only placed in user and tool messages)"
        );
    }
    let mut out = String::with_capacity(text.len());
    let mut pieces = text.split(VIDEO_PAD);
    out.push_str(pieces.next().unwrap_or_default());
    for piece in pieces {
        let timestamps = videos.next().map(Vec::as_slice).unwrap_or_default();
        if timestamps.is_empty() {
            bail!("a video has no frames");
        }
        for &seconds in timestamps {
            out.push_str(&timestamp_text(seconds));
            out.push_str(VISION_START);
            out.push_str(VIDEO_PAD);
            out.push_str(VISION_END);
        }
        out.push_str(piece);
    }
    Ok(out)
}

/// Replaces each image pad and each video patch's pad in `ids` by as many copies as `media`
/// gives it, in order.
fn expand_pads(ids: &[u32], media: &[MediaTokens], special: &SpecialTokens) -> Result<Prompt> {
    let is_pad = |id: u32| id == special.image_pad || Some(id) == special.video_pad;
    let mut runs = Vec::new();
    for item in media {
        match item {
            MediaTokens::Image(count) => runs.push((special.image_pad, *count)),
            MediaTokens::Video {
                tokens_per_patch,
                timestamps,
            } => {
                let Some(video_pad) = special.video_pad else {
                    bail!(
                        "this model's vocabulary has no <|video_pad|> token: it cannot take videos"
                    );
                };
                runs.extend(timestamps.iter().map(|_| (video_pad, *tokens_per_patch)));
            }
        }
    }
    let pads = ids.iter().filter(|&&id| is_pad(id)).count();
    let images = media
        .iter()
        .filter(|m| matches!(m, MediaTokens::Image(_)))
        .count();
    let image_pads = ids.iter().filter(|&&id| id == special.image_pad).count();
    if image_pads != images {
        bail!(
            "the prompt has {image_pads} image placeholders but {images} images were given \
             (images are only placed in user and tool messages)"
        );
    }
    if let Some(image) = media
        .iter()
        .position(|m| matches!(m, MediaTokens::Image(0)))
    {
        bail!("image {image} has no image tokens");
    }
    if runs.iter().any(|&(_, count)| count == 0) {
        bail!("a video has no tokens");
    }
    let expanded_len = ids.len() - pads + runs.iter().map(|&(_, n)| n).sum::<usize>();
    let mut expanded = Vec::with_capacity(expanded_len);
    let mut vision_spans = Vec::with_capacity(runs.len());
    let mut runs = runs.into_iter();
    for &id in ids {
        if !is_pad(id) {
            expanded.push(id);
            continue;
        }
        match runs.next() {
            Some((pad, count)) if pad == id => {
                vision_spans.push(expanded.len()..expanded.len() + count);
                expanded.resize(expanded.len() + count, pad);
            }
            _ => bail!("the prompt's image and video placeholders are not in the order given"),
        }
    }
    Ok(Prompt {
        ids: expanded,
        vision_spans,
    })
}

#[cfg(test)]
mod tests {
    use super::super::message::{ImageRef, Part, Role, VideoRef};
    use super::super::test_support::{fixture_tokenizer, qwen3vl_template};
    use super::*;

    const PAD: &str = "<|image_pad|>";

    fn conversation() -> Vec<Message> {
        vec![
            Message::new(Role::System, "You look at pictures."),
            Message::new(
                Role::User,
                vec![
                    Part::Text("Compare ".into()),
                    Part::Image(ImageRef(0)),
                    Part::Text(" with\n".into()),
                    Part::Image(ImageRef(1)),
                    Part::Text("— 哪个更好？".into()),
                ],
            ),
        ]
    }

    #[test]
    fn token_expansion_equals_hf_string_replacement() {
        let (template, tokenizer) = (qwen3vl_template(), fixture_tokenizer());
        let counts = [24, 6];
        let prompt = build_prompt(
            &template,
            &tokenizer,
            &conversation(),
            &counts.map(MediaTokens::Image),
            &SpecialTokens::default(),
        )
        .unwrap();

        // transformers: each pad in turn becomes `count` placeholders, then placeholders → pads.
        let mut text = template.render(&conversation(), true).unwrap();
        for count in counts {
            text = text.replacen(PAD, &"<|placeholder|>".repeat(count), 1);
        }
        let text = text.replace("<|placeholder|>", PAD);
        assert_eq!(prompt.ids, tokenizer.encode(&text).unwrap());
    }

    #[test]
    fn vision_spans_cover_exactly_the_pads_of_each_image() {
        let (special, tokenizer) = (SpecialTokens::default(), fixture_tokenizer());
        let prompt = build_prompt(
            &qwen3vl_template(),
            &tokenizer,
            &conversation(),
            &[MediaTokens::Image(3), MediaTokens::Image(2)],
            &special,
        )
        .unwrap();
        let id = |token: &str| tokenizer.token_to_id(token).unwrap();
        assert_eq!(prompt.vision_spans.len(), 2);
        for span in &prompt.vision_spans {
            assert_eq!(prompt.ids[span.start - 1], id("<|vision_start|>"));
            assert!(prompt.ids[span.clone()]
                .iter()
                .all(|&id| id == special.image_pad));
            assert_eq!(prompt.ids[span.end], id("<|vision_end|>"));
        }
        assert_eq!(prompt.vision_spans[0].len(), 3);
        assert_eq!(prompt.vision_spans[1].len(), 2);
        let pads = prompt
            .ids
            .iter()
            .filter(|&&id| id == special.image_pad)
            .count();
        assert_eq!(pads, 5);
    }

    #[test]
    fn text_only_prompt_matches_known_ids() {
        let prompt = build_prompt(
            &qwen3vl_template(),
            &fixture_tokenizer(),
            &[Message::new(Role::User, "Hello")],
            &[],
            &SpecialTokens::default(),
        )
        .unwrap();
        // <|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n
        assert_eq!(
            prompt.ids,
            vec![151644, 872, 198, 9707, 151645, 198, 151644, 77091, 198]
        );
        assert!(prompt.vision_spans.is_empty());
    }

    #[test]
    fn image_count_mismatch_is_an_error() {
        let error = build_prompt(
            &qwen3vl_template(),
            &fixture_tokenizer(),
            &conversation(),
            &[MediaTokens::Image(4)],
            &SpecialTokens::default(),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("2 image placeholders but 1 images"),
            "{error}"
        );
    }

    #[test]
    fn zero_token_image_is_an_error() {
        let error = expand_pads(
            &[1, 151655, 2],
            &[MediaTokens::Image(0)],
            &SpecialTokens::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("image 0 has no image tokens"),
            "{error}"
        );
    }

    #[test]
    fn video_expansion_equals_hf_string_replacement() {
        let (template, tokenizer) = (qwen3vl_template(), fixture_tokenizer());
        let messages = vec![Message::new(
            Role::User,
            vec![
                Part::Image(ImageRef(0)),
                Part::Video(VideoRef(0)),
                Part::Text("What changes?".into()),
            ],
        )];
        let timestamps = vec![0.25, 1.25, 2.75];
        let media = [
            MediaTokens::Image(4),
            MediaTokens::Video {
                tokens_per_patch: 6,
                timestamps: timestamps.clone(),
            },
        ];
        let special = SpecialTokens::default();
        let prompt = build_prompt(&template, &tokenizer, &messages, &media, &special).unwrap();

        // transformers 5.24: the image pad becomes 4 pads, the video pad one delimited run of
        // 6 pads per temporal patch after its time.
        let mut text = template.render(&messages, true).unwrap();
        text = text.replacen(PAD, &"<|placeholder|>".repeat(4), 1);
        let frames: String = ["0.2", "1.2", "2.8"]
            .iter()
            .map(|t| {
                format!(
                    "<{t} seconds><|vision_start|>{}<|vision_end|>",
                    "<|video_pad|>".repeat(6)
                )
            })
            .collect();
        text = text.replacen("<|video_pad|>", &frames, 1);
        let text = text.replace("<|placeholder|>", PAD);
        assert_eq!(prompt.ids, tokenizer.encode(&text).unwrap());
        let spans: Vec<usize> = prompt.vision_spans.iter().map(|s| s.len()).collect();
        assert_eq!(spans, [4, 6, 6, 6]);
        assert_eq!(prompt.ids[prompt.vision_spans[1].start], 151656);
    }

    #[test]
    fn video_count_mismatch_is_an_error() {
        let messages = vec![Message::new(Role::User, vec![Part::Video(VideoRef(0))])];
        let error = build_prompt(
            &qwen3vl_template(),
            &fixture_tokenizer(),
            &messages,
            &[],
            &SpecialTokens::default(),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("1 video placeholders but 0 videos"),
            "{error}"
        );
    }
}
