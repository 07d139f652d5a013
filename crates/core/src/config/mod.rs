//! Configuration: `[[inputs.pythond]]` blocks from DataKit's `conf.d`, and
//! what pythond needs from `datakit.conf` ([`datakit`]).
//!
//! What users may write and what each key means: `docs/compat.md`,
//! "Configuration".
//!
//! A config path is a file or a directory (every `*.conf` below it, sorted).
//! Only `[[inputs.pythond]]` blocks are ours; other inputs are skipped. Every
//! problem names the file, the line and the key. A broken block is reported
//! and the others are kept; a file that is not valid TOML loses only its own
//! blocks. Unknown keys are warnings.
//!
//! Keys of a block (`name`, `cmd`, `dirs` required):
//! - `name` (str), `cmd` (str: the Python whose site-packages scripts see),
//!   `dirs` (array of str), `envs` (array of `KEY=VALUE`, `$VAR`/`${VAR}`
//!   expanded), `[inputs.pythond.tags]` (str → str);
//! - pythond's own: `numbers_as_float` (bool), `timeout` (seconds as a number,
//!   or `"30s"`, `"2m"`, `"500ms"`; 1 ms to 365 days), `insecure_paths`
//!   (bool: import scripts others could change, with a warning).
//!
//! A config file that someone other than root and pythond's user could
//! change (or that sits in such a folder below the config path) is not read
//! ([`crate::trust`]); `insecure_paths` cannot vouch for the file it is
//! written in, since whoever could change the file could add it.

//!
//! The block's keys are parsed in [`input`]; `envs` expansion is in [`envs`].

mod datakit;
mod envs;
mod input;

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::trust;

pub use datakit::{repo_dir_name, DataKitConf};
pub use envs::expand_envs;
use input::parse_block;
pub use input::{parse_duration, InputConfig};

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A problem in the configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ConfigError {
    pub at: Location,
    pub message: String,
}

/// Everything read from a config path.
#[derive(Debug, Default)]
pub struct ConfigSet {
    pub inputs: Vec<InputConfig>,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigError>,
    /// The config files found (read, or refused by the permission check).
    pub files: Vec<PathBuf>,
    /// Blocks that did not parse (their error is in `errors` too): a reload
    /// keeps the input of such a block running as it is.
    pub broken_blocks: Vec<BrokenBlock>,
}

/// A `[[inputs.pythond]]` block with an error.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenBlock {
    /// Its `name`, when that at least is a string.
    pub name: Option<String>,
    pub error: ConfigError,
}

/// Read every `[[inputs.pythond]]` block under `path`.
pub fn load(path: &Path) -> ConfigSet {
    let mut set = ConfigSet::default();
    let files = if path.is_dir() {
        let mut v = Vec::new();
        collect_conf_files(path, &mut v);
        v.sort();
        v
    } else {
        vec![path.to_owned()]
    };
    let root = if path.is_dir() {
        path.to_owned()
    } else {
        path.parent().unwrap_or(Path::new("/")).to_owned()
    };
    for f in files {
        if let Some(e) = untrusted(
            &f,
            &root,
            "its [[inputs.pythond]] blocks are ignored until that is fixed",
        ) {
            set.errors.push(e);
            set.files.push(f);
            continue;
        }
        match std::fs::read_to_string(&f) {
            Ok(text) => parse_file(&f, &text, &mut set),
            Err(e) => set.errors.push(ConfigError {
                at: Location {
                    file: f.clone(),
                    line: 0,
                },
                message: format!("cannot read: {e}"),
            }),
        }
        set.files.push(f);
    }
    let mut seen: Vec<(String, Location)> = Vec::new();
    let mut kept = Vec::new();
    for input in std::mem::take(&mut set.inputs) {
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == input.name) {
            set.errors.push(ConfigError {
                at: input.source.clone(),
                message: format!(
                    "[[inputs.pythond]] name {:?} is already used at {first}; names must be unique",
                    input.name
                ),
            });
            continue;
        }
        seen.push((input.name.clone(), input.source.clone()));
        kept.push(input);
    }
    set.inputs = kept;
    set
}

/// The refusal of a config file that someone other than root and the user
/// pythond runs as could change (the file, or a folder from it up to
/// `root`); `then` says what follows from it. `None`: trusted.
pub(crate) fn untrusted(file: &Path, root: &Path, then: &str) -> Option<ConfigError> {
    let problems = trust::check_all(&trust::guarded_paths(file, root));
    if problems.is_empty() {
        return None;
    }
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    Some(ConfigError {
        at: Location {
            file: file.to_owned(),
            line: 0,
        },
        message: format!(
            "not read: someone other than root and the user pythond runs as could change it: {}; {then}",
            problems.join("; ")
        ),
    })
}

fn collect_conf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_conf_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "conf") {
            out.push(p);
        }
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Parse one file's text, adding its blocks and problems to `set`.
pub fn parse_file(file: &Path, text: &str, set: &mut ConfigSet) {
    let at = |offset: usize| Location {
        file: file.to_owned(),
        line: line_of(text, offset),
    };
    let root = match DeTable::parse(text) {
        Ok(t) => t,
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            set.errors.push(ConfigError {
                at: at(offset),
                message: format!("not valid TOML: {}", e.message()),
            });
            return;
        }
    };
    let Some(inputs) = root.get_ref().get("inputs") else {
        return;
    };
    let Some(inputs) = inputs.get_ref().as_table() else {
        return;
    };
    let Some(blocks) = inputs.get("pythond") else {
        return;
    };
    let blocks: Vec<&Spanned<DeValue>> = match blocks.get_ref() {
        DeValue::Array(a) => a.iter().collect(),
        DeValue::Table(_) => vec![blocks],
        other => {
            set.errors.push(ConfigError {
                at: at(blocks.span().start),
                message: format!(
                    "inputs.pythond must be [[inputs.pythond]] tables, got {}",
                    other.type_str()
                ),
            });
            return;
        }
    };
    for (i, block) in blocks.into_iter().enumerate() {
        let label = format!("[[inputs.pythond]] #{}", i + 1);
        let Some(table) = block.get_ref().as_table() else {
            set.errors.push(ConfigError {
                at: at(block.span().start),
                message: format!("{label}: expected a table"),
            });
            continue;
        };
        match parse_block(table, block.span().start, &label, &at, &mut set.warnings) {
            Ok(input) => set.inputs.push(input),
            Err(e) => {
                set.broken_blocks.push(BrokenBlock {
                    name: table
                        .get("name")
                        .and_then(|v| v.get_ref().as_str())
                        .map(str::to_owned),
                    error: e.clone(),
                });
                set.errors.push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    pub(super) fn parse(text: &str) -> ConfigSet {
        let mut set = ConfigSet::default();
        parse_file(Path::new("conf.d/pythond/pythond.conf"), text, &mut set);
        set
    }
    #[test]
    fn the_seed_sample_block_parses() {
        let set = parse(
            "[[inputs.pythond]]\n  name = 'some-python-inputs'\n  #envs = ['LD_LIBRARY_PATH=/path/to/lib:$LD_LIBRARY_PATH',]\n  cmd = \"python3\"\n  dirs = [\"mytest\"]\n",
        );
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let i = &set.inputs[0];
        assert_eq!(
            (i.name.as_str(), i.cmd.as_str()),
            ("some-python-inputs", "python3")
        );
        assert_eq!(i.dirs, vec!["mytest".to_string()]);
        assert_eq!(i.source.line, 1);
    }

    #[test]
    fn other_inputs_are_ignored_and_several_blocks_read() {
        let set = parse(
            "[[inputs.cpu]]\n  percpu = true\n\n[[inputs.pythond]]\n name='a'\n cmd='python3'\n dirs=['x']\n\n[[inputs.pythond]]\n name='b'\n cmd='python3'\n dirs=['y']\n [inputs.pythond.tags]\n  env = 'prod'\n",
        );
        assert!(set.errors.is_empty() && set.warnings.is_empty(), "{set:?}");
        assert_eq!(set.inputs.len(), 2);
        assert_eq!(set.inputs[1].tags, vec![("env".into(), "prod".into())]);
        assert_eq!(set.inputs[1].source.line, 9);
    }

    #[test]
    fn missing_required_key_names_file_line_and_key_and_keeps_other_blocks() {
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='python3'\n\n[[inputs.pythond]]\n name='b'\n cmd='python3'\n dirs=['y']\n");
        assert_eq!(set.inputs.len(), 1);
        assert_eq!(
            set.errors[0].to_string(),
            "conf.d/pythond/pythond.conf:1: [[inputs.pythond]] #1 (\"a\"): key \"dirs\": missing (required)"
        );
    }

    #[test]
    fn a_broken_block_is_kept_with_its_name_when_it_has_one() {
        let set = parse(
            "[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n timeout='soon'\n\n[[inputs.pythond]]\n name=5\n cmd='p'\n dirs=[]\n",
        );
        assert!(set.inputs.is_empty());
        let names: Vec<Option<&str>> = set
            .broken_blocks
            .iter()
            .map(|b| b.name.as_deref())
            .collect();
        assert_eq!(names, vec![Some("a"), None]);
        assert_eq!(set.broken_blocks[0].error, set.errors[0]);
        assert_eq!(set.broken_blocks[1].error.at.line, 8);
    }

    #[test]
    fn wrong_type_names_the_line_of_the_value() {
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='python3'\n dirs=5\n");
        assert_eq!(
            set.errors[0].to_string(),
            "conf.d/pythond/pythond.conf:4: [[inputs.pythond]] #1 (\"a\"): key \"dirs\": expected an array of strings, got integer"
        );
    }

    #[test]
    fn unknown_keys_warn_with_their_line() {
        let set =
            parse("[[inputs.pythond]]\n name='a'\n cmd='python3'\n dirs=[]\n intervall = 5\n");
        assert_eq!(set.inputs.len(), 1);
        assert_eq!(
            set.warnings[0].to_string(),
            "conf.d/pythond/pythond.conf:5: [[inputs.pythond]] #1 (\"a\"): unknown key \"intervall\" ignored"
        );
    }

    #[test]
    fn toml_syntax_error_names_its_line() {
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd = \n");
        assert_eq!(set.inputs.len(), 0);
        assert!(
            set.errors[0]
                .to_string()
                .starts_with("conf.d/pythond/pythond.conf:3: not valid TOML"),
            "{}",
            set.errors[0]
        );
    }

    #[test]
    fn timeout_and_numbers_as_float() {
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n timeout='2m'\n numbers_as_float=true\n");
        assert_eq!(set.inputs[0].timeout, Some(Duration::from_secs(120)));
        assert!(set.inputs[0].numbers_as_float);
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n timeout='soon'\n");
        assert!(
            set.errors[0]
                .message
                .contains("key \"timeout\": \"soon\" is not a duration"),
            "{}",
            set.errors[0]
        );
    }

    /// Folders 0755, files 0644 whatever the umask (the permission check
    /// refuses group-writable config files).
    fn owner_only_writable(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let m = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        if p.is_dir() {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                owner_only_writable(&e.path());
            }
        }
    }

    #[test]
    fn huge_or_infinite_timeouts_are_errors_naming_block_and_key() {
        for v in ["'1e20s'", "1e300", "inf", "nan", "'400d'"] {
            let set = parse(&format!(
                "[[inputs.pythond]]\n name='huge'\n cmd='p'\n dirs=[]\n timeout={v}\n"
            ));
            assert!(set.inputs.is_empty(), "{v}");
            let e = set.errors[0].to_string();
            assert!(
                e.starts_with("conf.d/pythond/pythond.conf:5: [[inputs.pythond]] #1 (\"huge\"): key \"timeout\": "),
                "{v}: {e}"
            );
        }
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n timeout='1e20s'\n");
        assert!(
            set.errors[0].message.ends_with(
                "key \"timeout\": 1e20 s is too long; use 0.001 to 31536000 seconds (365 days)"
            ),
            "{}",
            set.errors[0]
        );
    }

    #[test]
    fn insecure_paths_is_a_known_bool_key() {
        let set =
            parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n insecure_paths=true\n");
        assert!(set.warnings.is_empty() && set.errors.is_empty(), "{set:?}");
        assert!(set.inputs[0].insecure_paths);
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n");
        assert!(!set.inputs[0].insecure_paths);
    }

    #[test]
    fn a_config_file_others_can_change_is_not_read_and_the_others_are() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        std::fs::create_dir(dir.path().join("pythond")).unwrap();
        let good = dir.path().join("pythond/good.conf");
        let open = dir.path().join("pythond/open.conf");
        std::fs::write(&good, "[[inputs.pythond]]\nname='good'\ncmd='p'\ndirs=[]\n").unwrap();
        std::fs::write(&open, "[[inputs.pythond]]\nname='open'\ncmd='p'\ndirs=[]\n").unwrap();
        mode(dir.path(), 0o755);
        mode(&dir.path().join("pythond"), 0o755);
        mode(&good, 0o644);
        mode(&open, 0o666);
        let fix = crate::trust::testing::go_w(&open);
        let set = load(dir.path());
        let names: Vec<&str> = set.inputs.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, vec!["good"]);
        assert_eq!(set.files.len(), 2);
        let e = set.errors[0].to_string();
        let real = open.canonicalize().unwrap();
        assert!(
            e.starts_with(&format!("{}:0: not read: ", open.display())),
            "{e}"
        );
        assert!(
            e.contains("mode 0666") && e.contains(&format!("{fix} {}", real.display())),
            "{e}"
        );
        // A folder others can write below the config path: every file in it.
        mode(&open, 0o644);
        mode(&dir.path().join("pythond"), 0o777);
        let set = load(dir.path());
        assert!(set.inputs.is_empty());
        assert_eq!(set.errors.len(), 2, "{:?}", set.errors);
    }

    #[test]
    fn max_rss_takes_human_sizes_and_refuses_nonsense_naming_the_key() {
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n max_rss='200MiB'\n");
        assert_eq!(set.inputs[0].max_rss, Some(200 << 20));
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n max_rss=1073741824\n");
        assert_eq!(set.inputs[0].max_rss, Some(1 << 30));
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n max_rss='lots'\n");
        assert!(
            set.errors[0].to_string().starts_with(
                "conf.d/pythond/pythond.conf:5: [[inputs.pythond]] #1 (\"a\"): key \"max_rss\": \"lots\" is not a size"
            ),
            "{}",
            set.errors[0]
        );
        let set = parse("[[inputs.pythond]]\n name='a'\n cmd='p'\n dirs=[]\n max_rss='1MiB'\n");
        assert!(
            set.errors[0].message.contains("below the 16 MiB"),
            "{}",
            set.errors[0]
        );
    }

    #[test]
    fn duplicate_names_are_refused_after_the_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.conf"),
            "[[inputs.pythond]]\nname='x'\ncmd='p'\ndirs=[]\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/b.conf"),
            "[[inputs.pythond]]\nname='x'\ncmd='p'\ndirs=[]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "[[inputs.pythond]]\n").unwrap();
        owner_only_writable(dir.path());
        let set = load(dir.path());
        assert_eq!(set.files.len(), 2);
        assert_eq!(set.inputs.len(), 1);
        assert!(
            set.errors[0].message.contains("already used at"),
            "{:?}",
            set.errors
        );
        assert!(set.errors[0].at.file.ends_with("sub/b.conf"));
    }
}
