//! The `VOXBRIDGE_RECORDINGS` setting: plain data the configuration holds (no I/O here).

use std::path::PathBuf;

/// Where recordings go (`VOXBRIDGE_RECORDINGS`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Recordings {
    /// No call is recorded (`record: true` is refused).
    #[default]
    Off,
    /// `local:<dir>`: WAV files in a directory.
    Local(PathBuf),
    /// `s3://bucket/prefix`: objects in an S3-compatible store (the usual `AWS_*` variables).
    S3 { bucket: String, prefix: String },
}

impl Recordings {
    /// Parses `VOXBRIDGE_RECORDINGS`.
    pub fn parse(s: &str) -> Result<Recordings, String> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("off") {
            return Ok(Recordings::Off);
        }
        if let Some(dir) = s.strip_prefix("local:") {
            if dir.is_empty() {
                return Err("'local:' needs a directory (local:/var/lib/voxbridge/recordings)".into());
            }
            return Ok(Recordings::Local(PathBuf::from(dir)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("'{s}' names no bucket (s3://bucket/prefix)"));
            }
            return Ok(Recordings::S3 { bucket: bucket.into(), prefix: prefix.trim_matches('/').into() });
        }
        Err(format!("'{s}' is not off, local:<dir> or s3://bucket/prefix"))
    }

    pub fn is_on(&self) -> bool {
        *self != Recordings::Off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_parses_or_says_what_is_expected() {
        assert_eq!(Recordings::parse("off"), Ok(Recordings::Off));
        assert_eq!(Recordings::parse(""), Ok(Recordings::Off));
        assert_eq!(Recordings::parse("local:/tmp/r"), Ok(Recordings::Local("/tmp/r".into())));
        assert_eq!(
            Recordings::parse("s3://calls/rec/2026/"),
            Ok(Recordings::S3 { bucket: "calls".into(), prefix: "rec/2026".into() })
        );
        assert_eq!(Recordings::parse("s3://calls"), Ok(Recordings::S3 { bucket: "calls".into(), prefix: "".into() }));
        assert!(Recordings::parse("s3:///x").unwrap_err().contains("no bucket"));
        assert!(Recordings::parse("local:").is_err());
        assert!(Recordings::parse("ftp://x").unwrap_err().contains("local:<dir>"));
    }
}
