//! A reading of the machine's state beside a benchmark: how fast one core runs a fixed
//! chain of integer operations, how long one load takes when each address depends on the
//! one before (a "pointer chase") over a small, a middling and a large working set, how
//! fast memory copies, what one system call costs, and how long two threads take to wake
//! each other.
//!
//! A virtual machine shares its host's last-level cache and memory with other guests. When
//! a neighbour fills the shared cache, none of this machine's CPU time is stolen, yet a
//! process whose working set is larger than a core's own cache may run slower. The
//! CPU-stolen figure cannot show that; this reading shows whether the host's cache and
//! memory were busy, so that two runs of `bench compare` can be compared knowing the
//! state of the machine each ran on. It does not say how much a busy cache costs the
//! gateways: that is measured, if at all, by runs in both states. The same holds for the
//! system call and the wake-up, which a host's CPU model, microcode and hypervisor set,
//! and which the gateways pay more often per exchange than a plain proxy.

use serde_json::{Value, json};
use std::time::Instant;

/// One reading.
#[derive(Debug)]
pub(crate) struct MachineProbe {
    /// Nanoseconds per step of a dependent multiply-xor-shift chain on one core (the core's
    /// speed as this guest gets it: frequency, and time taken by the hypervisor).
    pub(crate) compute_ns: f64,
    /// Nanoseconds per dependent load over each working set, smallest first.
    pub(crate) chase: Vec<ChaseReading>,
    /// Gigabytes per second copied from one buffer of [`COPY_MIB`] to another (memory
    /// bandwidth, which the key derivation at a gateway's start and every large copy use).
    pub(crate) copy_gb_per_s: f64,
    /// Nanoseconds per system call (`getpid`, which does nothing but enter and leave the
    /// kernel): what the host's CPU and the guest kernel's mitigations charge per call.
    pub(crate) syscall_ns: f64,
    /// Microseconds for one round trip between two threads over a socket pair: each side
    /// sleeps until the other wakes it, as a gateway's log writer and its runtime's workers
    /// do for every commit. On a virtual machine a wake-up on another, idle, virtual CPU
    /// waits for the host to run it: 7.6 to 58 us on this machine in one evening, idle both
    /// times, against 4.5 us with both threads on one CPU.
    pub(crate) wake_round_trip_us: f64,
}

/// The size of each buffer of the copy reading: well past any cache.
pub(crate) const COPY_MIB: usize = 64;

/// The latency of dependent loads over one working set.
#[derive(Debug)]
pub(crate) struct ChaseReading {
    pub(crate) kib: usize,
    pub(crate) ns_per_load: f64,
}

/// The working sets chased: within a core's second-level cache, within the shared
/// last-level cache of an uncontended host (32 MiB on this machine's EPYC), and well past it.
pub(crate) const CHASE_KIB: [usize; 3] = [256, 8 * 1024, 128 * 1024];

impl MachineProbe {
    /// Take a reading off the async runtime's threads.
    pub(crate) async fn read() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        tokio::task::spawn_blocking(Self::take)
            .await
            .context("read the machine's state")
    }

    /// Take a reading: about two seconds of one core, 128 MiB of memory for a moment.
    pub(crate) fn take() -> Self {
        Self::take_with(&CHASE_KIB, 2_000_000, 50_000_000, COPY_MIB * 1024 * 1024)
    }

    pub(crate) fn take_with(
        chase_kib: &[usize],
        loads: usize,
        compute_steps: u64,
        copy_bytes: usize,
    ) -> Self {
        Self {
            syscall_ns: syscall(compute_steps / 100),
            wake_round_trip_us: wake_round_trip(loads / 40),
            copy_gb_per_s: copy(copy_bytes),
            compute_ns: compute(compute_steps),
            chase: chase_kib
                .iter()
                .map(|&kib| ChaseReading {
                    kib,
                    ns_per_load: chase(kib * 1024, loads),
                })
                .collect(),
        }
    }

    /// As recorded in BENCHMARKS.json.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "compute_ns": self.compute_ns,
            "chase": self.chase.iter().map(|c| json!({
                "kib": c.kib,
                "ns_per_load": c.ns_per_load,
            })).collect::<Vec<_>>(),
            "copy_gb_per_s": self.copy_gb_per_s,
            "syscall_ns": self.syscall_ns,
            "wake_round_trip_us": self.wake_round_trip_us,
        })
    }

    /// One line for a report: "compute 1.65 ns per step; a dependent load over 256 KiB
    /// 3.9 ns, 8 MiB 22.3 ns, 128 MiB 188.7 ns; copy 20.3 GB/s; a system call 204 ns; a
    /// wake-up round trip between two threads 7.6 us".
    pub(crate) fn summary(&self) -> String {
        let loads: Vec<String> = self
            .chase
            .iter()
            .map(|c| format!("{} {:.1} ns", size_label(c.kib), c.ns_per_load))
            .collect();
        format!(
            "compute {:.2} ns per step; a dependent load over {}; copy {:.1} GB/s; a system call \
             {:.0} ns; a wake-up round trip between two threads {:.1} us",
            self.compute_ns,
            loads.join(", "),
            self.copy_gb_per_s,
            self.syscall_ns,
            self.wake_round_trip_us
        )
    }
}

fn size_label(kib: usize) -> String {
    if kib >= 1024 && kib.is_multiple_of(1024) {
        format!("{} MiB", kib / 1024)
    } else {
        format!("{kib} KiB")
    }
}

/// xorshift64: the probe's own numbers, the same every run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Nanoseconds per step of a chain in which each step needs the one before.
fn compute(steps: u64) -> f64 {
    let mut x = std::hint::black_box(1u64);
    let started = Instant::now();
    for _ in 0..steps {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x ^= x >> 29;
    }
    let elapsed = started.elapsed();
    std::hint::black_box(x);
    elapsed.as_nanos() as f64 / steps.max(1) as f64
}

/// Nanoseconds per `getpid` system call.
fn syscall(calls: u64) -> f64 {
    let calls = calls.max(1);
    let started = Instant::now();
    for _ in 0..calls {
        std::hint::black_box(std::process::id());
    }
    started.elapsed().as_nanos() as f64 / calls as f64
}

/// Microseconds per round trip of one byte between this thread and another over a Unix
/// socket pair; 0 if the pair cannot be made.
fn wake_round_trip(trips: usize) -> f64 {
    use std::io::{Read as _, Write as _};
    use std::os::unix::net::UnixStream;
    let trips = trips.max(1);
    let Ok((mut here, mut there)) = UnixStream::pair() else {
        return 0.0;
    };
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        while there.read_exact(&mut byte).is_ok() {
            if there.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let mut byte = [7u8; 1];
    let started = Instant::now();
    let mut done = 0u32;
    for _ in 0..trips {
        if here.write_all(&byte).is_err() || here.read_exact(&mut byte).is_err() {
            break;
        }
        done += 1;
    }
    let elapsed = started.elapsed();
    drop(here);
    let _ = echo.join();
    if done == 0 {
        return 0.0;
    }
    elapsed.as_secs_f64() * 1e6 / f64::from(done)
}

/// Gigabytes per second copied between two buffers of `bytes`, best of three passes (the
/// first touches the pages).
fn copy(bytes: usize) -> f64 {
    let from = vec![1u8; bytes.max(1)];
    let mut to = vec![0u8; bytes.max(1)];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        to.copy_from_slice(std::hint::black_box(&from));
        best = best.min(started.elapsed().as_secs_f64());
        std::hint::black_box(&to);
    }
    bytes as f64 / best.max(1e-9) / 1e9
}

/// Each slot's successor in one random cycle through all of them (Sattolo's shuffle).
fn one_cycle(slots: usize) -> Vec<usize> {
    let mut next_slot: Vec<usize> = (0..slots).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..slots).rev() {
        let j = (next(&mut state) % i as u64) as usize;
        next_slot.swap(i, j);
    }
    next_slot
}

/// Nanoseconds per load when following one random cycle through `bytes` of memory: each
/// slot holds the index of the next, so no load can start before the one before it ends.
fn chase(bytes: usize, loads: usize) -> f64 {
    let slots = (bytes / std::mem::size_of::<usize>()).max(2);
    let next_slot = one_cycle(slots);
    let mut at = 0usize;
    // One pass to bring what fits into the caches.
    for _ in 0..slots.min(loads) {
        at = next_slot[at];
    }
    let started = Instant::now();
    for _ in 0..loads {
        at = next_slot[std::hint::black_box(at)];
    }
    let elapsed = started.elapsed();
    std::hint::black_box(at);
    elapsed.as_nanos() as f64 / loads.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sattolo's shuffle makes one cycle through every slot, so a chase visits the whole
    /// working set, not a short loop that would stay in the first cache.
    #[test]
    fn the_chase_is_one_cycle_through_every_slot() {
        let slots = 4096;
        let next_slot = one_cycle(slots);
        let mut seen = vec![false; slots];
        let mut at = 0;
        for _ in 0..slots {
            assert!(!seen[at], "slot {at} visited twice");
            seen[at] = true;
            at = next_slot[at];
        }
        assert_eq!(at, 0);
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn a_small_reading_has_every_size_and_a_summary() {
        let probe = MachineProbe::take_with(&[16, 2048], 10_000, 10_000, 1 << 20);
        assert!(probe.compute_ns > 0.0);
        assert!(probe.copy_gb_per_s > 0.0);
        assert!(probe.syscall_ns > 0.0);
        assert!(probe.wake_round_trip_us > 0.0);
        assert_eq!(probe.chase.len(), 2);
        assert!(probe.chase.iter().all(|c| c.ns_per_load > 0.0));
        let recorded = probe.to_json();
        assert_eq!(recorded["chase"][1]["kib"], 2048);
        assert_eq!(recorded["syscall_ns"], probe.syscall_ns);
        let line = probe.summary();
        assert!(line.contains("16 KiB") && line.contains("2 MiB"), "{line}");
    }
}
