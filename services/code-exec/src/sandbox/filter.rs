//! The seccomp filter and the Landlock ruleset every run gets.

use std::{
    collections::BTreeMap,
    ffi::{CStr, CString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use super::child;

/// System calls a program has no business making, refused with EPERM. A deny list rather than
/// an allow list: the runtimes (JVM, Go, Node.js) use too wide and shifting a set of calls.
/// The namespaces and the uid already stop most of these; the filter makes the kernel's
/// attack surface smaller still.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_quotactl,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    // A run keeps the CPUs it is given (without cgroups, the one CPU it is pinned to).
    libc::SYS_sched_setaffinity,
];

/// Socket buffer sizes a program may not raise: socket buffers are kernel memory no memory
/// cgroup charges to the run, so big ones would let it take the host's memory.
const DENIED_SOCKET_OPTIONS: &[i32] = &[
    libc::SO_SNDBUF,
    libc::SO_RCVBUF,
    libc::SO_SNDBUFFORCE,
    libc::SO_RCVBUFFORCE,
];

/// The filters, applied in order. The kernel runs every filter on each call and the
/// strictest answer wins: on x86-64 the first kills x32 calls; then the deny list refuses with
/// EPERM; the last answers ENOSYS to clone3.
pub fn seccomp() -> anyhow::Result<Vec<Vec<seccompiler::sock_filter>>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, vec![])).collect();
    // Sockets of one family only, AF_UNIX (between the run's own processes): no network of
    // any kind (the network namespace separates neither vsock nor some others), no netlink,
    // no raw packets.
    let not_unix = || -> anyhow::Result<Vec<SeccompRule>> {
        Ok(vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )?])?])
    };
    rules.insert(libc::SYS_socket, not_unix()?);
    rules.insert(libc::SYS_socketpair, not_unix()?);
    rules.insert(
        libc::SYS_setsockopt,
        DENIED_SOCKET_OPTIONS
            .iter()
            .map(|&option| -> anyhow::Result<SeccompRule> {
                Ok(SeccompRule::new(vec![
                    SeccompCondition::new(
                        1,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::Eq,
                        libc::SOL_SOCKET as u64,
                    )?,
                    SeccompCondition::new(
                        2,
                        SeccompCmpArgLen::Dword,
                        SeccompCmpOp::Eq,
                        option as u64,
                    )?,
                ])?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    );
    // New user namespaces through clone; clone3 passes its flags in memory a filter cannot
    // read, so it answers ENOSYS and the C library falls back to clone.
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
            libc::CLONE_NEWUSER as u64,
        )?])?],
    );
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| anyhow::anyhow!("seccomp: {e:?}"))?;
    let filter: seccompiler::BpfProgram = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?
    .try_into()?;
    let clone3: seccompiler::BpfProgram = SeccompFilter::new(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?
    .try_into()?;
    let mut filters = vec![filter, clone3];
    if cfg!(target_arch = "x86_64") {
        filters.insert(0, no_x32());
    }
    Ok(filters)
}

/// Where no cgroup charges a run's memory (rootless, or a host without cgroups), the memory
/// rlimits do not reach shared memory or kernel objects: shared anonymous mappings (the
/// rlimits on data do not count them), memfds and secret memfds, System V shared memory, semaphores and message queues are refused (EPERM), as are
/// inotify and fanotify instances, which count against the user's host-wide quota (rootless,
/// the service's own user's).
pub fn without_cgroup() -> anyhow::Result<Vec<seccompiler::sock_filter>> {
    let mut calls = vec![
        libc::SYS_shmget,
        libc::SYS_semget,
        libc::SYS_msgget,
        libc::SYS_memfd_create,
        libc::SYS_memfd_secret,
        libc::SYS_inotify_init1,
        libc::SYS_fanotify_init,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.push(libc::SYS_inotify_init);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        calls.into_iter().map(|call| (call, vec![])).collect();
    // Shared anonymous mappings (MAP_SHARED_VALIDATE holds MAP_SHARED's bit). Shared mappings
    // of files are bounded by the size of the tmpfs they are on, and the sandbox has no
    // `/dev/zero` where this filter applies (a shared mapping of it is anonymous memory).
    let shared_anonymous = (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64;
    rules.insert(
        libc::SYS_mmap,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            3,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(shared_anonymous),
            shared_anonymous,
        )?])?],
    );
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| anyhow::anyhow!("seccomp: {e:?}"))?;
    Ok(SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )?
    .try_into()?)
}

/// Kills a process making an x32 system call (numbers with bit 30 set): the deny list is by
/// x86-64 number, and a kernel booted with x32 enabled would otherwise let every denied call
/// through under its x32 number.
fn no_x32() -> Vec<seccompiler::sock_filter> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let op = |code: u16, jt: u8, jf: u8, k: u32| seccompiler::sock_filter { code, jt, jf, k };
    vec![
        // seccomp_data.nr is at offset 0.
        op(LD_W_ABS, 0, 0, 0),
        op(JGE_K, 0, 1, 0x4000_0000),
        op(RET_K, 0, 0, libc::SECCOMP_RET_KILL_PROCESS),
        op(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ]
}

/// The Landlock ABI version of the running kernel, if it has Landlock.
pub fn landlock_abi() -> Option<u32> {
    const VERSION: u32 = 1;
    // SAFETY: the documented way to ask for the ABI version: no attribute, size 0.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            VERSION,
        )
    };
    (abi > 0).then_some(abi as u32)
}

// Filesystem access rights (linux/landlock.h).
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_BLOCK: u64 = 1 << 11;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;

/// Read and execute beneath the system directories the sandbox binds (`system_paths`, by their
/// top-level directory: /usr, /etc, and /lib and friends where they are directories rather
/// than links into /usr); read /proc; read and write the devices; everything but device nodes
/// in /box and /tmp. Where the kernel's ABI allows: no TCP bind or connect, no signals to
/// processes outside, no abstract Unix sockets outside.
pub fn landlock(abi: u32, system_paths: &[PathBuf]) -> child::Landlock {
    let mut handled_fs: u64 = (1 << 13) - 1;
    if abi >= 2 {
        handled_fs |= REFER;
    }
    if abi >= 3 {
        handled_fs |= TRUNCATE;
    }
    if abi >= 5 {
        handled_fs |= IOCTL_DEV;
    }
    let handled_net = if abi >= 4 { 0b11 } else { 0 };
    let scoped = if abi >= 6 { 0b11 } else { 0 };
    let rule = |path: &CStr, access: u64| child::Rule {
        path: path.to_owned(),
        access: access & handled_fs,
    };
    let mut tops: Vec<PathBuf> = system_paths
        .iter()
        .filter_map(|p| p.components().nth(1))
        .map(|top| Path::new("/").join(top))
        .filter(|top| std::fs::symlink_metadata(top).is_ok_and(|m| m.is_dir()))
        .collect();
    tops.sort();
    tops.dedup();
    let mut rules: Vec<child::Rule> = tops
        .iter()
        .filter_map(|top| CString::new(top.as_os_str().as_bytes()).ok())
        .map(|top| rule(&top, EXECUTE | READ_FILE | READ_DIR))
        .collect();
    rules.extend([
        rule(c"/proc", READ_FILE | READ_DIR),
        rule(c"/dev", READ_FILE | WRITE_FILE | READ_DIR | TRUNCATE),
        rule(c"/box", handled_fs & !(MAKE_CHAR | MAKE_BLOCK)),
        rule(c"/tmp", handled_fs & !(MAKE_CHAR | MAKE_BLOCK)),
    ]);
    child::Landlock {
        abi,
        handled_fs,
        handled_net,
        scoped,
        rules,
    }
}
