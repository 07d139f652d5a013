//! Link the binary against the libpython that pyo3 built for, and make the
//! dynamic loader find that same library at run time (rpath). Without this, a
//! machine with both pyenv's and Debian's `libpython3.11.so` loads Debian's and
//! the interpreter sees another `sys.prefix` and another `site-packages`.
fn main() {
    let cfg = pyo3_build_config::get();
    if let Some(dir) = cfg.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=PYTHOND_PYTHON_LIBDIR={dir}");
    }
    if let Some(exe) = cfg.executable() {
        println!("cargo:rustc-env=PYTHOND_BUILD_PYTHON={exe}");
    }
    let v = cfg.version();
    println!("cargo:rustc-env=PYTHOND_PY_MAJOR={}", v.major);
    println!("cargo:rustc-env=PYTHOND_PY_MINOR={}", v.minor);
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    println!("cargo:rerun-if-changed=build.rs");
}
