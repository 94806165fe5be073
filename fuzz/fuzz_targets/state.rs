//! Fuzz target: the apply state record reader (tune::state::parse_record) and its hex decoder.
//! Oracles: no panic; `unhex` accepts only hex digits (a corrupt record is refused, not guessed).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = tune::state::parse_record(text);
    if tune::state::unhex(text).is_ok() {
        assert!(
            text.bytes().all(|b| b.is_ascii_hexdigit()),
            "unhex accepted non-hex text {text:?}"
        );
    }
});
