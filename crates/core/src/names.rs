//! An input's name as one file-name component (its spool directory, its
//! framework log file). One encoding for both, and collision-free: two
//! different names never share a spool or a log.
//!
//! ASCII letters, digits, `-`, `_` and `.` are kept, so the usual names keep
//! the original's file names (`_datakit_pythond_framework_some-inputs_.log`);
//! every other byte, `%` included, becomes `%XX`. A name made only of dots
//! (`.`, `..`) is encoded whole, so it can never name a parent directory.

/// `name` as a single, safe, injective file-name component.
pub fn file_component(name: &str) -> String {
    let only_dots = !name.is_empty() && name.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        let keep = (b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && !(only_dots && b == b'.');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_names_are_kept_as_they_are() {
        assert_eq!(file_component("some-python-inputs"), "some-python-inputs");
        assert_eq!(file_component("my_input.v2"), "my_input.v2");
    }

    #[test]
    fn names_that_a_lossy_sanitizer_would_merge_stay_apart() {
        let names = [
            "a b", "a_b", "a%20b", "a/b", "a\\b", "a:b", "数据", "..", ".", "a..b",
        ];
        let encoded: std::collections::HashSet<String> =
            names.iter().map(|n| file_component(n)).collect();
        assert_eq!(encoded.len(), names.len(), "{encoded:?}");
    }

    #[test]
    fn the_result_is_one_component_that_cannot_climb() {
        for n in ["..", ".", "../etc", "a/../b", "/abs", "x\0y"] {
            let e = file_component(n);
            assert!(!e.contains('/') && !e.contains('\0'), "{n:?} -> {e:?}");
            assert!(e != "." && e != "..", "{n:?} -> {e:?}");
        }
        assert_eq!(file_component(".."), "%2E%2E");
        assert_eq!(file_component("a b"), "a%20b");
        assert_eq!(file_component("a%20b"), "a%2520b");
    }
}
