//! `print()` from a script: whole lines are logged with the name of the
//! script that printed them.

use std::cell::RefCell;

use pyo3::prelude::*;

thread_local! {
    static PARTIAL: RefCell<[String; 2]> = const { RefCell::new([String::new(), String::new()]) };
}

fn log_line(stream: usize, line: &str) {
    let script = crate::current_script();
    if stream == 1 {
        tracing::warn!(target: "pythond::script", script = %script, stream = "stderr", "{line}");
    } else {
        tracing::info!(target: "pythond::script", script = %script, stream = "stdout", "{line}");
    }
}

/// `print()` from a script: whole lines are logged with the script's name.
#[pyfunction]
pub(super) fn output(stream: usize, s: &str) {
    let stream = stream.min(1);
    PARTIAL.with(|p| {
        let mut p = p.borrow_mut();
        let buf = &mut p[stream];
        buf.push_str(s);
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            log_line(stream, line.trim_end_matches(['\n', '\r']));
        }
        // A script printing without newlines must not grow memory forever.
        if buf.len() > 64 * 1024 {
            let line = std::mem::take(buf);
            log_line(stream, &line);
        }
    });
}

#[pyfunction]
pub(super) fn output_flush(stream: usize) {
    flush_output_stream(stream.min(1));
}

fn flush_output_stream(stream: usize) {
    PARTIAL.with(|p| {
        let line = std::mem::take(&mut p.borrow_mut()[stream]);
        if !line.is_empty() {
            log_line(stream, &line);
        }
    });
}

/// Log what this thread printed without a final newline (a run ended).
pub fn flush_output() {
    flush_output_stream(0);
    flush_output_stream(1);
}
