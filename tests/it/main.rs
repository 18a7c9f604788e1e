//! Integration tests: the real `omnistream` binary on real files, and the SQL specification in
//! `tests/slt/*.slt` run against a real lake.

mod behaviour;
mod cli;
mod codegen;
mod crash;
mod interop;
mod model_server;
mod models;
mod patterns;
mod reducers;
mod slt;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A data directory of its own and the binary to run against it.
pub(crate) struct Env {
    pub(crate) dir: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    pub(crate) fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The binary with this environment's data directory and no inherited OMNISTREAM_* settings.
    pub(crate) fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_omnistream"));
        for (key, _) in std::env::vars() {
            if key.starts_with("OMNISTREAM_") {
                cmd.env_remove(key);
            }
        }
        cmd.current_dir(self.dir.path())
            .arg("--data-dir")
            .arg(self.data())
            .args(args);
        cmd
    }

    /// `sh -c SCRIPT` in a user and mount namespace of its own (so it may mount a small
    /// filesystem), in this environment's directory, with `$BIN` (the binary) and `$DATA` (the
    /// data directory) set and no inherited OMNISTREAM_* settings.
    pub(crate) fn in_mount_namespace(&self, script: &str) -> Command {
        let mut cmd = Command::new("unshare");
        for (key, _) in std::env::vars() {
            if key.starts_with("OMNISTREAM_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
            .current_dir(self.dir.path())
            .env("BIN", env!("CARGO_BIN_EXE_omnistream"))
            .env("DATA", self.data());
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    pub(crate) fn run_with_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Run and require success.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "omnistream {args:?} failed:\n{}",
            describe(&out)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Query the lake and return the rows as JSON objects.
    pub(crate) fn sql(&self, query: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
        let out = self.ok(&["sql", "--format", "json", query]);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .into_iter()
            .map(|v| v.as_object().unwrap().clone())
            .collect()
    }

    /// A single integer from a query.
    pub(crate) fn sql_int(&self, query: &str) -> i64 {
        let rows = self.sql(query);
        rows[0]
            .values()
            .next()
            .unwrap()
            .as_i64()
            .unwrap_or_else(|| panic!("{query}: {rows:?}"))
    }

    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// A process a test started, killed (and reaped) when dropped, so that a failed assertion never
/// leaves it running (a `jobs run all` in follow mode would otherwise outlive the test run).
pub(crate) struct Running(Option<std::process::Child>);

impl Running {
    pub(crate) fn spawn(cmd: &mut Command) -> Running {
        Running(Some(cmd.spawn().unwrap()))
    }

    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("running until waited for")
    }

    pub(crate) fn id(&self) -> u32 {
        self.0.as_ref().expect("running until waited for").id()
    }

    pub(crate) fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().unwrap()
    }

    pub(crate) fn wait(mut self) -> std::process::ExitStatus {
        self.child().wait().unwrap()
    }

    pub(crate) fn wait_with_output(mut self) -> Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Send SIGTERM to a running job (it finishes its batch and exits) and require that it was delivered.
pub(crate) fn terminate(child: &Running) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) with a pid this test spawned and has not waited for yet (no reuse).
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0, "could not signal process {}", child.id());
}

pub(crate) fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The checkout under test, at run time: a test binary reused from another checkout of the same
/// sources (CI's clone shares the target directory) must use this checkout's files.
pub(crate) fn repo_root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
    })
}

/// A valid model-call event.
pub(crate) fn model_call(event_id: &str, model: &str, emitted_at: &str, latency_ms: f64) -> String {
    serde_json::json!({
        "event_id": event_id, "correlation_id": "c-1", "emitted_at": emitted_at,
        "model": model, "latency_ms": latency_ms, "success": true, "input_tokens": 10, "output_tokens": 5,
    })
    .to_string()
}

/// A UUID made from a small number, for readable test ids.
pub(crate) fn uuid(n: u64) -> String {
    format!("00000000-0000-7000-8000-{n:012}")
}

/// Whether this machine lets an unprivileged test mount a small filesystem of its own.
pub(crate) fn can_mount_tmpfs() -> bool {
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg("d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs \"$d\"")
        .status()
        .is_ok_and(|s| s.success())
}

/// The seed in environment variable `var` when set (to replay a run), otherwise a fresh one;
/// printed either way, so a failure can be replayed.
pub(crate) fn replay_seed(var: &str, what: &str) -> u64 {
    use rand::Rng;
    let seed = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("{what}: {var}={seed}");
    seed
}
