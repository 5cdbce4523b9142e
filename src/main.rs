//! The `streamcam` command: runs the daemon or checks a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use streamcam::config::{Config, EX_CONFIG};
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
    let config = match load(cli.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    service::init_logging(config.log.level);
    match &cli.config {
        Some(path) => tracing::info!(config = %path.display(), "configuration: {}", path.display()),
        None => tracing::info!("configuration: defaults (no --config)"),
    }
    daemon::run(config)
}
