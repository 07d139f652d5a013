//! Which Python's packages the scripts see when a block's `cmd` names
//! pythond (so it cannot name a Python): `PYTHOND_PYTHON` (a venv's python
//! too), else the active virtualenv's `$VIRTUAL_ENV/bin/python`, else the
//! embedded interpreter's own `sys.path` (empty `cmd`: nothing probed); and
//! where that choice came from, for the hint on a version mismatch.

use std::path::Path;

/// The variable naming the Python whose `site-packages` scripts see.
pub const PYTHOND_PYTHON: &str = "PYTHOND_PYTHON";

/// The `cmd` to give workers, from `lookup` (the environment DataKit gave
/// us, or a block's `envs`); empty for the embedded default.
pub fn python_cmd(lookup: impl Fn(&str) -> Option<String>) -> String {
    python_choice(lookup)
        .map(|(cmd, _)| cmd)
        .unwrap_or_default()
}

/// [`python_cmd`] and the variable it came from (`PYTHOND_PYTHON` or
/// `VIRTUAL_ENV`); `None` for the embedded default.
pub fn python_choice(lookup: impl Fn(&str) -> Option<String>) -> Option<(String, &'static str)> {
    let set = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    if let Some(p) = set(PYTHOND_PYTHON) {
        return Some((p.trim().to_owned(), PYTHOND_PYTHON));
    }
    let venv = set("VIRTUAL_ENV")?;
    let cmd = Path::new(venv.trim()).join("bin/python");
    Some((cmd.to_string_lossy().into_owned(), "VIRTUAL_ENV"))
}

/// Where the variable naming the scripts' Python came from, for the hint
/// on a version mismatch: the block's `envs` (DataKit then passes only
/// those), or the environment DataKit started pythond with (its own, when
/// the block has no `envs`). `block` is the block's `envs` and where it is,
/// when the block was found in `conf.d`.
pub fn mismatch_hint(var: &str, block: Option<(&[String], &str)>) -> String {
    let in_envs = block.is_some_and(|(envs, _)| {
        envs.iter()
            .any(|e| e.split_once('=').is_some_and(|(k, _)| k.trim() == var))
    });
    match block {
        Some((_, at)) if in_envs => format!(
            " [launch mode: that Python is {var}, set in the block's envs ({at}), and cmd stays pythond: \
             set {var} there to a Python of pythond's version, or leave it out to use pythond's own]"
        ),
        Some(([], _)) => format!(
            " [launch mode: that Python is {var} from DataKit's own environment (the block has no envs, \
             so DataKit passes its own), and cmd stays pythond: start DataKit without {var}, or give the \
             block envs = [\"PYTHOND_PYTHON=<a Python of pythond's version>\"]]"
        ),
        _ => format!(
            " [launch mode: that Python is {var} from the environment DataKit started pythond with \
             (not set in the block's envs), and cmd stays pythond: remove {var} from that environment, or \
             set PYTHOND_PYTHON in the block's envs to a Python of pythond's version]"
        ),
    }
}

/// `cmd` runs pythond itself (`/usr/local/bin/pythond`), not a Python.
pub fn names_pythond(cmd: &str) -> bool {
    Path::new(cmd.trim())
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("pythond"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn pythond_python_then_virtual_env_then_embedded() {
        assert_eq!(
            python_cmd(env(&[
                ("PYTHOND_PYTHON", "/opt/venv/bin/python3"),
                ("VIRTUAL_ENV", "/other")
            ])),
            "/opt/venv/bin/python3"
        );
        assert_eq!(
            python_cmd(env(&[("PYTHOND_PYTHON", " "), ("VIRTUAL_ENV", "/opt/v")])),
            "/opt/v/bin/python"
        );
        assert_eq!(python_cmd(env(&[])), "");
    }

    #[test]
    fn the_choice_names_the_variable_it_was_taken_from() {
        // A blank PYTHOND_PYTHON is not set: the hint must not name it.
        assert_eq!(
            python_choice(env(&[("PYTHOND_PYTHON", " "), ("VIRTUAL_ENV", "/opt/v")])),
            Some(("/opt/v/bin/python".to_owned(), "VIRTUAL_ENV"))
        );
        assert_eq!(
            python_choice(env(&[("PYTHOND_PYTHON", "/p"), ("VIRTUAL_ENV", "/opt/v")])),
            Some(("/p".to_owned(), "PYTHOND_PYTHON"))
        );
        assert_eq!(python_choice(env(&[("VIRTUAL_ENV", "")])), None);
    }

    #[test]
    fn the_hint_says_where_the_python_came_from() {
        let envs = vec!["PYTHOND_PYTHON=/opt/py/bin/python3".to_string()];
        let h = mismatch_hint("PYTHOND_PYTHON", Some((&envs, "/dk/conf.d/p.conf:1")));
        assert!(
            h.contains("set in the block's envs (/dk/conf.d/p.conf:1)"),
            "{h}"
        );
        let h = mismatch_hint("VIRTUAL_ENV", Some((&[], "/dk/conf.d/p.conf:1")));
        assert!(h.contains("from DataKit's own environment"), "{h}");
        assert!(!h.contains("block's envs ("), "{h}");
        for block in [None, Some((&envs[..], "x:1"))] {
            let h = mismatch_hint("VIRTUAL_ENV", block);
            assert!(
                h.contains("from the environment DataKit started pythond with"),
                "{h}"
            );
        }
    }

    #[test]
    fn a_cmd_naming_pythond_is_recognised() {
        assert!(names_pythond("/usr/local/bin/pythond"));
        assert!(names_pythond("pythond"));
        assert!(!names_pythond("python3"));
        assert!(!names_pythond("/usr/bin/python3.11"));
    }
}
