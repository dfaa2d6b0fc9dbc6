//! The machine a report was made on: CPU, cores, memory, kernel, date, git commit, build.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the report says about where and when it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// CPU model from `/proc/cpuinfo` (`"unknown"` elsewhere).
    pub cpu: String,
    /// Cores available to the process (what `nproc` prints).
    pub nproc: usize,
    /// Total memory from `/proc/meminfo`, e.g. `"23.4 GiB"`.
    pub memory: String,
    /// Kernel release from `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// Load average (1, 5, 15 minutes) from `/proc/loadavg` when the run started: other work
    /// on the machine makes figures noisier.
    pub load: String,
    /// UTC date and time of the run, `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// `git rev-parse --short HEAD` of the working directory, `+dirty` when it has changes.
    pub commit: String,
    /// `release` or `debug` (a debug build's figures are not comparable with release ones).
    pub build: &'static str,
    /// The Rust compiler the benchmarks were built with, when `rustc` is on the PATH.
    pub rustc: String,
    /// How idle CPUs wait (Linux's cpuidle driver, and the guest halt-polling window when the
    /// driver is `haltpoll`), `"unknown"` elsewhere. On a virtual machine that halts idle CPUs
    /// at once, waking a thread on another CPU costs tens of microseconds, and a call that
    /// hands work to a thread per statement (sqlx's SQLite connections do) pays it every time.
    pub cpu_idle: String,
}

impl Machine {
    /// Describes this machine now.
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        let commit = match run("git", &["rev-parse", "--short", "HEAD"]) {
            Some(hash) => {
                let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
                    .is_some_and(|s| !s.is_empty());
                if dirty { format!("{hash}+dirty") } else { hash }
            }
            None => "unknown".to_owned(),
        };
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            load,
            cpu,
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            memory,
            kernel,
            date: utc_now(),
            commit,
            build: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            rustc: run("rustc", &["--version"]).unwrap_or_else(|| "unknown".to_owned()),
            cpu_idle: cpu_idle(),
        }
    }
}

/// Linux's cpuidle driver and, for `haltpoll`, its guest polling window.
fn cpu_idle() -> String {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let Some(driver) = read("/sys/devices/system/cpu/cpuidle/current_driver") else {
        return "unknown".to_owned();
    };
    match read("/sys/module/haltpoll/parameters/guest_halt_poll_ns") {
        Some(ns) if driver == "haltpoll" && ns == "0" => {
            "`haltpoll`, guest halt polling off (`guest_halt_poll_ns` 0): an idle CPU halts at once"
                .to_owned()
        }
        Some(ns) if driver == "haltpoll" => {
            format!("`haltpoll`, guest halt polling {ns} ns")
        }
        _ => format!("`{driver}`"),
    }
}

fn run(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    format_utc(secs)
}

/// Epoch seconds as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar).
pub fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        rem % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_format_as_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_750_000_000), "2025-06-15 15:06 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00 UTC");
    }
}
