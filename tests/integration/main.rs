//! The integration tests: one libtest-mimic binary, a module per area, each
//! contributing trials. They drive the real `cargo-rrtest` binary (and, in
//! `replayer_api`, the library's replay handle).

/// Returns early from a trial with a message when a condition does not hold.
macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(libtest_mimic::Failed::from(format!($($fmt)+)));
        }
    };
}

#[allow(dead_code)] // not every helper is used by every area module
mod breadth;
mod breadth_aio;
mod breadth_debugger;
mod breadth_faults;
mod breadth_int80;
mod breadth_maps;
mod breadth_misc;
mod breadth_ptrace_clone;
mod breadth_ptrace_debugregs;
mod breadth_ptrace_jobctl;
mod breadth_ptrace_regs;
mod breadth_ptrace_rewrite;
mod breadth_ptrace_strace;
mod breadth_ptrace_sysemu;
mod breadth_ptrace_threads;
mod breadth_ptrace_vfork;
mod breadth_signals;
mod breadth_sweep;
mod breadth_tty;
mod breadth_vdso;
mod chaos;
mod chaos_stall;
mod chaos_sweep;
mod common;
mod debug_engine;
mod ecosystem;
mod ecosystem2;
mod faults_interrupt;
mod gdb;
mod harness;
mod nextest;
mod portable;
mod product;
mod recorder;
mod recorder_async;
mod recorder_build;
mod recorder_faults;
mod recorder_run;
mod replayer_api;
mod secrets;
mod stress_diff;
mod suites;
mod syscallbuf;
mod threads;
mod trace_files;
mod trace_integrity;

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials: Vec<libtest_mimic::Trial> = Vec::new();
    // Each area module appends its trials here.
    trials.extend(harness::trials());
    trials.extend(chaos::trials());
    trials.extend(chaos_stall::trials());
    trials.extend(chaos_sweep::trials());
    trials.extend(breadth::trials());
    trials.extend(breadth_aio::trials());
    trials.extend(breadth_faults::trials());
    trials.extend(breadth_int80::trials());
    trials.extend(breadth_maps::trials());
    trials.extend(breadth_tty::trials());
    trials.extend(breadth_misc::trials());
    trials.extend(breadth_sweep::trials());
    trials.extend(breadth_signals::trials());
    trials.extend(breadth_ptrace_regs::trials());
    trials.extend(breadth_ptrace_clone::trials());
    trials.extend(breadth_ptrace_strace::trials());
    trials.extend(breadth_ptrace_sysemu::trials());
    trials.extend(breadth_ptrace_vfork::trials());
    trials.extend(breadth_ptrace_debugregs::trials());
    trials.extend(breadth_ptrace_rewrite::trials());
    trials.extend(breadth_ptrace_threads::trials());
    trials.extend(breadth_ptrace_jobctl::trials());
    trials.extend(breadth_debugger::trials());
    trials.extend(ecosystem::trials());
    trials.extend(ecosystem2::trials());
    trials.extend(nextest::trials());
    trials.extend(portable::trials());
    trials.extend(faults_interrupt::trials());
    trials.extend(gdb::trials());
    trials.extend(breadth_vdso::trials());
    trials.extend(product::trials());
    trials.extend(recorder::trials());
    trials.extend(recorder_async::trials());
    trials.extend(secrets::trials());
    trials.extend(stress_diff::trials());
    trials.extend(suites::trials());
    trials.extend(replayer_api::trials());
    trials.extend(debug_engine::trials());
    trials.extend(syscallbuf::trials());
    trials.extend(threads::trials());
    trials.extend(trace_files::trials());
    trials.extend(trace_integrity::trials());
    libtest_mimic::run(&args, trials).exit();
}
