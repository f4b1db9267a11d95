//! `cargo-rrtest`: the binary is a thin shell over the library.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    cargo_rrtest::cli::main()
}
