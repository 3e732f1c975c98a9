//! The fixture file of the contract: JSON lines of provider messages with their time since the
//! stream opened (`{"t_ms":…,"msg":{…}}`), after an optional header line. Frames that were not
//! JSON when recorded are kept verbatim as `{"t_ms":…,"raw":"…"}` so replay can resend them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The optional first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub fixture: u32,
    pub provider: String,
    #[serde(default)]
    pub description: String,
}

/// One message to send at `t_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub t_ms: u64,
    /// The text frame exactly as it is to be sent.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fixture {
    pub header: Option<Header>,
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} line {line}: {problem}")]
    Line { path: String, line: usize, problem: String },
    #[error("{path} was recorded from Telnyx: replay it with --provider telnyx")]
    NeedsTelnyx { path: String },
}

#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(default)]
    t_ms: Option<u64>,
    #[serde(default, borrow)]
    msg: Option<&'a RawValue>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    fixture: Option<u32>,
}

impl Fixture {
    pub fn read(path: &Path) -> Result<Fixture, FixtureError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| FixtureError::Io { path: p.clone(), source })?;
        Fixture::parse(&text, &p)
    }

    /// A fixture's lines (`label` names it in errors).
    pub fn parse(text: &str, label: &str) -> Result<Fixture, FixtureError> {
        let mut header = None;
        let mut steps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |problem: String| FixtureError::Line { path: label.to_string(), line: i + 1, problem };
            let parsed: LineIn = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            if parsed.fixture.is_some() {
                header = Some(serde_json::from_str(line).map_err(|e| bad(e.to_string()))?);
                continue;
            }
            let t_ms = parsed.t_ms.ok_or_else(|| bad("missing t_ms".into()))?;
            let text = match (parsed.msg, parsed.raw) {
                (Some(m), _) => m.get().to_string(),
                (None, Some(r)) => r,
                (None, None) => return Err(bad("needs msg or raw".into())),
            };
            steps.push(Step { t_ms, text });
        }
        Ok(Fixture { header, steps })
    }

    /// The last step's time.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.steps.last().map_or(0, |s| s.t_ms))
    }
}

/// Writes a fixture as messages arrive.
pub struct FixtureWriter {
    out: BufWriter<File>,
    opened: Instant,
}

impl FixtureWriter {
    pub fn create(path: &Path, header: &Header, opened: Instant) -> std::io::Result<FixtureWriter> {
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        Ok(FixtureWriter { out, opened })
    }

    /// Appends one received frame, stamped with its time since the stream opened.
    pub fn record(&mut self, at: Instant, text: &str) -> std::io::Result<()> {
        let t_ms = at.saturating_duration_since(self.opened).as_millis() as u64;
        match serde_json::from_str::<&RawValue>(text) {
            Ok(raw) if !raw.get().contains('\n') && raw.get().starts_with('{') => {
                write!(self.out, "{{\"t_ms\":{t_ms},\"msg\":{}}}", raw.get())?;
            }
            _ => {
                write!(self.out, "{{\"t_ms\":{t_ms},\"raw\":")?;
                serde_json::to_writer(&mut self.out, text)?;
                self.out.write_all(b"}")?;
            }
        }
        self.out.write_all(b"\n")
    }

    pub fn finish(mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_fixtures_read_back_verbatim() {
        let dir = std::env::temp_dir().join(format!("vb-fixture-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("call.jsonl");
        let t0 = Instant::now();
        let header = Header { fixture: 1, provider: "twilio".into(), description: "test".into() };
        let mut w = FixtureWriter::create(&path, &header, t0).unwrap();
        w.record(t0 + Duration::from_millis(20), r#"{"event":"connected","protocol":"Call"}"#).unwrap();
        w.record(t0 + Duration::from_millis(40), "{not json").unwrap();
        w.finish().unwrap();
        let f = Fixture::read(&path).unwrap();
        assert_eq!(f.header, Some(header));
        assert_eq!(f.steps[0], Step { t_ms: 20, text: r#"{"event":"connected","protocol":"Call"}"#.into() });
        assert_eq!(f.steps[1].text, "{not json");
        assert_eq!(f.duration(), Duration::from_millis(40));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let dir = std::env::temp_dir().join(format!("vb-fixture-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.jsonl");
        std::fs::write(&path, "{\"t_ms\":0,\"msg\":{}}\n{\"msg\":{}}\n").unwrap();
        let e = Fixture::read(&path).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("t_ms"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
