//! Zip bundles of a study, as clinics export them: each entry is one DICOM instance, read on
//! a blocking thread and handed over one at a time, so a bundle of any size holds at most
//! two entries in memory. Zip bombs get nowhere: the entry count, each entry's size and the
//! bundle's total expanded size are capped by what is actually inflated, not by what the
//! archive declares. Entry names are never logged or reported (they often carry patient
//! names); entries are numbered instead.

use std::io::Read;
use std::path::PathBuf;

use crate::archive::Rejection;
use crate::archive::status::{CANNOT_UNDERSTAND, OUT_OF_RESOURCES};

/// What a bundle may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
}

/// One entry of a bundle: its 1-based number, and its bytes or why it was refused.
pub type Entry = (usize, Result<Vec<u8>, Rejection>);

const LOCAL_HEADER: &[u8] = b"PK\x03\x04";
const EMPTY_ARCHIVE: &[u8] = b"PK\x05\x06";

/// Does the staged file start like a zip archive?
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(LOCAL_HEADER) || head.starts_with(EMPTY_ARCHIVE)
}

/// Reads the bundle at `path`, sending each entry to `tx` in order. Returns how many entries
/// were skipped (directories, DICOMDIR), or why the whole bundle is refused. Blocking.
pub fn read(
    path: PathBuf,
    limits: Limits,
    tx: tokio::sync::mpsc::Sender<Entry>,
) -> Result<usize, String> {
    let file =
        std::fs::File::open(&path).map_err(|_| "the bundle could not be opened".to_string())?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|_| "the bundle is not a readable zip archive".to_string())?;
    if zip.len() > limits.max_entries {
        return Err(format!(
            "the bundle holds {} entries; at most {} are accepted (dicomweb.max_bundle_entries)",
            zip.len(),
            limits.max_entries
        ));
    }
    let mut total = 0u64;
    let mut skipped = 0;
    for i in 0..zip.len() {
        let n = i + 1;
        let refuse = |status: u16, reason: &str| (n, Err(Rejection::new(status, reason)));
        let entry = match zip.by_index(i) {
            Err(_) => refuse(CANNOT_UNDERSTAND, "the entry could not be read from the bundle"),
            Ok(f) if f.is_dir() => {
                skipped += 1;
                continue;
            }
            Ok(f) if f.name().rsplit(['/', '\\']).next() == Some("DICOMDIR") => {
                // The bundle's index, not an instance.
                skipped += 1;
                continue;
            }
            Ok(f) if f.encrypted() => refuse(CANNOT_UNDERSTAND, "the entry is encrypted"),
            Ok(f) if f.size() > limits.max_entry_bytes => refuse(
                OUT_OF_RESOURCES,
                "the entry is larger than the per-instance limit (dicomweb.max_instance_mib)",
            ),
            Ok(f) => {
                let declared = f.size();
                let mut bytes = Vec::with_capacity(declared.min(limits.max_entry_bytes) as usize);
                // Inflate at most one byte past the limit, whatever the header declares.
                match f.take(limits.max_entry_bytes + 1).read_to_end(&mut bytes) {
                    Err(_) => refuse(CANNOT_UNDERSTAND, "the entry is corrupt in the bundle"),
                    Ok(len) if len as u64 > limits.max_entry_bytes => refuse(
                        OUT_OF_RESOURCES,
                        "the entry expands beyond the per-instance limit (dicomweb.max_instance_mib)",
                    ),
                    Ok(_) if bytes.len() as u64 != declared => refuse(
                        CANNOT_UNDERSTAND,
                        "the entry's size differs from what the bundle declares",
                    ),
                    Ok(_) if is_zip(&bytes) => {
                        refuse(CANNOT_UNDERSTAND, "nested archives in a bundle are not opened")
                    }
                    Ok(len) => {
                        total += len as u64;
                        if total > limits.max_total_bytes {
                            return Err(
                                "the bundle expands beyond the request limit (dicomweb.max_request_mib); entries so far were kept"
                                    .to_string(),
                            );
                        }
                        (n, Ok(bytes))
                    }
                }
            }
        };
        if tx.blocking_send(entry).is_err() {
            break; // the receiver gave up
        }
    }
    Ok(skipped)
}
