//! `envs = ['KEY=VALUE', ...]`: expanded as a shell would for the original.

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

#[cfg(test)]
mod tests {
    use super::*;
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
}
