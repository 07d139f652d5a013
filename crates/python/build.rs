//! The Python version this crate embeds, for the `cmd` version check, and an
//! rpath for this crate's own test binaries so they load the libpython pyo3
//! linked against (see the root build.rs for why).
fn main() {
    let cfg = pyo3_build_config::get();
    if let Some(dir) = cfg.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    let v = cfg.version();
    println!("cargo:rustc-env=PYTHOND_PY_MAJOR={}", v.major);
    println!("cargo:rustc-env=PYTHOND_PY_MINOR={}", v.minor);
    if let Some(exe) = cfg.executable() {
        println!("cargo:rustc-env=PYTHOND_BUILD_PYTHON={exe}");
    }
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}
