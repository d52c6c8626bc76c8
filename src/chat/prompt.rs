//! Prompt building: chat template → text → token ids, then each image's single `<|image_pad|>`
//! is expanded into as many pads as the image has merged patches (`t*h*w/4`). transformers does
//! the expansion on the text before tokenizing; doing it on the ids gives the same result because
//! the pad is a special token that the tokenizer always matches on its own.

use std::ops::Range;

use anyhow::{bail, Result};

use super::message::Message;
use super::special_tokens::SpecialTokens;
use super::template::{ChatTemplate, TemplateArgs};
use super::tokenizer::Tokenizer;

/// Token ids ready for prefill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub ids: Vec<u32>,
    /// For each image, in prompt order, the positions of its pad tokens in `ids`.
    pub image_spans: Vec<Range<usize>>,
}

/// Renders `messages` with the generation prompt, tokenizes, and expands the i-th image pad into
/// `image_token_counts[i]` pads. The images are taken in prompt order
/// (see `images_in_prompt_order`); their number must match the pads the template emitted.
pub fn build_prompt(
    template: &ChatTemplate,
    tokenizer: &Tokenizer,
    messages: &[Message],
    image_token_counts: &[usize],
    special: &SpecialTokens,
) -> Result<Prompt> {
    build_prompt_with_answer_prefix(
        template,
        tokenizer,
        messages,
        TemplateArgs::default(),
        image_token_counts,
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
    image_token_counts: &[usize],
    special: &SpecialTokens,
    answer_prefix: &str,
) -> Result<Prompt> {
    let text = template.render_with(messages, args, true)? + answer_prefix;
    let ids = tokenizer.encode(&text)?;
    expand_image_pads(&ids, image_token_counts, special.image_pad)
}

/// Replaces the i-th `image_pad` id in `ids` by `image_token_counts[i]` copies of it.
fn expand_image_pads(ids: &[u32], image_token_counts: &[usize], image_pad: u32) -> Result<Prompt> {
    let pads = ids.iter().filter(|&&id| id == image_pad).count();
    if pads != image_token_counts.len() {
        bail!(
            "the prompt has {pads} image placeholders but {} images were given \
             (images are only placed in user and tool messages)",
            image_token_counts.len()
        );
    }
    if let Some(image) = image_token_counts.iter().position(|&count| count == 0) {
        bail!("image {image} has no image tokens");
    }
    let expanded_len = ids.len() - pads + image_token_counts.iter().sum::<usize>();
    let mut expanded = Vec::with_capacity(expanded_len);
    let mut image_spans = Vec::with_capacity(pads);
    let mut counts = image_token_counts.iter();
    for &id in ids {
        if id != image_pad {
            expanded.push(id);
        } else if let Some(&count) = counts.next() {
            image_spans.push(expanded.len()..expanded.len() + count);
            expanded.resize(expanded.len() + count, image_pad);
        }
    }
    Ok(Prompt {
        ids: expanded,
        image_spans,
    })
}

#[cfg(test)]
mod tests {
    use super::super::message::{ImageRef, Part, Role};
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
            &counts,
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
    fn image_spans_cover_exactly_the_pads_of_each_image() {
        let (special, tokenizer) = (SpecialTokens::default(), fixture_tokenizer());
        let prompt = build_prompt(
            &qwen3vl_template(),
            &tokenizer,
            &conversation(),
            &[3, 2],
            &special,
        )
        .unwrap();
        let id = |token: &str| tokenizer.token_to_id(token).unwrap();
        assert_eq!(prompt.image_spans.len(), 2);
        for span in &prompt.image_spans {
            assert_eq!(prompt.ids[span.start - 1], id("<|vision_start|>"));
            assert!(prompt.ids[span.clone()]
                .iter()
                .all(|&id| id == special.image_pad));
            assert_eq!(prompt.ids[span.end], id("<|vision_end|>"));
        }
        assert_eq!(prompt.image_spans[0].len(), 3);
        assert_eq!(prompt.image_spans[1].len(), 2);
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
        assert!(prompt.image_spans.is_empty());
    }

    #[test]
    fn image_count_mismatch_is_an_error() {
        let error = build_prompt(
            &qwen3vl_template(),
            &fixture_tokenizer(),
            &conversation(),
            &[4],
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
        let error = expand_image_pads(&[1, 151655, 2], &[0], 151655).unwrap_err();
        assert!(
            error.to_string().contains("image 0 has no image tokens"),
            "{error}"
        );
    }
}
