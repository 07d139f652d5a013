//! The worker → supervisor control channel: a pipe (fd 3 in the worker) of
//! short text lines, each written with one `write(2)` (atomic below
//! `PIPE_BUF`).
//!
//! - `h`: heartbeat. Written every second by a thread that first enters the
//!   interpreter: when they stop, C code holds the GIL forever.
//! - `s <what>` / `e <what>`: the worker starts / ends something that could
//!   take the process down, `what` being `import:<module>` or
//!   `run:<module>.<Class>`. When a worker dies, what was started and not
//!   ended is what it died in (see the supervisor's crash attribution).
//! - `c <message>`: the worker cannot start because of its configuration
//!   (`cmd`): it exits with `spec::exit::CONFIG` right after; the supervisor
//!   stops the input and reports the message.

/// What a worker was doing: the unit a crash is attributed to and a
/// quarantine applies to.
pub fn import_id(module: &str) -> String {
    format!("import:{module}")
}

/// See [`import_id`].
pub fn run_id(module: &str, class: &str) -> String {
    format!("run:{module}.{class}")
}

/// The module an id (`import:m` or `run:m.C`) belongs to.
pub fn module_of(id: &str) -> Option<&str> {
    if let Some(m) = id.strip_prefix("import:") {
        return Some(m);
    }
    let rest = id.strip_prefix("run:")?;
    Some(rest.rsplit_once('.').map(|(m, _)| m).unwrap_or(rest))
}

/// One message on the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Beat,
    Start(String),
    End(String),
    /// A configuration error, on one line.
    ConfigError(String),
}

impl Event {
    /// The line as written, newline included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Event::Beat => b"h\n".to_vec(),
            Event::Start(w) => format!("s {w}\n").into_bytes(),
            Event::End(w) => format!("e {w}\n").into_bytes(),
            Event::ConfigError(m) => {
                // One line, short enough for one atomic write(2).
                let mut m: String = m
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                    .collect();
                if m.len() > 3000 {
                    let mut end = 3000;
                    while !m.is_char_boundary(end) {
                        end -= 1;
                    }
                    m.truncate(end);
                }
                format!("c {m}\n").into_bytes()
            }
        }
    }

    /// A line without its newline; `None` if it is not a message.
    pub fn parse(line: &str) -> Option<Event> {
        match line.split_once(' ') {
            None if line == "h" => Some(Event::Beat),
            Some(("s", w)) => Some(Event::Start(w.to_owned())),
            Some(("e", w)) => Some(Event::End(w.to_owned())),
            Some(("c", m)) => Some(Event::ConfigError(m.to_owned())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_ids_name_their_module() {
        for e in [
            Event::Beat,
            Event::Start(run_id("sub.m", "C")),
            Event::End(import_id("m")),
            Event::ConfigError("cmd \"python3\" is Python 3.9".into()),
        ] {
            let line = String::from_utf8(e.encode()).unwrap();
            assert_eq!(Event::parse(line.trim_end()), Some(e));
        }
        assert_eq!(Event::parse("x y"), None);
        let multi = Event::ConfigError("two\nlines".into()).encode();
        assert_eq!(multi, b"c two lines\n");
        assert_eq!(module_of(&run_id("sub.m", "C")), Some("sub.m"));
        assert_eq!(module_of(&import_id("sub.m")), Some("sub.m"));
    }
}
