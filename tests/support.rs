//! Starting the real `lagscope` binary (collector, fixtures) for end-to-end
//! tests, on loopback, and cleaning up after them.

#![allow(dead_code)] // each test file uses a different subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lagscope_client::Client;
use lagscope_wire::api::{InstanceSummary, ServicesResponse};

/// The binary under test.
pub const LAGSCOPE: &str = env!("CARGO_BIN_EXE_lagscope");

/// A child process killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process and returns what it wrote to stderr (if piped).
    pub fn stop_and_read_stderr(mut self) -> String {
        use std::io::Read;
        let stderr = self.child.stderr.take();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut text);
        }
        text
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }
}

/// A running `lagscope collector`.
pub struct Collector {
    pub proc: Proc,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
}

impl Collector {
    /// Starts a collector on ephemeral loopback ports with extra `args`.
    pub fn start(args: &[&str]) -> Collector {
        Self::start_on("127.0.0.1:0", args)
    }

    /// Starts a collector with its gRPC port at `grpc`.
    pub fn start_on(grpc: &str, args: &[&str]) -> Collector {
        let mut child = Command::new(LAGSCOPE)
            .args(["collector", "--grpc", grpc, "--http", "127.0.0.1:0"])
            .args(args)
            .env_remove("LAGSCOPE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("collector starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("collector prints its addresses");
        // "lagscope collector: agents -> A (LAGSCOPE_COLLECTOR=...), API -> http://B"
        let grpc = line
            .split("agents -> ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no gRPC address in {line:?}"));
        let http = line
            .split("API -> http://")
            .nth(1)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no HTTP address in {line:?}"));
        Collector {
            proc: Proc { child },
            grpc,
            http,
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&format!("http://{}", self.http), token.map(String::from)).expect("valid URL")
    }

    pub fn services(&self) -> Option<ServicesResponse> {
        self.client(None).services().ok()
    }

    /// The instance of `service`, once it has at least `samples` samples.
    pub fn wait_for(&self, service: &str, samples: u64, timeout: Duration) -> InstanceSummary {
        wait_until(timeout, || {
            self.services()?
                .services
                .into_iter()
                .find(|s| s.service == service)?
                .instances
                .into_iter()
                .find(|i| i.samples >= samples)
        })
        .unwrap_or_else(|| panic!("{service} did not reach {samples} samples within {timeout:?}"))
    }
}

/// Starts `lagscope fixture NAME` reporting as `service` to `collector_url`,
/// with extra environment. It exits when the test drops it (or dies).
pub fn fixture(name: &str, service: &str, collector_url: &str, env: &[(&str, &str)]) -> Proc {
    let child = Command::new(LAGSCOPE)
        .args([
            "fixture",
            name,
            "--service",
            service,
            "--exit-on-stdin-close",
        ])
        .env("LAGSCOPE_COLLECTOR", collector_url)
        .env("LAGSCOPE_SAMPLE_INTERVAL", "200ms")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("fixture starts");
    Proc { child }
}

/// Polls `f` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

/// A fresh temporary path for this test.
pub fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lagscope-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Panics, naming what to install, when a tool an end-to-end test drives is
/// missing (the README lists them; `.ci/run` installs them).
pub fn require(tool: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "this test needs `{tool}`, which is not on PATH: install it with `{install}` \
         (the README lists the test prerequisites)"
    );
}

/// Runs `promtool check metrics` over an exposition and panics with its
/// complaints unless it is clean.
pub fn assert_promtool_clean(exposition: &str) {
    use std::io::Write;
    require("promtool", "apt-get install prometheus");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("promtool reads the exposition");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n--- exposition ---\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One raw HTTP/1.1 GET to `addr` with extra header lines; (status, body).
pub fn http_get(addr: SocketAddr, path: &str, headers: &[&str]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// A program running in a detached tmux session of `cols`×`rows`, read
/// back with capture-pane and driven with send-keys; the session is killed
/// when this is dropped.
pub struct Tmux {
    session: String,
}

impl Tmux {
    /// Starts `command` in a new session called `name` (made unique per test process).
    pub fn start(name: &str, cols: u16, rows: u16, command: &[&str]) -> Tmux {
        require("tmux", "apt-get install tmux");
        let session = format!("lagscope-e2e-{name}-{}", std::process::id());
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            &cols,
            "-y",
            &rows,
        ];
        args.extend_from_slice(command);
        let started = tmux(&args);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        Tmux { session }
    }

    /// What the screen shows now.
    pub fn capture(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &self.session]).stdout)
            .into_owned()
    }

    /// Types `keys` (tmux key names, e.g. `Down`, `q`).
    pub fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.session, keys]);
    }

    /// Whether the session (so its program) still runs.
    pub fn alive(&self) -> bool {
        tmux(&["has-session", "-t", &self.session]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        if self.alive() {
            tmux(&["kill-session", "-t", &self.session]);
        }
    }
}

fn tmux(args: &[&str]) -> std::process::Output {
    Command::new("tmux").args(args).output().expect("tmux runs")
}
