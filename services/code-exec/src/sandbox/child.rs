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
    /// The program's wait status, written by the init.
    pub status: c_int,
}

pub struct Plan {
    /// Descriptors the init keeps (sorted): the pipes and the cgroup files. Everything else
    /// the supervisor had open (its sockets, its stores, other runs' pipes) is closed first.
    pub keep: Vec<c_int>,
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

unsafe fn init_inner(plan: &Plan) -> c_int {
    unsafe {
        // Dies with the supervisor; its memory (a copy of the supervisor's) is not readable
        // through /proc by anything in the sandbox.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        // Nothing of the supervisor's stays: its descriptors (above 2; the program's own 0-2
        // are replaced by the pipes), its signal handlers and ignored signals, its mask.
        let mut from: u32 = 3;
        for &fd in &plan.keep {
            let fd = fd as u32;
            if fd > from {
                libc::syscall(libc::SYS_close_range, from, fd - 1, 0u32);
            }
            from = from.max(fd + 1);
        }
        libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32);
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
            let pid = libc::waitpid(-1, &mut status, 0);
            if pid == program {
                libc::write(
                    plan.fds.status,
                    &status as *const c_int as *const c_void,
                    std::mem::size_of::<c_int>(),
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
        // Raw system calls: the C library's wrappers would try to change the ids of every
        // thread the supervisor had, which do not exist in this process.
        let id = plan.uid as libc::c_long;
        check!(
            plan,
            10,
            libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
        );
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
