//! One chat completion from a validated request: the images and videos fetched, decoded and
//! resized;
//! the prompt built and checked against the context (`max_tokens` capped to what is left);
//! the job queued (429 when the queue is full); then either a server-sent-event stream or
//! the collected answer, with the objects the model located (`glimpse.detections`).
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use super::answer_stream::{collect, AnswerStream};
use super::errors::ApiError;
use super::image_budget::PixelBudget;
use super::image_fetch::{loggable_url, FetchError, FETCH_FAILED};
use super::image_source::ImageSource;
use super::messages::{ImageInput, VideoInput, VideoSource};
use super::metrics::GenerationTracker;
use super::reasoning::split_reasoning;
use super::reply::Reply;
use super::request::ChatRequest;
use super::request_log::GenerationSlot;
use super::response::{
    completion_json, timings_json, Completion, CompletionIds, ServerTimings, Usage,
};
use super::sse::OpenAiChunks;
use super::state::{AppState, LoadedModel};
use super::tool_calls::split_answer;
use crate::chat::{
    media_in_prompt_order, ImageRef, Media, Message, Prompt, TemplateArgs, VideoRef,
};
use crate::engine::constraint::{Grammar, TokenConstraint};
use crate::engine::scheduler::{Job, JobEvent, SubmitError};
use crate::engine::{GenerationParams, Timings};
use crate::grounding::{answer_extension, ImageSize};
use crate::preprocess::{
    decode_video, load_image_with_limit, preprocess, preprocess_video, FrameCollector, PixelValues,
    VideoConfig, VideoPixels,
};

/// Runs `request` on `model` and answers as OpenAI's chat completions do; `received` is
/// when the request arrived (for time to first token).
pub fn chat_completion(
    state: &AppState,
    model: &LoadedModel,
    request: ChatRequest,
    received: Instant,
) -> Result<Reply, ApiError> {
    let (stream, include_usage) = (request.stream, request.include_usage);
    let Started {
        events,
        answer,
        summary,
    } = start_generation(state, model, request, received)?;
    let reply = if stream {
        let format = OpenAiChunks::new(&answer, include_usage);
        Ok(Reply::event_stream(Box::new(AnswerStream::new(
            events, answer, format,
        ))))
    } else {
        collect_completion(events, answer)
    };
    reply.map(|reply| reply.with_generation(summary))
}

/// A generation queued: its events, what its answer needs, and the log's slot for it.
pub struct Started {
    pub events: Receiver<JobEvent>,
    pub answer: Answer,
    pub summary: GenerationSlot,
}

/// Prepares the images and the prompt of `request` and queues its generation (any API).
pub fn start_generation(
    state: &AppState,
    model: &LoadedModel,
    request: ChatRequest,
    received: Instant,
) -> Result<Started, ApiError> {
    let ChatRequest {
        conversation,
        stream: _,
        include_usage: _,
        return_progress,
        ignore_eos,
        max_tokens,
        sampling,
        stop,
        logprobs,
        image_budget,
        grammar,
        logit_bias,
        tools,
        template_kwargs,
    } = request;
    let grammar = match (grammar, tools.required_call()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_field",
                "'response_format' and a required 'tool_choice' cannot be combined",
            ))
        }
        (grammar, call) => grammar.or(call),
    };
    let constraint = structured_output(model, grammar.as_ref(), ignore_eos)?;
    check_logit_bias(model, &logit_bias)?;
    let preprocess_start = Instant::now();
    let pixels = conversation
        .images
        .into_iter()
        .map(|image| load_image(state, model, image, image_budget))
        .collect::<Result<Vec<_>, _>>()?;
    let videos = conversation
        .videos
        .into_iter()
        .map(|video| load_video(state, model, video))
        .collect::<Result<Vec<_>, _>>()?;
    let preprocess_ms = preprocess_start.elapsed().as_secs_f64() * 1e3;

    let prompt = match &conversation.text {
        Some(text) => text_prompt(model, text)?,
        None => {
            let offered: &[serde_json::Value] = if tools.offered() {
                &tools.definitions
            } else {
                &[]
            };
            let args = TemplateArgs {
                tools: offered,
                kwargs: template_kwargs.as_ref(),
            };
            chat_prompt(model, &conversation.messages, &pixels, &videos, args)?
        }
    };
    let context = state.config.context_length;
    let prompt_tokens = prompt.ids.len();
    if prompt_tokens >= context {
        return Err(ApiError::invalid(
            "prompt_too_long",
            format!(
                "the prompt is {prompt_tokens} tokens, but the context holds {context} tokens \
                 (--ctx), answer included"
            ),
        ));
    }
    let image_sizes: Vec<ImageSize> = pixels
        .iter()
        .map(|p| ImageSize::from_hw(p.original_hw))
        .collect();
    let video_patches = videos.iter().flat_map(|v| &v.patches);
    let image_tokens = pixels
        .iter()
        .chain(video_patches)
        .map(|p| p.n_merged_tokens())
        .sum();
    let encoder_inputs = in_prompt_order(&conversation.messages, pixels, videos)?;
    let (sender, events) = mpsc::channel();
    let job = Job {
        prompt,
        images: encoder_inputs,
        params: GenerationParams {
            max_tokens: max_tokens
                .unwrap_or(usize::MAX)
                .min(context - prompt_tokens),
            sampling,
            ignore_eos,
        },
        stop,
        logprobs,
        events: sender,
        logit_bias,
        constraint,
    };
    let tracker = state.metrics.track_generation(received);
    model
        .scheduler
        .submit(job)
        .map_err(|SubmitError::QueueFull| ApiError::queue_full(state.config.max_queue))?;
    let summary = tracker.summary();
    let answer = Answer {
        ids: CompletionIds::new(&state.config.model_id),
        tracker,
        wants_logprobs: logprobs.is_some(),
        preprocess_ms,
        image_sizes,
        image_tokens,
        prompt_tokens,
        return_progress,
        tools: tools.offered(),
        reasoning: conversation.text.is_none() && model.bundle.thinks(),
    };
    Ok(Started {
        events,
        answer,
        summary,
    })
}

/// The chat template's prompt for `messages` with their images and videos.
fn chat_prompt(
    model: &LoadedModel,
    messages: &[Message],
    pixels: &[PixelValues],
    videos: &[VideoPixels],
    args: TemplateArgs,
) -> Result<Prompt, ApiError> {
    let prompt = model.bundle.prompt_with(messages, pixels, videos, args, "");
    let (prompt, _) = prompt.map_err(|e| {
        ApiError::invalid("invalid_prompt", format!("cannot build the prompt: {e:#}"))
    })?;
    Ok(prompt)
}

/// What the vision encoder takes, moved into prompt order: each image, and each temporal
/// patch of each video.
fn in_prompt_order(
    messages: &[Message],
    images: Vec<PixelValues>,
    videos: Vec<VideoPixels>,
) -> Result<Vec<PixelValues>, ApiError> {
    let order = media_in_prompt_order(messages)
        .map_err(|e| ApiError::invalid("invalid_prompt", format!("{e:#}")))?;
    let mut images: Vec<Option<PixelValues>> = images.into_iter().map(Some).collect();
    let mut videos: Vec<Option<VideoPixels>> = videos.into_iter().map(Some).collect();
    let mut ordered = Vec::new();
    let missing = || ApiError::internal("an image or video is referenced twice or not at all");
    for media in order {
        match media {
            Media::Image(ImageRef(i)) => ordered.push(
                images
                    .get_mut(i)
                    .and_then(Option::take)
                    .ok_or_else(missing)?,
            ),
            Media::Video(VideoRef(i)) => ordered.extend(
                videos
                    .get_mut(i)
                    .and_then(Option::take)
                    .ok_or_else(missing)?
                    .patches,
            ),
        }
    }
    Ok(ordered)
}

/// A text prompt as it is (no chat template), for legacy completions; vision tokens are
/// refused, since no image comes with them.
fn text_prompt(model: &LoadedModel, text: &str) -> Result<Prompt, ApiError> {
    let ids = model
        .bundle
        .tokenizer
        .encode(text)
        .map_err(|e| ApiError::invalid("invalid_prompt", format!("{e:#}")))?;
    if ids.is_empty() {
        return Err(ApiError::invalid("invalid_field", "'prompt' is empty"));
    }
    let special = &model.bundle.special;
    let is_pad = |id: &u32| *id == special.image_pad || Some(*id) == special.video_pad;
    if ids.iter().any(is_pad) {
        return Err(ApiError::invalid(
            "invalid_prompt",
            "a text prompt cannot hold image or video tokens (<|image_pad|>, <|video_pad|>); \
             send images and videos to /v1/chat/completions",
        ));
    }
    Ok(Prompt {
        ids,
        vision_spans: Vec::new(),
    })
}

/// The compiled grammar of a structured answer; a schema llguidance cannot compile is a 400.
fn structured_output(
    model: &LoadedModel,
    grammar: Option<&Grammar>,
    ignore_eos: bool,
) -> Result<Option<TokenConstraint>, ApiError> {
    let Some(grammar) = grammar else {
        return Ok(None);
    };
    if ignore_eos {
        return Err(ApiError::invalid(
            "invalid_field",
            "'ignore_eos' cannot be combined with a structured answer, which ends with its grammar",
        ));
    }
    let grammars = model
        .bundle
        .grammars()
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    grammars.constraint(grammar).map(Some).map_err(|e| {
        ApiError::invalid(
            "invalid_schema",
            format!("the JSON schema cannot be used: {e:#}"),
        )
    })
}

/// Token ids of `logit_bias` must exist.
fn check_logit_bias(model: &LoadedModel, bias: &[(u32, f32)]) -> Result<(), ApiError> {
    let vocab = model.bundle.model.text.config().vocab_size;
    match bias.iter().find(|(id, _)| *id as usize >= vocab) {
        Some((id, _)) => Err(ApiError::invalid(
            "invalid_field",
            format!("'logit_bias': token {id} is beyond the vocabulary ({vocab} tokens)"),
        )),
        None => Ok(()),
    }
}

/// What the answer's objects need besides the engine's events.
pub struct Answer {
    pub ids: CompletionIds,
    pub tracker: GenerationTracker,
    pub wants_logprobs: bool,
    pub preprocess_ms: f64,
    /// Sizes of the request's images as decoded (for `glimpse.detections`).
    pub image_sizes: Vec<ImageSize>,
    /// Prompt tokens the images take.
    pub image_tokens: usize,
    /// The prompt's length in tokens (cache hits included).
    pub prompt_tokens: usize,
    /// Tools were offered: the answer's `<tool_call>` blocks become `tool_calls`.
    pub tools: bool,
    /// A thinking model: the answer's text up to `</think>` is `reasoning_content`.
    pub reasoning: bool,
    /// Stream `prompt_progress` chunks while the prompt is read.
    pub return_progress: bool,
}

impl Answer {
    pub fn usage(&self, timings: &Timings, completion_tokens: usize) -> Usage {
        Usage {
            prompt_tokens: timings.prompt_tokens,
            completion_tokens,
            cached_tokens: timings.cached_prompt_tokens,
            image_tokens: self.image_tokens,
        }
    }

    pub fn server_timings(&self) -> ServerTimings {
        ServerTimings {
            preprocess_ms: self.preprocess_ms,
            ttft_ms: self.tracker.time_to_first_token().as_secs_f64() * 1e3,
        }
    }
}

/// The image's file bytes → pixel values at the resolution its request asks for, refusing
/// images over the pixel limit.
fn load_image(
    state: &AppState,
    model: &LoadedModel,
    image: ImageInput,
    request_budget: PixelBudget,
) -> Result<PixelValues, ApiError> {
    let ImageInput {
        source,
        field,
        budget,
    } = image;
    let config = budget.within(request_budget).resolve(
        &model.image_config,
        &model.bundle.preprocess,
        &format!("'{field}'"),
    )?;
    let (bytes, url) = match source {
        ImageSource::Inline(bytes) => (bytes, None),
        ImageSource::Remote(url) => (fetch_image(state, &field, &url)?, Some(url)),
    };
    let decoded =
        load_image_with_limit(&bytes, state.config.limits.max_image_pixels).map_err(|e| {
            let message = format!("'{field}': {e:#}");
            match url {
                // What a URL's bytes turned out to be is no client's business either.
                Some(url) => url_failed(&field, format!("{}: {message}", loggable_url(&url))),
                None => ApiError::invalid("invalid_image", message),
            }
        })?;
    preprocess(&decoded, &config)
        .map_err(|e| ApiError::invalid("invalid_image", format!("'{field}': {e:#}")))
}

/// Fetches and decodes a video (a clip, or its frames one by one) and runs the video
/// processor; the request's `fps` replaces the model's sampling rate.
fn load_video(
    state: &AppState,
    model: &LoadedModel,
    video: VideoInput,
) -> Result<VideoPixels, ApiError> {
    let VideoInput { source, field, fps } = video;
    let defaults = &model.bundle.video_preprocess;
    let config = VideoConfig {
        fps: fps.unwrap_or(defaults.fps),
        ..defaults.clone()
    };
    let max_pixels = state.config.limits.max_image_pixels;
    let invalid =
        |e: anyhow::Error| ApiError::invalid("invalid_video", format!("'{field}': {e:#}"));
    let bytes_of = |source: ImageSource, field: &str| match source {
        ImageSource::Inline(bytes) => Ok(bytes),
        ImageSource::Remote(url) => fetch_image(state, field, &url),
    };
    let sampled = match source {
        VideoSource::Clip(clip) => {
            decode_video(&bytes_of(clip, &field)?, &config, max_pixels).map_err(invalid)?
        }
        VideoSource::Frames(frames) => {
            if frames.len() > config.max_frames {
                return Err(ApiError::invalid(
                    "invalid_video",
                    format!(
                        "'{field}' has {} frames, more than the {} a video may have",
                        frames.len(),
                        config.max_frames
                    ),
                ));
            }
            let count = frames.len();
            let mut collected = FrameCollector::new(&config, count);
            for (i, frame) in frames.into_iter().enumerate() {
                let path = format!("{field}[{i}]");
                let bytes = bytes_of(frame, &path)?;
                let invalid_frame = |e: anyhow::Error| {
                    ApiError::invalid("invalid_video", format!("'{path}': {e:#}"))
                };
                let decoded = load_image_with_limit(&bytes, max_pixels).map_err(invalid_frame)?;
                // Resized as it arrives: a long list never sits in memory at full size.
                collected.push(decoded).map_err(invalid_frame)?;
            }
            collected
                .finish((0..count).collect(), config.fps)
                .map_err(invalid)?
        }
    };
    preprocess_video(&sampled, &config).map_err(invalid)
}

/// The bytes of an image URL; every failure gets the same neutral message.
fn fetch_image(state: &AppState, field: &str, url: &str) -> Result<Vec<u8>, ApiError> {
    state.fetcher.fetch(url).map_err(|error| match error {
        FetchError::Disabled => ApiError::invalid(
            "image_urls_disabled",
            format!("'{field}': image URLs are disabled on this server (--no-image-urls); send the image as base64"),
        ),
        FetchError::Failed { detail } => url_failed(field, detail),
    })
}

fn url_failed(field: &str, detail: String) -> ApiError {
    ApiError::invalid("image_fetch_failed", format!("'{field}': {FETCH_FAILED}"))
        .with_log_detail(detail)
}

/// The `chat.completion` object of the whole answer.
fn collect_completion(events: Receiver<JobEvent>, mut answer: Answer) -> Result<Reply, ApiError> {
    let whole = collect(events, &mut answer)?;
    let ending = &whole.ending;
    let (reasoning, answer_text) = if answer.reasoning {
        let (reasoning, rest) = split_reasoning(&whole.text);
        (Some(reasoning), rest)
    } else {
        (None, whole.text.clone())
    };
    let (text, tool_calls) = if answer.tools {
        split_answer(&answer_text)
    } else {
        (answer_text, Vec::new())
    };
    let completion = Completion {
        text: &text,
        reasoning,
        tool_calls,
        finish_reason: ending.finish_reason,
        logprobs: answer.wants_logprobs.then_some(&whole.logprobs[..]),
        usage: answer.usage(&ending.timings, ending.completion_tokens),
        timings: timings_json(&ending.timings, &answer.server_timings()),
        glimpse: answer_extension(&whole.text, &answer.image_sizes),
    };
    Ok(Reply::json(200, &completion_json(&answer.ids, &completion)))
}
