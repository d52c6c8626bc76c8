//! `glimpse run --draw`: the boxes and points of a grounding answer are drawn over the image
//! at the pixels the 0–1000 coordinates map to (the PNG is read back and its edges checked
//! against the untouched image), and `--markdown --output` saves the answer. The tiny fixture
//! model cannot locate anything, so the answer is begun with `--answer-prefix`.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use glimpse::grounding::PALETTE;
use glimpse::preprocess::load_image;
use image::{Rgb, RgbImage};

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_dir(&format!("grounding-{name}"))
}

fn run(args: &[&str]) -> Output {
    let model = converted("tiny-untied", "f32");
    let out = glimpse_command()
        .args(["run", "-m", model.to_str().unwrap(), "--temperature", "0"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "glimpse run failed: {stderr}");
    out
}

fn read_png(path: &Path) -> RgbImage {
    image::open(path).expect("reading the drawn PNG").to_rgb8()
}

#[test]
fn draw_puts_box_edges_and_points_on_the_expected_pixels() {
    let dir = scratch("draw");
    let drawn = dir.join("out.png");
    // odd_333x517.png is 517 wide, 333 high, and resized to 512x320 for the model.
    let source = fixtures().join("images/odd_333x517.png");
    let answer = r#"```json
[{"bbox_2d": [100, 200, 500, 900], "label": "left"}, {"bbox_2d": [600, 50, 999, 400], "label": "right"}, {"point_2d": [800, 800], "label": "dot"}"#;
    let out = run(&[
        "--image",
        source.to_str().unwrap(),
        "-p",
        "Locate the shapes.",
        "--answer-prefix",
        answer,
        "--max-tokens",
        "2",
        "--draw",
        drawn.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 100/1000*517 = 51.7 -> 52, 200/1000*333 = 66.6 -> 67, 500/1000*517 = 258.5 -> 259,
    // 900/1000*333 = 299.7 -> 300; 600 -> 310.2 -> 310, 50 -> 16.65 -> 17, 999 -> 516.483 -> 516,
    // 400 -> 133.2 -> 133; the point: 800 -> 413.6 -> 414, 266.4 -> 266.
    assert!(stderr.contains("left: box [52, 67, 259, 300]"), "{stderr}");
    assert!(
        stderr.contains("right: box [310, 17, 516, 133]"),
        "{stderr}"
    );
    assert!(stderr.contains("dot: point [414, 266]"), "{stderr}");

    let original = load_image(&std::fs::read(&source).unwrap()).unwrap();
    let image = read_png(&drawn);
    assert_eq!(image.dimensions(), (517, 333));
    let colour = |i: usize| Rgb(PALETTE[i]);
    let check = |x: u32, y: u32, expected: Option<Rgb<u8>>| {
        let want = expected.unwrap_or(*original.get_pixel(x, y));
        assert_eq!(*image.get_pixel(x, y), want, "pixel ({x}, {y})");
    };
    // The first box: columns 52 and 258 are its outer edges, 51 and 259 lie outside.
    for y in [100, 200, 290] {
        check(52, y, Some(colour(0)));
        check(51, y, None);
        check(258, y, Some(colour(0)));
        check(259, y, None);
        check(150, y, None);
    }
    for x in [60, 150, 250] {
        check(x, 67, Some(colour(0)));
        check(x, 66, None);
        check(x, 299, Some(colour(0)));
        check(x, 300, None);
    }
    // The second box in the second colour, its right edge on the image's last column but one.
    check(310, 80, Some(colour(1)));
    check(309, 80, None);
    check(515, 80, Some(colour(1)));
    check(516, 80, None);
    check(400, 17, Some(colour(1)));
    check(400, 16, None);
    check(400, 132, Some(colour(1)));
    check(400, 133, None);
    // The point's marker is centred on its pixel.
    check(414, 266, Some(colour(2)));
    check(414 + 20, 266, None);
}

#[test]
fn markdown_output_saves_the_whole_answer() {
    let dir = scratch("markdown");
    let saved = dir.join("doc.md");
    let source = fixtures().join("images/noresize_256x320.png");
    let out = run(&[
        "--image",
        source.to_str().unwrap(),
        "--markdown",
        "--answer-prefix",
        "# Title\n\n| a | b |\n|---|---|\n",
        "--max-tokens",
        "3",
        "--output",
        saved.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let file = std::fs::read_to_string(&saved).unwrap();
    assert!(
        file.starts_with("# Title\n\n| a | b |\n|---|---|\n"),
        "{file:?}"
    );
    assert_eq!(file.trim_end(), stdout.trim_end());
}

#[test]
fn draw_without_an_image_is_refused() {
    let model = converted("tiny-untied", "f32");
    let out = glimpse_command()
        .args([
            "run",
            "-m",
            model.to_str().unwrap(),
            "-p",
            "hi",
            "--draw",
            "x.png",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--draw needs an --image"), "{stderr}");
}

#[test]
fn the_browser_tests_stubbed_answer_carries_the_servers_detections() {
    let path = fixtures().join("grounding/answer.json");
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let size = glimpse::grounding::ImageSize {
        width: fixture["image"]["width"].as_u64().unwrap() as u32,
        height: fixture["image"]["height"].as_u64().unwrap() as u32,
    };
    let text = fixture["text"].as_str().unwrap();
    let extension = glimpse::grounding::answer_extension(text, &[size]);
    assert_eq!(extension.as_ref(), Some(&fixture["glimpse"]));
}
