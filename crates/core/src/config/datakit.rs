//! What pythond reads from DataKit's own `datakit.conf`: where its HTTP API
//! listens (`[http_api] listen`) and which git repos are enabled.

use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::{line_of, ConfigError, Location};
use crate::target::Target;

/// What pythond reads from `datakit.conf`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataKitConf {
    /// `[http_api] listen`, else DataKit's default `127.0.0.1:9529`.
    pub listen: Target,
    /// Folder names under `<datakit>/gitrepos/` of the enabled repos, in order.
    pub git_repos: Vec<String>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
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
}
