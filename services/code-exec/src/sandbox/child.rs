//! What runs between clone and exec. The supervisor is multi-threaded, so its cloned children
//! may only make raw system calls: everything they use (paths, argument vectors, the seccomp
//! program, the Landlock rules) is built into a [`Plan`] before the clone, and nothing here
//! allocates, locks or unwinds. A failure is reported as (stage, errno) on a pipe.
//!
//! Two processes run inside the namespaces: the init (pid 1), which builds the new root,
//! starts the program and waits for it, and the program itself (pid 2), which drops to the
//! run's uid, takes its limits and filters, and execs. When the program exits the init
//! reports its wait status and exits, and the kernel kills whatever the program left behind.

use std::ffi::CString;

use libc::{c_char, c_int, c_ulong, c_void};

/// One step of building the new root (paths are the host's view of it, before pivot_root).
pub enum Op {
    Mkdir(CString),
    Symlink {
        target: CString,
        path: CString,
    },
    Touch(CString),
    Bind {
        src: CString,
        dst: CString,
        flags: c_ulong,
    },
    Mount {
        fstype: CString,
        dst: CString,
        flags: c_ulong,
        data: CString,
    },
}

/// A Landlock rule: a path inside the sandbox and the access granted beneath it.
#[derive(Clone)]
pub struct Rule {
    pub path: CString,
    pub access: u64,
}

#[derive(Clone)]
pub struct Landlock {
    pub abi: u32,
    pub handled_fs: u64,
    pub handled_net: u64,
    pub scoped: u64,
    pub rules: Vec<Rule>,
}

/// The pipes' ends used inside the sandbox.
pub struct Fds {
    pub stdin: c_int,
    pub stdout: c_int,
    pub stderr: c_int,
    /// (stage, errno) of a failed setup step; closed by a successful exec.
    pub error: c_int,
    /// The program's wait status and peak resident size, written by the init.
    pub status: c_int,
}

/// Without root: the user and mount namespaces of the box's keeper (see [`keeper`]), which a
/// run enters before it makes its other namespaces, and where the run's init pid is reported.
pub struct Enter {
    pub userns: c_int,
    pub mntns: c_int,
    pub init_pid: c_int,
}

pub struct Plan {
    /// Descriptors the init keeps (sorted): the pipes and the cgroup files. Everything else
    /// the supervisor had open (its sockets, its stores, other runs' pipes) is closed first.
    pub keep: Vec<c_int>,
    /// Without root: the namespaces to enter first (see [`enter`]).
    pub enter: Option<Enter>,
    /// Whether the program's supplementary groups are cleared (not possible, and not needed,
    /// in a user namespace that maps one group).
    pub set_groups: bool,
    /// The one CPU the program may run on, where no cgroup caps its CPU bandwidth.
    pub cpu: Option<usize>,
    pub root: CString,
    pub ops: Vec<Op>,
    pub cgroup_procs: Vec<c_int>,
    pub hostname: CString,
    pub workdir: CString,
    pub uid: u32,
    pub rlimits: Vec<(c_int, libc::rlimit)>,
    pub seccomp: Vec<Vec<seccompiler::sock_filter>>,
    pub landlock: Option<Landlock>,
    pub exe: CString,
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub fds: Fds,
}

/// Setup stages, as reported on the error pipe.
pub const STAGES: &[&str] = &[
    "join the run's cgroup",
    "make mounts private",
    "mount the new root",
    "build the new root",
    "pivot into the new root",
    "set the hostname",
    "create the Landlock ruleset",
    "start the program",
    "redirect standard streams",
    "set resource limits",
    "drop to the run's user",
    "forbid new privileges",
    "apply Landlock",
    "apply the seccomp filter",
    "exec the program",
    "enter the box's namespaces",
];

/// Entry point of the init (pid 1 of the new namespaces), called by clone(2).
pub extern "C" fn init(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Plan` the supervisor keeps alive until this process is reaped.
    let plan = unsafe { &*(arg as *const Plan) };
    unsafe { init_inner(plan) }
}

/// Writes (stage, errno) to the error pipe and exits.
unsafe fn fail(plan: &Plan, stage: usize) -> ! {
    unsafe {
        let errno = *libc::__errno_location();
        let report: [i32; 2] = [stage as i32, errno];
        libc::write(
            plan.fds.error,
            report.as_ptr() as *const c_void,
            std::mem::size_of_val(&report),
        );
        libc::_exit(127)
    }
}

macro_rules! check {
    ($plan:expr, $stage:expr, $call:expr) => {
        if $call < 0 {
            fail($plan, $stage);
        }
    };
}

const STAGE_ENTER: usize = 15;

/// Without root, the entry point of a run's first process (a plain child of the supervisor):
/// joins the keeper's user namespace (where it has every capability) and mount namespace
/// (where the box is mounted), makes the run's own mount, PID, network, IPC and UTS
/// namespaces there, and starts the init as the supervisor's own child (CLONE_PARENT), whose
/// pid it reports before it exits.
pub extern "C" fn enter(arg: *mut c_void) -> c_int {
    // SAFETY: as for `init`.
    let plan = unsafe { &*(arg as *const Plan) };
    unsafe {
        let Some(enter) = &plan.enter else {
            libc::_exit(1)
        };
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        check!(
            plan,
            STAGE_ENTER,
            libc::setns(enter.userns, libc::CLONE_NEWUSER)
        );
        check!(
            plan,
            STAGE_ENTER,
            libc::setns(enter.mntns, libc::CLONE_NEWNS)
        );
        check!(
            plan,
            STAGE_ENTER,
            libc::unshare(
                libc::CLONE_NEWNS
                    | libc::CLONE_NEWPID
                    | libc::CLONE_NEWNET
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWUTS
            )
        );
        // Raw, as in `init_inner`; the init is pid 1 of the new PID namespace.
        let init = libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_long,
            0,
            0,
            0,
            0,
        ) as libc::pid_t;
        check!(plan, STAGE_ENTER, init);
        if init == 0 {
            for fd in [enter.userns, enter.mntns, enter.init_pid] {
                libc::close(fd);
            }
            libc::_exit(init_inner(plan));
        }
        libc::write(
            enter.init_pid,
            &init as *const libc::pid_t as *const c_void,
            std::mem::size_of::<libc::pid_t>(),
        );
        libc::_exit(0)
    }
}

/// What a box's keeper needs (see [`keeper`]).
pub struct KeeperPlan {
    /// Descriptors it keeps (sorted).
    pub keep: Vec<c_int>,
    /// Closed by the supervisor once it has written the namespace's uid and gid maps.
    pub go: c_int,
    /// One byte once the box is mounted, or (stage, errno) if it cannot be.
    pub ready: c_int,
    pub box_dir: CString,
    /// The box's tmpfs options (size, mode, owner).
    pub options: CString,
}

/// Without root, the keeper of a box: the first process of a new user and mount namespace,
/// which mounts the box's tmpfs there, stays in it (the supervisor writes the box's files
/// through its working directory before any program runs) and sleeps until the box is
/// dropped (SIGKILL). Runs of the box enter its namespaces ([`enter`]).
pub extern "C" fn keeper(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `KeeperPlan` the supervisor keeps alive until the keeper is up.
    let plan = unsafe { &*(arg as *const KeeperPlan) };
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        close_all_but(&plan.keep);
        let fail = |stage: i32| keeper_fail(plan.ready, stage);
        let mut byte = 0u8;
        while libc::read(plan.go, &mut byte as *mut u8 as *mut c_void, 1) > 0 {}
        libc::close(plan.go);
        let none = std::ptr::null::<c_char>();
        if libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) < 0
        {
            fail(1);
        }
        if libc::mount(
            c"tmpfs".as_ptr(),
            plan.box_dir.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            plan.options.as_ptr() as *const c_void,
        ) < 0
        {
            fail(2);
        }
        if libc::chdir(plan.box_dir.as_ptr()) < 0 {
            fail(3);
        }
        libc::write(plan.ready, b"k".as_ptr() as *const c_void, 1);
        libc::close(plan.ready);
        loop {
            libc::pause();
        }
    }
}

/// Closes every descriptor above 2 but those in `keep` (sorted).
unsafe fn close_all_but(keep: &[c_int]) {
    unsafe {
        let mut from: u32 = 3;
        for &fd in keep {
            let fd = fd as u32;
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32);
            }
            from = from.max(fd + 1);
        }
        libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32);
    }
}

/// Writes (stage, errno) to the keeper's ready pipe and exits.
unsafe fn keeper_fail(ready: c_int, stage: i32) -> ! {
    unsafe {
        let report: [i32; 2] = [stage, *libc::__errno_location()];
        libc::write(
            ready,
            report.as_ptr() as *const c_void,
            std::mem::size_of_val(&report),
        );
        libc::_exit(127)
    }
}

unsafe fn init_inner(plan: &Plan) -> c_int {
    unsafe {
        // Dies with the supervisor; its memory (a copy of the supervisor's) is not readable
        // through /proc by anything in the sandbox.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Nothing of the supervisor's stays: its descriptors (above 2; the program's own 0-2
        // are replaced by the pipes), its signal handlers and ignored signals, its mask.
        close_all_but(&plan.keep);
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::signal(signal, libc::SIG_DFL);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        for &fd in &plan.cgroup_procs {
            check!(plan, 0, libc::write(fd, b"0".as_ptr() as *const c_void, 1));
            libc::close(fd);
        }
        // A cgroup namespace rooted at the run's own cgroup: its path says nothing of the
        // service or of other runs.
        check!(plan, 0, libc::unshare(libc::CLONE_NEWCGROUP));
        let none = std::ptr::null::<c_char>();
        check!(
            plan,
            1,
            libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null()
            )
        );
        check!(
            plan,
            2,
            libc::mount(
                c"tmpfs".as_ptr(),
                plan.root.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=4m,mode=0755".as_ptr() as *const c_void,
            )
        );
        for op in &plan.ops {
            let rc = match op {
                Op::Mkdir(path) => libc::mkdir(path.as_ptr(), 0o755),
                Op::Symlink { target, path } => libc::symlink(target.as_ptr(), path.as_ptr()),
                Op::Touch(path) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                        0o644,
                    );
                    if fd >= 0 {
                        libc::close(fd);
                    }
                    fd
                }
                Op::Bind { src, dst, flags } => {
                    let rc = libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    );
                    if rc < 0 {
                        rc
                    } else {
                        libc::mount(
                            none,
                            dst.as_ptr(),
                            none,
                            libc::MS_BIND | libc::MS_REMOUNT | flags,
                            std::ptr::null(),
                        )
                    }
                }
                Op::Mount {
                    fstype,
                    dst,
                    flags,
                    data,
                } => libc::mount(
                    fstype.as_ptr(),
                    dst.as_ptr(),
                    fstype.as_ptr(),
                    *flags,
                    data.as_ptr() as *const c_void,
                ),
            };
            check!(plan, 3, rc);
        }
        check!(plan, 4, libc::chdir(plan.root.as_ptr()));
        check!(
            plan,
            4,
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr())
        );
        check!(plan, 4, libc::umount2(c".".as_ptr(), libc::MNT_DETACH));
        // The new root itself becomes read-only; /box and /tmp are the only writable places.
        check!(
            plan,
            4,
            libc::mount(
                none,
                c"/".as_ptr(),
                none,
                libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
                std::ptr::null(),
            )
        );
        check!(plan, 4, libc::chdir(plan.workdir.as_ptr()));
        check!(
            plan,
            5,
            libc::sethostname(plan.hostname.as_ptr(), plan.hostname.as_bytes().len())
        );
        let ruleset = match &plan.landlock {
            Some(landlock) => landlock_ruleset(plan, landlock),
            None => -1,
        };

        // The raw system call, not the C library's fork: that one takes locks (malloc's,
        // among others) that another thread of the supervisor may have held at the clone,
        // and would wait for them forever.
        // What the program's process starts with (a copy of this one's pages): the kernel
        // carries it into the program's peak across exec.
        let mut own: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut own);
        let program = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_long, 0, 0, 0, 0)
            as libc::pid_t;
        check!(plan, 7, program);
        if program == 0 {
            exec_program(plan, ruleset);
        }
        for fd in [
            plan.fds.stdin,
            plan.fds.stdout,
            plan.fds.stderr,
            plan.fds.error,
        ] {
            libc::close(fd);
        }
        if ruleset >= 0 {
            libc::close(ruleset);
        }
        loop {
            let mut status: c_int = 0;
            let mut usage: libc::rusage = std::mem::zeroed();
            let pid = libc::wait4(-1, &mut status, 0, &mut usage);
            if pid == program {
                // The wait status, the program's peak resident size in KB and what its process
                // started with (see `Outcome::memory_bytes`).
                let report: [i64; 3] = [i64::from(status), usage.ru_maxrss, own.ru_maxrss];
                libc::write(
                    plan.fds.status,
                    report.as_ptr() as *const c_void,
                    std::mem::size_of_val(&report),
                );
                libc::_exit(0);
            }
            if pid < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(1);
            }
        }
    }
}

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

const LANDLOCK_RULE_PATH_BENEATH: c_int = 1;

unsafe fn landlock_ruleset(plan: &Plan, landlock: &Landlock) -> c_int {
    unsafe {
        let attr = RulesetAttr {
            handled_access_fs: landlock.handled_fs,
            handled_access_net: landlock.handled_net,
            scoped: landlock.scoped,
        };
        // The attribute grew with the ABI: 8 bytes in v1, 16 with networking (v4), 24 with
        // scopes (v6). An older kernel refuses a larger size.
        let size: usize = match landlock.abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        };
        let fd = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0,
        ) as c_int;
        check!(plan, 6, fd);
        for rule in &landlock.rules {
            let dir = libc::open(rule.path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if dir < 0 && *libc::__errno_location() == libc::ENOENT {
                // Not in this sandbox: nothing beneath it to grant.
                continue;
            }
            check!(plan, 6, dir);
            let beneath = PathBeneathAttr {
                allowed_access: rule.access,
                parent_fd: dir,
            };
            check!(
                plan,
                6,
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    fd,
                    LANDLOCK_RULE_PATH_BENEATH,
                    &beneath as *const PathBeneathAttr,
                    0,
                )
            );
            libc::close(dir);
        }
        fd
    }
}

unsafe fn exec_program(plan: &Plan, ruleset: c_int) -> ! {
    unsafe {
        libc::close(plan.fds.status);
        // A new session: no controlling terminal to push input into (TIOCSTI).
        libc::setsid();
        check!(plan, 8, libc::dup2(plan.fds.stdin, 0));
        check!(plan, 8, libc::dup2(plan.fds.stdout, 1));
        check!(plan, 8, libc::dup2(plan.fds.stderr, 2));
        // Everything else closes at exec (the error pipe then tells the supervisor it worked).
        check!(
            plan,
            8,
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC
            )
        );
        for (resource, limit) in &plan.rlimits {
            check!(plan, 9, libc::setrlimit(*resource as _, limit));
        }
        if let Some(cpu) = plan.cpu {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            check!(
                plan,
                9,
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
            );
        }
        // Raw system calls: the C library's wrappers would try to change the ids of every
        // thread the supervisor had, which do not exist in this process.
        let id = plan.uid as libc::c_long;
        if plan.set_groups {
            check!(
                plan,
                10,
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
            );
        }
        check!(plan, 10, libc::syscall(libc::SYS_setresgid, id, id, id));
        check!(plan, 10, libc::syscall(libc::SYS_setresuid, id, id, id));
        check!(plan, 11, libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
        if ruleset >= 0 {
            check!(
                plan,
                12,
                libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0)
            );
        }
        for filter in &plan.seccomp {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            check!(
                plan,
                13,
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                    0,
                    0
                )
            );
        }
        libc::execve(plan.exe.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
        fail(plan, 14)
    }
}
