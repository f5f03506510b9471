//! Images API requests: any bytes as a generation body (JSON) and as an edit's multipart form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolgate_proxy::convert::images;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = images::parse_generation(&v);
    }
    let raw = bytes::Bytes::copy_from_slice(data);
    if let Ok(form) = futures::executor::block_on(images::read_form("multipart/form-data; boundary=B", raw)) {
        let _ = images::parse_edit(form);
    }
});
