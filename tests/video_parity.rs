//! Videos against transformers (tests/fixtures/video, scripts/make_video_fixtures.py): a list of
//! frames and an animated GIF of another size, alone and after an image, on the tiny-tied
//! model at f32. glimpse must sample the same frames, write the same timestamps into the
//! prompt (same ids), produce `pixel_values_videos` and `video_grid_thw` within 1e-4, final
//! log-probs within 1e-3 and the same greedy answer.
use crate::common;
use crate::server_support;

use std::path::Path;

use common::*;
use glimpse::chat::{ImageRef, Message, Part, VideoRef};
use glimpse::engine::sampler::log_softmax;
use glimpse::engine::{ModelBundle, Session, Timings};
use glimpse::preprocess::{
    decode_video_file, load_image, preprocess, preprocess_video, SampledVideo, VideoConfig,
    VideoPixels, DEFAULT_MAX_DECODED_PIXELS,
};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct VideoCase {
    name: String,
    messages: serde_json::Value,
    input_ids: Vec<u32>,
    image_grid_thw: Vec<[usize; 3]>,
    video_grid_thw: Vec<[usize; 3]>,
    video_frames: Vec<Vec<usize>>,
    video_fps: Vec<f64>,
    greedy_tokens: Vec<u32>,
}

/// A fixture video: a directory of frames (used as given, at the part's `fps`) or a file.
fn video(part: &serde_json::Value, config: &VideoConfig) -> SampledVideo {
    let path = fixtures().join(part["video"].as_str().unwrap());
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let frames = files
            .iter()
            .map(|f| load_image(&std::fs::read(f).unwrap()).unwrap())
            .collect();
        SampledVideo::from_frames(frames, part["fps"].as_f64().unwrap())
    } else {
        decode_video_file(&path, config, DEFAULT_MAX_DECODED_PIXELS).unwrap()
    }
}

/// The case's messages, images and (sampled) videos.
fn inputs(
    case: &VideoCase,
    bundle: &ModelBundle,
) -> (
    Vec<Message>,
    Vec<glimpse::preprocess::PixelValues>,
    Vec<SampledVideo>,
) {
    let (mut images, mut videos) = (Vec::new(), Vec::new());
    let messages = hf_messages(&case.messages, |p| match p["type"].as_str().unwrap() {
        "image" => {
            let path = fixtures().join(p["image"].as_str().unwrap());
            let image = load_image(&std::fs::read(path).unwrap()).unwrap();
            images.push(preprocess(&image, &bundle.preprocess).unwrap());
            Part::Image(ImageRef(images.len() - 1))
        }
        "video" => {
            videos.push(video(p, &bundle.video_preprocess));
            Part::Video(VideoRef(videos.len() - 1))
        }
        other => panic!("unknown part type {other}"),
    });
    (messages, images, videos)
}

#[test]
fn videos_match_transformers() {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let dir = fixtures().join("video");
    let cases: Vec<VideoCase> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let expected = read_f32_tensors(&dir.join("expected.safetensors"));
    let bundle = ModelBundle::load(&converted("tiny-tied", "f32"), None).unwrap();
    assert_eq!(bundle.video_preprocess, VideoConfig::default());
    for case in &cases {
        let name = &case.name;
        let (messages, images, sampled) = inputs(case, &bundle);
        let frames: Vec<_> = sampled.iter().map(|v| v.indices.clone()).collect();
        assert_eq!(frames, case.video_frames, "{name}: sampled frames");
        for (video, fps) in sampled.iter().zip(&case.video_fps) {
            assert!(
                (video.fps - fps).abs() < 1e-9,
                "{name}: fps {} vs {fps}",
                video.fps
            );
        }
        let videos: Vec<VideoPixels> = sampled
            .iter()
            .map(|v| preprocess_video(v, &bundle.video_preprocess).unwrap())
            .collect();
        let grids: Vec<[usize; 3]> = videos.iter().map(VideoPixels::grid_thw).collect();
        assert_eq!(grids, case.video_grid_thw, "{name}: video_grid_thw");
        let image_grids: Vec<[usize; 3]> = images.iter().map(|p| p.grid_thw).collect();
        assert_eq!(image_grids, case.image_grid_thw, "{name}: image_grid_thw");
        let pixels: Vec<f32> = videos
            .iter()
            .flat_map(|v| v.patches.iter().flat_map(|p| p.data.iter().copied()))
            .collect();
        let reference = &expected[&format!("{name}.pixel_values_videos")].1;
        let diff = max_abs_diff(&pixels, reference);
        assert!(diff <= 1e-4, "{name}: pixel_values_videos differ by {diff}");

        let (prompt, encoder_inputs) = bundle
            .prompt_with_answer_prefix(&messages, &images, &videos, "")
            .unwrap();
        assert_eq!(prompt.ids, case.input_ids, "{name}: prompt ids");

        let mut session = Session::new(&bundle);
        let logits = session
            .prefill(&prompt, &encoder_inputs, &mut Timings::default())
            .unwrap();
        let reference = &expected[&format!("{name}.final_logprobs")].1;
        let diff = max_abs_diff(&log_softmax(&logits), reference);
        assert!(diff <= 1e-3, "{name}: final log-softmax differs by {diff}");

        let tokens = greedy_answer(&bundle, &prompt, &encoder_inputs, case.greedy_tokens.len());
        assert_eq!(tokens, case.greedy_tokens, "{name}: greedy tokens");
    }
}

/// `glimpse run --video CLIP -p QUESTION -m MODEL` with `env` set.
fn run_video(model: &Path, clip: &Path, env: &[(&str, &str)]) -> std::process::Output {
    glimpse_command()
        .envs(env.iter().copied())
        .args(["run", "--max-tokens", "3", "-p", "What happens?", "--video"])
        .arg(clip)
        .arg("-m")
        .arg(model)
        .output()
        .unwrap()
}

/// `glimpse run --video` takes a GIF and a directory of frames, and refuses a clip of one
/// frame, a container without ffmpeg and a missing file with a clear message.
#[test]
fn run_answers_about_a_video() {
    let model = converted("tiny-tied", "f32");
    let dir = fixtures().join("video");
    for clip in [dir.join("clip_80x120.gif"), dir.join("frames_64x96")] {
        let out = run_video(&model, &clip, &[]);
        assert!(
            out.status.success(),
            "{}: {}",
            clip.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let single = scratch_dir("one-frame-video");
    std::fs::copy(
        dir.join("frames_64x96/frame_00.png"),
        single.join("frame_00.png"),
    )
    .unwrap();
    // A container goes to ffmpeg; without it on PATH the error says what to install.
    let container = scratch_dir("container-video").join("clip.mp4");
    std::fs::write(&container, b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom").unwrap();
    let refusals = [
        (single.as_path(), &[][..], "at least 2 frames"),
        (
            container.as_path(),
            &[("PATH", "/nonexistent")][..],
            "needs `ffprobe` on PATH",
        ),
        (
            Path::new("/nonexistent/clip.mp4"),
            &[][..],
            "cannot read video",
        ),
    ];
    for (clip, env, message) in refusals {
        let out = run_video(&model, clip, env);
        assert!(!out.status.success(), "{}", clip.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{}: {stderr}", clip.display());
    }
}

/// The official `openai` client sends the fixture videos to `glimpse serve` (a GIF as a
/// `video_url` data URI, the frames as a `video` list) and gets transformers' answers.
#[test]
fn official_openai_client_gets_the_video_answers() {
    use server_support::*;
    let server = TestServer::start_model(&converted("tiny-tied", "f32"), &[], &[]);
    let dir = fixtures().join("video");
    let cases: Vec<VideoCase> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    let tokenizer =
        glimpse::chat::Tokenizer::from_json_bytes(&std::fs::read(tokenizer_json()).unwrap())
            .unwrap();
    let client_cases: Vec<_> = cases
        .iter()
        .filter(|case| case.name.starts_with("video_"))
        .map(|case| {
            let content = &case.messages[0]["content"];
            let (video, question) = (&content[0], &content[1]["text"]);
            let end = case
                .greedy_tokens
                .last()
                .is_some_and(|t| [151645, 151643].contains(t));
            json!({
                "name": case.name,
                "video": fixtures().join(video["video"].as_str().unwrap()),
                "fps": video["fps"],
                "question": question,
                "max_tokens": case.greedy_tokens.len() - usize::from(end),
                "expected_text": tokenizer.decode(&case.greedy_tokens, true).unwrap(),
                "prompt_tokens": case.input_ids.len(),
            })
        })
        .collect();
    assert_eq!(client_cases.len(), 2);
    let model = server.get("/v1/models").json()["data"][0]["id"].clone();
    let output = std::process::Command::new(test_venv_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_video_client.py"))
        .env(
            "GLIMPSE_CLIENT_TEST",
            json!({"base_url": server.base, "model": model, "cases": client_cases}).to_string(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("client: ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
