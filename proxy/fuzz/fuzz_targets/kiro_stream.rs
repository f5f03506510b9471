//! Arbitrary upstream bytes, cut into chunks at the bytes' own discretion, through the Kiro
//! event-stream decoder, translator and Anthropic encoder: must never panic, hang or buffer
//! more than one bounded frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolgate_proxy::providers::kiro::eventstream::Decoder;
use poolgate_proxy::providers::kiro::events::TranslatorOptions;
use poolgate_proxy::providers::kiro::{unary, KiroStream};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size and thinking mode.
    let Some((&knob, body)) = data.split_first() else { return };
    let opts = TranslatorOptions { thinking: knob & 1 == 1, ..TranslatorOptions::default() };
    let mut s = KiroStream::with_decoder(Decoder::with_max_frame_len(1 << 16), "m", opts.clone());
    for chunk in body.chunks(usize::from(knob >> 1).max(1)) {
        if let Err(e) = s.push(chunk) {
            let _ = s.fail(e.status(), &e.to_string());
            return;
        }
    }
    let _ = s.finish();
    let _ = unary(body, "m", opts);
});
