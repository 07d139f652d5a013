//! Which Python's packages the scripts see when a block's `cmd` names
//! pythond (so it cannot name a Python): `PYTHOND_PYTHON` (a venv's python
//! too), else the active virtualenv's `$VIRTUAL_ENV/bin/python`, else the
//! embedded interpreter's own `sys.path` (empty `cmd`: nothing probed).

use std::path::Path;

/// The variable naming the Python whose `site-packages` scripts see.
pub const PYTHOND_PYTHON: &str = "PYTHOND_PYTHON";

/// The `cmd` to give workers, from `lookup` (the environment DataKit gave
/// us, or a block's `envs`); empty for the embedded default.
pub fn python_cmd(lookup: impl Fn(&str) -> Option<String>) -> String {
    let set = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    if let Some(p) = set(PYTHOND_PYTHON) {
        return p.trim().to_owned();
    }
    if let Some(venv) = set("VIRTUAL_ENV") {
        return Path::new(venv.trim())
            .join("bin/python")
            .to_string_lossy()
            .into_owned();
    }
    String::new()
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
    fn a_cmd_naming_pythond_is_recognised() {
        assert!(names_pythond("/usr/local/bin/pythond"));
        assert!(names_pythond("pythond"));
        assert!(!names_pythond("python3"));
        assert!(!names_pythond("/usr/bin/python3.11"));
    }
}
