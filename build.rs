//! Make `pythond-worker` load the libpython that pyo3 built it for (rpath).
//! Without this, a machine with both pyenv's and Debian's `libpython3.11.so`
//! loads Debian's and the interpreter sees another `sys.prefix` and another
//! `site-packages`. `pythond` itself never links libpython.
//!
//! pyo3 finds its interpreter through `PYO3_PYTHON` (`.cargo/config.toml`
//! sets it to the `python3` on PATH) and links the library in that
//! interpreter's `LIBDIR`; the same question is asked here.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
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
