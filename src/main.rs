//! The `streamcam` command: runs the daemon, checks a configuration file,
//! or tries the camera.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use streamcam::config::{self, Config, EX_CONFIG, SourceKind};
use streamcam::servers::auth;
use streamcam::source::{self, Frame};
use streamcam::{daemon, service};

#[derive(Parser)]
#[command(
    version,
    about = "RTSP camera daemon: streams a camera (or a test pattern) as H.264 over RTSP"
)]
struct Cli {
    /// Configuration file (TOML); without one, every setting takes its default.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check a configuration file and exit (0 if valid, 78 if not).
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Open the camera as the configuration sets it up (--config), take
    /// FRAMES frames and print what came: the source, the picture, the
    /// frame rate, the CPU each frame cost and the memory used. Exits 0 if
    /// they came from the configured source, 1 if not (with `auto`: no
    /// camera was found and the test pattern stood in).
    CheckCamera {
        /// How many frames to take.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        frames: u32,
    },
    /// Print an `[[auth.users]]` entry with the `ha1` of a password, to paste
    /// into the configuration. The password is read from standard input (a
    /// prompt on a terminal), never from the command line.
    HashPassword {
        /// The user's name.
        name: String,
        /// The realm (default: the one of --config, else "streamcam").
        #[arg(long)]
        realm: Option<String>,
    },
}

fn load(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let result = match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    };
    result.map_err(|e| {
        eprintln!("streamcam: {e}");
        ExitCode::from(EX_CONFIG as u8)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        return match load(Some(file)) {
            Ok(c) => {
                println!(
                    "{}: OK (listen {}, path {}, source {}, {}x{}@{} {} bit/s)",
                    file.display(),
                    c.server.listen,
                    c.server.path,
                    c.source.kind,
                    c.video.width,
                    c.video.height,
                    c.video.framerate,
                    c.video.bitrate
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }
    if let Some(Command::HashPassword { name, realm }) = &cli.command {
        let realm = match realm {
            Some(r) => r.clone(),
            None => match load(cli.config.as_ref()) {
                Ok(c) => c.auth.realm,
                Err(code) => return code,
            },
        };
        return hash_password(name, &realm);
    }
    let config = match load(cli.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(zone) = config.overlay.as_ref().and_then(|o| o.timezone.as_ref()) {
        // SAFETY: no other thread exists yet to read the environment.
        unsafe { std::env::set_var("TZ", zone) };
    }
    service::log::init_logging(config.log.level);
    if let Some(Command::CheckCamera { frames }) = &cli.command {
        return check_camera(&config, *frames);
    }
    match &cli.config {
        Some(path) => tracing::info!(config = %path.display(), "configuration: {}", path.display()),
        None => tracing::info!("configuration: defaults (no --config)"),
    }
    daemon::run(config)
}

/// `streamcam check-camera`: opens the source, takes `frames` frames and
/// prints what they were and what they cost.
fn check_camera(config: &Config, frames: u32) -> ExitCode {
    let mut camera = match source::open(config) {
        Ok(camera) => camera,
        Err(e) => {
            eprintln!("streamcam: cannot open the camera: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (width, height) = camera.dimensions();
    println!("source: {} ({width}x{height})", camera.name());
    let (cpu_before, threads_before, started) = (cpu_time(), thread_times(), Instant::now());
    let mut picture = String::new();
    for n in 0..frames {
        match camera.next_frame() {
            Ok(Frame::Raw(raw)) if n == 0 => {
                let memory = if raw.dmabuf.is_some() {
                    "as DMABUFs an encoder can read in place"
                } else {
                    "in memory"
                };
                picture = format!(
                    "{}x{} {} raw, {memory}",
                    raw.width,
                    raw.height,
                    raw.pixels.layout()
                );
            }
            Ok(Frame::Encoded(_)) if n == 0 => picture = "H.264, already encoded".into(),
            Ok(_) => {}
            Err(e) => {
                eprintln!("streamcam: frame {}: {e}", n + 1);
                return ExitCode::FAILURE;
            }
        }
    }
    let (elapsed, cpu) = (started.elapsed(), cpu_time().saturating_sub(cpu_before));
    let by_thread = per_thread(&threads_before, &thread_times(), frames);
    println!("picture: {picture}");
    println!(
        "frames: {frames} in {:.2} s ({:.1} fps)",
        elapsed.as_secs_f64(),
        f64::from(frames) / elapsed.as_secs_f64()
    );
    println!(
        "cpu: {:.3} ms per frame ({:.2} s in all)",
        cpu.as_secs_f64() * 1e3 / f64::from(frames),
        cpu.as_secs_f64()
    );
    if !by_thread.is_empty() {
        println!("cpu by thread: {by_thread}");
    }
    let (rss, peak) = memory();
    println!(
        "memory: RSS {:.1} MB, peak {:.1} MB",
        rss as f64 / 1e6,
        peak as f64 / 1e6
    );
    if config.source.kind == SourceKind::Auto && camera.kind() == SourceKind::Testpattern {
        eprintln!("streamcam: no camera found: the frames are the test pattern's");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// User and system CPU time this process has used.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Each thread of this process: its id, its name and the CPU time it has
/// used (the scheduler's count, to the nanosecond), from /proc.
fn thread_times() -> Vec<(u32, String, Duration)> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let read = |file| std::fs::read_to_string(task.path().join(file)).ok();
            let name = read("comm")?.trim().to_owned();
            let ns = read("schedstat")?.split_whitespace().next()?.parse().ok()?;
            Some((tid, name, Duration::from_nanos(ns)))
        })
        .collect()
}

/// The CPU time each thread used between `before` and `after`, per frame
/// of `frames`, busiest first: "name 1.234 ms, ...". Threads keep the name
/// of the thread that started them unless they set their own (libcamera's
/// do not), so the main thread is marked "(main)".
fn per_thread(
    before: &[(u32, String, Duration)],
    after: &[(u32, String, Duration)],
    frames: u32,
) -> String {
    let main = std::process::id();
    let mut used: Vec<(String, Duration)> = after
        .iter()
        .map(|(tid, name, time)| {
            let start = before
                .iter()
                .find(|(t, n, _)| t == tid && n == name)
                .map_or(Duration::ZERO, |b| b.2);
            let name = if *tid == main {
                format!("{name} (main)")
            } else {
                name.clone()
            };
            (name, time.saturating_sub(start))
        })
        .filter(|(_, spent)| !spent.is_zero())
        .collect();
    used.sort_by_key(|u| std::cmp::Reverse(u.1));
    used.iter()
        .map(|(name, time)| {
            let ms = time.as_secs_f64() * 1e3 / f64::from(frames.max(1));
            format!("{name} {ms:.3} ms")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// This process's resident memory now and at its peak, in bytes (zero
/// where /proc does not say).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// `streamcam hash-password NAME`: reads the password and prints the entry.
fn hash_password(name: &str, realm: &str) -> ExitCode {
    let usage = ExitCode::from(64); // EX_USAGE
    for (what, value) in [("name", name), ("realm", realm)] {
        if !config::header_safe(value) {
            eprintln!(
                "streamcam: the {what} {value:?} must be printable text without '\"', '\\' or ':'"
            );
            return usage;
        }
    }
    let password = match read_password() {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            eprintln!("streamcam: the password is empty");
            return usage;
        }
        Err(e) => {
            eprintln!("streamcam: cannot read the password: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ha1 = auth::to_hex(&auth::ha1(name, realm, &password));
    println!("[[auth.users]]\nname = \"{name}\"\nha1 = \"{ha1}\"  # for auth.realm = \"{realm}\"");
    ExitCode::SUCCESS
}

/// One line from standard input; on a terminal, asked for twice with the
/// echo off.
fn read_password() -> std::io::Result<String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let line = |prompt: &str| -> std::io::Result<String> {
        if stdin.is_terminal() {
            eprint!("{prompt}");
            std::io::stderr().flush()?;
        }
        let mut text = String::new();
        stdin.lock().read_line(&mut text)?;
        if stdin.is_terminal() {
            eprintln!();
        }
        Ok(text.trim_end_matches(['\r', '\n']).to_string())
    };
    if !stdin.is_terminal() {
        return line("");
    }
    let _quiet = EchoOff::new();
    let first = line("Password: ")?;
    let again = line("Again: ")?;
    if first != again {
        return Err(std::io::Error::other("the two passwords differ"));
    }
    Ok(first)
}

/// Turns the terminal's echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on standard input with a termios we own.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0 {
                return Self(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t);
            Self(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
