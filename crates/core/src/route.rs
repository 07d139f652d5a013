//! Which request a point travels in: its [`Target`], category and the query
//! parameters of `/v1/write/<category>`. Points of one [`Route`] share
//! batches.

use crate::point::Category;
use crate::target::Target;

/// The query parameters of one `/v1/write/<category>` request, beside `precision=n`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct WriteQuery {
    pub input: Option<String>,
    pub ignore_global_tags: Option<bool>,
    pub ignore_global_host_tags: Option<bool>,
    pub version: Option<String>,
}

/// Which batch a point belongs to: points of one route share requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// `None`: the writer's default target.
    pub target: Option<Target>,
    pub category: Category,
    pub query: WriteQuery,
}

/// The longest `input` or `version` a script may give: it travels in the
/// request's URL, which has a hard length limit, and a DataKit input name
/// is a short word.
pub const MAX_QUERY_VALUE: usize = 1024;

/// A query value (`input`, `version`) a script gave that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is {len} bytes long; at most {MAX_QUERY_VALUE} (it goes into the request's URL)")]
pub struct QueryValueTooLong {
    pub len: usize,
}

/// Refuse a query value given by a script that the URL cannot carry.
pub fn check_query_value(value: &str) -> Result<(), QueryValueTooLong> {
    if value.len() > MAX_QUERY_VALUE {
        return Err(QueryValueTooLong { len: value.len() });
    }
    Ok(())
}

impl WriteQuery {
    /// `?precision=n&input=...`: every value percent-encoded.
    pub fn to_query_string(&self) -> String {
        let mut q = String::from("?precision=n");
        let mut add = |k: &str, v: &str| {
            q.push('&');
            q.push_str(k);
            q.push('=');
            percent_encode(v, &mut q);
        };
        if let Some(v) = &self.input {
            add("input", v);
        }
        // DataKit treats any non-empty value of these as true, "false"
        // included: false is sent by leaving the parameter out.
        if self.ignore_global_tags == Some(true) {
            add("ignore_global_tags", "true");
        }
        if self.ignore_global_host_tags == Some(true) {
            add("ignore_global_host_tags", "true");
        }
        if let Some(v) = &self.version {
            add("version", v);
        }
        q
    }
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl Route {
    /// `/v1/write/<category>?precision=n&...`
    pub fn path_and_query(&self) -> String {
        format!(
            "{}{}",
            self.category.write_path(),
            self.query.to_query_string()
        )
    }
}
