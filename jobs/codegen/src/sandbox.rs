//! Model-written code runs contained. Requests come from anyone who can publish to the log, so the
//! code a model writes for them is untrusted: every piece of it the pipeline executes (the
//! generated tests, the behaviour examples) runs in a child process that
//!
//! - gets a clean environment (no provider keys, no `OMNISTREAM_*` settings) and `python -I -B`
//!   (no user site, no `PYTHON*` variables, no bytecode written);
//! - runs in the node's staging directory, with a private temporary directory;
//! - may write only there, and read only the system's and Python's own directories besides
//!   (Landlock, when the kernel has it: unprivileged, inherited by every process it starts, and
//!   checked on the resolved path, so a symlink does not lead out);
//! - has no network: a network namespace of its own (only a loopback that is down) where the
//!   kernel allows one, else Landlock's TCP rules;
//! - has CPU-time, address-space, file-size and core limits (setrlimit), and a process limit (a
//!   pids cgroup of its own when one can be made, else `RLIMIT_NPROC`);
//! - has its output read while it runs (so a chatty child never blocks on a full pipe), and is
//!   stopped when it prints more than its limit;
//! - is killed with its whole process group (and cgroup) at its time limit, and when it exits,
//!   so a grandchild holding its output open cannot keep the pipeline waiting.
//!
//! What this machine allows is found once per process and said once when something is missing.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use omnistream_streams::io::{IoContext, IoError};

/// Limits of one contained run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time before the whole process group is killed.
    pub wall: Duration,
    /// CPU seconds (SIGXCPU at the limit).
    pub cpu_secs: u64,
    /// Address space of each process, in bytes.
    pub memory_bytes: u64,
    /// Largest file it may write, in bytes (SIGXFSZ beyond).
    pub file_bytes: u64,
    /// Processes (and threads) at once.
    pub processes: u64,
    /// Output (stdout and stderr together) before it is stopped; the first part is kept.
    pub output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(120),
            cpu_secs: 120,
            memory_bytes: 2 << 30,
            file_bytes: 64 << 20,
            processes: 64,
            output_bytes: 1 << 20,
        }
    }
}

/// How a contained run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// Killed by this signal (not by us).
    Signalled(i32),
    /// Still running at the time limit: killed.
    TimedOut,
    /// Printed more than the output limit: killed.
    TooMuchOutput,
    /// Exited with this code but left processes running (killed): generated code must not
    /// leave anything behind.
    LeftRunning(i32),
}

/// What a contained run did.
#[derive(Debug, Clone)]
pub struct Run {
    pub ending: Ending,
    /// stdout and stderr as they came, up to the output limit.
    pub output: String,
    pub output_bytes: u64,
    pub elapsed: Duration,
}

impl Run {
    pub fn succeeded(&self) -> bool {
        self.ending == Ending::Exited(0)
    }

    /// Why the run was stopped, when a limit stopped it: a phrase for "the tests ... and were
    /// stopped" (`ran longer than 3s`).
    pub fn stopped_because(&self, limits: &Limits) -> Option<String> {
        Some(match self.ending {
            Ending::Exited(_) => return None,
            Ending::TimedOut => format!(
                "ran longer than {}",
                humantime::format_duration(limits.wall)
            ),
            Ending::TooMuchOutput => format!(
                "printed more than {}",
                bytesize::ByteSize(limits.output_bytes)
            ),
            Ending::Signalled(libc::SIGXCPU) => {
                format!("used more than {} s of CPU", limits.cpu_secs)
            }
            Ending::Signalled(libc::SIGXFSZ) => format!(
                "wrote a file larger than {}",
                bytesize::ByteSize(limits.file_bytes)
            ),
            Ending::Signalled(n) => format!("got signal {n}"),
            Ending::LeftRunning(_) => "left processes running".into(),
        })
    }
}

/// Why a contained run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start {program}")]
    Start {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find the interpreter {python} (its sys.executable)")]
    Interpreter {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] IoError),
}

/// How the network is taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkIsolation {
    /// A network namespace of its own (as root: directly; otherwise inside a user namespace).
    Namespace {
        user: bool,
    },
    /// Landlock denies TCP bind and connect (other sockets stay possible).
    LandlockTcp,
    None,
}

/// What this machine lets us do, found once.
#[derive(Debug, Clone)]
pub struct Isolation {
    pub network: NetworkIsolation,
    /// Landlock ABI version, when the kernel has Landlock.
    pub landlock: Option<u32>,
    /// Where per-run pids cgroups go, when one can be made.
    pub pids_cgroup: Option<PathBuf>,
}

impl Isolation {
    /// Probe the kernel (once per process) and warn once about what is missing.
    pub fn detect() -> &'static Isolation {
        static DETECTED: OnceLock<Isolation> = OnceLock::new();
        DETECTED.get_or_init(|| {
            let landlock = landlock::abi();
            let network = if probe_unshare(libc::CLONE_NEWNET) {
                NetworkIsolation::Namespace { user: false }
            } else if probe_unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) {
                NetworkIsolation::Namespace { user: true }
            } else if landlock.is_some_and(|abi| abi >= 4) {
                NetworkIsolation::LandlockTcp
            } else {
                NetworkIsolation::None
            };
            let isolation = Isolation {
                network,
                landlock,
                pids_cgroup: cgroup::writable_pids_parent(),
            };
            isolation.warn();
            isolation
        })
    }

    fn warn(&self) {
        if self.network == NetworkIsolation::None {
            tracing::warn!(
                "generated code runs with network access: this kernel allows neither a network namespace nor Landlock's TCP rules"
            );
        }
        if self.landlock.is_none() {
            tracing::warn!(
                "generated code may write outside its directory: this kernel has no Landlock"
            );
        }
        if self.pids_cgroup.is_none() && unsafe { libc::geteuid() } == 0 {
            tracing::warn!(
                "generated code has no process limit: RLIMIT_NPROC does not bind root and no pids cgroup can be made"
            );
        }
    }

    /// One line for logs and docs.
    pub fn describe(&self) -> String {
        format!(
            "network: {}; files: {}; processes: {}",
            match self.network {
                NetworkIsolation::Namespace { user: false } => "own network namespace",
                NetworkIsolation::Namespace { user: true } => "own user and network namespace",
                NetworkIsolation::LandlockTcp => "Landlock denies TCP",
                NetworkIsolation::None => "not isolated",
            },
            match self.landlock {
                Some(abi) => format!("Landlock ABI {abi}"),
                None => "not isolated".into(),
            },
            if self.pids_cgroup.is_some() {
                "pids cgroup"
            } else {
                "RLIMIT_NPROC"
            }
        )
    }
}

/// Whether a child may `unshare(flags)` (tried in a throwaway child).
fn probe_unshare(flags: libc::c_int) -> bool {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: unshare(2) is async-signal-safe; nothing is allocated after the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(flags) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Runs Python contained.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The interpreter's real path: the caller's `python3` may be a shim that needs the
    /// environment the child does not get.
    python: PathBuf,
    /// Directories the child may read (the interpreter's prefixes and its import path).
    python_dirs: Vec<PathBuf>,
    isolation: &'static Isolation,
}

/// Directories every process needs to read (libraries, locale, devices, /proc).
const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/dev", "/proc", "/sys", "/opt",
];

impl Sandbox {
    /// Find `python`'s real interpreter and the directories it reads.
    pub fn new(python: &str) -> Result<Sandbox, SandboxError> {
        let out = Command::new(python)
            .args([
                "-c",
                "import sys; print(sys.executable); [print(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path} if p]",
            ])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|source| SandboxError::Interpreter {
                python: python.into(),
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines().map(PathBuf::from);
        let executable =
            lines
                .next()
                .filter(|p| p.is_absolute())
                .ok_or_else(|| SandboxError::Interpreter {
                    python: python.into(),
                    source: std::io::Error::other(format!(
                        "it did not say where it is ({})",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )),
                })?;
        Ok(Sandbox {
            python: executable,
            python_dirs: lines.filter(|p| p.is_absolute() && p.exists()).collect(),
            isolation: Isolation::detect(),
        })
    }

    pub fn isolation(&self) -> &Isolation {
        self.isolation
    }

    /// Run `python -I -B ARGS` in `dir`, contained, within `limits`.
    pub fn run_python(
        &self,
        args: &[&str],
        dir: &Path,
        limits: &Limits,
    ) -> Result<Run, SandboxError> {
        let tmp = tempfile::Builder::new()
            .prefix("omnistream-run-")
            .tempdir()
            .io_context(|| "creating a temporary directory".into())?;
        let (mut cmd, reader) = self.command(args, dir, tmp.path())?;
        let confinement = self.confinement(dir, tmp.path(), limits)?;
        let pre = confinement.pre_exec(self.isolation.network, limits);
        // SAFETY: the closure only makes async-signal-safe system calls on values prepared
        // before the fork (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || pre.apply());
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|source| SandboxError::Start {
            program: self.python.display().to_string(),
            source,
        })?;
        // Our copies of the pipe's write end must go, or the reader never sees its end.
        drop(cmd);
        let output = Output::read(reader, limits.output_bytes);
        let group = Group {
            pgid: child.id() as libc::pid_t,
            cgroup: confinement.cgroup.as_ref(),
        };
        let ending = wait(&mut child, &output, &group, limits, started)?;
        // Whatever it started dies with it: nothing may outlive the run or hold its output.
        let ending = match ending {
            Ending::Exited(code) if group.still_running() => Ending::LeftRunning(code),
            other => other,
        };
        group.kill();
        let (text, bytes) = output.finish(Duration::from_secs(2));
        Ok(Run {
            ending,
            output: text,
            output_bytes: bytes,
            elapsed: started.elapsed(),
        })
    }

    /// The interpreter with a clean environment, in `dir`, stdout and stderr into one pipe.
    fn command(
        &self,
        args: &[&str],
        dir: &Path,
        tmp: &Path,
    ) -> Result<(Command, std::io::PipeReader), SandboxError> {
        let mut cmd = Command::new(&self.python);
        cmd.arg("-I")
            .arg("-B")
            .args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", tmp)
            .env("TMPDIR", tmp)
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null());
        let (reader, writer) = std::io::pipe().io_context(|| "creating the output pipe".into())?;
        let writer2 = writer
            .try_clone()
            .io_context(|| "creating the output pipe".into())?;
        cmd.stdout(Stdio::from(writer)).stderr(Stdio::from(writer2));
        Ok((cmd, reader))
    }

    /// The Landlock ruleset and the pids cgroup of one run, made before the fork.
    fn confinement(
        &self,
        dir: &Path,
        tmp: &Path,
        limits: &Limits,
    ) -> Result<Confinement, SandboxError> {
        let ruleset = match self.isolation.landlock {
            Some(abi) => {
                let mut read: Vec<&Path> = SYSTEM_DIRS.iter().map(Path::new).collect();
                read.extend(self.python_dirs.iter().map(PathBuf::as_path));
                Some(landlock::Ruleset::new(
                    abi,
                    &read,
                    &[dir, tmp, Path::new("/dev/null")],
                    // With a network namespace of its own, its loopback stays usable.
                    self.isolation.network == NetworkIsolation::LandlockTcp,
                )?)
            }
            None => None,
        };
        let cgroup = self
            .isolation
            .pids_cgroup
            .as_ref()
            .and_then(|parent| cgroup::PidsCgroup::create(parent, limits.processes).ok());
        Ok(Confinement { ruleset, cgroup })
    }
}

/// What confines one run, alive until it ends (the cgroup is removed when dropped).
struct Confinement {
    ruleset: Option<landlock::Ruleset>,
    cgroup: Option<cgroup::PidsCgroup>,
}

impl Confinement {
    fn pre_exec(&self, network: NetworkIsolation, limits: &Limits) -> PreExec {
        PreExec {
            limits: limits.clone(),
            network,
            ruleset: self.ruleset.as_ref().map(|r| r.fd.as_raw_fd()),
            cgroup_procs: self
                .cgroup
                .as_ref()
                .and_then(|c| c.procs.as_ref())
                .map(|f| f.as_raw_fd()),
            nproc: self
                .cgroup
                .is_none()
                .then(|| process_count_of_this_user() + limits.processes),
        }
    }
}

/// Wait for the child until it exits, prints too much or runs out of time (then the whole group
/// is killed).
fn wait(
    child: &mut std::process::Child,
    output: &Output,
    group: &Group<'_>,
    limits: &Limits,
    started: Instant,
) -> Result<Ending, SandboxError> {
    loop {
        if let Some(status) = child
            .try_wait()
            .io_context(|| "waiting for the contained run".into())?
        {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(signal)) => Ending::Signalled(signal),
                (None, None) => Ending::Signalled(0),
            });
        }
        let over = if output.overflowed() {
            Some(Ending::TooMuchOutput)
        } else if started.elapsed() >= limits.wall {
            Some(Ending::TimedOut)
        } else {
            None
        };
        if let Some(ending) = over {
            group.kill();
            let _ = child.wait();
            return Ok(ending);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every process of a run: its process group and, when there is one, its cgroup (which also
/// holds what left the group).
struct Group<'a> {
    pgid: libc::pid_t,
    cgroup: Option<&'a cgroup::PidsCgroup>,
}

impl Group<'_> {
    fn still_running(&self) -> bool {
        // SAFETY: signal 0 only checks that the group exists.
        let group = unsafe { libc::kill(-self.pgid, 0) } == 0;
        group || self.cgroup.is_some_and(cgroup::PidsCgroup::is_populated)
    }

    fn kill(&self) {
        // SAFETY: kill(2) of the process group made for the child.
        unsafe {
            libc::kill(-self.pgid, libc::SIGKILL);
        }
        if let Some(c) = self.cgroup {
            c.kill_all();
        }
    }
}

/// Processes of this user now (for an `RLIMIT_NPROC` that leaves room for `limits.processes`
/// more: the limit counts every process of the user, not only the child's).
fn process_count_of_this_user() -> u64 {
    // SAFETY: getuid(2) cannot fail.
    let uid = unsafe { libc::getuid() };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .map_while(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read_to_string(e.path().join("status")).is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|l| l.split_whitespace().next())
                    .is_some_and(|u| u == uid.to_string())
            })
        })
        .count() as u64
}

/// Everything the child does between fork and exec, prepared before the fork.
struct PreExec {
    limits: Limits,
    network: NetworkIsolation,
    ruleset: Option<libc::c_int>,
    cgroup_procs: Option<libc::c_int>,
    nproc: Option<u64>,
}

impl PreExec {
    fn apply(&self) -> std::io::Result<()> {
        let check = |r: libc::c_int| {
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY (every call below): plain system calls on integers and stack values.
        unsafe {
            check(libc::setpgid(0, 0))?;
            // If the job dies (even by kill -9), the run dies with it instead of running on
            // without its time limit.
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))?;
            if let Some(fd) = self.cgroup_procs {
                let zero = b"0";
                if libc::write(fd, zero.as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let NetworkIsolation::Namespace { user } = self.network {
                let flags = if user {
                    libc::CLONE_NEWUSER | libc::CLONE_NEWNET
                } else {
                    libc::CLONE_NEWNET
                };
                check(libc::unshare(flags))?;
                loopback_up()?;
            }
            let limit = |resource, value: u64| {
                let rl = libc::rlimit {
                    rlim_cur: value,
                    rlim_max: value,
                };
                check(libc::setrlimit(resource, &rl))
            };
            let cpu = self.limits.cpu_secs.max(1);
            check(libc::setrlimit(
                libc::RLIMIT_CPU,
                &libc::rlimit {
                    rlim_cur: cpu,
                    rlim_max: cpu + 1,
                },
            ))?;
            limit(libc::RLIMIT_AS, self.limits.memory_bytes)?;
            limit(libc::RLIMIT_FSIZE, self.limits.file_bytes)?;
            limit(libc::RLIMIT_CORE, 0)?;
            if let Some(n) = self.nproc {
                limit(libc::RLIMIT_NPROC, n)?;
            }
            if let Some(fd) = self.ruleset {
                landlock::restrict_self(fd)?;
            }
        }
        Ok(())
    }
}

/// Bring up the new network namespace's loopback, so generated tests can serve and call each
/// other on 127.0.0.1: a network of one, reaching nothing outside.
///
/// # Safety
/// Only system calls: safe between fork and exec.
unsafe fn loopback_up() -> std::io::Result<()> {
    // SAFETY: socket, ioctl and close on a zeroed ifreq that lives on the stack.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        ifr.ifr_name[0] = b'l' as libc::c_char;
        ifr.ifr_name[1] = b'o' as libc::c_char;
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr);
        if r == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr);
        }
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(err);
        }
    }
    Ok(())
}

/// The child's output, read on a thread of its own while it runs.
struct Output {
    overflow: Arc<AtomicBool>,
    total: Arc<AtomicU64>,
    done: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Output {
    fn read(mut pipe: std::io::PipeReader, limit: u64) -> Output {
        let overflow = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let (tx, done) = std::sync::mpsc::channel();
        let (flag, count) = (overflow.clone(), total.clone());
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let before = count.fetch_add(n as u64, Ordering::SeqCst);
                        let room = limit.saturating_sub(before) as usize;
                        kept.extend_from_slice(&chunk[..n.min(room)]);
                        if before + n as u64 > limit {
                            flag.store(true, Ordering::SeqCst);
                        }
                    }
                }
            }
            let _ = tx.send(kept);
        });
        Output {
            overflow,
            total,
            done,
        }
    }

    fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::SeqCst)
    }

    /// The output kept and the bytes printed; a process that escaped every kill and holds the
    /// pipe open is left behind after `grace` (its output is what came so far).
    fn finish(self, grace: Duration) -> (String, u64) {
        let kept = self.done.recv_timeout(grace).unwrap_or_else(|_| {
            b"[a process it started kept its output open and was left behind]".to_vec()
        });
        (
            String::from_utf8_lossy(&kept).into_owned(),
            self.total.load(Ordering::SeqCst),
        )
    }
}

/// Landlock, by its three system calls: the ruleset is built before the fork and only
/// `landlock_restrict_self` runs in the child, where nothing may allocate (so not the `landlock`
/// crate, whose builder allocates and whose restriction step is not documented as fork-safe).
mod landlock {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::path::Path;

    use omnistream_streams::io::IoError;

    const CREATE_RULESET_VERSION: u32 = 1;
    const RULE_PATH_BENEATH: libc::c_int = 1;

    const FS_EXECUTE: u64 = 1 << 0;
    const FS_WRITE_FILE: u64 = 1 << 1;
    const FS_READ_FILE: u64 = 1 << 2;
    const FS_READ_DIR: u64 = 1 << 3;
    /// Every filesystem right of ABI 1 (remove, make char/dir/reg/sock/fifo/block/sym included).
    const FS_ABI1: u64 = (1 << 13) - 1;
    const FS_REFER: u64 = 1 << 13;
    const FS_TRUNCATE: u64 = 1 << 14;
    const FS_IOCTL_DEV: u64 = 1 << 15;
    const NET_BIND_TCP: u64 = 1 << 0;
    const NET_CONNECT_TCP: u64 = 1 << 1;
    const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
    const SCOPE_SIGNAL: u64 = 1 << 1;

    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
        handled_access_net: u64,
        scoped: u64,
    }

    #[repr(C, packed)]
    struct PathBeneathAttr {
        allowed_access: u64,
        parent_fd: i32,
    }

    /// The kernel's Landlock ABI version, when it has Landlock.
    pub(super) fn abi() -> Option<u32> {
        // SAFETY: the documented version query: no attribute, size 0.
        let v = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<RulesetAttr>(),
                0usize,
                CREATE_RULESET_VERSION,
            )
        };
        u32::try_from(v).ok().filter(|v| *v >= 1)
    }

    fn fs_rights(abi: u32) -> u64 {
        let mut all = FS_ABI1;
        if abi >= 2 {
            all |= FS_REFER;
        }
        if abi >= 3 {
            all |= FS_TRUNCATE;
        }
        if abi >= 5 {
            all |= FS_IOCTL_DEV;
        }
        all
    }

    /// A ruleset: read (and execute) under `read`, everything under `write`; TCP denied when
    /// `deny_tcp` and the ABI has it; signals and abstract sockets kept inside (ABI 6).
    pub(super) struct Ruleset {
        pub(super) fd: OwnedFd,
    }

    impl Ruleset {
        pub(super) fn new(
            abi: u32,
            read: &[&Path],
            write: &[&Path],
            deny_tcp: bool,
        ) -> Result<Ruleset, IoError> {
            let handled_fs = fs_rights(abi);
            let attr = RulesetAttr {
                handled_access_fs: handled_fs,
                handled_access_net: if deny_tcp && abi >= 4 {
                    NET_BIND_TCP | NET_CONNECT_TCP
                } else {
                    0
                },
                scoped: if abi >= 6 {
                    SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
                } else {
                    0
                },
            };
            let size = match abi {
                1..=3 => 8,
                4 | 5 => 16,
                _ => size_of::<RulesetAttr>(),
            };
            // SAFETY: attr lives across the call; size never exceeds it.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_landlock_create_ruleset,
                    &attr as *const RulesetAttr,
                    size,
                    0u32,
                )
            };
            if fd < 0 {
                return Err(IoError::new(
                    "creating a Landlock ruleset",
                    std::io::Error::last_os_error(),
                ));
            }
            // SAFETY: a fresh descriptor the kernel just returned, owned from here.
            let ruleset = Ruleset {
                fd: unsafe { OwnedFd::from_raw_fd(fd as i32) },
            };
            let reading = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR;
            for path in read {
                ruleset.allow(path, reading)?;
            }
            for path in write {
                ruleset.allow(path, handled_fs)?;
            }
            Ok(ruleset)
        }

        /// Allow `access` beneath `path` (a path that does not exist is skipped).
        fn allow(&self, path: &Path, access: u64) -> Result<(), IoError> {
            let Ok(dir) = std::fs::File::open(path) else {
                return Ok(());
            };
            // A file (not a directory) takes only file rights.
            let access = if dir.metadata().is_ok_and(|m| m.is_dir()) {
                access
            } else {
                access & (FS_EXECUTE | FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
            };
            let attr = PathBeneathAttr {
                allowed_access: access,
                parent_fd: dir.as_raw_fd(),
            };
            // SAFETY: attr and dir live across the call.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    self.fd.as_raw_fd(),
                    RULE_PATH_BENEATH,
                    &attr as *const PathBeneathAttr,
                    0u32,
                )
            };
            if r != 0 {
                return Err(IoError::new(
                    format!("allowing {} in a Landlock ruleset", path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
            Ok(())
        }
    }

    /// Enforce `ruleset` on the calling process (in the child, before exec).
    ///
    /// # Safety
    /// Only system calls: safe between fork and exec.
    pub(super) unsafe fn restrict_self(ruleset: libc::c_int) -> std::io::Result<()> {
        // SAFETY: prctl and landlock_restrict_self take integers only.
        unsafe {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// A pids cgroup per run: the process limit that also binds root, and a way to kill everything
/// the run started, even what left its process group.
mod cgroup {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The directory under which this process may make pids cgroups (v2: its own cgroup, when
    /// the pids controller is enabled for children; v1: its place in the pids hierarchy).
    pub(super) fn writable_pids_parent() -> Option<PathBuf> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let mut candidates = Vec::new();
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "pids") {
                candidates.push(Path::new("/sys/fs/cgroup/pids").join(path));
            } else if controllers.is_empty() {
                candidates.push(Path::new("/sys/fs/cgroup").join(path));
                candidates.push(Path::new("/sys/fs/cgroup/unified").join(path));
            }
        }
        let parent = candidates
            .into_iter()
            .find(|dir| PidsCgroup::create(dir, 1).is_ok())?;
        remove_stale(&parent);
        Some(parent)
    }

    /// Remove the cgroups of runs whose job died without removing them (killed, say): their
    /// processes are killed, their directories removed.
    fn remove_stale(parent: &Path) {
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        for entry in entries.map_while(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("omnistream-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            // SAFETY: signal 0 only asks whether the job that made it still exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0;
            if !alive {
                drop(PidsCgroup {
                    dir: entry.path(),
                    procs: None,
                });
            }
        }
    }

    pub(super) struct PidsCgroup {
        dir: PathBuf,
        /// `cgroup.procs`, open for the child to write itself into.
        pub(super) procs: Option<File>,
    }

    impl PidsCgroup {
        pub(super) fn create(parent: &Path, max: u64) -> std::io::Result<PidsCgroup> {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let dir = parent.join(format!(
                "omnistream-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&dir)?;
            let made = (|| {
                std::fs::write(dir.join("pids.max"), max.to_string())?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"))
            })();
            match made {
                Ok(procs) => Ok(PidsCgroup {
                    dir,
                    procs: Some(procs),
                }),
                Err(e) => {
                    let _ = std::fs::remove_dir(&dir);
                    Err(e)
                }
            }
        }

        pub(super) fn is_populated(&self) -> bool {
            std::fs::read_to_string(self.dir.join("cgroup.procs"))
                .is_ok_and(|p| !p.trim().is_empty())
        }

        /// SIGKILL every process in the cgroup (until it is empty, for those forking meanwhile).
        pub(super) fn kill_all(&self) {
            if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
                return;
            }
            for _ in 0..50 {
                let pids =
                    std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
                if pids.trim().is_empty() {
                    return;
                }
                for pid in pids
                    .lines()
                    .filter_map(|p| p.trim().parse::<libc::pid_t>().ok())
                {
                    // SAFETY: kill(2) of a process in the run's own cgroup.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }

    impl Drop for PidsCgroup {
        fn drop(&mut self) {
            self.kill_all();
            for _ in 0..100 {
                if std::fs::remove_dir(&self.dir).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            tracing::warn!(cgroup = %self.dir.display(), "could not remove a run's cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> Sandbox {
        Sandbox::new("python3").expect("python3 (scripts/setup.sh)")
    }

    fn run(code: &str, limits: &Limits) -> (Run, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = sandbox()
            .run_python(&["-c", code], dir.path(), limits)
            .unwrap();
        (run, dir)
    }

    fn quick() -> Limits {
        Limits {
            wall: Duration::from_secs(5),
            ..Limits::default()
        }
    }

    #[test]
    fn a_well_behaved_program_runs_and_its_output_is_kept() {
        let (r, _dir) = run(
            "print('hello'); import sys; print('err', file=sys.stderr)",
            &quick(),
        );
        assert_eq!(r.ending, Ending::Exited(0), "{}", r.output);
        assert!(
            r.output.contains("hello") && r.output.contains("err"),
            "{}",
            r.output
        );
    }

    #[test]
    fn the_environment_holds_no_keys_or_settings() {
        // SAFETY: this test's process sets a variable no other test reads.
        unsafe { std::env::set_var("OMNISTREAM_SANDBOX_TEST_KEY", "sk-secret") };
        let (r, _dir) = run(
            "import os; print(sorted(k for k in os.environ if 'KEY' in k or k.startswith('OMNISTREAM')))",
            &quick(),
        );
        assert_eq!(r.output.trim(), "[]", "{}", r.output);
    }

    #[test]
    fn sleeping_forever_is_stopped_at_the_time_limit() {
        let limits = Limits {
            wall: Duration::from_millis(500),
            ..Limits::default()
        };
        let (r, _dir) = run("import time; time.sleep(600)", &limits);
        assert_eq!(r.ending, Ending::TimedOut);
        assert!(r.elapsed < Duration::from_secs(5), "{:?}", r.elapsed);
        assert_eq!(r.stopped_because(&limits).unwrap(), "ran longer than 500ms");
    }

    #[test]
    fn a_child_that_keeps_the_output_open_does_not_hold_the_run() {
        let started = Instant::now();
        let (r, _dir) = run(
            "import subprocess; subprocess.Popen(['sleep', '600']); print('parent done')",
            &quick(),
        );
        assert_eq!(r.ending, Ending::LeftRunning(0), "{}", r.output);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        assert!(r.output.contains("parent done"), "{}", r.output);
        assert!(!r.output.contains("left behind"), "{}", r.output);
        assert_eq!(
            r.stopped_because(&quick()).unwrap(),
            "left processes running"
        );
    }

    #[test]
    fn megabytes_of_output_are_read_while_it_runs_and_stop_it_at_the_limit() {
        let limits = Limits {
            output_bytes: 64 * 1024,
            ..quick()
        };
        let (r, _dir) = run(
            "import sys\nwhile True: sys.stdout.write('x' * 65536)",
            &limits,
        );
        assert_eq!(r.ending, Ending::TooMuchOutput);
        assert_eq!(r.output.len(), 64 * 1024);
        assert!(r.output_bytes > 64 * 1024);
        // Below the limit, a lot of output is read whole and does not block.
        let (r, _dir) = run("print('y' * 500_000)", &quick());
        assert_eq!(r.ending, Ending::Exited(0));
        assert_eq!(r.output.trim().len(), 500_000);
    }

    #[test]
    fn allocating_ten_gigabytes_fails_inside_the_run() {
        let (r, _dir) = run("b = bytearray(10 * 1024 ** 3)", &quick());
        assert_eq!(r.ending, Ending::Exited(1), "{}", r.output);
        assert!(r.output.contains("MemoryError"), "{}", r.output);
    }

    #[test]
    fn forking_without_end_meets_the_process_limit() {
        // SAFETY: geteuid(2) cannot fail.
        if sandbox().isolation().pids_cgroup.is_none() && unsafe { libc::geteuid() } == 0 {
            eprintln!("skipped: root without a pids cgroup has no process limit here");
            return;
        }
        let limits = Limits {
            processes: 16,
            wall: Duration::from_secs(5),
            ..Limits::default()
        };
        let code = "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            time.sleep(30); os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('refused after', n, type(e).__name__)";
        let (r, _dir) = run(code, &limits);
        // Its sleeping children outlived it: killed, and said.
        assert_eq!(r.ending, Ending::LeftRunning(0), "{}", r.output);
        let n: u64 = r
            .output
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}", r.output));
        assert!(n < 16, "{}", r.output);
    }

    #[test]
    fn a_socket_reaches_nothing() {
        if sandbox().isolation().network == NetworkIsolation::None {
            eprintln!("skipped: this kernel allows no network isolation");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let code = format!(
            "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    print('connected')\nexcept OSError as e:\n    print('refused', e)"
        );
        let (r, _dir) = run(&code, &quick());
        assert!(r.output.starts_with("refused"), "{}", r.output);
    }

    #[test]
    fn writes_go_only_to_its_own_directory_never_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim.txt");
        std::fs::write(&target, "intact").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link.txt")).unwrap();
        let code = format!(
            "import os\nopen('mine.txt', 'w').write('ok')\nfor p in ['link.txt', {:?}, '../escape.txt']:\n    try:\n        open(p, 'w').write('owned')\n        print('wrote', p)\n    except OSError as e:\n        print('refused', p, type(e).__name__)",
            target.display().to_string()
        );
        let r = sandbox()
            .run_python(&["-c", &code], dir.path(), &quick())
            .unwrap();
        assert_eq!(r.ending, Ending::Exited(0), "{}", r.output);
        if sandbox().isolation().landlock.is_none() {
            eprintln!("skipped: no Landlock on this kernel");
            return;
        }
        assert!(!r.output.contains("wrote"), "{}", r.output);
        assert_eq!(r.output.matches("refused").count(), 3, "{}", r.output);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "intact");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("mine.txt")).unwrap(),
            "ok"
        );
    }

    #[test]
    fn cpu_and_file_size_limits_stop_it_with_their_reason() {
        let limits = Limits {
            cpu_secs: 1,
            file_bytes: 1 << 20,
            ..quick()
        };
        let (r, _dir) = run("while True: pass", &limits);
        assert_eq!(r.ending, Ending::Signalled(libc::SIGXCPU), "{}", r.output);
        assert_eq!(
            r.stopped_because(&limits).unwrap(),
            "used more than 1 s of CPU"
        );
        // Python ignores SIGXFSZ, so the write fails with EFBIG instead.
        let (r, _dir) = run("open('big', 'wb').write(b'x' * (2 << 20))", &limits);
        assert_eq!(r.ending, Ending::Exited(1), "{}", r.output);
        assert!(r.output.contains("File too large"), "{}", r.output);
    }
}
