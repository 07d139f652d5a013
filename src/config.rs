//! Configuration: `[[inputs.pythond]]` blocks from DataKit's `conf.d`, and
//! what pythond needs from `datakit.conf`.
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
//!   or `"30s"`, `"2m"`, `"500ms"`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One `[[inputs.pythond]]` block, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct InputConfig {
    pub name: String,
    pub cmd: String,
    pub dirs: Vec<String>,
    pub envs: Vec<String>,
    pub tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
    pub timeout: Option<Duration>,
    /// Where the block is: `file:line`.
    pub source: Location,
}

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
    /// The files read.
    pub files: Vec<PathBuf>,
}

const KNOWN_KEYS: &[&str] = &[
    "name",
    "cmd",
    "dirs",
    "envs",
    "tags",
    "numbers_as_float",
    "timeout",
];

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
    for f in files {
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
fn line_of(text: &str, offset: usize) -> usize {
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
            Err(e) => set.errors.push(e),
        }
    }
}

fn parse_block(
    t: &DeTable<'_>,
    block_offset: usize,
    label: &str,
    at: &dyn Fn(usize) -> Location,
    warnings: &mut Vec<ConfigError>,
) -> Result<InputConfig, ConfigError> {
    let name_for_msgs = t
        .get("name")
        .and_then(|v| v.get_ref().as_str())
        .map(|n| format!("{label} ({n:?})"))
        .unwrap_or_else(|| label.to_owned());
    let err = |offset: usize, key: &str, msg: String| ConfigError {
        at: at(offset),
        message: format!("{name_for_msgs}: key {key:?}: {msg}"),
    };
    for (k, v) in t.iter() {
        if !KNOWN_KEYS.contains(&k.get_ref().as_ref()) {
            warnings.push(ConfigError {
                at: at(k.span().start.min(v.span().start)),
                message: format!("{name_for_msgs}: unknown key {:?} ignored", k.get_ref()),
            });
        }
    }
    let required_str = |key: &str| -> Result<String, ConfigError> {
        match t.get(key) {
            None => Err(err(block_offset, key, "missing (required)".into())),
            Some(v) => match v.get_ref().as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.to_owned()),
                Some(_) => Err(err(v.span().start, key, "must not be empty".into())),
                None => Err(err(
                    v.span().start,
                    key,
                    format!("expected a string, got {}", v.get_ref().type_str()),
                )),
            },
        }
    };
    let str_array = |key: &str, v: &Spanned<DeValue>| -> Result<Vec<String>, ConfigError> {
        let arr = v.get_ref().as_array().ok_or_else(|| {
            err(
                v.span().start,
                key,
                format!(
                    "expected an array of strings, got {}",
                    v.get_ref().type_str()
                ),
            )
        })?;
        arr.iter()
            .map(|e| {
                e.get_ref().as_str().map(str::to_owned).ok_or_else(|| {
                    err(
                        e.span().start,
                        key,
                        format!(
                            "expected an array of strings, got an element of type {}",
                            e.get_ref().type_str()
                        ),
                    )
                })
            })
            .collect()
    };
    let name = required_str("name")?;
    let cmd = required_str("cmd")?;
    let dirs = match t.get("dirs") {
        None => return Err(err(block_offset, "dirs", "missing (required)".into())),
        Some(v) => str_array("dirs", v)?,
    };
    let envs = match t.get("envs") {
        None => Vec::new(),
        Some(v) => {
            let envs = str_array("envs", v)?;
            if let Some(bad) = envs.iter().find(|e| !e.contains('=')) {
                return Err(err(
                    v.span().start,
                    "envs",
                    format!("{bad:?} is not KEY=VALUE"),
                ));
            }
            envs
        }
    };
    let tags = match t.get("tags") {
        None => Vec::new(),
        Some(v) => {
            let table = v.get_ref().as_table().ok_or_else(|| {
                err(
                    v.span().start,
                    "tags",
                    format!(
                        "expected a table of strings, got {}",
                        v.get_ref().type_str()
                    ),
                )
            })?;
            table
                .iter()
                .map(|(k, tv)| {
                    tv.get_ref()
                        .as_str()
                        .map(|s| (k.get_ref().to_string(), s.to_owned()))
                        .ok_or_else(|| {
                            err(
                                tv.span().start,
                                &format!("tags.{}", k.get_ref()),
                                format!("expected a string, got {}", tv.get_ref().type_str()),
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let numbers_as_float = match t.get("numbers_as_float") {
        None => false,
        Some(v) => v.get_ref().as_bool().ok_or_else(|| {
            err(
                v.span().start,
                "numbers_as_float",
                format!("expected true or false, got {}", v.get_ref().type_str()),
            )
        })?,
    };
    let timeout = match t.get("timeout") {
        None => None,
        Some(v) => Some(parse_timeout(v.get_ref()).map_err(|m| err(v.span().start, "timeout", m))?),
    };
    Ok(InputConfig {
        name,
        cmd,
        dirs,
        envs,
        tags,
        numbers_as_float,
        timeout,
        source: at(block_offset),
    })
}

fn parse_timeout(v: &DeValue<'_>) -> Result<Duration, String> {
    let secs = match v {
        DeValue::Integer(i) => i
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .map_err(|_| format!("{} is not a number of seconds", i.as_str()))?,
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .map_err(|_| format!("{} is not a number of seconds", f.as_str()))?,
        DeValue::String(s) => parse_duration(s).ok_or_else(|| {
            format!("{s:?} is not a duration (use seconds, or a string like \"30s\", \"2m\", \"500ms\")")
        })?,
        other => return Err(format!("expected seconds or a duration string, got {}", other.type_str())),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err("must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `"30s"`, `"2m"`, `"1h"`, `"500ms"`, `"1.5"` → seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|n| n * mult)
}

/// Expand `$VAR` and `${VAR}` in `KEY=VALUE` strings, as a shell would for
/// the original's `envs`. Unknown variables expand to the empty string.
pub fn expand_envs(
    envs: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    envs.iter()
        .filter_map(|e| {
            let (k, v) = e.split_once('=')?;
            Some((k.trim().to_owned(), expand(v, &lookup)))
        })
        .collect()
}

fn expand(v: &str, lookup: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let braced = chars.peek().is_some_and(|(_, c)| *c == '{');
        if braced {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if braced && chars.peek().is_some_and(|(_, c)| *c == '}') {
            chars.next();
        }
        if name.is_empty() {
            out.push('$');
            if braced {
                out.push('{');
            }
        } else {
            out.push_str(&lookup(&name).unwrap_or_default());
        }
    }
    out
}

/// Where DataKit's HTTP API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataKitAddr {
    /// `http://host:port`
    Http(String),
    Unix(PathBuf),
}

/// What pythond reads from `datakit.conf`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataKitConf {
    pub listen: DataKitAddr,
    /// Folder names under `<datakit>/gitrepos/` of the enabled repos, in order.
    pub git_repos: Vec<String>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
}

impl Default for DataKitConf {
    fn default() -> Self {
        DataKitConf {
            listen: DataKitAddr::Http("http://127.0.0.1:9529".into()),
            git_repos: Vec::new(),
            file: None,
        }
    }
}

/// `listen` as DataKit writes it → an address to connect to.
pub fn parse_listen(listen: &str) -> DataKitAddr {
    let l = listen.trim();
    if l.starts_with('/') || l.ends_with(".sock") {
        return DataKitAddr::Unix(PathBuf::from(l));
    }
    let l = l.trim_start_matches("http://");
    let (host, port) = match l.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (l, "9529"),
    };
    let host = match host {
        "" | "0.0.0.0" | "::" | "[::]" | "localhost" => "127.0.0.1",
        h => h,
    };
    DataKitAddr::Http(format!("http://{host}:{port}"))
}

impl DataKitConf {
    /// Read `<dir>/conf.d/datakit.conf` (or `<dir>/datakit.conf`); missing → defaults.
    pub fn load(datakit_dir: &Path) -> Result<DataKitConf, ConfigError> {
        let candidates = [
            datakit_dir.join("conf.d/datakit.conf"),
            datakit_dir.join("datakit.conf"),
        ];
        let Some(file) = candidates.iter().find(|p| p.is_file()) else {
            return Ok(DataKitConf::default());
        };
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            at: Location {
                file: file.clone(),
                line: 0,
            },
            message: format!("cannot read: {e}"),
        })?;
        let mut conf = DataKitConf::parse(&text).map_err(|(offset, message)| ConfigError {
            at: Location {
                file: file.clone(),
                line: line_of(&text, offset),
            },
            message,
        })?;
        conf.file = Some(file.clone());
        Ok(conf)
    }

    fn parse(text: &str) -> Result<DataKitConf, (usize, String)> {
        let root = DeTable::parse(text).map_err(|e| {
            (
                e.span().map(|s| s.start).unwrap_or(0),
                format!("not valid TOML: {}", e.message()),
            )
        })?;
        let mut conf = DataKitConf::default();
        let root = root.get_ref();
        if let Some(listen) = root
            .get("http_api")
            .and_then(|h| h.get_ref().as_table())
            .and_then(|h| h.get("listen"))
        {
            let s = listen.get_ref().as_str().ok_or((
                listen.span().start,
                "[http_api] listen must be a string".to_owned(),
            ))?;
            conf.listen = parse_listen(s);
        }
        if let Some(git) = root.get("git_repos").and_then(|g| g.get_ref().as_table()) {
            let enabled = git
                .get("enable")
                .and_then(|e| e.get_ref().as_bool())
                .unwrap_or(true);
            if let (true, Some(repos)) = (
                enabled,
                git.get("repo").and_then(|r| r.get_ref().as_array()),
            ) {
                for r in repos {
                    let Some(t) = r.get_ref().as_table() else {
                        continue;
                    };
                    if !t
                        .get("enable")
                        .and_then(|e| e.get_ref().as_bool())
                        .unwrap_or(false)
                    {
                        continue;
                    }
                    if let Some(url) = t.get("url").and_then(|u| u.get_ref().as_str()) {
                        conf.git_repos.push(repo_dir_name(url));
                    }
                }
            }
        }
        Ok(conf)
    }
}

/// DataKit clones a repo into `gitrepos/<last path segment without .git>`.
pub fn repo_dir_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url);
    last.trim_end_matches(".git").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigSet {
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

    #[test]
    fn envs_expand_variables() {
        let env = |k: &str| (k == "LD_LIBRARY_PATH").then(|| "/usr/lib".to_string());
        assert_eq!(
            expand_envs(
                &[
                    "LD_LIBRARY_PATH=/opt/lib:$LD_LIBRARY_PATH".into(),
                    "A=${LD_LIBRARY_PATH}/x $NOPE.".into()
                ],
                env
            ),
            vec![
                ("LD_LIBRARY_PATH".into(), "/opt/lib:/usr/lib".into()),
                ("A".into(), "/usr/lib/x .".into())
            ]
        );
    }

    #[test]
    fn datakit_conf_listen_and_git_repos() {
        let c = DataKitConf::parse(
            "[http_api]\n  listen = \"0.0.0.0:19529\"\n[git_repos]\n  enable = true\n  [[git_repos.repo]]\n    enable = true\n    url = \"http://user@gitlab.example.com/conf/myconf.git\"\n  [[git_repos.repo]]\n    enable = false\n    url = \"git@github.com:x/off.git\"\n",
        )
        .unwrap();
        assert_eq!(c.listen, DataKitAddr::Http("http://127.0.0.1:19529".into()));
        assert_eq!(c.git_repos, vec!["myconf".to_string()]);
        assert_eq!(
            parse_listen("/var/run/datakit.sock"),
            DataKitAddr::Unix("/var/run/datakit.sock".into())
        );
        assert_eq!(
            parse_listen("localhost:9529"),
            DataKitAddr::Http("http://127.0.0.1:9529".into())
        );
    }
}
