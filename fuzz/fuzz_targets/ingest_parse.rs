//! Fuzzes the ingest parser: any bytes must give a checked instance or a refusal, never a
//! panic, and a refusal must carry a DICOM failure status.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match ferry::archive::parse::parse(data) {
        Ok(inst) => {
            assert!(ferry::archive::is_uid(&inst.sop_instance_uid));
            assert!(!inst.metadata.is_empty());
        }
        Err(r) => assert!(r.status != 0),
    }
});
