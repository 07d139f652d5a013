//! `pythond-worker`: one input with its embedded CPython (see the
//! `pythond-worker` crate). Started by `pythond`, installed beside it.

fn main() {
    std::process::exit(pythond_worker::main());
}
