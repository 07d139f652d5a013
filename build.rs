//! Make `pythond-worker` load the libpython that pyo3 built it for (rpath).
//! Without this, a machine with both pyenv's and Debian's `libpython3.11.so`
//! loads Debian's and the interpreter sees another `sys.prefix` and another
//! `site-packages`. `pythond` itself never links libpython.
//!
//! pyo3 finds its interpreter through `PYO3_PYTHON` (`.cargo/config.toml`
//! sets it to the `python3` on PATH) and links the library in that
//! interpreter's `LIBDIR`; the same question is asked here.
//!
//! A release build also hands each binary's idle-code list
//! (`scripts/idle-order/<bin>.txt`, written by `scripts/idle-order.sh`) to
//! the linker, so the code that runs while the daemon idles sits together.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
    order_idle_code();
    let python = std::env::var("PYO3_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_owned();
            if !dir.is_empty() {
                println!("cargo:rustc-link-arg-bin=pythond-worker=-Wl,-rpath,{dir}");
            }
        }
        _ => println!(
            "cargo:warning=cannot ask {python} for its LIBDIR: pythond-worker gets no rpath"
        ),
    }
}

/// Put the functions each binary runs while idle first in its `.text`, in
/// one run (lld's `--symbol-ordering-file`). Both processes page their code
/// out after start-up and every later fault maps back the 64 KiB around it:
/// spread over the binary, the idle code kept ~2 MiB of each resident;
/// together, a few hundred KiB (BENCHMARKS.md, "Idle memory"). Names a list
/// has and the binary lacks (a stale list) are skipped without a warning.
///
/// Only where the linker is known to be lld: Rust 1.90+ links
/// x86_64-unknown-linux-gnu with its own lld unless a linker is chosen
/// (`linker` in `.cargo/config.toml`, which cargo passes as `RUSTC_LINKER`,
/// or `-C linker...` in RUSTFLAGS). `PYTHOND_IDLE_ORDER=off` leaves the
/// order to the linker.
fn order_idle_code() {
    println!("cargo:rerun-if-env-changed=PYTHOND_IDLE_ORDER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let rustflags = env("CARGO_ENCODED_RUSTFLAGS");
    if env("PROFILE") != "release"
        || env("TARGET") != "x86_64-unknown-linux-gnu"
        || env("PYTHOND_IDLE_ORDER") == "off"
        || rustflags.contains("linker")
        || std::env::var_os("RUSTC_LINKER").is_some()
        || !rustc_links_with_lld()
    {
        return;
    }
    let dir = std::path::Path::new(&env("CARGO_MANIFEST_DIR")).join("scripts/idle-order");
    for bin in ["pythond", "pythond-worker"] {
        let list = dir.join(format!("{bin}.txt"));
        println!("cargo:rerun-if-changed={}", list.display());
        if list.is_file() {
            println!(
                "cargo:rustc-link-arg-bin={bin}=-Wl,--symbol-ordering-file={}",
                list.display()
            );
            println!("cargo:rustc-link-arg-bin={bin}=-Wl,--no-warn-symbol-ordering");
        }
    }
}

/// Whether this rustc is 1.90 or later (the first to link with lld here).
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-V").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
