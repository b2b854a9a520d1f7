//! How a stored document's histograms were validated ([`Marks`]): accumulated over its
//! histogram sections, counted per label, and — outside strict mode, when the histograms were
//! not all checked against the ping's own definitions or some were dropped — stored in the
//! document as `"conversion":{"validation":…,"histogramsDropped":…,"layouts":{…}}` so analysts
//! can filter on it and read every compact array.

use super::compact::{Basis, HistogramCounts, SectionWriter};
use super::fields::Fields;

impl Basis {
    /// The label stored in documents and used on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Basis::Definitions => "definitions",
            Basis::SelfDescribed => "self_described",
            Basis::Nearest => "nearest",
        }
    }
}

/// What the histogram sections of one document came to.
#[derive(Debug, Default)]
pub struct Marks {
    pub counts: HistogramCounts,
    /// The least exact basis any section used; `None` when the document had no histograms.
    pub basis: Option<Basis>,
    /// `"NAME":[type,low,high]` of every histogram not laid out by the ping's own definitions.
    layouts: String,
}

impl Marks {
    /// Adds one section writer's outcome; `own`: its definitions were the ping's own.
    pub fn add(&mut self, writer: &SectionWriter, own: bool) {
        let c = &writer.counts;
        let t = &mut self.counts;
        t.converted += c.converted;
        t.unknown += c.unknown;
        t.dropped += c.dropped;
        t.self_described += c.self_described;
        t.nearest += c.nearest;
        if c.converted + c.dropped + c.unknown == 0 {
            return; // an empty section says nothing about validation
        }
        let basis = if own {
            Basis::Definitions
        } else if c.nearest > 0 {
            Basis::Nearest
        } else {
            Basis::SelfDescribed
        };
        self.basis = self.basis.max(Some(basis));
        if !writer.noted_layouts.is_empty() {
            if !self.layouts.is_empty() {
                self.layouts.push(',');
            }
            self.layouts.push_str(&writer.noted_layouts);
        }
    }

    /// Appends the `conversion` member to `root` when there is something to say.
    pub fn store(&self, root: &mut Fields) {
        let Some(basis) = self.basis else {
            return;
        };
        if basis == Basis::Definitions && self.counts.dropped == 0 {
            return;
        }
        let mut member = format!("{{\"validation\":\"{}\"", basis.label());
        if self.counts.dropped > 0 {
            member.push_str(&format!(",\"histogramsDropped\":{}", self.counts.dropped));
        }
        if !self.layouts.is_empty() {
            member.push_str(",\"layouts\":{");
            member.push_str(&self.layouts);
            member.push('}');
        }
        member.push('}');
        root.set("conversion", member);
    }
}
