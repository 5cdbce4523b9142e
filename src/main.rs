//! The `streamcam` command: runs the daemon or checks a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use streamcam::config::{self, Config, EX_CONFIG};
use streamcam::servers::auth;
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
    match &cli.config {
        Some(path) => tracing::info!(config = %path.display(), "configuration: {}", path.display()),
        None => tracing::info!("configuration: defaults (no --config)"),
    }
    daemon::run(config)
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
