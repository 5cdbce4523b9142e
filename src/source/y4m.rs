//! The raw-video file source: a YUV4MPEG2 file (`.y4m`, what ffmpeg writes
//! with `-f yuv4mpegpipe`) of 4:2:0 pictures, read a frame at a time as it
//! plays, paced at the file's frame rate and looped. Its frames are raw, so
//! the overlay, the encoder, the substream, the snapshot and motion take
//! them like a camera's: tests and demos feed known pictures to all of
//! them. By hand: the format is a text header line and a `FRAME` line
//! before each picture; no crate is needed to read that.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::pacer::{Pacer, WhenLate};
use crate::overlay::Overlay;
use crate::source::frame::{Frame, Source, SourceError, owned_i420};

/// What a YUV4MPEG2 file starts with.
pub const MAGIC: &[u8] = b"YUV4MPEG2 ";
/// Longest header or `FRAME` line read.
const MAX_LINE: usize = 1024;
/// Largest picture taken (4096x2304).
const MAX_PIXELS: usize = 4096 * 2304;

const HINT: &str = "write it with: ffmpeg -i IN -pix_fmt yuv420p -f yuv4mpegpipe OUT.y4m";

/// A YUV4MPEG2 file played in a loop.
pub struct Y4mSource {
    name: String,
    file: BufReader<File>,
    /// Where the first `FRAME` line is: where every loop starts.
    first: u64,
    width: usize,
    height: usize,
    fps: f64,
    pacer: Pacer,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
    overlay: Option<Overlay>,
}

/// The header's fields that matter.
#[derive(Debug, PartialEq)]
struct Header {
    width: usize,
    height: usize,
    fps: f64,
}

/// Reads the header line (`YUV4MPEG2 W640 H360 F25:1 Ip A1:1 C420jpeg`).
fn header(line: &str) -> Result<Header, String> {
    let mut fields = line.trim_end().split(' ');
    if fields.next() != Some("YUV4MPEG2") {
        return Err("not a YUV4MPEG2 file".into());
    }
    let (mut width, mut height, mut fps) = (None, None, None);
    for field in fields.filter(|f| !f.is_empty()) {
        let (tag, value) = field.split_at(1);
        match tag {
            "W" => width = value.parse::<usize>().ok(),
            "H" => height = value.parse::<usize>().ok(),
            "F" => {
                let (n, d) = value.split_once(':').ok_or("a frame rate without ':'")?;
                let (n, d): (f64, f64) = (
                    n.parse().map_err(|_| "an unreadable frame rate")?,
                    d.parse().map_err(|_| "an unreadable frame rate")?,
                );
                fps = (d > 0.0).then(|| n / d);
            }
            "I" if value != "p" && value != "?" => {
                return Err(format!(
                    "interlaced pictures (I{value}): only progressive ones"
                ));
            }
            "C" if !value.starts_with("420") => {
                return Err(format!("colour space C{value}: only 4:2:0 (C420...)"));
            }
            _ => {}
        }
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Err("no W (width) or H (height)".into());
    };
    if width < 16 || height < 16 || width % 2 != 0 || height % 2 != 0 {
        return Err(format!("{width}x{height}: even sizes of 16 or more only"));
    }
    if width * height > MAX_PIXELS {
        return Err(format!("{width}x{height} is larger than 4096x2304"));
    }
    let fps = fps
        .filter(|f| (1.0..=240.0).contains(f))
        .ok_or("no frame rate of 1 to 240 (F)")?;
    Ok(Header { width, height, fps })
}

impl Y4mSource {
    /// Opens `path` and reads its header; `overlay` is drawn on each frame.
    pub fn open(path: &Path, overlay: Option<Overlay>) -> Result<Self, SourceError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| SourceError::Io {
            path: name.clone(),
            error,
        })?;
        let invalid = |what: String| SourceError::Invalid(format!("{name}: {what}; {HINT}"));
        let mut file = BufReader::new(file);
        let line = read_line(&mut file).map_err(|e| invalid(e.to_string()))?;
        let h = header(&line).map_err(invalid)?;
        let first = line.len() as u64 + 1;
        let (cw, ch) = (h.width / 2, h.height / 2);
        let mut source = Self {
            name: format!("y4m file {name}"),
            file,
            first,
            width: h.width,
            height: h.height,
            fps: h.fps,
            pacer: Pacer::new(h.fps, WhenLate::Skip),
            y: vec![0; h.width * h.height],
            u: vec![0; cw * ch],
            v: vec![0; cw * ch],
            overlay,
        };
        // One whole picture must be there.
        source.read_picture().map_err(|e| invalid(e.to_string()))?;
        source
            .file
            .seek(SeekFrom::Start(first))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(source)
    }

    /// Reads the next picture into the planes, looping at the end.
    fn read_picture(&mut self) -> std::io::Result<()> {
        let mut looped = false;
        loop {
            let line = read_line(&mut self.file)?;
            if line.is_empty() {
                if looped {
                    return Err(std::io::Error::other("no picture in the file"));
                }
                looped = true;
                self.file.seek(SeekFrom::Start(self.first))?;
                continue;
            }
            if !line.starts_with("FRAME") {
                return Err(std::io::Error::other(format!(
                    "a picture does not start with FRAME but {:?}",
                    line.chars().take(20).collect::<String>()
                )));
            }
            self.file.read_exact(&mut self.y)?;
            self.file.read_exact(&mut self.u)?;
            self.file.read_exact(&mut self.v)?;
            return Ok(());
        }
    }
}

/// One line without its `\n` (empty at the end of the file), at most
/// [`MAX_LINE`] bytes.
fn read_line(file: &mut BufReader<File>) -> std::io::Result<String> {
    let mut line = Vec::new();
    file.by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if !line.is_empty() {
        return Err(std::io::Error::other(
            "a line that does not end (a cut file?)",
        ));
    }
    String::from_utf8(line).map_err(|_| std::io::Error::other("a line that is not text"))
}

impl Source for Y4mSource {
    fn kind(&self) -> crate::config::SourceKind {
        crate::config::SourceKind::File
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn dimensions(&self) -> (u32, u32) {
        (self.width as u32, self.height as u32)
    }

    fn framerate(&self) -> f64 {
        self.fps
    }

    fn next_frame(&mut self) -> Result<Frame<'_>, SourceError> {
        // Read first: disk latency is absorbed before the frame is due.
        self.read_picture()
            .map_err(|e| SourceError::Invalid(format!("{}: {e}", self.name)))?;
        let timestamp = self.pacer.wait();
        Ok(owned_i420(
            (&mut self.y, &mut self.u, &mut self.v),
            self.width,
            self.height,
            self.overlay.as_mut(),
            timestamp,
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::format::raw::{Pixels, RawFrame};

    /// A y4m file of `n` 32x16 pictures, picture `i` all luma `10 * i`.
    fn file(n: u8, header: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "{header}").unwrap();
        for i in 0..n {
            f.write_all(b"FRAME\n").unwrap();
            f.write_all(&[10 * i; 32 * 16]).unwrap();
            f.write_all(&[128; 2 * 16 * 8]).unwrap();
        }
        f
    }

    #[test]
    fn pictures_come_in_order_and_loop() {
        let f = file(
            3,
            "YUV4MPEG2 W32 H16 F240:1 Ip A1:1 C420jpeg XYSCSS=420JPEG",
        );
        let mut src = Y4mSource::open(f.path(), None).unwrap();
        assert_eq!((src.dimensions(), src.framerate()), ((32, 16), 240.0));
        let lumas: Vec<u8> = (0..7)
            .map(|_| match src.next_frame().unwrap() {
                Frame::Raw(RawFrame {
                    pixels: Pixels::I420 { y, .. },
                    ..
                }) => y.data[0],
                _ => panic!("not I420"),
            })
            .collect();
        assert_eq!(lumas, [0, 10, 20, 0, 10, 20, 0]);
    }

    #[test]
    fn what_cannot_play_is_refused_with_how_to_make_it() {
        for (header, says) in [
            ("YUV4MPEG2 W32 H16 F25:1 C422", "only 4:2:0"),
            ("YUV4MPEG2 W32 H16 F25:1 It", "only progressive"),
            ("YUV4MPEG2 W32 F25:1", "no W (width) or H (height)"),
            ("YUV4MPEG2 W33 H16 F25:1", "even sizes"),
            ("YUV4MPEG2 W32 H16", "no frame rate"),
            ("YUV4MPEG2 W32 H16 F25:0", "no frame rate"),
            ("RIFF W32 H16 F25:1", "not a YUV4MPEG2 file"),
        ] {
            let f = file(1, header);
            let e = Y4mSource::open(f.path(), None).err().unwrap().to_string();
            assert!(e.contains(says) && e.contains("ffmpeg"), "{header}: {e}");
        }
        // A picture cut short.
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"YUV4MPEG2 W32 H16 F25:1\nFRAME\n").unwrap();
        f.write_all(&[0; 100]).unwrap();
        assert!(Y4mSource::open(f.path(), None).is_err());
    }
}
