//! The pipeline's own work on pixels, for bench/pixels to count its
//! instructions with callgrind: `draw` the `[overlay]` into FRAMES
//! 1280x720 frames of one layout, all captured in the same second (so the
//! label is made once and every other frame only blends it in); make the
//! `label` COUNT times (once a second in the daemon); `scale` FRAMES
//! 1280x720 frames of one layout to WIDTHxHEIGHT I420 (the substream).
//!
//!   pixel-cost draw i420|nv12|yuyv|rgb24 FRAMES SIZE TEXT
//!   pixel-cost label COUNT SIZE TEXT
//!   pixel-cost scale i420|nv12|yuyv|rgb24 FRAMES WIDTH HEIGHT

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use streamcam::config::{Corner, OverlayConfig};
use streamcam::format::raw::{Canvas, PlaneMut, RawFrame};
use streamcam::overlay::Overlay;
use streamcam::source::scale::Scaler;

const WIDTH: usize = 1280;
const HEIGHT: usize = 720;

fn overlay(size: &str, text: &str) -> Overlay {
    Overlay::new(&OverlayConfig {
        text: text.into(),
        position: Corner::BottomRight,
        size: size.parse().expect("SIZE is a number of pixels"),
        timezone: None,
    })
}

fn count(n: &str) -> usize {
    n.parse().expect("a count")
}

/// A 1280x720 picture of `layout`: its memory.
fn picture(layout: &str) -> Vec<u8> {
    let (w, h) = (WIDTH, HEIGHT);
    let bytes = match layout {
        "i420" | "nv12" => w * h * 3 / 2,
        "yuyv" => w * h * 2,
        "rgb24" => w * h * 3,
        other => panic!("no layout {other}: i420, nv12, yuyv or rgb24"),
    };
    (0..bytes).map(|i| (i % 251) as u8).collect()
}

/// `memory` as a 1280x720 picture of `layout`.
fn canvas<'a>(layout: &str, memory: &'a mut [u8]) -> Canvas<'a> {
    let (w, h) = (WIDTH, HEIGHT);
    match layout {
        "i420" => {
            let (y, chroma) = memory.split_at_mut(w * h);
            let (u, v) = chroma.split_at_mut(w * h / 4);
            Canvas::I420 {
                y: PlaneMut { data: y, stride: w },
                u: PlaneMut {
                    data: u,
                    stride: w / 2,
                },
                v: PlaneMut {
                    data: v,
                    stride: w / 2,
                },
            }
        }
        "nv12" => {
            let (y, uv) = memory.split_at_mut(w * h);
            Canvas::Nv12 {
                y: PlaneMut { data: y, stride: w },
                uv: PlaneMut {
                    data: uv,
                    stride: w,
                },
            }
        }
        "yuyv" => Canvas::Yuyv(PlaneMut {
            data: memory,
            stride: w * 2,
        }),
        _ => Canvas::Rgb24(PlaneMut {
            data: memory,
            stride: w * 3,
        }),
    }
}

fn draw(layout: &str, frames: usize, mut overlay: Overlay) {
    let mut memory = picture(layout);
    let captured = Instant::now();
    for _ in 0..frames {
        let mut canvas = canvas(layout, &mut memory);
        overlay.draw(&mut canvas, WIDTH, HEIGHT, captured, &[]);
    }
    std::hint::black_box(&memory);
}

fn scale(layout: &str, frames: usize, width: u32, height: u32) {
    let mut memory = picture(layout);
    let mut scaler = Scaler::default();
    for _ in 0..frames {
        let frame = RawFrame {
            pixels: canvas(layout, &mut memory).into_pixels(),
            dmabuf: None,
            width: WIDTH as u32,
            height: HEIGHT as u32,
            timestamp: Instant::now(),
        };
        std::hint::black_box(scaler.scale(&frame, width, height).pixels);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match &args[1..] {
        [mode, layout, frames, size, text] if mode == "draw" => {
            draw(layout, count(frames), overlay(size, text));
        }
        [mode, labels, size, text] if mode == "label" => {
            let overlay = overlay(size, text);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            for n in 0..count(labels) {
                std::hint::black_box(overlay.label_at(now + n as i64));
            }
        }
        [mode, layout, frames, width, height] if mode == "scale" => {
            let size = |s: &str| s.parse().expect("WIDTH and HEIGHT are numbers of pixels");
            scale(layout, count(frames), size(width), size(height));
        }
        _ => {
            eprintln!(
                "usage: pixel-cost draw i420|nv12|yuyv|rgb24 FRAMES SIZE TEXT\n       pixel-cost label COUNT SIZE TEXT\n       pixel-cost scale i420|nv12|yuyv|rgb24 FRAMES WIDTH HEIGHT"
            );
            std::process::exit(2);
        }
    }
}
