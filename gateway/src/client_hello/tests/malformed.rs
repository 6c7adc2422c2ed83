//! Hand-built hellos that are not TLS, not a ClientHello, too large or broken in one place
//! each, and the exact error each must give.

use super::builder::{
    EXT_ALPN, EXT_SERVER_NAME, HANDSHAKE, Hello, fragment, message_of_body, record,
};
use super::{Summary, peek_client_hello, read_done, read_err, settle_over_prefixes};
use crate::client_hello::{ClientHelloError as E, MAX_CLIENT_HELLO_BYTES, Peek};

fn istio_hello() -> Hello {
    Hello::default()
        .sni(b"outbound_.9080_._.reviews.default.svc.cluster.local")
        .alpn(&[b"istio-peer-exchange", b"istio"])
}

#[test]
fn client_hello_plain_http_is_not_tls_from_its_first_byte() {
    let request = b"GET / HTTP/1.1\r\nHost: reviews\r\n\r\n";
    assert_eq!(peek_client_hello(&request[..1]), Ok(Peek::NotTls));
    assert_eq!(peek_client_hello(request), Ok(Peek::NotTls));
    assert_eq!(settle_over_prefixes(request), Some(Ok(Peek::NotTls)));
    assert_eq!(
        peek_client_hello(b"SSH-2.0-OpenSSH_9.2\r\n"),
        Ok(Peek::NotTls)
    );
    // A handshake content type but no TLS version behind it.
    assert_eq!(peek_client_hello(&[22, 0x47, 0x45]), Ok(Peek::NotTls));
    assert_eq!(peek_client_hello(&[22, 3, 9]), Ok(Peek::NotTls));
}

#[test]
fn client_hello_empty_buffer_needs_a_record_header() {
    assert_eq!(peek_client_hello(&[]), Ok(Peek::NeedMore { at_least: 5 }));
    assert_eq!(
        peek_client_hello(&[22, 3]),
        Ok(Peek::NeedMore { at_least: 5 })
    );
}

#[test]
fn client_hello_non_handshake_record_is_an_error() {
    let alert = record(21, &[2, 40]);
    assert_eq!(read_err(&alert), E::NotHandshakeRecord { content_type: 21 });
    let data = record(23, b"0123456789");
    assert_eq!(
        read_err(&data[..3]),
        E::NotHandshakeRecord { content_type: 23 }
    );
}

#[test]
fn client_hello_other_handshake_message_is_an_error_at_its_first_byte() {
    let server_hello = record(HANDSHAKE, &message_of_body(2, &istio_hello().body()));
    assert_eq!(
        read_err(&server_hello[..6]),
        E::NotClientHello { handshake_type: 2 }
    );
    assert_eq!(
        read_err(&server_hello),
        E::NotClientHello { handshake_type: 2 }
    );
}

#[test]
fn client_hello_sslv2_compatible_hello_is_an_explicit_error() {
    // Length 0x2e, CLIENT-HELLO, version 3.1, then cipher specs as old clients sent them.
    let sslv2 = [
        0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10,
    ];
    assert_eq!(read_err(&sslv2), E::Sslv2CompatHello);
    assert_eq!(
        peek_client_hello(&sslv2[..2]),
        Ok(Peek::NeedMore { at_least: 5 })
    );
    assert_eq!(
        read_err(&[0x80, 0x2e, 0x01, 0x00, 0x02]),
        E::Sslv2CompatHello
    );
    assert_eq!(peek_client_hello(&[0x80, 0x2e, 0x07]), Ok(Peek::NotTls));
}

#[test]
fn client_hello_record_over_the_cap_is_too_large_from_its_header() {
    let oversized = [HANDSHAKE, 3, 1, 0x40, 0x01];
    assert_eq!(
        read_err(&oversized),
        E::TooLarge {
            needed: 5 + 0x4001,
            max: MAX_CLIENT_HELLO_BYTES
        }
    );
    // A record within the cap announcing a handshake message that cannot fit.
    let huge_message = [HANDSHAKE, 3, 1, 0x40, 0x00, 1, 0x01, 0x00, 0x00];
    assert_eq!(
        read_err(&huge_message),
        E::TooLarge {
            needed: 5 + 4 + 0x10000,
            max: MAX_CLIENT_HELLO_BYTES
        }
    );
}

#[test]
fn client_hello_fragmented_past_the_cap_is_too_large() {
    // A hello that fits in one maximal record but not once split into 1000-byte records.
    let padding = vec![0; 16_200];
    let message = istio_hello().extension(21, &padding).message();
    assert!(5 + message.len() <= MAX_CLIENT_HELLO_BYTES);
    read_done(&record(HANDSHAKE, &message));
    let wire = fragment(&message, &[1000]);
    assert!(matches!(read_err(&wire), E::TooLarge { .. }));
    assert!(matches!(
        settle_over_prefixes(&wire),
        Some(Err(E::TooLarge { .. }))
    ));
}

#[test]
fn client_hello_records_around_fragments_are_checked() {
    let message = istio_hello().message();
    let (first, rest) = message.split_at(10);

    let mut interleaved = record(HANDSHAKE, first);
    interleaved.extend(record(20, &[1]));
    interleaved.extend(record(HANDSHAKE, rest));
    assert_eq!(
        read_err(&interleaved),
        E::InterleavedRecord {
            offset: 15,
            content_type: 20
        }
    );

    let mut empty = record(HANDSHAKE, first);
    empty.extend(record(HANDSHAKE, &[]));
    empty.extend(record(HANDSHAKE, rest));
    assert_eq!(read_err(&empty), E::EmptyRecord { offset: 15 });

    let mut old_version = record(HANDSHAKE, first);
    old_version.extend([HANDSHAKE, 2, 0, 0, 1, 0]);
    let wrong_major = E::RecordVersion {
        offset: 15,
        major: 2,
    };
    assert_eq!(read_err(&old_version), wrong_major);
    // Found by the fuzzer: the answer must not change when the minor version arrives.
    assert_eq!(read_err(&old_version[..17]), wrong_major);
    assert_eq!(settle_over_prefixes(&old_version), Some(Err(wrong_major)));

    let mut trailing = message.clone();
    trailing.extend([0xde, 0xad]);
    assert_eq!(
        read_err(&record(HANDSHAKE, &trailing)),
        E::TrailingRecordData { extra: 2 }
    );
}

#[test]
fn client_hello_truncated_length_fields_name_the_field() {
    let cases: [(&str, Vec<u8>); 4] = [
        ("session_id", {
            let mut body = Hello {
                extensions: None,
                ..Hello::default()
            }
            .body();
            body.truncate(2 + 32 + 1 + 10);
            body
        }),
        ("random", vec![3, 3, 0, 0]),
        ("cipher_suites", {
            let mut body = Hello {
                extensions: None,
                ..Hello::default()
            }
            .body();
            body.truncate(2 + 32 + 1 + 32 + 2 + 3);
            body
        }),
        ("extensions", {
            let mut body = istio_hello().body();
            body.truncate(body.len() - 1);
            body
        }),
    ];
    for (field, body) in cases {
        let wire = record(HANDSHAKE, &message_of_body(1, &body));
        match read_err(&wire) {
            E::Truncated {
                field: named,
                needed,
                available,
            } => {
                assert_eq!(named, field);
                assert!(needed > available, "{field}: {needed} <= {available}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn client_hello_overrunning_extension_lengths_are_malformed() {
    // One extension claiming more bytes than the extensions block holds.
    let overrun = Hello {
        extensions: Some(vec![0x00, 0x17, 0x00, 0x09, 1, 2, 3]),
        ..Hello::default()
    };
    assert_eq!(
        read_err(&overrun.wire()),
        E::Truncated {
            field: "extension data",
            needed: 9,
            available: 3
        }
    );

    let mut sni = vec![0x00, 0x20, 0x00, 0x00, 0x04];
    sni.extend(b"a.b");
    let wire = Hello::default().extension(EXT_SERVER_NAME, &sni).wire();
    assert_eq!(
        read_err(&wire),
        E::Truncated {
            field: "server_name list",
            needed: 32,
            available: 6
        }
    );

    let mut host = vec![0x00, 0x06, 0x00, 0x00, 0x09];
    host.extend(b"a.b");
    let wire = Hello::default().extension(EXT_SERVER_NAME, &host).wire();
    assert_eq!(
        read_err(&wire),
        E::Truncated {
            field: "host_name",
            needed: 9,
            available: 3
        }
    );

    let alpn = [0x00, 0x04, 0x05, b'i', b's', b't'];
    let wire = Hello::default().extension(EXT_ALPN, &alpn).wire();
    assert_eq!(
        read_err(&wire),
        E::Truncated {
            field: "ALPN protocol name",
            needed: 5,
            available: 3
        }
    );
}

#[test]
fn client_hello_body_fields_are_checked() {
    let wire = |hello: Hello| hello.wire();
    assert_eq!(
        read_err(&wire(Hello {
            legacy_version: 0x0200,
            ..istio_hello()
        })),
        E::HelloVersion { version: 0x0200 }
    );
    assert_eq!(
        read_err(&wire(Hello {
            session_id: vec![1; 33],
            ..istio_hello()
        })),
        E::SessionIdTooLong { len: 33 }
    );
    assert_eq!(
        read_err(&wire(Hello {
            cipher_suites: vec![0x13, 0x01, 0x13],
            ..istio_hello()
        })),
        E::CipherSuites { len: 3 }
    );
    assert_eq!(
        read_err(&wire(Hello {
            cipher_suites: vec![],
            ..istio_hello()
        })),
        E::CipherSuites { len: 0 }
    );
    assert_eq!(
        read_err(&wire(Hello {
            compression_methods: vec![],
            ..istio_hello()
        })),
        E::NoCompressionMethods
    );
    let mut body = istio_hello().body();
    body.extend([0, 0]);
    assert_eq!(
        read_err(&record(HANDSHAKE, &message_of_body(1, &body))),
        E::TrailingBytes {
            field: "extensions",
            extra: 2
        }
    );
}

#[test]
fn client_hello_duplicate_extensions_are_malformed() {
    let twice_alpn = istio_hello().alpn(&[b"h2"]).wire();
    assert_eq!(
        read_err(&twice_alpn),
        E::DuplicateExtension { ext_type: EXT_ALPN }
    );
    let twice_grease = istio_hello()
        .extension(0x2a2a, &[])
        .extension(0x2a2a, &[0])
        .wire();
    assert_eq!(
        read_err(&twice_grease),
        E::DuplicateExtension { ext_type: 0x2a2a }
    );
    // Two different GREASE values, as Chromium sends, are fine.
    let two_grease = istio_hello()
        .extension(0x2a2a, &[])
        .extension(0x9a9a, &[0])
        .wire();
    let info = read_done(&two_grease);
    assert_eq!(
        info.sni.as_deref(),
        Some("outbound_.9080_._.reviews.default.svc.cluster.local")
    );
}

#[test]
fn client_hello_server_name_list_shape_is_checked() {
    let with_sni_data = |data: &[u8]| Hello::default().extension(EXT_SERVER_NAME, data).wire();
    assert_eq!(read_err(&with_sni_data(&[0, 0])), E::ServerNameListEmpty);
    assert_eq!(
        read_err(&with_sni_data(&[0, 4, 1, 0, 1, b'a'])),
        E::ServerNameType { name_type: 1 }
    );
    assert_eq!(
        read_err(&with_sni_data(&[0, 8, 0, 0, 1, b'a', 0, 0, 1, b'b'])),
        E::ServerNameMultiple
    );
    assert_eq!(
        read_err(&with_sni_data(&[0, 4, 0, 0, 1, b'a', 9])),
        E::TrailingBytes {
            field: "server_name list",
            extra: 1
        }
    );
}

#[test]
fn client_hello_sni_must_be_a_dns_shaped_ascii_name() {
    let err_for = |name: &[u8]| read_err(&Hello::default().sni(name).wire());
    assert_eq!(err_for(b""), E::ServerNameEmpty);
    assert_eq!(
        err_for("café.test".as_bytes()),
        E::ServerNameByte {
            byte: 0xc3,
            position: 3
        }
    );
    assert_eq!(
        err_for(b"a\0.test"),
        E::ServerNameByte {
            byte: 0,
            position: 1
        }
    );
    assert_eq!(
        err_for(b"a b.test"),
        E::ServerNameByte {
            byte: b' ',
            position: 1
        }
    );
    assert_eq!(
        err_for(b"*.test"),
        E::ServerNameByte {
            byte: b'*',
            position: 0
        }
    );
    assert_eq!(err_for(b".test"), E::ServerNameEmptyLabel { position: 0 });
    assert_eq!(err_for(b"a..test"), E::ServerNameEmptyLabel { position: 2 });
    assert_eq!(
        err_for(b"reviews.test."),
        E::ServerNameEmptyLabel { position: 13 }
    );
    let long_label = [b'a'; 64];
    assert_eq!(
        err_for(&long_label),
        E::ServerNameLabelTooLong {
            position: 0,
            len: 64
        }
    );
    let long_name = [b"a.".repeat(126).as_slice(), b"ab"].concat();
    assert_eq!(long_name.len(), 254);
    assert_eq!(err_for(&long_name), E::ServerNameTooLong { len: 254 });
    assert_eq!(err_for(&[b'a'; 300]), E::ServerNameTooLong { len: 300 });

    // The longest legal name, with labels of 63 and case as sent.
    let longest = [
        [b'Q'; 63].as_slice(),
        b".",
        &[b'r'; 63],
        b".",
        &[b'S'; 63],
        b".",
        &[b't'; 61],
    ]
    .concat();
    assert_eq!(longest.len(), 253);
    let wire = Hello::default().sni(&longest).wire();
    let info = read_done(&wire);
    assert_eq!(
        info.sni.as_deref().map(str::as_bytes),
        Some(longest.as_slice())
    );
}

#[test]
fn client_hello_alpn_list_shape_is_checked() {
    let with_alpn_data = |data: &[u8]| Hello::default().extension(EXT_ALPN, data).wire();
    assert_eq!(read_err(&with_alpn_data(&[0, 0])), E::AlpnListEmpty);
    assert_eq!(
        read_err(&with_alpn_data(&[0, 4, 2, b'h', b'2', 0])),
        E::AlpnProtocolEmpty
    );
    assert_eq!(
        read_err(&with_alpn_data(&[0, 3, 2, b'h', b'2', 7])),
        E::TrailingBytes {
            field: "ALPN protocol_name_list",
            extra: 1
        }
    );
}

#[test]
fn client_hello_without_sni_or_extensions_is_ok_with_no_name() {
    let no_sni = Hello::default().alpn(&[b"istio"]).wire();
    let info = read_done(&no_sni);
    assert_eq!(info.sni, None);
    assert!(crate::client_hello::has_istio_alpn(&info));

    let tls10_style = Hello {
        legacy_version: 0x0301,
        extensions: None,
        ..Hello::default()
    };
    let wire = tls10_style.wire();
    let info = read_done(&wire);
    assert_eq!(
        Summary::of(&info),
        Summary {
            sni: None,
            alpn: vec![],
            legacy_version: 0x0301
        }
    );
    assert!(info.alpn.is_empty());
    assert!(!crate::client_hello::has_istio_alpn(&info));
}

#[test]
fn client_hello_istio_alpn_check_is_exact() {
    for istio in crate::client_hello::ISTIO_MTLS_ALPNS {
        let info_wire = Hello::default().alpn(&[b"h2", istio.as_bytes()]).wire();
        assert!(
            crate::client_hello::has_istio_alpn(&read_done(&info_wire)),
            "{istio}"
        );
    }
    for other in [
        &b"Istio"[..],
        b"istio-h3",
        b"istio/",
        b"istio-http/2",
        b"h2",
    ] {
        let info_wire = Hello::default().alpn(&[other]).wire();
        assert!(!crate::client_hello::has_istio_alpn(&read_done(&info_wire)));
    }
}

#[test]
fn client_hello_error_messages_are_distinct_and_name_the_problem() {
    let errors = [
        E::NotHandshakeRecord { content_type: 23 },
        E::Sslv2CompatHello,
        E::TooLarge {
            needed: 20000,
            max: MAX_CLIENT_HELLO_BYTES,
        },
        E::EmptyRecord { offset: 15 },
        E::InterleavedRecord {
            offset: 15,
            content_type: 20,
        },
        E::RecordVersion {
            offset: 15,
            major: 2,
        },
        E::NotClientHello { handshake_type: 2 },
        E::TrailingRecordData { extra: 2 },
        E::HelloVersion { version: 0x0200 },
        E::Truncated {
            field: "host_name",
            needed: 9,
            available: 3,
        },
        E::TrailingBytes {
            field: "extensions",
            extra: 2,
        },
        E::SessionIdTooLong { len: 33 },
        E::CipherSuites { len: 3 },
        E::NoCompressionMethods,
        E::DuplicateExtension { ext_type: 16 },
        E::ServerNameListEmpty,
        E::ServerNameType { name_type: 1 },
        E::ServerNameMultiple,
        E::ServerNameEmpty,
        E::ServerNameTooLong { len: 254 },
        E::ServerNameByte {
            byte: 0xc3,
            position: 3,
        },
        E::ServerNameEmptyLabel { position: 2 },
        E::ServerNameLabelTooLong {
            position: 0,
            len: 64,
        },
        E::AlpnListEmpty,
        E::AlpnProtocolEmpty,
    ];
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    for (index, message) in messages.iter().enumerate() {
        assert!(
            message.contains("TLS") || message.contains("SSL"),
            "{message:?} does not say it is about TLS"
        );
        assert!(!messages[..index].contains(message), "{message:?} repeats");
    }
    assert!(messages[9].contains("host_name") && messages[9].contains('9'));
    assert!(messages[20].contains("0xc3") && messages[20].contains("position 3"));
    assert!(messages[2].contains("20000") && messages[2].contains("16389"));
}
