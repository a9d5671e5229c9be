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
                return Self::v2(dir);
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

    fn v2(root: PathBuf) -> Option<Self> {
        let wanted = ["memory", "pids", "cpu"];
        let available = fs::read_to_string(root.join("cgroup.controllers")).ok()?;
        if !wanted
            .iter()
            .all(|c| available.split_whitespace().any(|a| a == *c))
        {
            return None;
        }
        let enable = "+memory +pids +cpu";
        write(&root.join("cgroup.subtree_control"), enable).ok()?;
        let base = root.join(BASE);
        make_dir(&base).ok()?;
        write(&base.join("cgroup.subtree_control"), enable).ok()?;
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
