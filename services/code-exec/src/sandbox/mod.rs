//! The sandbox: runs an untrusted program with nothing of the host but read-only system
//! directories, one writable box and the limits it was given.
//!
//! Each run gets fresh mount, PID, network, IPC, UTS and cgroup namespaces; a new root (a
//! small tmpfs) holding read-only binds of the system directories, a size-capped tmpfs box at
//! `/box` (no set-uid, no devices, no symlink following) and `/tmp`, a fresh `/proc` and a
//! minimal `/dev`; a uid of its own (one per slot), no supplementary groups, no new
//! privileges, rlimits, a Landlock ruleset and a seccomp filter; a cgroup capping memory and
//! processes and measuring CPU time; and a wall-clock deadline after which everything in it is
//! killed. The program's environment is the fixed one it is given, nothing of the host's.
//!
//! The supervisor writes the box's files before any untrusted process exists, reads output
//! from pipes only, and after a run never opens, writes or follows any path inside the box:
//! the box is a tmpfs mount that is detached, contents and all.
//!
//! Without root (rootless; only with weaker isolation accepted), each box has a keeper: the
//! first process of a user and mount namespace of the box's own, where the box's tmpfs is
//! mounted; every run of the box enters those two namespaces and makes the others there. The
//! program then runs as the service's own user outside (one uid for every slot) and under
//! rlimits alone (delegated cgroups are not used). The box dies with its keeper.

mod cgroup;
mod child;
mod filter;

use std::{
    ffi::{CString, OsStr},
    fs,
    io::{self, Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::OpenOptionsExt},
    },
    path::{Path, PathBuf},
    sync::{Condvar, Mutex},
    time::{Duration, Instant},
};

use libc::c_int;

/// Where and how runs happen.
#[derive(Debug, Clone)]
pub struct Config {
    /// A directory only root can enter; each slot keeps its mount points here.
    pub work_dir: PathBuf,
    /// Runs at once; each slot has its own uid.
    pub slots: usize,
    /// The uid (and gid) of slot 0; slot n runs as `first_uid + n`.
    pub first_uid: u32,
    /// Host paths made visible read-only at the same place (missing ones are skipped;
    /// symbolic links are recreated as links).
    pub system_paths: Vec<PathBuf>,
    /// Size of the writable box (`/box`) and of `/tmp`, each.
    pub box_bytes: u64,
    /// Accept a host without cgroups, seccomp or Landlock (the missing layers are reported).
    pub allow_weaker_isolation: bool,
}

impl Config {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            work_dir: work_dir.into(),
            slots,
            first_uid: 61_000,
            system_paths: [
                "/usr",
                "/bin",
                "/sbin",
                "/lib",
                "/lib32",
                "/lib64",
                "/libx32",
                "/etc/alternatives",
                "/etc/ld.so.cache",
                "/etc/ld.so.conf",
                "/etc/ld.so.conf.d",
                "/etc/java-17-openjdk",
                "/etc/java-21-openjdk",
                "/etc/localtime",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            box_bytes: 64 << 20,
            allow_weaker_isolation: false,
        }
    }
}

/// The isolation layers in force on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// Mount, PID, network, IPC, UTS and cgroup namespaces with a new root.
    pub namespaces: bool,
    /// "v1" or "v2", or `None` when runs are limited by rlimits alone.
    pub cgroup: Option<&'static str>,
    pub seccomp: bool,
    /// The kernel's Landlock ABI version, when it has Landlock.
    pub landlock_abi: Option<u32>,
    /// Without root: runs are in user namespaces, all as the service's own user outside.
    pub rootless: bool,
}

/// What a run may use.
#[derive(Debug, Clone)]
pub struct Limits {
    /// CPU time of all the run's processes together.
    pub cpu_time: Duration,
    /// Extra CPU time before the run is stopped (it is still over its limit).
    pub cpu_extra_time: Duration,
    pub wall_time: Duration,
    pub memory_bytes: u64,
    pub stack_bytes: u64,
    pub max_processes: u64,
    /// The largest file the program may write.
    pub max_file_bytes: u64,
    /// Bytes kept of stdout and of stderr each; more stops the run.
    pub max_output_bytes: usize,
    /// Where no memory cgroup exists, cap the address space instead (RLIMIT_AS). Right for C
    /// and Python; runtimes that reserve large virtual ranges up front (the JVM, Go) cannot
    /// start under it.
    pub limit_address_space: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu_time: Duration::from_secs(5),
            cpu_extra_time: Duration::from_secs(1),
            wall_time: Duration::from_secs(10),
            memory_bytes: 128 << 20,
            stack_bytes: 64 << 20,
            max_processes: 60,
            max_file_bytes: 1 << 20,
            max_output_bytes: 1 << 20,
            limit_address_space: false,
        }
    }
}

/// One program to run in a box.
#[derive(Debug, Clone)]
pub struct Command {
    /// Absolute path inside the sandbox, then the arguments.
    pub argv: Vec<String>,
    /// The whole environment (nothing is inherited).
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    /// Standard error goes to the same pipe as standard output, interleaved as written.
    pub merge_stderr: bool,
    pub limits: Limits,
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    Signaled(i32),
    /// The file to run is not an executable the kernel accepts (ENOEXEC).
    NotExecutable,
}

/// Which limit stopped the run, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    CpuTime,
    WallTime,
    Memory,
    Output,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub termination: Termination,
    pub limit: Option<LimitHit>,
    pub cpu_time: Duration,
    pub wall_time: Duration,
    /// Peak memory of the run: every process's together with a cgroup. Without one, the
    /// largest process's, when it rose above what the process started with (a copy of the
    /// sandbox's own pages, which the kernel counts in a peak across exec); else unknown.
    pub memory_bytes: Option<u64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The sandbox could not run the program at all (not the program's fault).
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

fn setup_error(what: &str, err: &dyn std::fmt::Display) -> SetupError {
    SetupError(format!("{what}: {err}"))
}

/// Free slots and the callers waiting for one, in arrival order.
struct Slots {
    free: Vec<usize>,
    waiting: std::collections::VecDeque<u64>,
    next_ticket: u64,
}

pub struct Sandbox {
    config: Config,
    layers: Layers,
    cgroups: Option<cgroup::Hierarchy>,
    seccomp: Vec<Vec<seccompiler::sock_filter>>,
    /// Built once; every run applies it.
    landlock: Option<child::Landlock>,
    /// Not root: boxes and runs in user namespaces (see the module's documentation).
    rootless: bool,
    /// The CPUs this process may use: without cgroups, slot n's runs are pinned to the n-th.
    cpus: Vec<usize>,
    slots: Mutex<Slots>,
    freed: Condvar,
}

impl Sandbox {
    /// Prepares the work directory and the cgroups, probes the layers, and runs `/bin/true`
    /// in a box to prove the whole path works. Fails naming what is missing, unless weaker
    /// isolation is accepted (namespaces and a uid per slot are never optional).
    pub fn new(mut config: Config) -> anyhow::Result<Self> {
        // SAFETY: geteuid has no preconditions.
        let rootless = unsafe { libc::geteuid() } != 0;
        if rootless && !config.allow_weaker_isolation {
            anyhow::bail!(
                "the sandbox runs as root (it makes namespaces, mounts and cgroups, and runs \
                 programs as uids of their own); without root it runs programs in user \
                 namespaces, as this service's own user and without cgroups, only when weaker \
                 isolation is accepted (code_exec.allow_weaker_isolation = true)"
            );
        }
        anyhow::ensure!(config.slots > 0, "the sandbox needs at least one slot");
        fs::create_dir_all(&config.work_dir)?;
        // Absolute: a run that enters a box's namespaces starts at their root, not here.
        config.work_dir = fs::canonicalize(&config.work_dir)?;
        fs::set_permissions(
            &config.work_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        for slot in 0..config.slots {
            let dir = config.work_dir.join(format!("slot-{slot}"));
            // A box left mounted by a supervisor that died mid-run.
            let _ = detach(&dir.join("box"));
            for sub in ["root", "box"] {
                fs::create_dir_all(dir.join(sub))?;
            }
        }
        // Cgroups need root (delegated cgroups are not used).
        let cgroups = match rootless {
            true => None,
            false => cgroup::Hierarchy::detect(),
        };
        let mut seccomp = filter::seccomp().unwrap_or_default();
        if cgroups.is_none() && !seccomp.is_empty() {
            seccomp.push(filter::without_cgroup()?);
        }
        let landlock_abi = filter::landlock_abi();
        let layers = Layers {
            namespaces: true,
            cgroup: cgroups.as_ref().map(cgroup::Hierarchy::version),
            seccomp: !seccomp.is_empty(),
            landlock_abi,
            rootless,
        };
        let missing: Vec<&str> = [
            (layers.cgroup.is_none(), "cgroups (memory, pids, cpuacct)"),
            (!layers.seccomp, "seccomp"),
            (layers.landlock_abi.is_none(), "Landlock"),
            (rootless, "a uid per slot (not root)"),
        ]
        .into_iter()
        .filter_map(|(missing, name)| missing.then_some(name))
        .collect();
        if rootless && (!layers.seccomp || layers.landlock_abi.is_none()) {
            // Rootless, a program is the service's own user outside: the filter (no new user
            // namespaces) and Landlock (no other files) are not optional.
            anyhow::bail!(
                "without root the sandbox needs seccomp and Landlock, and this host lacks {}",
                missing.join(", ")
            );
        }
        if !missing.is_empty() && !config.allow_weaker_isolation {
            anyhow::bail!(
                "this host lacks {}; the sandbox refuses to run with weaker isolation unless \
                 configured to accept it",
                missing.join(", ")
            );
        }
        let sandbox = Self {
            slots: Mutex::new(Slots {
                free: (0..config.slots).rev().collect(),
                waiting: std::collections::VecDeque::new(),
                next_ticket: 0,
            }),
            freed: Condvar::new(),
            landlock: layers
                .landlock_abi
                .map(|abi| filter::landlock(abi, &config.system_paths)),
            config,
            layers,
            cgroups,
            seccomp,
            rootless,
            cpus: allowed_cpus(),
        };
        let probe = sandbox.open(&[])?.run(&Command {
            argv: vec!["/bin/true".into()],
            env: vec![],
            stdin: vec![],
            merge_stderr: false,
            limits: Limits::default(),
        })?;
        anyhow::ensure!(
            probe.termination == Termination::Exited(0),
            "the sandbox's probe (/bin/true) ended {:?}: {}",
            probe.termination,
            String::from_utf8_lossy(&probe.stderr)
        );
        Ok(sandbox)
    }

    pub fn layers(&self) -> &Layers {
        &self.layers
    }

    pub fn slots(&self) -> usize {
        self.config.slots
    }

    /// Takes a free slot (waiting for one) and fills a fresh box with `files` (name, content;
    /// plain names only), before any untrusted process can see it.
    pub fn open(&self, files: &[(&str, &[u8])]) -> anyhow::Result<OpenBox<'_>> {
        for (name, _) in files {
            anyhow::ensure!(
                !name.is_empty()
                    && *name != "."
                    && *name != ".."
                    && !name.contains('/')
                    && !name.contains('\0'),
                "file name {name:?} is not a plain name"
            );
        }
        // First come, first served: a caller that has just freed a slot does not take it
        // back ahead of those already waiting.
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let ticket = slots.next_ticket;
            slots.next_ticket += 1;
            slots.waiting.push_back(ticket);
            loop {
                if slots.waiting.front() == Some(&ticket)
                    && let Some(slot) = slots.free.pop()
                {
                    slots.waiting.pop_front();
                    // The next in line may find a slot free too.
                    self.freed.notify_all();
                    break slot;
                }
                slots = self.freed.wait(slots).unwrap_or_else(|e| e.into_inner());
            }
        };
        let dir = self.config.work_dir.join(format!("slot-{slot}"));
        let mut mounted = OpenBox {
            sandbox: self,
            slot,
            dir: dir.clone(),
            runs: 0,
            keeper: None,
        };
        let box_dir = dir.join("box");
        if self.rootless {
            let keeper = Keeper::start(self, &box_dir, self.uid(slot))?;
            // The keeper's working directory is its fresh box, empty until these files.
            let inside = PathBuf::from(format!("/proc/{}/cwd", keeper.process.pid));
            mounted.keeper = Some(keeper);
            write_files(&inside, files)?;
            return Ok(mounted);
        }
        let options = CString::new(format!(
            "size={},nr_inodes={INODES},mode=0700,uid={uid},gid={uid}",
            self.config.box_bytes,
            uid = self.uid(slot)
        ))?;
        let target = cstring(&box_dir)?;
        // SAFETY: plain mount(2) with valid C strings.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr() as *const libc::c_void,
            )
        };
        if rc < 0 {
            anyhow::bail!(
                "cannot mount the box at {}: {}",
                box_dir.display(),
                io::Error::last_os_error()
            );
        }
        write_files(&box_dir, files)?;
        Ok(mounted)
    }

    fn uid(&self, slot: usize) -> u32 {
        self.config.first_uid + slot as u32
    }
}

/// Writes `files` into a fresh, empty box.
fn write_files(box_dir: &Path, files: &[(&str, &[u8])]) -> anyhow::Result<()> {
    for (name, content) in files {
        // A fresh tmpfs holds nothing yet; O_EXCL | O_NOFOLLOW make sure of it anyway.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(box_dir.join(name))?;
        file.write_all(content)?;
    }
    Ok(())
}

/// Without root, the process holding a box's user and mount namespaces (see
/// `child::keeper`); killed and reaped when dropped, which unmounts the box with its namespace.
struct Keeper {
    process: InitGuard,
    userns: OwnedFd,
    mntns: OwnedFd,
}

impl Keeper {
    fn start(sandbox: &Sandbox, box_dir: &Path, uid: u32) -> anyhow::Result<Keeper> {
        let (go_r, go_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        let mut keep = vec![go_r.as_raw_fd(), ready_w.as_raw_fd()];
        keep.sort_unstable();
        let plan = child::KeeperPlan {
            keep,
            go: go_r.as_raw_fd(),
            ready: ready_w.as_raw_fd(),
            box_dir: cstring(box_dir)?,
            options: CString::new(format!(
                "size={},nr_inodes={INODES},mode=0700,uid={uid},gid={uid}",
                sandbox.config.box_bytes
            ))?,
        };
        let mut stack = vec![0u8; 64 << 10];
        // SAFETY: as for the init in `run_in`: the keeper runs `child::keeper` on its own copy
        // of memory and only makes raw system calls; it is killed and reaped by `Drop`.
        let pid = unsafe {
            let top = stack.as_mut_ptr().add(stack.len());
            let top = top.sub(top as usize % 16);
            libc::clone(
                child::keeper,
                top as *mut libc::c_void,
                libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::SIGCHLD,
                &plan as *const child::KeeperPlan as *mut libc::c_void,
            )
        };
        if pid < 0 {
            anyhow::bail!(
                "cannot create a user namespace for the box: {}",
                io::Error::last_os_error()
            );
        }
        drop((go_r, ready_w));
        // Killed and reaped on any failure below, or when the box is dropped.
        let process = InitGuard { pid, reaped: false };
        let opened = (|| -> anyhow::Result<(OwnedFd, OwnedFd)> {
            // The box's user is `uid` inside, this service's user outside (one id of each, as
            // an unprivileged process may map).
            // SAFETY: geteuid and getegid have no preconditions.
            let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
            let proc = PathBuf::from(format!("/proc/{pid}"));
            fs::write(proc.join("setgroups"), "deny")?;
            fs::write(proc.join("uid_map"), format!("{uid} {euid} 1"))?;
            fs::write(proc.join("gid_map"), format!("{uid} {egid} 1"))?;
            drop(go_w);
            let mut report = [0u8; 8];
            let n = fs::File::from(ready_r).read(&mut report)?;
            if n != 1 {
                let stage = i32::from_ne_bytes(report[..4].try_into().unwrap_or_default());
                let errno = i32::from_ne_bytes(report[4..].try_into().unwrap_or_default());
                anyhow::bail!(
                    "cannot mount the box in its namespace (step {stage}): {}",
                    io::Error::from_raw_os_error(errno)
                );
            }
            Ok((
                fs::File::open(proc.join("ns/user"))?.into(),
                fs::File::open(proc.join("ns/mnt"))?.into(),
            ))
        })();
        drop(stack);
        let (userns, mntns) = opened?;
        Ok(Keeper {
            process,
            userns,
            mntns,
        })
    }
}

/// A slot with its box mounted; runs share the box (a compiler's output, then the program).
/// Dropping it detaches the box and frees the slot.
pub struct OpenBox<'a> {
    sandbox: &'a Sandbox,
    slot: usize,
    dir: PathBuf,
    runs: u32,
    /// Without root: the box's keeper, whose namespaces hold the box.
    keeper: Option<Keeper>,
}

impl Drop for OpenBox<'_> {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            // The box goes with its keeper's mount namespace.
            drop(keeper);
            let mut slots = self.sandbox.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.free.push(self.slot);
            self.sandbox.freed.notify_all();
            return;
        }
        if let Err(err) = detach(&self.dir.join("box")) {
            // The slot stays out of use rather than hand a used box to the next run.
            tracing::error!(slot = self.slot, error = %err, "code-exec: cannot detach a box; its slot stays out of use");
            return;
        }
        let mut slots = self.sandbox.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.free.push(self.slot);
        self.sandbox.freed.notify_all();
    }
}

impl OpenBox<'_> {
    /// Runs `command` in this box and waits for it (blocking: call it off the async runtime).
    pub fn run(&mut self, command: &Command) -> Result<Outcome, SetupError> {
        self.runs += 1;
        let sandbox = self.sandbox;
        let limits = &command.limits;
        let name = format!(
            "slot-{}-{}-{}",
            self.slot,
            std::process::id(),
            RUN_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let cgroup = match &sandbox.cgroups {
            Some(h) => Some(
                h.create(&name, limits.memory_bytes, limits.max_processes)
                    .map_err(|e| setup_error("cannot create the run's cgroup", &e))?,
            ),
            None => None,
        };
        let result = self.run_in(command, cgroup.as_ref());
        if let Some(cgroup) = cgroup {
            cgroup.remove();
        }
        result
    }

    fn run_in(
        &self,
        command: &Command,
        cgroup: Option<&cgroup::Run>,
    ) -> Result<Outcome, SetupError> {
        let limits = &command.limits;
        let (stdin_r, stdin_w) = pipe().map_err(|e| setup_error("pipe", &e))?;
        let (stdout_r, stdout_w) = pipe().map_err(|e| setup_error("pipe", &e))?;
        let (stderr_r, stderr_w) = pipe().map_err(|e| setup_error("pipe", &e))?;
        let (error_r, error_w) = pipe().map_err(|e| setup_error("pipe", &e))?;
        let (status_r, status_w) = pipe().map_err(|e| setup_error("pipe", &e))?;
        let procs = match cgroup {
            Some(c) => c
                .procs_files()
                .map_err(|e| setup_error("cannot open the run's cgroup", &e))?,
            None => vec![],
        };
        let plan_data = PlanData::new(self.sandbox, &self.dir, command)
            .map_err(|e| setup_error("cannot prepare the run", &e))?;
        let argv = pointers(&plan_data.argv);
        let envp = pointers(&plan_data.envp);
        let cgroup_procs: Vec<c_int> = procs.iter().map(AsRawFd::as_raw_fd).collect();
        let (init_pid_r, init_pid_w) = pipe().map_err(|e| setup_error("pipe", &e))?;
        let enter = self.keeper.as_ref().map(|k| child::Enter {
            userns: k.userns.as_raw_fd(),
            mntns: k.mntns.as_raw_fd(),
            init_pid: init_pid_w.as_raw_fd(),
        });
        let entered: Vec<c_int> = enter
            .as_ref()
            .map(|e| vec![e.userns, e.mntns, e.init_pid])
            .unwrap_or_default();
        let mut keep: Vec<c_int> = [
            stdin_r.as_raw_fd(),
            stdout_w.as_raw_fd(),
            stderr_w.as_raw_fd(),
            error_w.as_raw_fd(),
            status_w.as_raw_fd(),
        ]
        .into_iter()
        .chain(cgroup_procs.iter().copied())
        .chain(entered)
        .collect();
        keep.sort_unstable();
        keep.dedup();
        let plan = child::Plan {
            keep,
            set_groups: enter.is_none(),
            enter,
            cpu: match cgroup {
                Some(_) => None,
                None => self
                    .sandbox
                    .cpus
                    .get(self.slot % self.sandbox.cpus.len().max(1))
                    .copied(),
            },
            root: plan_data.root,
            ops: plan_data.ops,
            cgroup_procs,
            hostname: c"box".to_owned(),
            workdir: c"/box".to_owned(),
            uid: self.sandbox.uid(self.slot),
            rlimits: rlimits(limits, cgroup.is_some()),
            seccomp: self.sandbox.seccomp.clone(),
            landlock: self.sandbox.landlock.clone(),
            exe: plan_data.argv[0].clone(),
            argv,
            envp,
            fds: child::Fds {
                stdin: stdin_r.as_raw_fd(),
                stdout: stdout_w.as_raw_fd(),
                stderr: if command.merge_stderr {
                    stdout_w.as_raw_fd()
                } else {
                    stderr_w.as_raw_fd()
                },
                error: error_w.as_raw_fd(),
                status: status_w.as_raw_fd(),
            },
        };
        let mut stack = vec![0u8; 256 << 10];
        // The cgroup namespace comes later, from the init, once it is in the run's cgroup.
        let flags = libc::CLONE_NEWNS
            | libc::CLONE_NEWPID
            | libc::CLONE_NEWNET
            | libc::CLONE_NEWIPC
            | libc::CLONE_NEWUTS;
        let started = Instant::now();
        // Without root, a first process enters the keeper's namespaces, makes the others
        // there and starts the init as this process's child (see `child::enter`).
        let (entry, flags): (extern "C" fn(*mut libc::c_void) -> c_int, c_int) = match plan.enter {
            Some(_) => (child::enter, 0),
            None => (child::init, flags),
        };
        // SAFETY: the child runs `child::init` (or `child::enter`) on its own copy of memory
        // and only makes raw system calls (see `child`); `plan` and `stack` outlive it (it is
        // reaped below).
        let first = unsafe {
            let top = stack.as_mut_ptr().add(stack.len());
            let top = top.sub(top as usize % 16);
            libc::clone(
                entry,
                top as *mut libc::c_void,
                flags | libc::SIGCHLD,
                &plan as *const child::Plan as *mut libc::c_void,
            )
        };
        if first < 0 {
            return Err(setup_error(
                "cannot create the namespaces",
                &io::Error::last_os_error(),
            ));
        }
        drop(init_pid_w);
        let init = match plan.enter {
            None => first,
            Some(_) => {
                // SAFETY: our own child, which exits once the init is started.
                while unsafe { libc::waitpid(first, std::ptr::null_mut(), 0) } < 0
                    && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
                {
                }
                let mut pid = [0u8; 4];
                match fs::File::from(init_pid_r).read(&mut pid) {
                    Ok(4) => libc::pid_t::from_ne_bytes(pid),
                    _ => {
                        // Its report, if it made one: never waited for (this process holds
                        // the pipe's other end). An init it started before it died unreported
                        // (killed between two system calls) is not found: it runs to its
                        // program's end under its rlimits.
                        let mut report = [0u8; 8];
                        // SAFETY: fcntl(2) and read(2) on our own pipe, into a buffer of that
                        // size.
                        unsafe {
                            libc::fcntl(error_r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
                            libc::read(
                                error_r.as_raw_fd(),
                                report.as_mut_ptr() as *mut libc::c_void,
                                report.len(),
                            )
                        };
                        let errno = i32::from_ne_bytes(report[4..].try_into().unwrap_or_default());
                        return Err(setup_error(
                            "cannot enter the box's namespaces",
                            &io::Error::from_raw_os_error(errno),
                        ));
                    }
                }
            }
        };
        // From here on the init is killed and reaped whatever happens, a panic included.
        let mut guard = InitGuard {
            pid: init,
            reaped: false,
        };
        drop((stdin_r, stdout_w, stderr_w, error_w, status_w, procs));

        let input = command.stdin.clone();
        let feeder = std::thread::Builder::new()
            .name("code-exec-stdin".into())
            .spawn(move || {
                let mut stdin = fs::File::from(stdin_w);
                // The program may exit without reading: a broken pipe is its choice.
                let _ = stdin.write_all(&input);
            })
            .map_err(|e| setup_error("cannot start the input feeder", &e))?;
        let watched = watch(init, [stdout_r, stderr_r], started, limits, cgroup);
        guard.reaped = true;
        let usage = watched.usage;
        let wall_time = started.elapsed();
        let _ = feeder.join();
        drop(stack);

        let mut report = [0u8; 8];
        let mut error = fs::File::from(error_r);
        if let Ok(8) = error.read(&mut report) {
            let stage = i32::from_ne_bytes(report[..4].try_into().unwrap_or_default());
            let errno = i32::from_ne_bytes(report[4..].try_into().unwrap_or_default());
            let stage = child::STAGES
                .get(stage as usize)
                .copied()
                .unwrap_or("set up");
            if stage == "exec the program"
                && [
                    libc::ENOEXEC,
                    libc::ENOENT,
                    libc::ELOOP,
                    libc::EACCES,
                    libc::ENOTDIR,
                ]
                .contains(&errno)
            {
                // The program's own doing (a file that is not an executable, or none where a
                // compiler was told not to write one): Judge0's "Exec Format Error", never an
                // internal error a submitter could cause at will.
                return Ok(Outcome {
                    termination: Termination::NotExecutable,
                    limit: None,
                    cpu_time: Duration::ZERO,
                    wall_time,
                    memory_bytes: None,
                    stdout: vec![],
                    stderr: vec![],
                });
            }
            return Err(SetupError(format!(
                "cannot {stage}: {}",
                io::Error::from_raw_os_error(errno)
            )));
        }
        let mut program = [0u8; 24];
        let read = fs::File::from(status_r).read(&mut program);
        let field =
            |i: usize| i64::from_ne_bytes(program[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let (program_status, program_peak_kb) = match read {
            Ok(24) => {
                // The program's peak, and what its process started with before exec (both
                // approximate: the kernel counts resident pages lazily, so a margin of 1 MiB).
                let (peak, start) = (field(1).max(0) as u64, field(2).max(0) as u64);
                (
                    Some(field(0) as c_int),
                    (peak > start + 1024).then_some(peak),
                )
            }
            _ => (None, None),
        };
        let termination = match program_status {
            Some(s) if libc::WIFEXITED(s) => Termination::Exited(libc::WEXITSTATUS(s)),
            Some(s) if libc::WIFSIGNALED(s) => Termination::Signaled(libc::WTERMSIG(s)),
            // Killed (by the deadline or a limit) before the init could report.
            _ => Termination::Signaled(libc::SIGKILL),
        };
        let rusage_cpu = duration(usage.ru_utime) + duration(usage.ru_stime);
        let cpu_time = cgroup
            .and_then(cgroup::Run::cpu_time)
            .unwrap_or(rusage_cpu)
            .max(rusage_cpu);
        // Without a cgroup, the program's own peak where it is known (see `Outcome`).
        // (A cgroup without a peak, v2 before Linux 5.19, falls back to the same.)
        let memory_bytes = cgroup
            .and_then(cgroup::Run::memory_peak)
            .or(program_peak_kb.map(|kb| kb * 1024));
        let mut limit = watched.limit;
        if limit.is_none() {
            let cpu_limit = limits.cpu_time;
            limit = if cpu_time > cpu_limit || termination == Termination::Signaled(libc::SIGXCPU) {
                Some(LimitHit::CpuTime)
            } else if cgroup.is_some_and(cgroup::Run::memory_limit_hit)
                && termination != Termination::Exited(0)
            {
                Some(LimitHit::Memory)
            } else {
                None
            };
        }
        Ok(Outcome {
            termination,
            limit,
            cpu_time,
            wall_time,
            memory_bytes,
            stdout: watched.stdout,
            stderr: watched.stderr,
        })
    }
}

static RUN_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Kills and reaps a run's init unless the watch reaped it (an early return or a panic must
/// not leave a program running unsupervised); a box's keeper too, when the box is dropped.
struct InitGuard {
    pid: libc::pid_t,
    reaped: bool,
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        if !self.reaped {
            // SAFETY: our own unreaped child: kill(2) and waitpid(2) on it.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

struct Watched {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    limit: Option<LimitHit>,
    /// The init's resource usage (its own and that of the processes it reaped).
    usage: libc::rusage,
}

/// Reads the program's output until the run is over (its init reaped, both streams closed),
/// stopping it (SIGKILL to its init: the kernel then kills every process in its namespace) at
/// the wall-clock deadline, past its CPU time plus the extra, or when it writes more than it
/// may. A program that closes its output and sleeps is still under the deadline.
fn watch(
    init: libc::pid_t,
    streams: [OwnedFd; 2],
    started: Instant,
    limits: &Limits,
    cgroup: Option<&cgroup::Run>,
) -> Watched {
    let mut out = [Vec::new(), Vec::new()];
    let mut open = [true, true];
    let mut limit = None;
    let mut buf = vec![0u8; 64 << 10];
    let stop_cpu = limits.cpu_time + limits.cpu_extra_time;
    let kill = |why: LimitHit, limit: &mut Option<LimitHit>, running: bool| {
        if limit.is_none() {
            *limit = Some(why);
            if running {
                // SAFETY: kill(2) on the init we created and have not reaped yet (a reaped
                // pid could already be someone else's).
                unsafe { libc::kill(init, libc::SIGKILL) };
            }
        }
    };
    // SAFETY: rusage is plain data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut running = true;
    // Once the init is reaped every process of the run is gone and the pipes close at once;
    // the drain is bounded all the same.
    let mut drain_until: Option<Instant> = None;
    // Readable once the init has exited: the loop wakes at once instead of at its next tick.
    // SAFETY: pidfd_open on our own unreaped child; the descriptor is owned below.
    let exited = unsafe { libc::syscall(libc::SYS_pidfd_open, init, 0) } as c_int;
    // SAFETY: a descriptor just returned to us (or none).
    let exited = (exited >= 0).then(|| unsafe { OwnedFd::from_raw_fd(exited) });
    while running || open[0] || open[1] {
        if running {
            let mut status: c_int = 0;
            // SAFETY: reaps the init we created, if it has ended.
            let reaped = unsafe { libc::wait4(init, &mut status, libc::WNOHANG, &mut usage) };
            running = reaped == 0
                || (reaped < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted);
        }
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .zip(open)
            .filter(|(_, open)| *open)
            .map(|(fd, _)| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if running && let Some(exited) = &exited {
            fds.push(libc::pollfd {
                fd: exited.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of pollfd for its length (none: a plain 20 ms wait).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as _, 20) };
        if ready > 0 {
            for pfd in &fds {
                if pfd.revents == 0 || exited.as_ref().is_some_and(|e| e.as_raw_fd() == pfd.fd) {
                    continue;
                }
                let i = streams
                    .iter()
                    .position(|s| s.as_raw_fd() == pfd.fd)
                    .unwrap_or(0);
                // SAFETY: reading into our own buffer from our own pipe.
                let n =
                    unsafe { libc::read(pfd.fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
                if n <= 0 {
                    if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                        open[i] = false;
                    }
                    continue;
                }
                let n = n as usize;
                let room = limits.max_output_bytes.saturating_sub(out[i].len());
                out[i].extend_from_slice(&buf[..n.min(room)]);
                if n > room {
                    kill(LimitHit::Output, &mut limit, running);
                }
            }
        }
        if !running {
            let until = *drain_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(1));
            if Instant::now() > until {
                break;
            }
            continue;
        }
        if started.elapsed() > limits.wall_time {
            kill(LimitHit::WallTime, &mut limit, running);
        }
        if cgroup
            .and_then(cgroup::Run::cpu_time)
            .is_some_and(|used| used > stop_cpu)
        {
            kill(LimitHit::CpuTime, &mut limit, running);
        }
    }
    let [stdout, stderr] = out;
    Watched {
        stdout,
        stderr,
        limit,
        usage,
    }
}

/// Everything the child needs that must be allocated before the clone.
struct PlanData {
    root: CString,
    ops: Vec<child::Op>,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

impl PlanData {
    fn new(sandbox: &Sandbox, dir: &Path, command: &Command) -> io::Result<Self> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        if command.argv.is_empty() || !command.argv[0].starts_with('/') {
            return Err(invalid("the program must be an absolute path"));
        }
        let root = dir.join("root");
        let inside = |path: &Path| -> io::Result<CString> {
            cstring(&root.join(path.strip_prefix("/").unwrap_or(path)))
        };
        let mut ops = Vec::new();
        let mut made = std::collections::BTreeSet::new();
        let mut mkdirs = |path: &Path, ops: &mut Vec<child::Op>| -> io::Result<()> {
            let mut partial = PathBuf::from("/");
            for part in path.components().skip(1) {
                partial.push(part);
                if made.insert(partial.clone()) {
                    ops.push(child::Op::Mkdir(inside(&partial)?));
                }
            }
            Ok(())
        };
        let read_only = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
        for path in &sandbox.config.system_paths {
            let Ok(meta) = fs::symlink_metadata(path) else {
                continue;
            };
            if let Some(parent) = path.parent() {
                mkdirs(parent, &mut ops)?;
            }
            if meta.file_type().is_symlink() {
                ops.push(child::Op::Symlink {
                    target: cstring(&fs::read_link(path)?)?,
                    path: inside(path)?,
                });
                continue;
            }
            if meta.is_dir() {
                mkdirs(path, &mut ops)?;
            } else {
                ops.push(child::Op::Touch(inside(path)?));
            }
            ops.push(child::Op::Bind {
                src: cstring(path)?,
                dst: inside(path)?,
                flags: read_only,
            });
        }
        mkdirs(Path::new("/box"), &mut ops)?;
        ops.push(child::Op::Bind {
            src: cstring(&dir.join("box"))?,
            dst: inside(Path::new("/box"))?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | MS_NOSYMFOLLOW,
        });
        mkdirs(Path::new("/tmp"), &mut ops)?;
        ops.push(child::Op::Mount {
            fstype: c"tmpfs".to_owned(),
            dst: inside(Path::new("/tmp"))?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | MS_NOSYMFOLLOW,
            data: CString::new(format!(
                "size={},nr_inodes={INODES},mode=1777",
                sandbox.config.box_bytes
            ))?,
        });
        mkdirs(Path::new("/proc"), &mut ops)?;
        ops.push(child::Op::Mount {
            fstype: c"proc".to_owned(),
            dst: inside(Path::new("/proc"))?,
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: c"hidepid=2".to_owned(),
        });
        mkdirs(Path::new("/dev"), &mut ops)?;
        ops.push(child::Op::Mount {
            fstype: c"tmpfs".to_owned(),
            dst: inside(Path::new("/dev"))?,
            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
            data: c"size=64k,mode=0755".to_owned(),
        });
        for device in ["null", "zero", "random", "urandom"] {
            if device == "zero" && sandbox.cgroups.is_none() {
                // A shared mapping of it is memory no rlimit counts (see
                // `filter::without_cgroup`).
                continue;
            }
            let path = Path::new("/dev").join(device);
            ops.push(child::Op::Touch(inside(&path)?));
            ops.push(child::Op::Bind {
                src: cstring(&path)?,
                dst: inside(&path)?,
                flags: libc::MS_NOSUID | libc::MS_NOEXEC,
            });
        }
        let argv = command
            .argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("an argument holds a NUL byte"))?;
        let envp = command
            .env
            .iter()
            .map(|(k, v)| CString::new(format!("{k}={v}")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("an environment variable holds a NUL byte"))?;
        Ok(Self {
            root: cstring(&root)?,
            ops,
            argv,
            envp,
        })
    }
}

/// Files a run may make in the box and in `/tmp`, each: inodes are kernel memory that only a
/// memory cgroup would charge, and a tmpfs's default count grows with the host's memory.
const INODES: u32 = 16 * 1024;

/// MS_NOSYMFOLLOW (Linux 5.10): symbolic links on the mount are not followed.
const MS_NOSYMFOLLOW: libc::c_ulong = 256;

fn rlimits(limits: &Limits, cgroup: bool) -> Vec<(c_int, libc::rlimit)> {
    let both = |n: u64| libc::rlimit {
        rlim_cur: n,
        rlim_max: n,
    };
    let cpu = (limits.cpu_time + limits.cpu_extra_time)
        .as_secs_f64()
        .ceil() as u64;
    let mut out = vec![
        // SIGXCPU at the soft limit, SIGKILL a second later.
        (
            libc::RLIMIT_CPU as c_int,
            libc::rlimit {
                rlim_cur: cpu.max(1),
                rlim_max: cpu.max(1) + 1,
            },
        ),
        (libc::RLIMIT_FSIZE as c_int, both(limits.max_file_bytes)),
        (libc::RLIMIT_STACK as c_int, both(limits.stack_bytes)),
        (libc::RLIMIT_CORE as c_int, both(0)),
        (libc::RLIMIT_NOFILE as c_int, both(64)),
    ];
    if !cgroup {
        // Without a pids cgroup, the count per uid: a slot's uid is its runs' alone in this
        // process (another sandbox on the host with the same uids would share the count;
        // rootless, the count is per box, whose user namespace is its own).
        out.push((libc::RLIMIT_NPROC as c_int, both(limits.max_processes)));
        // Queued signals and POSIX message queues count per user (rootless, the service's
        // own user's, host-wide): next to none.
        out.push((libc::RLIMIT_SIGPENDING as c_int, both(64)));
        out.push((libc::RLIMIT_MSGQUEUE as c_int, both(0)));
        // Locked memory no rlimit on data or address space counts.
        out.push((libc::RLIMIT_MEMLOCK as c_int, both(64 << 10)));
        // Without a memory cgroup, each process's memory instead: its address space for the
        // languages that bear it, else its data (heap, stacks, private writable mappings) at
        // four times the limit: the JVM, Go and Node.js map more than they use (Node.js hangs
        // at start under twice 128 MB).
        if limits.limit_address_space {
            out.push((libc::RLIMIT_AS as c_int, both(limits.memory_bytes)));
        } else {
            out.push((
                libc::RLIMIT_DATA as c_int,
                both(limits.memory_bytes.saturating_mul(DATA_FACTOR)),
            ));
        }
    }
    out
}

/// Without a memory cgroup, a process of a language not held to its address space may have
/// this many times the memory limit in data.
pub const DATA_FACTOR: u64 = 4;

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity(2) into a zeroed set of its size; CPU_ISSET reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) < 0 {
            return vec![];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| libc::CPU_ISSET(*cpu, &set))
            .collect()
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 fills `fds` with two new descriptors we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by no one else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(OsStr::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))
}

fn duration(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// Detaches the mount at `path` (its contents go with it); not mounted is fine.
fn detach(path: &Path) -> io::Result<()> {
    let target = cstring(path)?;
    // SAFETY: umount2 with a valid C string.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    Ok(())
}
