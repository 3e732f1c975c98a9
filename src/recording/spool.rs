//! Writing one call's recording to disk off the media path: the call hands each settled piece of
//! audio to a task behind a small bounded queue (never waiting: a full queue, a disk that stalls,
//! loses that piece, which becomes silence), and the task appends it to `<id>.wav.part`. At the
//! end the header gets its sizes and the file becomes `<id>.wav`. A `.part` left by a crash is
//! sealed the same way ([`seal`]).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::tap::{CHANNELS, RATE};
use super::wav::{HEADER_LEN, header};

/// Pieces (100 ms each, 3.2 KB) queued for the disk before one is lost: under a second of
/// audio, so a call's recording never holds more than ~26 KB here.
const QUEUE: usize = 8;
/// Bytes per sample frame (both channels).
const FRAME: u64 = CHANNELS as u64 * 2;
/// Writes are gathered this much before a syscall.
const WRITE_BUFFER: usize = 8 * 1024;
/// The suffix of a recording still being written.
pub const PART: &str = ".part";

/// A finished recording on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub path: PathBuf,
    pub bytes: u64,
}

/// One call's recording being written.
pub struct Spool {
    tx: mpsc::Sender<(u64, Vec<u8>)>,
    task: JoinHandle<Result<Finished, String>>,
    lost: u64,
}

impl Spool {
    /// Starts writing call `call_id`'s recording into `dir`.
    pub fn open(dir: &Path, call_id: &str) -> Spool {
        let (tx, rx) = mpsc::channel(QUEUE);
        let path = dir.join(super::file_name(call_id));
        let task = tokio::spawn(write(path, rx));
        Spool { tx, task, lost: 0 }
    }

    /// Queues interleaved samples starting at sample `at`; never waits.
    pub fn send(&mut self, at: u64, pcm: Vec<u8>) {
        if self.tx.try_send((at, pcm)).is_err() {
            self.lost += 1;
        }
    }

    /// Pieces lost to a full queue (or a writer that failed).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Queues the last piece (waiting for room: the call is over) and waits for the file to be
    /// complete.
    pub async fn finish(self, last: Option<(u64, Vec<u8>)>) -> Result<Finished, String> {
        if let Some(piece) = last {
            let _ = self.tx.send(piece).await;
        }
        drop(self.tx);
        self.task.await.map_err(|e| format!("the recording's writer failed: {e}"))?
    }
}

fn part_of(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(PART);
    PathBuf::from(p)
}

async fn write(path: PathBuf, mut rx: mpsc::Receiver<(u64, Vec<u8>)>) -> Result<Finished, String> {
    let part = part_of(&path);
    let failed = |e: std::io::Error| format!("cannot write the recording {}: {e}", part.display());
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    }
    let file = tokio::fs::File::create(&part).await.map_err(failed)?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    out.write_all(&header(CHANNELS, RATE.hz(), 0)).await.map_err(failed)?;
    let mut written = 0u64; // sample frames
    let zeros = [0u8; 4 * 800];
    while let Some((at, pcm)) = rx.recv().await {
        // A piece lost before this one: silence in its place.
        while written < at {
            let n = (at - written).min(zeros.len() as u64 / FRAME);
            out.write_all(&zeros[..(n * FRAME) as usize]).await.map_err(failed)?;
            written += n;
        }
        let skip = ((written - at) * FRAME).min(pcm.len() as u64) as usize;
        out.write_all(&pcm[skip..]).await.map_err(failed)?;
        written += (pcm.len() - skip) as u64 / FRAME;
    }
    out.flush().await.map_err(failed)?;
    let mut file = out.into_inner();
    finish_file(&mut file, written * FRAME).await.map_err(failed)?;
    drop(file);
    tokio::fs::rename(&part, &path).await.map_err(failed)?;
    Ok(Finished { path, bytes: HEADER_LEN + written * FRAME })
}

/// Writes the header's sizes and makes the file durable.
async fn finish_file(file: &mut tokio::fs::File, data_len: u64) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(0)).await?;
    file.write_all(&header(CHANNELS, RATE.hz(), data_len)).await?;
    file.flush().await?;
    file.sync_all().await
}

/// Seals a `.part` its writer left behind (a crash): the header gets the sizes of what was
/// written (whole sample frames) and the file loses its `.part`.
pub async fn seal(part: &Path) -> std::io::Result<Finished> {
    let len = tokio::fs::metadata(part).await?.len();
    let data_len = len.saturating_sub(HEADER_LEN) / FRAME * FRAME;
    let mut file = tokio::fs::OpenOptions::new().write(true).open(part).await?;
    if len < HEADER_LEN {
        file.set_len(HEADER_LEN).await?;
    } else {
        file.set_len(HEADER_LEN + data_len).await?;
    }
    finish_file(&mut file, data_len).await?;
    let path = part.with_extension(""); // `<id>.wav.part` → `<id>.wav`
    tokio::fs::rename(part, &path).await?;
    Ok(Finished { path, bytes: HEADER_LEN + data_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vb-spool-{name}-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn pcm(frames: usize, l: i16, r: i16) -> Vec<u8> {
        (0..frames).flat_map(|_| [l.to_le_bytes(), r.to_le_bytes()].concat()).collect()
    }

    #[tokio::test]
    async fn pieces_become_a_wav_file_with_silence_where_one_was_lost() {
        let dir = temp_dir("gap");
        let mut spool = Spool::open(&dir, "call_a");
        spool.send(0, pcm(800, 1, 2));
        spool.send(1600, pcm(800, 3, 4)); // 800..1600 lost
        let done = spool.finish(None).await.unwrap();
        assert_eq!(done.path, dir.join("call_a.wav"));
        assert_eq!(done.bytes, 44 + 2400 * 4);
        let reader = hound::WavReader::open(&done.path).unwrap();
        assert_eq!(reader.duration(), 2400);
        let s: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(&s[..2], &[1, 2]);
        assert!(s[1600..3200].iter().all(|&x| x == 0));
        assert_eq!(&s[3200..3202], &[3, 4]);
        assert!(!dir.join("call_a.wav.part").exists());
    }

    #[tokio::test]
    async fn a_part_left_by_a_crash_is_sealed_to_what_it_holds() {
        let dir = temp_dir("seal");
        let part = dir.join("call_b.wav.part");
        let mut bytes = header(2, 8000, 0).to_vec();
        bytes.extend(pcm(100, 7, 8));
        bytes.push(1); // half a sample frame: cut
        std::fs::write(&part, bytes).unwrap();
        let done = seal(&part).await.unwrap();
        assert_eq!(done.path, dir.join("call_b.wav"));
        let reader = hound::WavReader::open(&done.path).unwrap();
        assert_eq!(reader.duration(), 100);
    }
}
