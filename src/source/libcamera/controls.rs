//! The controls a libcamera camera starts with: the frame rate and the
//! `[camera]` settings, each checked against what this camera offers.

use libcamera::control::{ControlEntry, ControlInfoMap, ControlList};
use libcamera::control_value::ControlValue;
use libcamera::controls;
use libcamera::utils::UniquePtr;

use crate::config::{AutofocusMode, AwbMode, CameraConfig, DenoiseMode, ExposureMode};

/// Every mode of a setting: its name in the config, its value in
/// libcamera.
type Modes<'a> = &'a [(&'static str, i32)];

/// The controls the camera starts with: `framerate` and the `[camera]`
/// settings. A setting the camera lacks, or a value it does not take, is
/// left out with a warning naming it.
pub(super) fn camera_controls(
    available: &ControlInfoMap,
    framerate: u32,
    camera: &CameraConfig,
    name: &str,
) -> UniquePtr<ControlList> {
    let mut list = ControlList::new();
    let frame_us = 1_000_000 / i64::from(framerate.max(1));
    if available.find(controls::FrameDurationLimits::ID).is_ok() {
        let _ = list.set(controls::FrameDurationLimits([frame_us, frame_us]));
    } else {
        tracing::info!("{name}: no frame rate control; the camera runs at its own rate");
    }
    // A camera that can focus keeps focusing unless told otherwise.
    let autofocus = camera.autofocus.or_else(|| {
        available
            .find(controls::AfMode::ID)
            .is_ok()
            .then_some(AutofocusMode::Continuous)
    });
    // The mode settings: each one's key, control, value, and every mode's
    // name in the config and value in libcamera.
    let modes: [(&str, u32, Option<i32>, Modes<'_>); 4] = [
        (
            "exposure",
            controls::AeExposureMode::ID,
            camera.exposure.map(|m| m as i32),
            &ExposureMode::ALL.map(|m| (m.name(), m as i32)),
        ),
        (
            "awb",
            controls::AwbMode::ID,
            camera.awb.map(|m| m as i32),
            &AwbMode::ALL.map(|m| (m.name(), m as i32)),
        ),
        (
            "autofocus",
            controls::AfMode::ID,
            autofocus.map(|m| m as i32),
            &AutofocusMode::ALL.map(|m| (m.name(), m as i32)),
        ),
        (
            "denoise",
            controls::NoiseReductionMode::ID,
            camera.denoise.map(|m| m as i32),
            &DenoiseMode::ALL.map(|m| (m.name(), m as i32)),
        ),
    ];
    for (key, id, value, all) in modes {
        let Some(value) = value else {
            continue;
        };
        let label = all
            .iter()
            .find(|(_, v)| *v == value)
            .map_or("?", |(n, _)| n);
        let Ok(info) = available.find(id) else {
            tracing::warn!(
                "{name}: camera.{key} = {label:?} ignored: this camera has no {key} control"
            );
            continue;
        };
        let takes: Vec<i32> = info
            .values()
            .into_iter()
            .filter_map(|v| i32::try_from(v).ok())
            .collect();
        if !takes.is_empty() && !takes.contains(&value) {
            let listed: Vec<&str> = all
                .iter()
                .filter(|(_, v)| takes.contains(v))
                .map(|(n, _)| *n)
                .collect();
            tracing::warn!(
                "{name}: camera.{key} = {label:?} ignored: this camera takes {}",
                listed.join(", ")
            );
            continue;
        }
        let _ = list.set_raw(id, ControlValue::from(value));
    }
    for (key, id, value) in [
        ("brightness", controls::Brightness::ID, camera.brightness),
        ("contrast", controls::Contrast::ID, camera.contrast),
        ("saturation", controls::Saturation::ID, camera.saturation),
        ("sharpness", controls::Sharpness::ID, camera.sharpness),
    ] {
        let Some(value) = value else {
            continue;
        };
        let Ok(info) = available.find(id) else {
            tracing::warn!(
                "{name}: camera.{key} = {value} ignored: this camera has no {key} control"
            );
            continue;
        };
        let (min, max) = (
            f32::try_from(info.min()).unwrap_or(f32::MIN),
            f32::try_from(info.max()).unwrap_or(f32::MAX),
        );
        let used = value.clamp(min, max);
        if used != value {
            tracing::warn!("{name}: camera.{key} = {value} is outside {min}..={max}; using {used}");
        }
        let _ = list.set_raw(id, ControlValue::from(used));
    }
    list
}
