//! One control group per run, on whichever hierarchy the host has: cgroup v2 (one unified
//! tree) or v1 (one tree per controller). It caps memory and the number of processes and
//! measures CPU time and peak memory across every process of the run.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    time::Duration,
};

/// The sandbox's own cgroup directories, under which each run gets one of its own.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    V2 {
        base: PathBuf,
    },
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpuacct: PathBuf,
        /// The CPU bandwidth controller, where mounted.
        cpu: Option<PathBuf>,
    },
}

/// A run gets at most one CPU's worth of time (per 100 ms period), however many threads it
/// starts: the other slots' runs keep theirs.
const CPU_PERIOD_US: u64 = 100_000;
const CPU_QUOTA_US: u64 = 100_000;

const BASE: &str = "agora-code-exec";

/// Where the processes of a container's cgroup move (cgroup v2), so that it may hand
/// controllers to the sandbox's cgroups.
const SUPERVISOR: &str = "agora-code-exec-supervisor";

/// Moves every process of cgroup `from` into its child `leaf` (made if missing).
fn leave(from: &Path, leaf: &Path) -> io::Result<()> {
    make_dir(leaf)?;
    // Processes may start meanwhile: moved until none is left, a few rounds at most.
    for _ in 0..5 {
        let procs = fs::read_to_string(from.join("cgroup.procs"))?;
        let pids: Vec<&str> = procs
            .lines()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = write(&leaf.join("cgroup.procs"), pid);
        }
    }
    Ok(())
}

impl Hierarchy {
    /// Finds the host's hierarchy and makes the sandbox's base directories; `None` when no
    /// writable hierarchy with the memory, pids and CPU accounting controllers exists.
    pub fn detect() -> Option<Self> {
        let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
        let mut v1 = (None, None, None);
        let mut cpu = None;
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, dir, kind, options, ..] = fields[..] else {
                continue;
            };
            let dir = PathBuf::from(dir);
            if kind == "cgroup2" && dir == Path::new("/sys/fs/cgroup") {
                return Self::v2(dir, &["memory", "pids", "cpu"]);
            }
            if kind == "cgroup" {
                for option in options.split(',') {
                    match option {
                        "memory" => v1.0 = Some(dir.clone()),
                        "pids" => v1.1 = Some(dir.clone()),
                        "cpuacct" => v1.2 = Some(dir.clone()),
                        "cpu" => cpu = Some(dir.clone()),
                        _ => {}
                    }
                }
            }
        }
        let (Some(memory), Some(pids), Some(cpuacct)) = v1 else {
            return None;
        };
        let (memory, pids, cpuacct) = (memory.join(BASE), pids.join(BASE), cpuacct.join(BASE));
        for dir in [&memory, &pids, &cpuacct] {
            make_dir(dir).ok()?;
        }
        let cpu = cpu
            .map(|dir| dir.join(BASE))
            .filter(|dir| make_dir(dir).is_ok());
        Some(Self::V1 {
            memory,
            pids,
            cpuacct,
            cpu,
        })
    }

    /// Prepares `root` (the top of the cgroup v2 tree this process sees) to hand the `wanted`
    /// controllers to the sandbox's base cgroup and the runs' below it.
    fn v2(root: PathBuf, wanted: &[&str]) -> Option<Self> {
        let available = fs::read_to_string(root.join("cgroup.controllers")).ok()?;
        if !wanted
            .iter()
            .all(|c| available.split_whitespace().any(|a| a == *c))
        {
            return None;
        }
        let enable = wanted
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let control = root.join("cgroup.subtree_control");
        // In a container, `root` is the container's own cgroup and holds its processes (this
        // one among them); a cgroup with processes cannot hand controllers to its children
        // (cgroup v2's "no internal processes" rule). Every process in it moves to a leaf of
        // its own, then the controllers can be handed down (again, should one start between).
        let mut handed = write(&control, &enable);
        for _ in 0..5 {
            match &handed {
                Err(err) if err.kind() == io::ErrorKind::ResourceBusy => {
                    leave(&root, &root.join(SUPERVISOR)).ok()?;
                    handed = write(&control, &enable);
                }
                _ => break,
            }
        }
        if let Err(err) = handed {
            tracing::warn!(error = %err, "code-exec: cannot hand the cgroup v2 controllers down");
            return None;
        }
        let base = root.join(BASE);
        make_dir(&base).ok()?;
        write(&base.join("cgroup.subtree_control"), &enable).ok()?;
        Some(Self::V2 { base })
    }

    pub fn version(&self) -> &'static str {
        match self {
            Self::V2 { .. } => "v2",
            Self::V1 { .. } => "v1",
        }
    }

    /// A new cgroup for one run, with its limits set, ready for the run's first process.
    pub fn create(&self, name: &str, memory_bytes: u64, max_processes: u64) -> io::Result<Run> {
        match self {
            Self::V2 { base } => {
                let dir = base.join(name);
                make_dir(&dir)?;
                let run = Run {
                    dirs: vec![dir.clone()],
                    version: 2,
                };
                write(&dir.join("memory.max"), &memory_bytes.to_string())?;
                // No swap: a program over its memory limit is stopped, not paged out.
                let _ = write(&dir.join("memory.swap.max"), "0");
                write(&dir.join("pids.max"), &max_processes.to_string())?;
                write(
                    &dir.join("cpu.max"),
                    &format!("{CPU_QUOTA_US} {CPU_PERIOD_US}"),
                )?;
                Ok(run)
            }
            Self::V1 {
                memory,
                pids,
                cpuacct,
                cpu,
            } => {
                let mut dirs = vec![memory.join(name), pids.join(name), cpuacct.join(name)];
                dirs.extend(cpu.as_ref().map(|cpu| cpu.join(name)));
                for dir in &dirs {
                    make_dir(dir)?;
                }
                let run = Run { dirs, version: 1 };
                let memory = &run.dirs[0];
                write(
                    &memory.join("memory.limit_in_bytes"),
                    &memory_bytes.to_string(),
                )?;
                // Present only where swap accounting is on; memory and swap together.
                let memsw = memory.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &memory_bytes.to_string())?;
                }
                write(&run.dirs[1].join("pids.max"), &max_processes.to_string())?;
                if let Some(cpu) = run.dirs.get(3) {
                    write(&cpu.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    write(&cpu.join("cpu.cfs_quota_us"), &CPU_QUOTA_US.to_string())?;
                }
                Ok(run)
            }
        }
    }
}

/// A run's cgroup (one directory per controller on v1). Removed by [`Run::remove`].
#[derive(Debug)]
pub struct Run {
    dirs: Vec<PathBuf>,
    version: u8,
}

impl Run {
    /// Open `cgroup.procs` files: the run's first process writes "0" to each to join.
    pub fn procs_files(&self) -> io::Result<Vec<File>> {
        self.dirs
            .iter()
            .map(|d| OpenOptions::new().write(true).open(d.join("cgroup.procs")))
            .collect()
    }

    /// CPU time used by every process of the run so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        match self.version {
            2 => {
                let stat = fs::read_to_string(self.dirs[0].join("cpu.stat")).ok()?;
                let usec = stat
                    .lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))?
                    .trim()
                    .parse()
                    .ok()?;
                Some(Duration::from_micros(usec))
            }
            _ => {
                let ns = read_u64(&self.dirs[2].join("cpuacct.usage"))?;
                Some(Duration::from_nanos(ns))
            }
        }
    }

    /// The most memory the run held at once, in bytes.
    pub fn memory_peak(&self) -> Option<u64> {
        match self.version {
            2 => read_u64(&self.dirs[0].join("memory.peak")),
            _ => read_u64(&self.dirs[0].join("memory.max_usage_in_bytes")),
        }
    }

    /// Whether the run hit its memory limit.
    pub fn memory_limit_hit(&self) -> bool {
        match self.version {
            2 => fs::read_to_string(self.dirs[0].join("memory.events"))
                .ok()
                .is_some_and(|events| {
                    events.lines().any(|l| {
                        l.strip_prefix("max ")
                            .or_else(|| l.strip_prefix("oom_kill "))
                            .is_some_and(|n| n.trim() != "0")
                    })
                }),
            _ => {
                let failed = |file: &str| read_u64(&self.dirs[0].join(file)).is_some_and(|n| n > 0);
                let killed = fs::read_to_string(self.dirs[0].join("memory.oom_control"))
                    .ok()
                    .is_some_and(|control| {
                        control
                            .lines()
                            .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"))
                    });
                failed("memory.failcnt") || failed("memory.memsw.failcnt") || killed
            }
        }
    }

    /// Kills whatever is left in the run's cgroup and removes it.
    pub fn remove(self) {
        for _ in 0..200 {
            let mut busy = false;
            for dir in &self.dirs {
                if !dir.exists() {
                    continue;
                }
                if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        // SAFETY: kill(2) has no memory effects; these are the run's processes.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                if fs::remove_dir(dir).is_err() {
                    busy = true;
                }
            }
            if !busy {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// cgroup v2's "no internal processes" rule, as a container meets it: its cgroup holds its
    /// processes, so controllers cannot be handed down until they leave for a leaf. Played on
    /// a cgroup2 mount of this host with the controller every host offers there (hugetlb where
    /// the others are bound to v1), as root.
    #[test]
    fn a_container_cgroup_with_processes_hands_its_controllers_down() {
        let mount = tempfile::tempdir().unwrap();
        let target = std::ffi::CString::new(mount.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mount(2) with valid C strings.
        let mounted = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"cgroup2".as_ptr(),
                0,
                std::ptr::null(),
            )
        } == 0;
        if !mounted {
            assert!(
                std::env::var_os("AGORA_TEST_REQUIRE_INFRA").is_none(),
                "cannot mount cgroup2: {}",
                io::Error::last_os_error()
            );
            eprintln!("SKIPPED: cannot mount cgroup2 here (not root?)");
            return;
        }
        let root = mount.path().to_path_buf();
        let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap();
        let controller = ["hugetlb", "pids", "memory"]
            .into_iter()
            .find(|c| controllers.split_whitespace().any(|a| a == *c))
            .expect("a controller on cgroup2");
        let container = root.join(format!("container-{}", std::process::id()));
        make_dir(&container).unwrap();
        let before = fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
        write(
            &root.join("cgroup.subtree_control"),
            &format!("+{controller}"),
        )
        .unwrap();
        let mut sleeper = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        write(&container.join("cgroup.procs"), &sleeper.id().to_string()).unwrap();
        // Handing a controller down from a cgroup with a process in it is refused...
        let refused = write(
            &container.join("cgroup.subtree_control"),
            &format!("+{controller}"),
        );
        assert_eq!(refused.unwrap_err().kind(), io::ErrorKind::ResourceBusy);
        // ...and the sandbox's set-up moves the process to a leaf, then hands it down.
        let hierarchy = Hierarchy::v2(container.clone(), &[controller]);
        assert!(hierarchy.is_some());
        let leaf = fs::read_to_string(container.join(SUPERVISOR).join("cgroup.procs")).unwrap();
        assert_eq!(leaf.trim(), sleeper.id().to_string());
        let base = fs::read_to_string(container.join(BASE).join("cgroup.subtree_control")).unwrap();
        assert_eq!(base.trim(), controller);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        for dir in [
            container.join(BASE),
            container.join(SUPERVISOR),
            container.clone(),
        ] {
            fs::remove_dir(&dir).unwrap();
        }
        // The host's tree as it was (cgroup2 is one tree, whichever mount shows it).
        if !before.split_whitespace().any(|c| c == controller) {
            let _ = write(
                &root.join("cgroup.subtree_control"),
                &format!("-{controller}"),
            );
        }
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}
