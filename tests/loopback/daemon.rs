//! Runs the real streamcam binary for a test: a temporary config, a port the
//! kernel picks, its log collected, killed when the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The 720p30 H.264 file the `file` source loops in these tests.
pub fn sample_file() -> String {
    format!(
        "{}/tests/data/testsrc2-720p30.h264",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The daemon binary to run: this build's, or `STREAMCAM_BIN` (a build
/// for another target) started through `STREAMCAM_RUNNER` (e.g.
/// `qemu-aarch64 -L /`), so the same tests drive a cross-built daemon.
pub fn streamcam_command() -> Command {
    let bin = std::env::var("STREAMCAM_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_streamcam").to_string());
    let runner = std::env::var("STREAMCAM_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut cmd = Command::new(program);
            cmd.args(words).arg(bin);
            cmd
        }
        None => Command::new(bin),
    }
}

/// Which source the daemon streams.
pub enum Source {
    /// The sample file, looped (no encoding: cheap, many clients).
    File,
    /// The software-encoded test pattern (what a newcomer sees).
    TestPattern,
    /// A raw-video (YUV4MPEG2) file, software-encoded.
    Y4m(&'static str),
}

/// A running daemon.
pub struct Daemon {
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    /// Host part of the URL ("127.0.0.1" or "[::1]").
    pub host: String,
    /// The port the daemon listens on.
    pub port: u16,
    /// Its HTTP port.
    pub http_port: u16,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon on 127.0.0.1 streaming `source`.
    pub fn start(source: Source) -> Daemon {
        Self::start_with("127.0.0.1", source, "")
    }

    /// Starts a daemon listening on `ip` (port picked by the kernel), with
    /// `extra` appended to its `[server]` table.
    pub fn start_with(ip: &str, source: Source, extra: &str) -> Daemon {
        Self::start_env(ip, source, extra, &[])
    }

    /// Like [`Daemon::start_with`], with extra environment variables (as
    /// systemd would set them).
    pub fn start_env(ip: &str, source: Source, extra: &str, env: &[(&str, &str)]) -> Daemon {
        Self::launch(ip, source, extra, env, None)
    }

    /// Like [`Daemon::start_with`], allowed at most `nofile` open files
    /// (soft and hard limit), as a small system would allow.
    pub fn start_limited(source: Source, extra: &str, nofile: u64) -> Daemon {
        Self::launch("127.0.0.1", source, extra, &[], Some(nofile))
    }

    fn launch(
        ip: &str,
        source: Source,
        extra: &str,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let source = match source {
            Source::File => format!("kind = \"file\"\nfile = {:?}\n", sample_file()),
            Source::TestPattern => "kind = \"testpattern\"\n".to_string(),
            Source::Y4m(path) => format!("kind = \"file\"\nfile = {path:?}\n"),
        };
        let host = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let config = format!(
            "[server]\nlisten = \"{host}:0\"\n{extra}\n[source]\n{source}\n[log]\nlevel = \"debug\"\n[http]\nlisten = \"{host}:0\"\n"
        );
        let path = dir.path().join("streamcam.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = streamcam_command();
        if let Some(limit) = nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs here.
            unsafe {
                command.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command
            .arg("--config")
            .arg(&path)
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting streamcam");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            log,
            host,
            port: 0,
            http_port: 0,
            _dir: dir,
        };
        daemon.port = daemon.logged_port("listening on ", ';');
        daemon.http_port = daemon.logged_port("HTTP on ", ' ');
        daemon
            .wait_for_log("ready: ", Duration::from_secs(20))
            .unwrap_or_else(|| panic!("daemon not ready:\n{}", daemon.log()));
        daemon
    }

    /// The port of the address logged after `prefix` (up to `end`).
    fn logged_port(&self, prefix: &str, end: char) -> u16 {
        let line = self
            .wait_for_log(prefix, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("no {prefix:?} in the log:\n{}", self.log()));
        let addr = line
            .split(prefix)
            .nth(1)
            .unwrap()
            .split(end)
            .next()
            .unwrap();
        let addr = addr.trim_end_matches(':');
        addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// The URL of `path` on its HTTP server.
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}:{}{path}", self.host, self.http_port)
    }

    /// The address of its HTTP server.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        format!("{}:{}", self.host, self.http_port).parse().unwrap()
    }

    /// The stream's URL.
    pub fn url(&self) -> String {
        self.url_of("/stream")
    }

    /// The RTSP URL of the stream at `path`.
    pub fn url_of(&self, path: &str) -> String {
        format!("rtsp://{}:{}{path}", self.host, self.port)
    }

    /// The address the daemon listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        format!("{}:{}", self.host, self.port).parse().unwrap()
    }

    /// The daemon's process id (the emulator's, under `STREAMCAM_RUNNER`).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Its open file descriptors now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Its resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the daemon to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<(ExitStatus, Duration)> {
        let start = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.as_ref().unwrap().id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let child = self.child.as_mut().unwrap();
        while start.elapsed() < timeout {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some((status, start.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}", self.log());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
