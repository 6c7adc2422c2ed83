//! Round-trip fuzzing of the SNI codec: any accepted name is canonical, and decoding what we
//! encode gives back the same key. Run: `cd multicluster/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run sni_codec`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multicluster::sni::SniKey;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(key) = SniKey::from_sni(name) {
        assert_eq!(key.to_sni(), name);
        let again = SniKey::from_cluster_name(&key.to_cluster_name()).expect("cluster form of a valid key");
        assert_eq!(again, key);
    }
    if let Ok(key) = SniKey::from_cluster_name(name) {
        assert_eq!(key.to_cluster_name(), name);
        assert_eq!(SniKey::from_sni(&key.to_sni()).expect("sni form of a valid key"), key);
    }
});
