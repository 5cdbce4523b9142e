//! The work `[overlay]` does, for bench/overlay to count its instructions
//! with callgrind: `draw` into FRAMES 1280x720 frames of one layout, all
//! captured in the same second (so the label is made once and every
//! other frame only blends it in), or `label` made COUNT times (once a
//! second in the daemon).
//!
//!   overlay-cost draw i420|nv12|yuyv|rgb24 FRAMES SIZE TEXT
//!   overlay-cost label COUNT SIZE TEXT

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use streamcam::config::{Corner, OverlayConfig};
use streamcam::overlay::Overlay;
use streamcam::source::{Canvas, PlaneMut};

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

fn draw(layout: &str, frames: usize, mut overlay: Overlay) {
    let (w, h) = (WIDTH, HEIGHT);
    let bytes = match layout {
        "i420" | "nv12" => w * h * 3 / 2,
        "yuyv" => w * h * 2,
        "rgb24" => w * h * 3,
        other => panic!("no layout {other}: i420, nv12, yuyv or rgb24"),
    };
    let mut memory = vec![128u8; bytes];
    let captured = Instant::now();
    for _ in 0..frames {
        let mut canvas = match layout {
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
                data: &mut memory,
                stride: w * 2,
            }),
            _ => Canvas::Rgb24(PlaneMut {
                data: &mut memory,
                stride: w * 3,
            }),
        };
        overlay.draw(&mut canvas, w, h, captured, &[]);
    }
    std::hint::black_box(&memory);
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
        _ => {
            eprintln!(
                "usage: overlay-cost draw i420|nv12|yuyv|rgb24 FRAMES SIZE TEXT\n       overlay-cost label COUNT SIZE TEXT"
            );
            std::process::exit(2);
        }
    }
}
