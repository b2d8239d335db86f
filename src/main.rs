//! The `ticklake` binary: parse flags, set up logging and the runtime, run, map the outcome to an exit code.
#![deny(unsafe_code, rust_2018_idioms)]

use std::process::ExitCode;

/// rskafka allocates several small buffers per record while encoding a batch; with glibc's malloc that was a third
/// of replay's CPU, and musl's malloc is slower still. mimalloc on every target.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// musl's `memcpy` was 27% of the static binary's replay CPU (tiny copies through `rep movsq` and byte loops): the
/// musl build links ticklake's own instead (`ticklake::memcopy`). Both names, so that musl's object defining them is
/// never linked. Optimised builds only: a debug build's unaligned loads may themselves become calls to `memcpy`.
#[cfg(all(target_env = "musl", target_arch = "x86_64", not(debug_assertions)))]
mod musl_mem {
    #![allow(unsafe_code)]

    /// # Safety
    /// C's `memcpy` contract.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: the caller's contract, which `copy`'s is (it also allows overlap).
        unsafe { ticklake::memcopy::copy(dst, src, n) };
        dst
    }

    /// # Safety
    /// C's `memmove` contract.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { ticklake::memcopy::copy(dst, src, n) };
        dst
    }
}

/// The dist build aborts on a panic (`panic = "abort"` in Cargo.toml: no unwinding tables and landing pads in the
/// binary). A panic is a bug either way; this hook keeps what an unwinding build does after a task's panic: Rust's
/// panic message, then ticklake's line for an internal error and its exit code (12), which the systemd units
/// restart on. The lake and the topic are as consistent after it as after a kill: every stage is built (and tested)
/// to be killed at any moment. `TICKLAKE_PANIC_FOR_TEST` makes a panic at start, for `just dist-check`.
fn exit_on_panic() {
    let rust_message = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        rust_message(info);
        let internal = ticklake::exit::Kind::Internal;
        ticklake::output::report_error(ticklake::exit::meaning(internal));
        std::process::exit(ticklake::exit::code(internal).into());
    }));
    if std::env::var_os("TICKLAKE_PANIC_FOR_TEST").is_some() {
        panic!("TICKLAKE_PANIC_FOR_TEST is set");
    }
}

fn main() -> ExitCode {
    if cfg!(panic = "abort") {
        exit_on_panic();
    }
    let cli = ticklake::cli::config_file::parse_cli(std::env::args_os().collect());
    ticklake::output::init_logging(cli.global.log_format, cli.global.quiet, cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ticklake::exit::code(ticklake::exit::Kind::Internal));
        }
    };
    match runtime.block_on(ticklake::app::run(cli)) {
        Ok(failure) => ExitCode::from(failure.map_or(0, ticklake::exit::code)),
        Err(e) if e.is_closed_stdout() => ExitCode::SUCCESS,
        // A stop signal ended a wait (an unreachable endpoint's retries): the error says what was awaited, the code
        // says who stopped it (130/143).
        Err(e) if let Some(stop) = ticklake::shutdown::Shutdown::process().signal() => {
            ticklake::output::report_error(&format!("{} (stopped by {stop:?} while waiting)", error_chain(&e)));
            ExitCode::from(ticklake::exit::code(stop.kind()))
        }
        Err(e) => {
            ticklake::output::report_error(&error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// The error and its causes, each cause once.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cur = c.source();
    }
    text
}
