//! The seccomp filter and the Landlock ruleset every run gets.

use std::collections::BTreeMap;

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
];

/// Socket families refused: no network at all (the network namespace has only a loopback
/// that is down) and no netlink or raw packets.
const DENIED_FAMILIES: &[i32] = &[
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_NETLINK,
    libc::AF_PACKET,
];

/// The filters, applied in order. The kernel runs every filter on each call and the
/// strictest answer wins: the first refuses with EPERM, the second answers ENOSYS to clone3.
pub fn seccomp() -> anyhow::Result<Vec<Vec<seccompiler::sock_filter>>> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, vec![])).collect();
    let family = |f: i32| -> anyhow::Result<SeccompRule> {
        Ok(SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Eq,
            f as u64,
        )?])?)
    };
    let families = DENIED_FAMILIES
        .iter()
        .map(|&f| family(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    rules.insert(libc::SYS_socket, families.clone());
    rules.insert(libc::SYS_socketpair, families);
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
    Ok(vec![filter, clone3])
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

/// Read and execute beneath the system directories; read /proc; read and write the devices;
/// everything but device nodes in /box and /tmp. Where the kernel's ABI allows: no TCP bind
/// or connect, no signals to processes outside, no abstract Unix sockets outside.
pub fn landlock(abi: u32) -> child::Landlock {
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
    let rule = |path: &std::ffi::CStr, access: u64| child::Rule {
        path: path.to_owned(),
        access: access & handled_fs,
    };
    let system = EXECUTE | READ_FILE | READ_DIR;
    let mut rules = vec![
        rule(c"/usr", system),
        rule(c"/etc", system),
        rule(c"/proc", READ_FILE | READ_DIR),
        rule(c"/dev", READ_FILE | WRITE_FILE | READ_DIR | TRUNCATE),
        rule(c"/box", handled_fs & !(MAKE_CHAR | MAKE_BLOCK)),
        rule(c"/tmp", handled_fs & !(MAKE_CHAR | MAKE_BLOCK)),
    ];
    // Where /lib and friends are directories rather than links into /usr.
    for top in ["/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"] {
        if std::fs::symlink_metadata(top).is_ok_and(|m| m.is_dir()) {
            rules.push(child::Rule {
                path: std::ffi::CString::new(top).expect("no NUL"),
                access: system & handled_fs,
            });
        }
    }
    child::Landlock {
        abi,
        handled_fs,
        handled_net,
        scoped,
        rules,
    }
}
