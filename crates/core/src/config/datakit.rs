//! What pythond reads from DataKit's own `datakit.conf`: where its HTTP API
//! listens (`[http_api] listen`) and which git repos are enabled.
//!
//! The file decides which code runs (the git repos' `python.d` are searched
//! first) and where points go, so it gets the permission check of every
//! config file ([`crate::trust`]): the file and its folder. A file that fails
//! is not read at all: the defaults apply (DataKit's default address, no git
//! repos) and [`DataKitConf::refused`] says why. No block's `insecure_paths`
//! can vouch for it.

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::{line_of, ConfigError, Location};
use crate::target::Target;

/// DataKit's default `[http_api] listen` (what [`Target::default`] is).
const DEFAULT_LISTEN: &str = "127.0.0.1:9529";

/// What pythond reads from `datakit.conf`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataKitConf {
    /// `[http_api] listen`, else DataKit's default `127.0.0.1:9529`.
    pub listen: Target,
    /// Folder names under `<datakit>/gitrepos/` of the enabled repos, in order.
    pub git_repos: Vec<String>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The file found but not read, because someone other than root and
    /// pythond's user could change it: what is wrong and how to fix it. The
    /// other fields are then the defaults.
    pub refused: Option<ConfigError>,
}

impl DataKitConf {
    /// The file [`DataKitConf::load`] reads: `<dir>/conf.d/datakit.conf`,
    /// else the older `<dir>/datakit.conf`.
    pub fn locate(datakit_dir: &Path) -> Option<PathBuf> {
        [
            datakit_dir.join("conf.d/datakit.conf"),
            datakit_dir.join("datakit.conf"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }

    /// Read the file of [`DataKitConf::locate`]; missing or refused by the
    /// permission check → defaults. A file that cannot be read or parsed is
    /// an error.
    pub fn load(datakit_dir: &Path) -> Result<DataKitConf, ConfigError> {
        let Some(file) = DataKitConf::locate(datakit_dir) else {
            return Ok(DataKitConf::default());
        };
        // The same check as any config file's: the file and its folder
        // (conf.d, or the DataKit dir for the older place).
        let folder = file.parent().unwrap_or(Path::new("/"));
        let then = format!(
            "DataKit's address and git repos are the defaults ({DEFAULT_LISTEN}, none) until that is fixed"
        );
        if let Some(refused) = super::untrusted(&file, folder, &then) {
            return Ok(DataKitConf {
                refused: Some(refused),
                ..DataKitConf::default()
            });
        }
        let text = std::fs::read_to_string(&file).map_err(|e| ConfigError {
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
        conf.file = Some(file);
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
            conf.listen = Target::from_listen(s);
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
    #[test]
    fn datakit_conf_listen_and_git_repos() {
        let c = DataKitConf::parse(
            "[http_api]\n  listen = \"0.0.0.0:19529\"\n[git_repos]\n  enable = true\n  [[git_repos.repo]]\n    enable = true\n    url = \"http://user@gitlab.example.com/conf/myconf.git\"\n  [[git_repos.repo]]\n    enable = false\n    url = \"git@github.com:x/off.git\"\n",
        )
        .unwrap();
        assert_eq!(c.listen, Target::Http("http://127.0.0.1:19529".into()));
        assert_eq!(c.git_repos, vec!["myconf".to_string()]);
    }

    const CONF: &str = "[http_api]\n  listen = \"127.0.0.1:7777\"\n[git_repos]\n  [[git_repos.repo]]\n    enable = true\n    url = \"http://example.com/conf/myconf.git\"\n";

    /// `rel` (under a new DataKit dir, folders 0755) holding [`CONF`] with `mode`.
    fn install(rel: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, CONF).unwrap();
        for a in f
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(t.path()))
        {
            std::fs::set_permissions(a, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        (t, f)
    }

    #[test]
    fn a_trusted_datakit_conf_is_read_in_either_place() {
        for rel in ["conf.d/datakit.conf", "datakit.conf"] {
            let (t, f) = install(rel, 0o644);
            let c = DataKitConf::load(t.path()).unwrap();
            assert_eq!(
                c.listen,
                Target::Http("http://127.0.0.1:7777".into()),
                "{rel}"
            );
            assert_eq!(c.git_repos, vec!["myconf".to_string()], "{rel}");
            assert_eq!(c.file.as_deref(), Some(f.as_path()));
            assert_eq!(c.refused, None);
        }
    }

    #[test]
    fn a_datakit_conf_others_can_change_is_not_used_and_says_why() {
        for rel in ["conf.d/datakit.conf", "datakit.conf"] {
            let (t, f) = install(rel, 0o646);
            let c = DataKitConf::load(t.path()).unwrap();
            assert_eq!(c.listen, Target::default(), "{rel}: the default address");
            assert!(c.git_repos.is_empty(), "{rel}: no git repos");
            assert_eq!(c.file, None, "{rel}");
            let e = c.refused.expect("the refusal").to_string();
            let real = f.canonicalize().unwrap();
            assert!(
                e.starts_with(&format!("{}:0: not read: ", f.display())),
                "{e}"
            );
            assert!(
                e.contains(&format!(
                    "file {} is writable by others (owner ",
                    real.display()
                )) && e.contains("mode 0646 -rw-r--rw-")
                    && e.contains(&format!("fix: chmod o-w {}", real.display())),
                "{e}"
            );
            assert!(
                e.ends_with(
                    "DataKit's address and git repos are the defaults (127.0.0.1:9529, none) until that is fixed"
                ),
                "{e}"
            );
        }
    }
}
