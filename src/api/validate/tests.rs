use super::*;

const F: Field = Field::new("ArgX", "AppID", "appid");

fn params(pairs: &[(&str, &str)]) -> Params {
    Params::from_pairs(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
}

fn msg(e: ApiError) -> String {
    match e {
        ApiError::RequestErr(m) => m,
        other => panic!("expected -400, got {other:?}"),
    }
}

#[test]
fn required_and_invalid_messages() {
    assert_eq!(msg(F.required()), "Key: 'ArgX.AppID' Error:Field validation for 'AppID' failed on the 'required' tag");
    assert_eq!(msg(F.invalid("bad")), r#"invalid parameter "appid": bad"#);
}

#[test]
fn identifiers_seen_in_the_wild_pass() {
    for ok in [
        "goim.comet",
        "main.arch.account-service",
        "infra.discovery",
        "host-1.example.com",
        "sh001",
        "fat1",
        "ip-10-0-0-5.ec2.internal",
        "comet_01",
        "user@host:7171",
        "group/svc",
        &"a".repeat(MAX_IDENT_LEN),
    ] {
        assert_eq!(check_identifier(F, ok), Ok(()), "{ok}");
    }
}

#[test]
fn bad_identifiers_are_refused_naming_the_param() {
    for bad in ["a b", "a\nb", "a\tb", "a\0", "é", "a\"b", "a,b", "a?b", "a%b", "a&b"] {
        let m = msg(check_identifier(F, bad).expect_err(bad));
        assert!(m.starts_with(r#"invalid parameter "appid": character "#), "{bad}: {m}");
    }
    let long = "a".repeat(MAX_IDENT_LEN + 1);
    assert_eq!(
        msg(check_identifier(F, &long).expect_err("long")),
        r#"invalid parameter "appid": length 129 exceeds 128 bytes"#
    );
    assert_eq!(check_identifier(F, ""), Err(F.required()));
}

#[test]
fn required_optional_and_repeated_identifiers() {
    let p = params(&[("appid", "a.b"), ("appid", "c"), ("zone", "")]);
    assert_eq!(required_identifier(&p, F), Ok("a.b".to_owned()));
    let zone = Field::new("ArgX", "Zone", "zone");
    assert_eq!(required_identifier(&p, zone), Err(zone.required()));
    assert_eq!(optional_identifier(&p, zone), Ok(String::new()));
    assert!(msg(optional_identifier(&params(&[("zone", "a b")]), zone).expect_err("bad")).contains(r#""zone""#));
    assert_eq!(identifiers(&p, F, 2), Ok(vec!["a.b".to_owned(), "c".to_owned()]));
    assert!(msg(identifiers(&p, F, 1).expect_err("too many")).contains("2 values exceed the limit of 1"));
    assert_eq!(identifiers(&params(&[("appid", "")]), F, 2), Err(F.required()));
    assert!(msg(identifiers(&params(&[("appid", "ok"), ("appid", "n o")]), F, 2).expect_err("bad")).contains("appid"));
}

const ADDRS: Field = Field::new("ArgRegister", "Addrs", "addrs");

#[test]
fn addrs_are_split_on_commas_trimmed_and_repeated_values_kept() {
    let p = params(&[("addrs", "http://a:1,grpc://b:2"), ("addrs", ""), ("addrs", " grpc://c:3 , ,")]);
    assert_eq!(addrs(&p, ADDRS), Ok(vec!["http://a:1".to_owned(), "grpc://b:2".to_owned(), "grpc://c:3".to_owned()]));
    assert_eq!(addrs(&params(&[("addrs", "x")]), ADDRS), Ok(vec!["x".to_owned()]));
}

#[test]
fn addrs_limits() {
    assert_eq!(addrs(&params(&[]), ADDRS), Err(ADDRS.required()));
    assert_eq!(addrs(&params(&[("addrs", ",, ,")]), ADDRS), Err(ADDRS.required()));
    let max = vec!["a"; MAX_ADDRS].join(",");
    assert_eq!(addrs(&params(&[("addrs", &max)]), ADDRS).map(|a| a.len()), Ok(MAX_ADDRS));
    let over = format!("{max},b");
    assert_eq!(
        msg(addrs(&params(&[("addrs", &over)]), ADDRS).expect_err("17")),
        r#"invalid parameter "addrs": more than 16 addresses"#
    );
    let long = "a".repeat(MAX_ADDR_LEN + 1);
    assert!(msg(addrs(&params(&[("addrs", &long)]), ADDRS).expect_err("long"))
        .contains(r#""addrs": an address of 257 bytes"#));
    assert_eq!(addrs(&params(&[("addrs", &"a".repeat(MAX_ADDR_LEN))]), ADDRS).map(|a| a.len()), Ok(1));
    for bad in ["http://a b", "http://a\u{7f}", "a\u{1}"] {
        assert!(msg(addrs(&params(&[("addrs", bad)]), ADDRS).expect_err(bad)).contains(r#""addrs""#), "{bad:?}");
    }
}

const META: Field = Field::new("ArgRegister", "Metadata", "metadata");

#[test]
fn metadata_accepts_objects_of_strings_and_nothing() {
    assert_eq!(metadata(META, ""), Ok(None));
    assert_eq!(metadata(META, "null"), Ok(None));
    assert_eq!(metadata(META, "{}"), Ok(Some(BTreeMap::new())));
    let expected = BTreeMap::from([("weight".to_owned(), "10".to_owned()), ("color".to_owned(), "a,b".to_owned())]);
    assert_eq!(metadata(META, r#"{"weight":"10","color":"a,b"}"#), Ok(Some(expected)));
}

#[test]
fn metadata_refusals_name_the_param() {
    let cases = [
        (r#"{"weight":10}"#, r#"the value of "weight" is a number"#),
        (r#"{"a":"b","n":null}"#, r#"the value of "n" is null"#),
        (r#"{"a":{"b":"c"}}"#, "is an object"),
        (r#"["a"]"#, "got an array"),
        (r#""s""#, "got a string"),
        ("1", "got a number"),
        ("{bad", "not valid JSON"),
    ];
    for (raw, why) in cases {
        let m = msg(metadata(META, raw).expect_err(raw));
        assert!(m.starts_with(r#"invalid parameter "metadata": "#) && m.contains(why), "{raw}: {m}");
    }
}

#[test]
fn metadata_limits() {
    let keys = |n: usize| {
        let body: Vec<String> = (0..n).map(|i| format!(r#""k{i}":"v""#)).collect();
        format!("{{{}}}", body.join(","))
    };
    assert_eq!(metadata(META, &keys(MAX_METADATA_KEYS)).map(|m| m.map(|m| m.len())), Ok(Some(MAX_METADATA_KEYS)));
    assert!(
        msg(metadata(META, &keys(MAX_METADATA_KEYS + 1)).expect_err("keys")).contains("65 keys exceed the limit of 64")
    );
    let fits = format!(r#"{{"k":"{}"}}"#, "v".repeat(MAX_METADATA_BYTES - 8));
    assert_eq!(fits.len(), MAX_METADATA_BYTES);
    assert!(metadata(META, &fits).is_ok());
    let big = format!(r#"{{"k":"{}"}}"#, "v".repeat(MAX_METADATA_BYTES - 7));
    assert!(msg(metadata(META, &big).expect_err("big")).contains(r#""metadata": length 4097 exceeds 4096 bytes"#));
}

#[test]
fn text_limits() {
    let version = Field::new("ArgRegister", "Version", "version");
    assert_eq!(text(&params(&[("version", "v1.2 beta")]), version, 128), Ok("v1.2 beta".to_owned()));
    assert_eq!(text(&params(&[]), version, 128), Ok(String::new()));
    assert!(msg(text(&params(&[("version", "abc")]), version, 2).expect_err("long")).contains(r#""version": length 3"#));
    assert!(msg(text(&params(&[("version", "a\nb")]), version, 128).expect_err("ctl")).contains(r#""version""#));
}

#[test]
fn timestamps_must_be_non_negative() {
    let dirty = Field::new("ArgRenew", "DirtyTimestamp", "dirty_timestamp");
    assert_eq!(timestamp(&params(&[]), dirty), Ok(0));
    assert_eq!(timestamp(&params(&[("dirty_timestamp", "17")]), dirty), Ok(17));
    assert_eq!(
        msg(timestamp(&params(&[("dirty_timestamp", "-1")]), dirty).expect_err("neg")),
        r#"invalid parameter "dirty_timestamp": must be >= 0, got -1"#
    );
    assert!(
        msg(timestamp(&params(&[("dirty_timestamp", "1e9")]), dirty).expect_err("syntax")).contains("dirty_timestamp")
    );
}
