//! Video bytes or files → the frames the video processor uses (`SampledVideo`): animated GIF and
//! WebP are decoded in-process (every frame composited on the canvas, alpha dropped; the frames'
//! delays give the clip's rate), other containers (MP4, WebM, MKV, MOV, …) by an `ffmpeg`
//! process when one is on PATH (`ffprobe` reads the frame count and rate first). Only the
//! sampled frames are kept (`sample_frame_indices`), each resized as it arrives
//! (`FrameCollector`), so a long or high-resolution clip never sits in memory at full size.
//! Not for: resizing or patching the frames (see `video`).

use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, ensure, Context, Result};
use image::codecs::gif::GifDecoder;
use image::codecs::webp::WebPDecoder;
use image::{AnimationDecoder, Frames, ImageFormat, RgbImage};

use super::video::{sample_frame_indices, FrameCollector, SampledVideo, VideoConfig};

/// Decodes a video given as bytes (an upload, a data URI, a download). `max_pixels` caps one
/// frame's declared size.
pub fn decode_video(bytes: &[u8], config: &VideoConfig, max_pixels: u64) -> Result<SampledVideo> {
    ensure!(!bytes.is_empty(), "video data is empty");
    match image::guess_format(bytes) {
        Ok(ImageFormat::Gif | ImageFormat::WebP) => decode_animation(bytes, config, max_pixels),
        _ => {
            let file = TemporaryFile::with_contents(bytes)?;
            decode_with_ffmpeg(&file.path, config, max_pixels)
        }
    }
}

/// Decodes a video file.
pub fn decode_video_file(
    path: &Path,
    config: &VideoConfig,
    max_pixels: u64,
) -> Result<SampledVideo> {
    let mut head = [0u8; 64];
    let read = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("cannot read video '{}'", path.display()))?;
    match image::guess_format(&head[..read]) {
        Ok(ImageFormat::Gif | ImageFormat::WebP) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read video '{}'", path.display()))?;
            decode_animation(&bytes, config, max_pixels)
        }
        _ => decode_with_ffmpeg(path, config, max_pixels),
    }
}

/// The frames of an animated GIF or WebP. The file is decoded twice: once for the frame count
/// and delays, once keeping the sampled frames.
fn decode_animation(bytes: &[u8], config: &VideoConfig, max_pixels: u64) -> Result<SampledVideo> {
    let mut count = 0usize;
    let mut milliseconds = 0f64;
    for frame in animation_frames(bytes, max_pixels)? {
        let frame = frame.context("cannot decode an animation frame")?;
        let (numerator, denominator) = frame.delay().numer_denom_ms();
        milliseconds += f64::from(numerator) / f64::from(denominator.max(1));
        count += 1;
    }
    ensure!(count > 0, "the animation has no frames");
    // The average rate over the clip; an animation without delays has an unknown rate.
    let fps = (milliseconds > 0.0).then(|| count as f64 * 1000.0 / milliseconds);
    let indices = sample_frame_indices(count, fps, config);
    let mut wanted = indices.iter().copied().peekable();
    let mut frames = FrameCollector::new(config, indices.len());
    let mut kept = 0;
    for (i, frame) in animation_frames(bytes, max_pixels)?.enumerate() {
        if wanted.peek().is_none() {
            break;
        }
        let frame = frame.context("cannot decode an animation frame")?;
        while wanted.peek() == Some(&i) {
            frames.push(rgb_of(frame.buffer()))?;
            kept += 1;
            wanted.next();
        }
    }
    ensure!(
        kept == indices.len(),
        "the animation ended before frame {}",
        indices.last().copied().unwrap_or(0)
    );
    frames.finish(indices, fps.unwrap_or(super::video::UNKNOWN_FPS))
}

/// The composited frames of an animated GIF or WebP.
fn animation_frames(bytes: &[u8], max_pixels: u64) -> Result<Frames<'_>> {
    let mut limits = image::Limits::default();
    // Four bytes per canvas pixel, and a frame buffer besides.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    let frames = match image::guess_format(bytes) {
        Ok(ImageFormat::Gif) => {
            let mut decoder =
                GifDecoder::new(Cursor::new(bytes)).context("cannot read the Gif header")?;
            image::ImageDecoder::set_limits(&mut decoder, limits)?;
            check_canvas(image::ImageDecoder::dimensions(&decoder), max_pixels)?;
            decoder.into_frames()
        }
        Ok(ImageFormat::WebP) => {
            let mut decoder =
                WebPDecoder::new(Cursor::new(bytes)).context("cannot read the WebP header")?;
            image::ImageDecoder::set_limits(&mut decoder, limits)?;
            check_canvas(image::ImageDecoder::dimensions(&decoder), max_pixels)?;
            ensure!(
                decoder.has_animation(),
                "the WebP image is a still picture, not an animation"
            );
            decoder.into_frames()
        }
        _ => bail!("not an animated GIF or WebP"),
    };
    Ok(frames)
}

fn check_canvas((width, height): (u32, u32), max_pixels: u64) -> Result<()> {
    let pixels = u64::from(width) * u64::from(height);
    ensure!(pixels > 0, "the video has no pixels ({width}x{height})");
    ensure!(
        pixels <= max_pixels,
        "video frames are {width}x{height} = {pixels} pixels, over the limit of {max_pixels}"
    );
    Ok(())
}

/// RGBA → RGB with the samples kept as stored (alpha dropped, as PIL's `convert("RGB")`).
fn rgb_of(rgba: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, _] = rgba.get_pixel(x, y).0;
        image::Rgb([r, g, b])
    })
}

/// What `ffprobe` says of a file's first video stream.
struct StreamInfo {
    frames: usize,
    fps: Option<f64>,
}

/// Decodes a container with `ffmpeg`: frame count and rate from `ffprobe`, then every frame
/// as a PPM image on a pipe (ffmpeg applies the rotation the file declares), keeping the
/// sampled ones.
fn decode_with_ffmpeg(path: &Path, config: &VideoConfig, max_pixels: u64) -> Result<SampledVideo> {
    let info = probe(path)?;
    let indices = sample_frame_indices(info.frames, info.fps, config);
    let mut child = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "image2pipe",
        ])
        .args(["-vcodec", "ppm", "-pix_fmt", "rgb24", "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing_tool("ffmpeg", e))?;
    let stdout = child.stdout.take().context("ffmpeg has no output pipe")?;
    let mut reader = BufReader::new(stdout);
    let mut frames = FrameCollector::new(config, indices.len());
    let mut kept = 0;
    let mut wanted = indices.iter().copied().peekable();
    let mut index = 0usize;
    let mut decode_error = None;
    while wanted.peek().is_some() && decode_error.is_none() {
        let frame = match read_ppm(&mut reader, max_pixels) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                decode_error = Some(e);
                break;
            }
        };
        while wanted.peek() == Some(&index) {
            if let Err(e) = frames.push(frame.clone()) {
                decode_error = Some(e);
                break;
            }
            kept += 1;
            wanted.next();
        }
        index += 1;
    }
    drop(reader);
    // Frames past the last sampled one are not needed: stop ffmpeg rather than read them.
    let _ = child.kill();
    let output = child.wait_with_output().context("waiting for ffmpeg")?;
    if let Some(e) = decode_error {
        return Err(e);
    }
    if kept < indices.len() {
        // The header's frame count can exceed what decodes: keep what came (at least two; they
        // were resized for the planned count, so their size can differ a little from what
        // transformers picks for this many).
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            kept >= 2,
            "ffmpeg decoded {kept} frames of '{}'{}",
            path.display(),
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        );
    }
    frames.finish(
        indices[..kept].to_vec(),
        info.fps.unwrap_or(super::video::UNKNOWN_FPS),
    )
}

fn missing_tool(tool: &str, error: std::io::Error) -> anyhow::Error {
    if error.kind() == std::io::ErrorKind::NotFound {
        anyhow!(
            "decoding this video needs `{tool}` on PATH (part of FFmpeg: `apt install ffmpeg`, \
             `brew install ffmpeg`, `winget install ffmpeg`); animated GIF and WebP need nothing"
        )
    } else {
        anyhow!("cannot start `{tool}`: {error}")
    }
}

/// Frame count and average rate of the first video stream (`nb_frames` from the container,
/// or counted packets when it has none).
fn probe(path: &Path) -> Result<StreamInfo> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_packets"])
        .args([
            "-show_entries",
            "stream=nb_frames,nb_read_packets,avg_frame_rate,r_frame_rate",
        ])
        .args(["-of", "json"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_tool("ffprobe", e))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "cannot read '{}' as a video: {}",
        path.display(),
        stderr.trim()
    );
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("ffprobe printed no JSON")?;
    let stream = json["streams"]
        .get(0)
        .ok_or_else(|| anyhow!("'{}' has no video stream", path.display()))?;
    let number = |key: &str| stream[key].as_str().and_then(|s| s.parse::<usize>().ok());
    let frames = number("nb_frames")
        .filter(|&n| n > 0)
        .or_else(|| number("nb_read_packets"))
        .filter(|&n| n > 0)
        .ok_or_else(|| anyhow!("'{}' has no video frames", path.display()))?;
    let rate = |key: &str| {
        let text = stream[key].as_str()?;
        let (numerator, denominator) = text.split_once('/').unwrap_or((text, "1"));
        let value = numerator.parse::<f64>().ok()? / denominator.parse::<f64>().ok()?;
        (value.is_finite() && value > 0.0).then_some(value)
    };
    Ok(StreamInfo {
        frames,
        fps: rate("avg_frame_rate").or_else(|| rate("r_frame_rate")),
    })
}

/// Reads one binary PPM (`P6 W H 255\n` then RGB bytes); None at the end of the stream.
fn read_ppm(reader: &mut impl BufRead, max_pixels: u64) -> Result<Option<RgbImage>> {
    let mut fields = Vec::with_capacity(4);
    let mut field = String::new();
    while fields.len() < 4 {
        let mut byte = [0u8; 1];
        if reader.read(&mut byte)? == 0 {
            ensure!(
                fields.is_empty() && field.is_empty(),
                "ffmpeg's output ended inside a frame header"
            );
            return Ok(None);
        }
        match byte[0] {
            b if b.is_ascii_whitespace() => {
                if !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                }
            }
            b => field.push(char::from(b)),
        }
    }
    ensure!(
        fields[0] == "P6" && fields[3] == "255",
        "ffmpeg wrote an unexpected frame header"
    );
    let side = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| anyhow!("bad frame size '{s}'"))
    };
    let (width, height) = (side(&fields[1])?, side(&fields[2])?);
    check_canvas((width, height), max_pixels)?;
    let mut data = vec![0u8; width as usize * height as usize * 3];
    reader
        .read_exact(&mut data)
        .context("ffmpeg's output ended inside a frame")?;
    RgbImage::from_raw(width, height, data)
        .map(Some)
        .ok_or_else(|| anyhow!("frame buffer of the wrong size"))
}

/// A file in the temporary directory, removed when dropped (ffmpeg seeks, so it reads a file
/// rather than a pipe).
struct TemporaryFile {
    path: PathBuf,
}

impl TemporaryFile {
    fn with_contents(bytes: &[u8]) -> Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "glimpse-video-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, bytes)
            .with_context(|| format!("cannot write '{}'", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame, RgbaImage};

    /// An animated GIF of `count` flat frames (shade 20·i) of 40x24, `delay_ms` apart.
    fn animated_gif(count: u8, delay_ms: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        {
            let mut encoder = GifEncoder::new(&mut bytes);
            for i in 0..count {
                let shade = 20 * i;
                let image =
                    RgbaImage::from_pixel(40, 24, image::Rgba([shade, 255 - shade, 7, 255]));
                let delay = Delay::from_numer_denom_ms(delay_ms, 1);
                encoder
                    .encode_frame(Frame::from_parts(image, 0, 0, delay))
                    .unwrap();
            }
        }
        bytes
    }

    #[test]
    fn an_animated_gif_is_sampled_at_two_frames_a_second() {
        // 9 frames at 10 fps → 4 frames: 0, 3, 5, 8.
        let video = decode_video(&animated_gif(9, 100), &VideoConfig::default(), 1 << 20).unwrap();
        assert_eq!(video.indices, [0, 3, 5, 8]);
        assert!((video.fps - 10.0).abs() < 1e-9, "{}", video.fps);
        let shades: Vec<u8> = video
            .frames
            .iter()
            .map(|f| f.get_pixel(5, 5).0[0])
            .collect();
        assert_eq!(shades, [0, 60, 100, 160]);
        assert_eq!(video.original_hw, (24, 40));
    }

    #[test]
    fn oversized_or_broken_input_is_refused() {
        let error = decode_video(&animated_gif(3, 100), &VideoConfig::default(), 100).unwrap_err();
        assert!(error.to_string().contains("over the limit"), "{error:#}");
        let mut truncated = animated_gif(3, 100);
        truncated.truncate(truncated.len() / 2);
        assert!(decode_video(&truncated, &VideoConfig::default(), 1 << 20).is_err());
        assert!(decode_video(&[], &VideoConfig::default(), 1 << 20).is_err());
    }

    /// Runs where ffmpeg is installed (CI installs it); says so and passes elsewhere.
    #[test]
    fn a_container_is_decoded_by_ffmpeg_when_it_is_there() {
        let dir = std::env::temp_dir().join(format!("glimpse-ffmpeg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clip = dir.join("testsrc.mkv");
        // 3 s at 10 fps of 64x48 frames, lossless so the frames keep their test pattern.
        let made = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=64x48:rate=10:duration=3",
            ])
            .args(["-c:v", "ffv1"])
            .arg(&clip)
            .status();
        match made {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("skipped: ffmpeg is not on PATH, so the container path cannot run here");
                return;
            }
            other => assert!(
                other.unwrap().success(),
                "ffmpeg could not write the test clip"
            ),
        }
        let video = decode_video_file(&clip, &VideoConfig::default(), 1 << 20).unwrap();
        // 30 frames at 10 fps → int(30 / 10 * 2) = 6 frames, linspace(0, 29, 6).
        assert_eq!(video.indices, [0, 6, 12, 17, 23, 29]);
        assert_eq!(video.fps, 10.0);
        assert_eq!(video.original_hw, (48, 64));
        assert_ne!(video.frames[0], video.frames[5]);
        let bytes = std::fs::read(&clip).unwrap();
        let from_bytes = decode_video(&bytes, &VideoConfig::default(), 1 << 20).unwrap();
        assert_eq!(from_bytes.frames, video.frames);
        let error =
            decode_video(b"not a video at all", &VideoConfig::default(), 1 << 20).unwrap_err();
        assert!(error.to_string().contains("cannot read"), "{error:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ppm_frames_are_read_one_after_another() {
        let mut stream = b"P6\n2 1\n255\n".to_vec();
        stream.extend([1, 2, 3, 4, 5, 6]);
        stream.extend(b"P6 1 1 255\n");
        stream.extend([7, 8, 9]);
        let mut reader = Cursor::new(stream);
        let first = read_ppm(&mut reader, 100).unwrap().unwrap();
        assert_eq!(
            (first.dimensions(), first.get_pixel(1, 0).0),
            ((2, 1), [4, 5, 6])
        );
        let second = read_ppm(&mut reader, 100).unwrap().unwrap();
        assert_eq!(second.get_pixel(0, 0).0, [7, 8, 9]);
        assert!(read_ppm(&mut reader, 100).unwrap().is_none());
        let mut cut = Cursor::new(b"P6 4 4 255\n\x01\x02".to_vec());
        assert!(read_ppm(&mut cut, 100).is_err());
    }
}
