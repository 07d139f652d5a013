//! The points of one script call on their way to delivery: whole
//! [`Point`]s (test mode prints them) or already-encoded [`Lines`] (what the
//! writer sends). Below both the sink seam and the writer, so that neither
//! has to know the other to hand points over.

use crate::lineproto::Lines;
use crate::point::Point;

/// The points of one script call, in the form the sink asked for (see
/// `Sink::payload`).
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Whole points: test mode inspects and prints them.
    Points(Vec<Point>),
    /// Encoded as they were converted: what the writer sends anyway.
    Lines(Lines),
}

impl Payload {
    pub fn push(&mut self, p: Point) {
        match self {
            Payload::Points(v) => v.push(p),
            Payload::Lines(l) => l.push(&p),
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        match self {
            Payload::Points(v) => v.len(),
            Payload::Lines(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<Point>> for Payload {
    fn from(v: Vec<Point>) -> Payload {
        Payload::Points(v)
    }
}
